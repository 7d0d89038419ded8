"""Cameras: one type, :class:`Camera` (OpenCV axes, world-to-camera), and the geometry around it (look-at rigs,
quaternions, rigid inverses). Camera files are read and written by :mod:`.files.camera_files`."""

from __future__ import annotations

import collections.abc
import dataclasses

import numpy as np


@dataclasses.dataclass
class Camera:
    """A pinhole camera. ``world_to_camera`` is 4x4 in OpenCV axes (x right, y down, z forward).

    Image coordinates are continuous with the top-left pixel covering [0, 1) x [0, 1), so its centre is
    (0.5, 0.5) (COLMAP's convention): a point projects to ``u = fx * x / z + cx``.
    """

    world_to_camera: np.ndarray  # [4, 4] float64
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    image_name: str

    def scaled(self, scale: float) -> Camera:
        """This camera at W' = round(S*W), H' = round(S*H), intrinsics scaled by W'/W and H'/H."""
        width, height = int(round(scale * self.width)), int(round(scale * self.height))
        sx, sy = width / self.width, height / self.height
        return dataclasses.replace(self, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy,
                                   width=width, height=height)

    def moved(self, to_world: np.ndarray) -> Camera:
        """This camera looking at a scene stored in a local frame: ``to_world`` [4, 4] maps it to world space
        (e.g. a Blender object's matrix_world)."""
        return dataclasses.replace(self, world_to_camera=self.world_to_camera @ np.asarray(to_world, np.float64))

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # [N, 2] float64, [N] float64
        """Project world points [N, 3] -> (uv [N, 2] in continuous pixel coordinates, depth [N])."""
        points = np.asarray(points, dtype=np.float64)
        cam = points @ self.world_to_camera[:3, :3].T + self.world_to_camera[:3, 3]
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack([self.fx * cam[:, 0] / z + self.cx, self.fy * cam[:, 1] / z + self.cy], axis=1)
        return uv, z

    @property
    def camera_to_world(self) -> np.ndarray:  # [4, 4] float64
        return np.linalg.inv(self.world_to_camera)

    @property
    def centre(self) -> np.ndarray:  # [3] float64
        """The camera centre in world coordinates, [3]."""
        rotation = self.world_to_camera[:3, :3]
        return -rotation.T @ self.world_to_camera[:3, 3]

    @classmethod
    def from_camera_to_world(
        cls,
        camera_to_world: np.ndarray,  # [3, 4] or [4, 4]
        fx: float,
        fy: float,
        cx: float,
        cy: float,
        width: int,
        height: int,
        image_name: str,
    ) -> Camera:
        """A camera from a camera-to-world matrix (3x4 or 4x4, OpenCV axes, rigid)."""
        c2w = np.asarray(camera_to_world, dtype=np.float64)
        w2c = rigid_inverse(c2w[None, :3, :3], c2w[None, :3, 3])[0]
        return cls(w2c, float(fx), float(fy), float(cx), float(cy), int(width), int(height), str(image_name))


def look_at(
    eye: collections.abc.Sequence[float] | np.ndarray,  # [3]
    target: collections.abc.Sequence[float] | np.ndarray,  # [3]
    up: collections.abc.Sequence[float] | np.ndarray = (0.0, 0.0, 1.0),  # [3]
) -> np.ndarray:  # [4, 4] float64
    """World-to-camera 4x4 (OpenCV axes) for a camera at ``eye`` looking at ``target``."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    w2c = np.eye(4)
    w2c[:3, :3] = rot
    w2c[:3, 3] = -rot @ eye
    return w2c


def ring_cameras(count: int, width: int = 160, height: int = 120, radius: float = 6.0, height_above: float = 3.0,
                 fov_x_deg: float = 60.0, prefix: str = "view") -> list[Camera]:
    """Cameras on a circle around the origin, looking at the scene centre."""
    fx = 0.5 * width / np.tan(np.radians(fov_x_deg) / 2)
    cameras = []
    for k in range(count):
        angle = 2 * np.pi * (k + 0.37) / count
        eye = (radius * np.cos(angle), radius * np.sin(angle), height_above + 0.6 * np.sin(3 * angle))
        cameras.append(Camera(look_at(eye, (0, 0, 0.6)), fx, fx, width / 2, height / 2, width, height,
                              f"{prefix}_{k:03d}"))
    return cameras


OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])


def quaternions_to_rotations(quaternions: np.ndarray) -> np.ndarray:  # [N, 4] -> [N, 3, 3] float64
    """Unit quaternions [N, 4] (w, x, y, z) -> rotation matrices [N, 3, 3] (COLMAP's qvec2rotmat)."""
    q = np.asarray(quaternions, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], axis=-1).reshape(q.shape[:-1] + (3, 3))


def rotations_to_quaternions(rotations: np.ndarray) -> np.ndarray:  # [N, 3, 3] -> [N, 4] float64
    """Rotation matrices [N, 3, 3] -> unit quaternions [N, 4] (w, x, y, z) with w >= 0 (COLMAP's rotmat2qvec)."""
    r = np.asarray(rotations, dtype=np.float64)
    # COLMAP's names: R.flat = Rxx, Ryx, Rzx, Rxy, Ryy, Rzy, Rxz, Ryz, Rzz (so Ryx is row 0, column 1).
    rxx, ryx, rzx = r[..., 0, 0], r[..., 0, 1], r[..., 0, 2]
    rxy, ryy, rzy = r[..., 1, 0], r[..., 1, 1], r[..., 1, 2]
    rxz, ryz, rzz = r[..., 2, 0], r[..., 2, 1], r[..., 2, 2]
    zero = np.zeros_like(rxx)
    # Bar-Itzhack: the quaternion is the eigenvector of the largest eigenvalue (lower triangle used by eigh).
    k = np.stack([
        rxx - ryy - rzz, zero, zero, zero,
        ryx + rxy, ryy - rxx - rzz, zero, zero,
        rzx + rxz, rzy + ryz, rzz - rxx - ryy, zero,
        ryz - rzy, rzx - rxz, rxy - ryx, rxx + ryy + rzz,
    ], axis=-1).reshape(r.shape[:-2] + (4, 4)) / 3.0
    _, vectors = np.linalg.eigh(k)
    q = vectors[..., [3, 0, 1, 2], -1]
    q = np.where(q[..., :1] < 0, -q, q)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def rigid_inverse(
    rotations: np.ndarray,  # [N, 3, 3]
    translations: np.ndarray,  # [N, 3]
) -> np.ndarray:  # [N, 4, 4] float64
    """[N, 3, 3] rotations and [N, 3] translations of a rigid map -> [N, 4, 4] matrices of its inverse."""
    n = rotations.shape[0]
    out = np.zeros((n, 4, 4))
    rt = np.swapaxes(rotations, 1, 2)
    out[:, :3, :3] = rt
    out[:, :3, 3] = -np.einsum("nij,nj->ni", rt, translations)
    out[:, 3, 3] = 1.0
    return out


def world_to_camera_matrices(
    rotations: np.ndarray,  # [N, 3, 3]
    translations: np.ndarray,  # [N, 3]
) -> np.ndarray:  # [N, 4, 4] float64
    """[N, 3, 3] world-to-camera rotations and [N, 3] translations -> [N, 4, 4]."""
    n = rotations.shape[0]
    out = np.zeros((n, 4, 4))
    out[:, :3, :3] = rotations
    out[:, :3, 3] = translations
    out[:, 3, 3] = 1.0
    return out
