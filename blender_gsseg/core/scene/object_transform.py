"""Rigid-plus-uniform-scale transforms baked into Gaussians: positions, rotations, log-scales, normals and the
view-dependent colour (SH degrees 1-3).

Conventions (INRIA 3DGS): quaternions are w first (``rot_0`` = w) and stored unnormalised; scales are stored
as logs; ``f_rest`` is channel-major (index ``c * K + k`` with ``K = (degree + 1)^2 - 1``, ``k = 0`` the first
coefficient of band 1); the colour seen along the unit direction ``d`` (world frame, camera towards the
Gaussian) is ``0.5 + sum_l sum_m c_lm Y_lm(d)`` with the real SH basis of the reference ``eval_sh``
(:func:`sh_basis`).

A transform ``x -> s R x + t`` (``s > 0``, ``R`` a rotation) maps a Gaussian's mean to ``s R mu + t``, its
covariance to ``s^2 R Sigma R^T`` (rotation ``r * q`` with ``r`` the quaternion of ``R``, so the stored norm of
``q`` is kept; log-scales ``+ log s``) and its colour function ``f`` to ``f(R^T d)``. Band ``l`` of the SH
is closed under rotation, so the new band-``l`` coefficients are ``D_l c_l`` with
``D_l = pinv(Y_l(P)) Y_l(R^T P)`` for a fixed set ``P`` of directions that determines the band: exact up to
rounding, and independent of sign or normalisation conventions of the basis.

A Gaussian cannot represent a non-uniform scale, a shear or a mirror exactly (its colour function and its
covariance would need more than a rotation and per-axis scales): :func:`decompose_similarity` refuses them.
"""

from __future__ import annotations

import collections.abc
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BadInputError

if TYPE_CHECKING:
    from ..gaussians import Gaussians

SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
         1.445305721320277, -0.5900435899266435)
MAX_SH_DEGREE = 3
REST_COUNT_TO_DEGREE = {0: 0, 9: 1, 24: 2, 45: 3}
# Relative tolerance on the column norms and orthogonality of the linear part (Blender matrices are float32).
SIMILARITY_TOLERANCE = 1e-4


def sh_basis(directions: np.ndarray, degree: int) -> np.ndarray:  # [M, 3] -> [M, (degree + 1)^2 - 1] float64
    """[M, (degree + 1)^2 - 1]: the real SH basis of bands 1..``degree`` (3DGS order and constants) at the
    given directions [M, 3] (taken as they are: pass unit vectors)."""
    d = np.asarray(directions, dtype=np.float64)
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    columns = []
    if degree >= 1:
        columns += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        columns += [SH_C2[0] * xy, SH_C2[1] * yz, SH_C2[2] * (2 * zz - xx - yy), SH_C2[3] * xz,
                    SH_C2[4] * (xx - yy)]
    if degree >= 3:
        columns += [SH_C3[0] * y * (3 * xx - yy), SH_C3[1] * xy * z, SH_C3[2] * y * (4 * zz - xx - yy),
                    SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy), SH_C3[4] * x * (4 * zz - xx - yy),
                    SH_C3[5] * z * (xx - yy), SH_C3[6] * x * (xx - 3 * yy)]
    if degree > MAX_SH_DEGREE:
        raise BadInputError(f"SH degree {degree}: rotating SH above degree {MAX_SH_DEGREE} is not supported")
    return np.stack(columns, axis=1) if columns else np.zeros((len(d), 0))


