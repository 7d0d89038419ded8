"""core/files/radiance.py: Gaussians <-> the attributes of Blender 5.3's native splat point clouds.

References are independent of the module: the PLY file's own bytes (parsed here with numpy from the header
gsseg wrote), sigmoid/exp in float64, and the relations measured with bpy 5.3.0's own importer
(docs/notes/blender_5.3_native_splats.md, Q1): radiance:sh_k = (f_rest_k, f_rest_{K+k}, f_rest_{2K+k}), alpha =
float32 sigmoid, scale = float32 exp, rotation normalised, SPZ positions (x, z, -y). tests/test_blender_native.py
checks the same against Blender's own import on bpy 5.3.
"""

import numpy as np
import pytest

from blender_gsseg.core.errors import BadInputError
from blender_gsseg.core.files import radiance
from blender_gsseg.core.files.ply import read_ply, write_gaussians
from blender_gsseg.core.gaussians import Gaussians, standard_dtype


def scene(n=500, degree=3, seed=0, extra=True):
    rng = np.random.default_rng(seed)
    count = (degree + 1) ** 2 - 1
    fields = list(standard_dtype(3 * count).descr)
    if extra:
        fields += [("nx", "<f4"), ("gsseg_label", "<i4"), ("big", "<u4"), ("conf", "<f8"), ("scale", "<f4")]
    vertex = np.zeros(n, dtype=fields)
    for name in vertex.dtype.names:
        vertex[name] = rng.normal(0, 2, n)
    vertex["opacity"] = rng.uniform(-12, 20, n)  # alpha saturates in float32 above ~16.6
    vertex["opacity"][:3] = [np.inf, -np.inf, 17.0]
    for i in range(3):
        vertex[f"scale_{i}"] = rng.uniform(-7, 1, n)
    for i in range(4):  # unnormalised quaternions, as files hold them
        vertex[f"rot_{i}"] = rng.normal(0, 3, n)
    if extra:
        vertex["gsseg_label"] = rng.integers(-1, 9, n)
        vertex["big"] = rng.integers(0, 2 ** 32, n, dtype=np.uint64)
        vertex["conf"] = vertex["conf"].astype(np.float32)  # a float64 property is kept as float32 (as in a mesh)
    return Gaussians(vertex, meta_lines=[("comment", "made by test_radiance")])


def file_columns(path):
    """{property: float64 column} parsed from the binary PLY's bytes with numpy (not gsseg's reader)."""
    data = open(path, "rb").read()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode().splitlines()
    types = {"float": "<f4", "double": "<f8", "int": "<i4", "uint": "<u4"}
    fields = [(line.split()[2], types[line.split()[1]]) for line in header if line.startswith("property")]
    count = int(next(line.split()[2] for line in header if line.startswith("element vertex")))
    table = np.frombuffer(data, dtype=np.dtype(fields), count=count, offset=end)
    return {name: table[name] for name in table.dtype.names}


