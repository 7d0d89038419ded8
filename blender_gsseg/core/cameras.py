"""Cameras: one type (OpenCV axes, world-to-camera) and loaders for cameras.json, COLMAP and transforms.json."""

import dataclasses

import numpy as np


@dataclasses.dataclass
class Camera:
    """A pinhole camera. ``world_to_camera`` is 4x4 in OpenCV axes (x right, y down, z forward).

    Image coordinates are continuous with the top-left pixel covering [0, 1) x [0, 1), so its centre is
    (0.5, 0.5) (COLMAP's convention): a point projects to ``u = fx * x / z + cx``.
    """

    world_to_camera: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    image_name: str

    def scaled(self, scale):
        """This camera at W' = round(S*W), H' = round(S*H), intrinsics scaled by W'/W and H'/H."""
        width, height = int(round(scale * self.width)), int(round(scale * self.height))
        sx, sy = width / self.width, height / self.height
        return dataclasses.replace(self, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy,
                                   width=width, height=height)

    def project(self, points):
        """Project world points [N, 3] -> (uv [N, 2] in continuous pixel coordinates, depth [N])."""
        points = np.asarray(points, dtype=np.float64)
        cam = points @ self.world_to_camera[:3, :3].T + self.world_to_camera[:3, 3]
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack([self.fx * cam[:, 0] / z + self.cx, self.fy * cam[:, 1] / z + self.cy], axis=1)
        return uv, z

    @property
    def camera_to_world(self):
        return np.linalg.inv(self.world_to_camera)