def _sphere_directions(count=64):
    """Unit vectors spread over the sphere (Fibonacci lattice): enough to determine every band up to 3."""
    i = np.arange(count) + 0.5
    z = 1 - 2 * i / count
    phi = np.pi * (1 + 5 ** 0.5) * i
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def sh_rotation_matrices(rotation: np.ndarray, degree: int) -> list[np.ndarray]:  # [3, 3] -> [degree] of [2l+1, 2l+1]
    """[D_1, ..., D_degree]: ``D_l`` ((2l+1) x (2l+1)) maps band-``l`` coefficients of ``f`` to those of
    ``f(R^T d)``, for the rotation matrix ``rotation`` (3x3)."""
    rotation = np.asarray(rotation, dtype=np.float64)
    points = _sphere_directions()
    before = sh_basis(points, degree)
    after = sh_basis(points @ rotation, degree)  # rows: (R^T p)^T = p^T R
    matrices = []
    for band in range(1, degree + 1):
        lo, hi = band * band - 1, (band + 1) ** 2 - 1
        solution, *_ = np.linalg.lstsq(before[:, lo:hi], after[:, lo:hi], rcond=None)
        matrices.append(solution)
    return matrices


def rotate_sh_rest(
    rest: np.ndarray,  # [N, 3, K]
    rotation: np.ndarray,  # [3, 3]
    degree: int,
) -> np.ndarray:  # [N, 3, K] float64
    """``rest`` [N, 3, K] (per channel, coefficients of bands 1..degree in order) rotated by ``rotation``;
    float64 result."""
    rest = np.asarray(rest, dtype=np.float64)
    out = np.empty_like(rest)
    for band, matrix in enumerate(sh_rotation_matrices(rotation, degree), start=1):
        lo, hi = band * band - 1, (band + 1) ** 2 - 1
        out[..., lo:hi] = rest[..., lo:hi] @ matrix.T
    return out


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:  # [3, 3] -> [4] float64, w first
    """Unit quaternion (w, x, y, z), w >= 0, of a 3x3 rotation matrix (Shepperd's method)."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def quaternion_to_matrix(quaternions: np.ndarray) -> np.ndarray:  # [N, 4] -> [N, 3, 3] float64
    """[N, 3, 3] rotation matrices of quaternions [N, 4] (w first; normalised here)."""
    q = np.asarray(quaternions, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # [..., 4] each -> [..., 4] float64
    """Hamilton product ``a * b`` (w first), broadcasting over leading axes: rotation ``b`` then ``a``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def decompose_similarity(
    matrix: np.ndarray,  # [4, 4]
    where: str = "object",  # names the object in errors
) -> tuple[float, np.ndarray, np.ndarray]:  # scale, rotation [3, 3] float64, translation [3] float64
    """(scale s > 0, rotation R 3x3, translation t) with ``matrix = [[s R, t], [0, 1]]``; a clear
    :class:`BadInputError` for a non-uniform scale, a shear, a mirror (negative scale) or a projective row."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise BadInputError(f"{where}: the transform is not a finite 4x4 matrix")
    if np.abs(m[3] - [0, 0, 0, 1]).max() > 1e-9:
        raise BadInputError(f"{where}: the transform has a projective part; a Gaussian cannot represent it")
    linear = m[:3, :3]
    norms = np.linalg.norm(linear, axis=0)
    scale = float(norms.mean())
    if scale <= 0 or not np.isfinite(scale):
        raise BadInputError(f"{where}: the transform has zero scale")
    if np.abs(norms - scale).max() > SIMILARITY_TOLERANCE * scale:
        raise BadInputError(
            f"{where}: non-uniform scale (axis lengths {', '.join(f'{v:.6g}' for v in norms)}; a non-uniformly "
            f"scaled parent of a rotated child also gives a shear) cannot be baked into Gaussians exactly (each "
            f"keeps one rotation and three axis scales, and its SH colour would be distorted); use a uniform "
            f"scale, or export without the object transform")
    rotation = linear / scale
    if np.abs(rotation.T @ rotation - np.eye(3)).max() > SIMILARITY_TOLERANCE:
        raise BadInputError(f"{where}: the transform has a shear (e.g. a non-uniformly scaled parent of a "
                            f"rotated child); a Gaussian cannot represent it exactly")
    if np.linalg.det(rotation) < 0:
        raise BadInputError(f"{where}: the transform mirrors (negative scale); a Gaussian cannot represent a "
                            f"mirror exactly (its SH colour would need reflecting); remove the negative scale")
    u, _, vt = np.linalg.svd(rotation)  # the nearest rotation: float32 matrices are not quite orthonormal
    rotation = u @ vt
    return scale, rotation, m[:3, 3].copy()


def sh_degree_of(names: collections.abc.Iterable[str]) -> int:
    """SH degree from the vertex property names; refuses counts that are not those of degrees 0-3."""
    rest = sum(1 for name in names if name.startswith("f_rest_"))
    if rest not in REST_COUNT_TO_DEGREE:
        raise BadInputError(f"{rest} f_rest properties: rotating the SH is supported for degrees 0-3 "
                            f"(0, 9, 24 or 45 f_rest properties) only")
    return REST_COUNT_TO_DEGREE[rest]


BLOCK_ROWS = 1 << 15  # rows per block: a block of the structured table stays in cache while it is rewritten


def _assign(vertex, name, values):
    column = vertex[name]
    vertex[name] = np.asarray(values).astype(column.dtype)


def transform_gaussians(
    gaussians: Gaussians,
    matrix: np.ndarray,  # [4, 4] local -> world
    where: str = "object",  # names the object in errors
) -> Gaussians:
    """A new :class:`~.gaussians.Gaussians` with ``matrix`` (4x4, local -> world) baked in: positions,
    rotations (norm kept), log-scales, normals (``nx ny nz``, when present) and the SH (``f_rest``) rotated.
    Every other property, the header and the other elements are kept. Values are computed in float64 and
    written back in each property's own type."""
    scale, rotation, translation = decompose_similarity(matrix, where)
    vertex = gaussians.vertex.copy()
    names = vertex.dtype.names
    missing = [n for n in ("x", "y", "z", "rot_0", "rot_1", "rot_2", "rot_3", "scale_0", "scale_1", "scale_2")
               if n not in names]
    if missing:
        raise BadInputError(f"{where}: cannot transform Gaussians without {', '.join(missing)}")
    degree = sh_degree_of(names)
    has_normals = all(n in names for n in ("nx", "ny", "nz"))
    rotation_q = matrix_to_quaternion(rotation)
    log_scale = np.log(scale)
    count = (degree + 1) ** 2 - 1
    rest_names = [f"f_rest_{i}" for i in range(3 * count)]
    sh_matrices = sh_rotation_matrices(rotation, degree) if degree else []
    for start in range(0, len(vertex), BLOCK_ROWS):
        _transform_block(vertex[start:start + BLOCK_ROWS], scale, rotation, translation, rotation_q, log_scale,
                         has_normals, rest_names, count, sh_matrices)
    return gaussians._replace(vertex)


