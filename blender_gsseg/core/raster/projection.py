"""Projection of 3D Gaussians to screen-space 2D Gaussians, following the INRIA forward kernel.

Every rule here mirrors ``diff-gaussian-rasterization`` (forward.cu: computeCov3D, computeCov2D, preprocessCUDA,
getRect) so that labels lifted by gsseg agree with what a 3DGS viewer shows. All maths in float32, as on the GPU.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..cameras import Camera

# ----- the INRIA rasterizer's constants, in one place
TILE_SIZE = 16  # BLOCK_X = BLOCK_Y
NEAR_PLANE = 0.2  # in_frustum(): view-space z <= 0.2 is culled
LOW_PASS = 0.3  # added to both diagonal entries of the 2D covariance (anti-aliasing)
RADIUS_SIGMAS = 3.0  # screen radius = ceil(3 * sqrt(largest eigenvalue))
MIN_EIGEN_GAP = 0.1  # lambda = mid +- sqrt(max(0.1, mid^2 - det))
FRUSTUM_CLAMP = 1.3  # x/z and y/z clamped to 1.3 * tan(fov / 2) before building the Jacobian
MAX_ALPHA = 0.99  # alpha = min(0.99, opacity * exp(power))
MIN_ALPHA = 1.0 / 255.0  # contributions below this are skipped
MIN_TRANSMITTANCE = 1e-4  # a pixel stops before its transmittance would drop below this


@dataclasses.dataclass
class Projected:
    """Screen-space Gaussians for one camera. Arrays cover all N Gaussians; ``visible`` marks the kept ones.

    ``means2d`` use the INRIA pixel convention: pixel (j, i) has its centre at integer (j, i), so
    ``u = fx * x / z + cx - 0.5``.
    """

    means2d: np.ndarray  # [N, 2] float32
    conics: np.ndarray  # [N, 3] float32: inverse 2D covariance (a, b, c)
    depths: np.ndarray  # [N] float32: view-space z
    radii: np.ndarray  # [N] int32: 0 where culled
    opacities: np.ndarray  # [N] float32
    tile_min: np.ndarray  # [N, 2] int32 (x, y) first tile touched
    tile_max: np.ndarray  # [N, 2] int32 (x, y) one past the last tile touched
    width: int
    height: int

    @property
    def visible(self) -> np.ndarray:  # [N] bool
        return self.radii > 0

    @property
    def tile_grid(self) -> tuple[int, int]:  # (tiles across, tiles down)
        return ((self.width + TILE_SIZE - 1) // TILE_SIZE, (self.height + TILE_SIZE - 1) // TILE_SIZE)


def quaternion_to_matrix(quats: np.ndarray) -> np.ndarray:  # [N, 4] -> [N, 3, 3], dtype of quats
    """Rotation matrices [N, 3, 3] from unit quaternions [N, 4], w first (INRIA computeCov3D)."""
    r, x, y, z = (quats[:, i] for i in range(4))
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - r * z), 2 * (x * z + r * y)], axis=-1),
        np.stack([2 * (x * y + r * z), 1 - 2 * (x * x + z * z), 2 * (y * z - r * x)], axis=-1),
        np.stack([2 * (x * z - r * y), 2 * (y * z + r * x), 1 - 2 * (x * x + y * y)], axis=-1),
    ], axis=1)


def _dot3(a0, a1, a2, b0, b1, b2):
    """(a0 b0 + a1 b1) + a2 b2 elementwise: every product and sum rounded once, in this order. matmul would
    leave the order and the fusing of multiply-adds to the BLAS build, and the CUDA kernels must match bit for
    bit whatever numpy this runs on."""
    return (a0 * b0 + a1 * b1) + a2 * b2


def covariances_3d(
    scales: np.ndarray,  # [N, 3] float32
    quats: np.ndarray,  # [N, 4] float32, unit, w first
) -> np.ndarray:  # [N, 3, 3] float32
    """World-space covariances [N, 3, 3] = R S S^T R^T (exactly symmetric)."""
    m = quaternion_to_matrix(quats) * scales[:, None, :]
    cov = np.empty(m.shape, dtype=m.dtype)
    for a in range(3):
        for b in range(a, 3):
            cov[:, a, b] = _dot3(m[:, a, 0], m[:, a, 1], m[:, a, 2], m[:, b, 0], m[:, b, 1], m[:, b, 2])
            cov[:, b, a] = cov[:, a, b]
    return cov


def project_gaussians(
    means: np.ndarray,  # [N, 3] float32
    covs3d: np.ndarray,  # [N, 3, 3] float32
    opacities: np.ndarray,  # [N] float32
    camera: Camera,
) -> Projected:
    """Project Gaussians (means [N, 3], covariances [N, 3, 3], opacities [N]) through ``camera``."""
    f32 = np.float32
    view = camera.world_to_camera.astype(f32)
    rot, trans = view[:3, :3], view[:3, 3]
    means = means.astype(f32, copy=False)
    px, py, pz = means[:, 0], means[:, 1], means[:, 2]
    t = np.stack([_dot3(px, py, pz, rot[k, 0], rot[k, 1], rot[k, 2]) + trans[k] for k in range(3)], axis=1)
    depth = t[:, 2]
    in_front = depth > f32(NEAR_PLANE)
    z = np.where(in_front, depth, f32(1.0))

    fx, fy = f32(camera.fx), f32(camera.fy)
    width, height = camera.width, camera.height
    # Clamp limits: INRIA's 1.3 * tan(fov/2) generalised to an off-centre principal point as gsplat does.
    tan_fovx, tan_fovy = f32(0.5 * width / camera.fx), f32(0.5 * height / camera.fy)
    slack = FRUSTUM_CLAMP - 1.0
    lim_x_pos = f32((width - camera.cx) / camera.fx) + f32(slack) * tan_fovx
    lim_x_neg = f32(camera.cx / camera.fx) + f32(slack) * tan_fovx
    lim_y_pos = f32((height - camera.cy) / camera.fy) + f32(slack) * tan_fovy
    lim_y_neg = f32(camera.cy / camera.fy) + f32(slack) * tan_fovy
    tx = np.clip(t[:, 0] / z, -lim_x_neg, lim_x_pos) * z
    ty = np.clip(t[:, 1] / z, -lim_y_neg, lim_y_pos) * z

    # Jacobian rows (j01 = j10 = 0), T = J W (2 x 3), cov2d = (T cov3d) T^T
    j00, j02 = fx / z, -((fx * tx) / (z * z))
    j11, j12 = fy / z, -((fy * ty) / (z * z))
    tmat = [[j00 * rot[0, k] + j02 * rot[2, k] for k in range(3)],
            [j11 * rot[1, k] + j12 * rot[2, k] for k in range(3)]]
    covs3d = covs3d.astype(f32, copy=False)
    mt = [[_dot3(row[0], row[1], row[2], covs3d[:, 0, k], covs3d[:, 1, k], covs3d[:, 2, k]) for k in range(3)]
          for row in tmat]
    ca = _dot3(*mt[0], *tmat[0]) + f32(LOW_PASS)
    cb = _dot3(*mt[0], *tmat[1])
    cc = _dot3(*mt[1], *tmat[1]) + f32(LOW_PASS)

    det = ca * cc - cb * cb
    ok = in_front & (det != 0)
    safe_det = np.where(ok, det, f32(1.0))
    conics = np.stack([cc / safe_det, -cb / safe_det, ca / safe_det], axis=1).astype(f32)
    mid = f32(0.5) * (ca + cc)
    root = np.sqrt(np.maximum(f32(MIN_EIGEN_GAP), mid * mid - det))
    lambda_max = np.maximum(mid + root, mid - root)
    radii = np.ceil(f32(RADIUS_SIGMAS) * np.sqrt(np.maximum(lambda_max, f32(0)))).astype(np.int32)

    u = fx * t[:, 0] / z + f32(camera.cx) - f32(0.5)
    v = fy * t[:, 1] / z + f32(camera.cy) - f32(0.5)
    means2d = np.stack([u, v], axis=1).astype(f32)

    grid_x = (width + TILE_SIZE - 1) // TILE_SIZE
    grid_y = (height + TILE_SIZE - 1) // TILE_SIZE
    rad = radii.astype(f32)
    with np.errstate(invalid="ignore", over="ignore"):
        # getRect: C casts truncate toward zero before the clamp.
        tile_min = np.stack([
            np.clip(np.trunc((u - rad) / TILE_SIZE), 0, grid_x),
            np.clip(np.trunc((v - rad) / TILE_SIZE), 0, grid_y)], axis=1)
        tile_max = np.stack([
            np.clip(np.trunc((u + rad + TILE_SIZE - 1) / TILE_SIZE), 0, grid_x),
            np.clip(np.trunc((v + rad + TILE_SIZE - 1) / TILE_SIZE), 0, grid_y)], axis=1)
    tile_min = np.nan_to_num(tile_min).astype(np.int32)
    tile_max = np.nan_to_num(tile_max).astype(np.int32)
    area = (tile_max[:, 0] - tile_min[:, 0]) * (tile_max[:, 1] - tile_min[:, 1])
    keep = ok & (radii > 0) & (area > 0)
    radii = np.where(keep, radii, 0).astype(np.int32)
    return Projected(means2d, conics, depth.astype(f32), radii, np.asarray(opacities, dtype=f32),
                     tile_min, tile_max, width, height)
