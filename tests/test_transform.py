"""Baking an object transform into Gaussians (core/scene/object_transform.py): positions, rotations, scales, SH."""

import numpy as np
import pytest

from blender_gsseg.core.errors import BadInputError
from blender_gsseg.core.gaussians import Gaussians
from blender_gsseg.core.scene.object_transform import (decompose_similarity, matrix_to_quaternion, quaternion_multiply,
                                          quaternion_to_matrix, sh_rotation_matrices, transform_gaussians)

SH_C0 = 0.28209479177387814


def eval_sh_reference(degree, sh, dirs):
    """The 3DGS reference eval_sh (utils/sh_utils.py), written out independently of the module under test.
    sh: [N, 3, (degree + 1)^2] (channel, coefficient), dirs: [N, 3] unit -> [N, 3] (before the + 0.5)."""
    c1 = 0.4886025119029199
    c2 = [1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396]
    c3 = [-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
          -0.4570457994644658, 1.445305721320277, -0.5900435899266435]
    result = SH_C0 * sh[..., 0]
    x, y, z = (dirs[:, i:i + 1] for i in range(3))
    if degree > 0:
        result = result - c1 * y * sh[..., 1] + c1 * z * sh[..., 2] - c1 * x * sh[..., 3]
    if degree > 1:
        xx, yy, zz = x * x, y * y, z * z
        xy, yz, xz = x * y, y * z, x * z
        result = (result + c2[0] * xy * sh[..., 4] + c2[1] * yz * sh[..., 5]
                  + c2[2] * (2.0 * zz - xx - yy) * sh[..., 6] + c2[3] * xz * sh[..., 7]
                  + c2[4] * (xx - yy) * sh[..., 8])
    if degree > 2:
        result = (result + c3[0] * y * (3 * xx - yy) * sh[..., 9] + c3[1] * xy * z * sh[..., 10]
                  + c3[2] * y * (4 * zz - xx - yy) * sh[..., 11]
                  + c3[3] * z * (2 * zz - 3 * xx - 3 * yy) * sh[..., 12]
                  + c3[4] * x * (4 * zz - xx - yy) * sh[..., 13]
                  + c3[5] * z * (xx - yy) * sh[..., 14] + c3[6] * x * (xx - 3 * yy) * sh[..., 15])
    return result


def sh_of(gaussians, degree):
    """[N, 3, (degree + 1)^2] from the f_dc / channel-major f_rest properties."""
    v = gaussians.vertex
    k = (degree + 1) ** 2 - 1
    sh = np.zeros((len(v), 3, k + 1))
    for c in range(3):
        sh[:, c, 0] = v[f"f_dc_{c}"]
        for i in range(k):
            sh[:, c, 1 + i] = v[f"f_rest_{c * k + i}"]
    return sh


def random_rotation(rng):
    q = rng.normal(size=4)
    return quaternion_to_matrix(q[None])[0]


def random_scene(n, degree, rng, position_type="<f4", normals=True):
    k = (degree + 1) ** 2 - 1
    names = [("x", position_type), ("y", position_type), ("z", position_type)]
    if normals:
        names += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    names += [(f"f_dc_{c}", "<f4") for c in range(3)] + [(f"f_rest_{i}", "<f4") for i in range(3 * k)]
    names += [("opacity", "<f4")] + [(f"scale_{i}", "<f4") for i in range(3)]
    names += [(f"rot_{i}", "<f4") for i in range(4)] + [("gsseg_label", "<i4")]
    vertex = np.zeros(n, dtype=names)
    for name, code in names:
        if code != "<i4":
            vertex[name] = rng.normal(size=n)
    for i in range(3):
        vertex[f"scale_{i}"] = rng.normal(size=n) - 3
    vertex["rot_0"] += 2.0  # unnormalised, as trained files are
    vertex["gsseg_label"] = rng.integers(-1, 5, n)
    return Gaussians(vertex, meta_lines=[("comment", "kept")])