def _transform_block(block, scale, rotation, translation, rotation_q, log_scale, has_normals, rest_names, count,
                     sh_matrices):
    """Transform a block of rows of the structured array in place (a view into the copy)."""
    def stack(columns):
        return np.stack([block[c].astype(np.float64) for c in columns], axis=1)

    positions = stack(("x", "y", "z")) @ (scale * rotation).T + translation
    for axis, name in enumerate("xyz"):
        _assign(block, name, positions[:, axis])
    if has_normals:
        normals = stack(("nx", "ny", "nz")) @ rotation.T
        for axis, name in enumerate(("nx", "ny", "nz")):
            _assign(block, name, normals[:, axis])
    quaternions = quaternion_multiply(rotation_q, stack(("rot_0", "rot_1", "rot_2", "rot_3")))
    for axis in range(4):
        _assign(block, f"rot_{axis}", quaternions[:, axis])
    for axis in range(3):
        _assign(block, f"scale_{axis}", block[f"scale_{axis}"].astype(np.float64) + log_scale)
    if sh_matrices:
        rest = stack(rest_names).reshape(len(block), 3, count)
        rotated = np.empty_like(rest)
        for band, matrix in enumerate(sh_matrices, start=1):
            lo, hi = band * band - 1, (band + 1) ** 2 - 1
            rotated[..., lo:hi] = rest[..., lo:hi] @ matrix.T
        rotated = rotated.reshape(len(block), 3 * count)
        for index, name in enumerate(rest_names):
            _assign(block, name, rotated[:, index])