def test_native_values_follow_blenders_layout(tmp_path):
    path = tmp_path / "s.ply"
    write_gaussians(path, scene())
    f = file_columns(path)
    native = radiance.to_radiance(read_ply(path).check()).attributes
    assert native["position"][0] == "FLOAT_VECTOR" and native["radiance:base"][0] == "FLOAT4"
    assert native["rotation"][0] == "QUATERNION" and native["scale"][0] == "FLOAT_VECTOR"
    np.testing.assert_array_equal(native["position"][1], np.stack([f["x"], f["y"], f["z"]], 1))
    base = native["radiance:base"][1]
    np.testing.assert_array_equal(base[:, :3], np.stack([f[f"f_dc_{i}"] for i in range(3)], 1))
    alpha64 = 1 / (1 + np.exp(-f["opacity"].astype(np.float64)))
    assert np.all(np.abs(base[:, 3] - alpha64) <= np.spacing(np.float32(1)))  # float32 sigmoid, within 1 ulp of 1
    assert base[0, 3] == 1.0 and base[1, 3] == 0.0
    scale64 = np.exp(np.stack([f[f"scale_{i}"] for i in range(3)], 1).astype(np.float64))
    np.testing.assert_allclose(native["scale"][1], scale64, rtol=2e-7)
    np.testing.assert_array_equal(native["rotation"][1], np.stack([f[f"rot_{i}"] for i in range(4)], 1))  # as stored
    sh = [name for name in native if name.startswith("radiance:sh_")]
    assert sh == [f"radiance:sh_{k}" for k in range(15)]  # built in order, not sorted
    for k in range(15):
        expected = np.stack([f[f"f_rest_{k}"], f[f"f_rest_{15 + k}"], f[f"f_rest_{30 + k}"]], 1)
        np.testing.assert_array_equal(native[f"radiance:sh_{k}"][1], expected)
    assert native["nx"][0] == "FLOAT" and native["gsseg_label"][0] == "INT"
    np.testing.assert_array_equal(native["big"][1].view(np.uint32), f["big"])
    assert native["ply_scale"][0] == "FLOAT"  # a property called 'scale' cannot take the native name


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_unedited_round_trip_is_byte_identical(tmp_path, degree):
    path, back = tmp_path / "s.ply", tmp_path / "back.ply"
    write_gaussians(path, scene(degree=degree, extra=degree == 3))
    original = read_ply(path).check()
    native = radiance.to_radiance(original)
    arrays = {name: values for name, (_, values) in native.attributes.items()}
    gaussians, notes = radiance.from_radiance(arrays, native.properties, meta_lines=original.meta_lines)
    write_gaussians(back, gaussians)
    assert back.read_bytes() == path.read_bytes()
    assert notes == []
    if degree == 3:
        assert native.rounded == ["conf"]


def test_kept_values_survive_another_machines_rounding(tmp_path):
    """A native alpha or scale 1 ulp away from this machine's sigmoid/exp of the kept value is still unedited."""
    original = scene(extra=False)
    native = radiance.to_radiance(original)
    arrays = {name: values.copy() for name, (_, values) in native.attributes.items()}
    arrays["radiance:base"][:, 3] = np.nextafter(arrays["radiance:base"][:, 3], np.float32(0.5))
    arrays["scale"] = np.nextafter(arrays["scale"], np.float32(np.inf))
    gaussians, notes = radiance.from_radiance(arrays, native.properties)
    np.testing.assert_array_equal(gaussians.vertex["opacity"], original.vertex["opacity"])
    np.testing.assert_array_equal(gaussians.vertex["scale_1"], original.vertex["scale_1"])
    assert notes == []


def test_edited_alpha_and_scale_are_derived_the_others_kept():
    original = scene(extra=False)
    native = radiance.to_radiance(original)
    arrays = {name: values.copy() for name, (_, values) in native.attributes.items()}
    arrays["radiance:base"][10:20, 3] = 0.25
    arrays["scale"][30, 2] = 0.5
    gaussians, notes = radiance.from_radiance(arrays, native.properties)
    opacity = gaussians.vertex["opacity"]
    np.testing.assert_allclose(opacity[10:20], np.log(0.25 / 0.75), rtol=1e-6)
    keep = np.ones(len(opacity), bool)
    keep[10:20] = False
    np.testing.assert_array_equal(opacity[keep], original.vertex["opacity"][keep])
    assert gaussians.vertex["scale_2"][30] == pytest.approx(np.log(0.5), rel=1e-6)
    np.testing.assert_array_equal(gaussians.vertex["scale_1"], original.vertex["scale_1"])
    assert any("10 edited splats" in note for note in notes) and any("log-scale of 1 edited" in note for note in notes)