def similarity(rng, scale=1.7):
    matrix = np.eye(4)
    matrix[:3, :3] = scale * random_rotation(rng)
    matrix[:3, 3] = rng.normal(size=3) * 3
    return matrix


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_sh_colour_follows_the_rotation(degree):
    """Transformed SH at d equals the original SH at R^-1 d, for many Gaussians and directions."""
    rng = np.random.default_rng(degree)
    scene = random_scene(200, degree, rng)
    matrix = similarity(rng)
    out = transform_gaussians(scene, matrix)
    rotation = matrix[:3, :3] / 1.7
    before, after = sh_of(scene, degree), sh_of(out, degree)
    errors = []
    for _ in range(6):
        d = unit(rng.normal(size=(len(scene), 3)))
        original = eval_sh_reference(degree, before, d @ rotation)  # rows: (R^T d)^T
        moved = eval_sh_reference(degree, after, d)
        errors.append(np.abs(original - moved).max())
    scale_of_values = np.abs(eval_sh_reference(degree, before, unit(rng.normal(size=(len(scene), 3))))).max()
    assert max(errors) < 2e-6 * max(1.0, scale_of_values), max(errors)
    # the DC term does not change
    for c in range(3):
        assert out.vertex[f"f_dc_{c}"].tobytes() == scene.vertex[f"f_dc_{c}"].tobytes()


def test_sh_rotation_matrices_are_orthogonal_and_compose():
    rng = np.random.default_rng(5)
    r1, r2 = random_rotation(rng), random_rotation(rng)
    d1, d2, d12 = (sh_rotation_matrices(r, 3) for r in (r1, r2, r1 @ r2))
    for a, b, ab in zip(d1, d2, d12, strict=True):
        assert np.abs(a @ a.T - np.eye(len(a))).max() < 1e-12
        assert np.abs(a @ b - ab).max() < 1e-12
    for matrix in sh_rotation_matrices(np.eye(3), 3):
        assert np.abs(matrix - np.eye(len(matrix))).max() < 1e-13
    # a rotation about z by 90 degrees maps band 1 (-y, z, -x) as x -> y, y -> -x
    rz = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    band1 = sh_rotation_matrices(rz, 1)[0]
    # f(d) = -c1 * x (coefficient vector (0, 0, 1)); f(R^T d) = -c1 * (R^T d)_x = -c1 * y -> (1, 0, 0)
    assert np.allclose(band1 @ [0, 0, 1], [1, 0, 0], atol=1e-12)


def test_positions_rotations_scales_normals():
    rng = np.random.default_rng(7)
    scene = random_scene(300, 2, rng)
    matrix = similarity(rng, scale=2.5)
    out = transform_gaussians(scene, matrix)
    linear, t = matrix[:3, :3], matrix[:3, 3]
    rotation = linear / 2.5
    v, w = scene.vertex, out.vertex
    positions = np.stack([v[a].astype(np.float64) for a in "xyz"], 1)
    moved = np.stack([w[a].astype(np.float64) for a in "xyz"], 1)
    assert np.abs(moved - (positions @ linear.T + t)).max() < 1e-5 * np.abs(moved).max()
    normals = np.stack([v[a] for a in ("nx", "ny", "nz")], 1).astype(np.float64)
    assert np.allclose(np.stack([w[a] for a in ("nx", "ny", "nz")], 1), normals @ rotation.T, atol=1e-5)
    # scales: + log 2.5
    for i in range(3):
        assert np.allclose(w[f"scale_{i}"], v[f"scale_{i}"] + np.log(2.5), atol=1e-5)
    # quaternion: rotation matrix R @ R_q, norm kept
    q = np.stack([v[f"rot_{i}"] for i in range(4)], 1).astype(np.float64)
    q2 = np.stack([w[f"rot_{i}"] for i in range(4)], 1).astype(np.float64)
    assert np.allclose(np.linalg.norm(q2, axis=1), np.linalg.norm(q, axis=1), rtol=1e-5)
    assert np.abs(quaternion_to_matrix(q2) - rotation @ quaternion_to_matrix(q)).max() < 1e-5
    # covariance: s^2 R Sigma R^T
    def covariance(vertex, quats):
        s = np.exp(np.stack([vertex[f"scale_{i}"] for i in range(3)], 1).astype(np.float64))
        m = quaternion_to_matrix(quats) * s[:, None, :]
        return m @ m.transpose(0, 2, 1)
    expected = 2.5 ** 2 * rotation @ covariance(v, q) @ rotation.T
    got = covariance(w, q2)
    assert np.abs(got - expected).max() < 1e-4 * np.abs(expected).max()
    # everything else untouched, header kept
    assert w["opacity"].tobytes() == v["opacity"].tobytes()
    assert (w["gsseg_label"] == v["gsseg_label"]).all()
    assert out.meta_lines == scene.meta_lines and w.dtype == v.dtype
    # the input is not modified
    assert not np.shares_memory(v, w)