def blender_import(original):
    """The attributes Blender 5.3's PLY importer makes, from the measured relations (float64 maths, cast)."""
    v = original.vertex
    quats = np.stack([v[f"rot_{i}"] for i in range(4)], 1).astype(np.float64)
    count = (original.sh_degree + 1) ** 2 - 1
    arrays = {
        "position": np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float32),
        "radiance:base": np.stack([v["f_dc_0"], v["f_dc_1"], v["f_dc_2"],
                                   1 / (1 + np.exp(-v["opacity"].astype(np.float64)))], 1).astype(np.float32),
        "scale": np.exp(np.stack([v[f"scale_{i}"] for i in range(3)], 1).astype(np.float64)).astype(np.float32),
        "rotation": (quats / np.linalg.norm(quats, axis=1, keepdims=True)).astype(np.float32),
    }
    for k in range(count):
        arrays[f"radiance:sh_{k}"] = np.stack([v[f"f_rest_{c * count + k}"] for c in range(3)], 1)
    if "gsseg_label" in v.dtype.names:
        arrays["gsseg_label"] = v["gsseg_label"].astype(np.float32)  # any other property comes in as FLOAT
    return arrays


def test_blenders_own_import_is_derived_and_said():
    original = scene()
    gaussians, notes = radiance.from_radiance(blender_import(original), where="'t1k'")
    v, o = gaussians.vertex, original.vertex
    assert list(v.dtype.names) == list(standard_dtype(45).names) + ["gsseg_label"]
    assert gaussians.property_types["gsseg_label"] == "int"
    np.testing.assert_array_equal(v["gsseg_label"], o["gsseg_label"])
    for name in ["x", "y", "z", "f_dc_0", "f_dc_2"] + [f"f_rest_{i}" for i in range(45)]:
        np.testing.assert_array_equal(v[name], o[name])
    alpha = 1 / (1 + np.exp(-o["opacity"].astype(np.float64)))
    finite = alpha.astype(np.float32) < np.float32(1 - 2 ** -24)  # alpha 1.0: the logit is gone
    finite &= alpha.astype(np.float32) > 0
    bound = radiance.logit_error_bound(alpha.astype(np.float32))
    assert np.max(np.abs(v["opacity"][finite] - o["opacity"][finite])) <= 2 * bound + 1e-5
    assert np.all(np.abs(v["opacity"][~finite]) >= 16.0)  # saturated alphas: clipped far out, the sign kept
    np.testing.assert_array_equal(np.sign(v["opacity"][~finite]), np.sign(o["opacity"][~finite]))
    np.testing.assert_allclose(v["scale_0"], o["scale_0"], atol=2e-6)
    quats = np.stack([v[f"rot_{i}"] for i in range(4)], 1)
    np.testing.assert_allclose(np.linalg.norm(quats, axis=1), 1, atol=1e-6)
    assert any("imported by Blender" in note for note in notes) and any("logit" in note for note in notes)
    assert any("clipped" in note for note in notes)  # the inf and 17.0 logits give alpha 1.0 exactly


def test_refusals_name_the_object():
    arrays = blender_import(scene(extra=False))
    del arrays["scale"]
    with pytest.raises(BadInputError, match="'obj'.*'scale'"):
        radiance.from_radiance(arrays, where="'obj'")
    arrays = blender_import(scene(extra=False))
    del arrays["radiance:sh_14"]
    with pytest.raises(BadInputError, match="14 radiance:sh"):
        radiance.from_radiance(arrays, where="'obj'")


def test_blender_spz_axes_undone():
    """Blender's SPZ import puts the stored (x, y, z) at (x, -z, y) (measured with bpy 5.3.0 on a .spz gsseg wrote:
    first splat (0.9834, 0.8132, 0.6792) -> (0.9834, -0.6792, 0.8132)); the matrix takes it back."""
    measured_file = np.array([[0.98339844, 0.8132324, 0.6791992], [0.9279785, 0.7949219, 0.37817383]])
    measured_blender = np.array([[0.98339844, -0.6791992, 0.8132324], [0.9279785, -0.37817383, 0.7949219]])
    np.testing.assert_array_equal(measured_file @ radiance.BLENDER_SPZ_AXES.T, measured_blender)
    rng = np.random.default_rng(1)
    file_positions = rng.normal(size=(20, 3))
    blender = np.stack([file_positions[:, 0], -file_positions[:, 2], file_positions[:, 1]], 1)
    back = radiance.blender_spz_to_file()
    np.testing.assert_allclose(blender @ back[:3, :3].T + back[:3, 3], file_positions, atol=1e-15)
    assert np.linalg.det(back[:3, :3]) == pytest.approx(1.0)