def test_double_positions_keep_their_precision():
    rng = np.random.default_rng(2)
    scene = random_scene(50, 0, rng, position_type="<f8", normals=False)
    matrix = np.eye(4)
    matrix[:3, 3] = [1e6, 0.5, -2]
    out = transform_gaussians(scene, matrix)
    assert out.vertex.dtype["x"] == np.float64
    assert np.array_equal(out.vertex["x"], scene.vertex["x"] + 1e6)


def test_quaternion_helpers():
    rng = np.random.default_rng(3)
    for _ in range(20):
        r = random_rotation(rng)
        q = matrix_to_quaternion(r)
        assert q[0] >= 0 and np.isclose(np.linalg.norm(q), 1)
        assert np.abs(quaternion_to_matrix(q[None])[0] - r).max() < 1e-12
    a, b = unit(rng.normal(size=4)), unit(rng.normal(size=4))
    product = quaternion_to_matrix(quaternion_multiply(a, b)[None])[0]
    assert np.abs(product - quaternion_to_matrix(a[None])[0] @ quaternion_to_matrix(b[None])[0]).max() < 1e-12
    # the four branches of Shepperd's method
    for angle, axis in [(0.1, 0), (3.0, 0), (3.0, 1), (3.0, 2)]:
        r = quaternion_to_matrix(np.r_[np.cos(angle / 2), np.sin(angle / 2) * np.eye(3)[axis]][None])[0]
        assert np.abs(quaternion_to_matrix(matrix_to_quaternion(r)[None])[0] - r).max() < 1e-12


@pytest.mark.parametrize("linear, words", [
    (np.diag([1.0, 2.0, 1.0]), "non-uniform scale"),
    (np.diag([-1.0, -1.0, -1.0]), "mirror"),
    (np.diag([1.0, 1.0, -1.0]), "mirror"),
    (np.array([[1.0, 0.5, 0], [0, 1, 0], [0, 0, 1]]), "non-uniform"),
    (np.zeros((3, 3)), "zero scale"),
])
def test_unrepresentable_transforms_are_refused(linear, words):
    matrix = np.eye(4)
    matrix[:3, :3] = linear
    with pytest.raises(BadInputError, match=words):
        decompose_similarity(matrix, "thing")
    with pytest.raises(BadInputError, match="thing"):
        transform_gaussians(random_scene(3, 1, np.random.default_rng(0)), matrix, "thing")


def test_shear_with_equal_column_norms_is_refused():
    c, s = np.cos(0.3), np.sin(0.3)
    linear = np.array([[1.0, s, 0], [0, c, 0], [0, 0, 1]])  # unit columns, not orthogonal
    matrix = np.eye(4)
    matrix[:3, :3] = linear
    with pytest.raises(BadInputError, match="shear"):
        decompose_similarity(matrix)


def test_uniform_scale_within_float32_rounding_is_accepted():
    rng = np.random.default_rng(4)
    matrix = similarity(rng, 0.3).astype(np.float32).astype(np.float64)
    scale, rotation, translation = decompose_similarity(matrix)
    assert abs(scale - 0.3) < 1e-6
    assert np.abs(rotation.T @ rotation - np.eye(3)).max() < 1e-12 and np.linalg.det(rotation) > 0


def test_sh_degree_four_is_refused():
    vertex = np.zeros(2, dtype=[(n, "<f4") for n in ["x", "y", "z", "scale_0", "scale_1", "scale_2", "rot_0",
                                                       "rot_1", "rot_2", "rot_3"]]
                      + [(f"f_rest_{i}", "<f4") for i in range(72)])
    with pytest.raises(BadInputError, match="degrees 0-3"):
        transform_gaussians(Gaussians(vertex), np.eye(4))
