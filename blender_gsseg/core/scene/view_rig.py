"""Cameras for a splat that came without its own: a rig of views around a target, for masks rendered from proxy
objects (Blender's "Add View Cameras").

The views are spread evenly over a band of elevations (a Fibonacci spiral: equal area per view), look at the
target's centre and stand at the distance that frames the target's bounding sphere. In a room-scale capture the
target is surrounded by the scene (walls, furniture): a camera behind a wall sees the wall, so each camera is
pulled in to stay in front of the first opaque Gaussian between it and the target.
"""

from __future__ import annotations

import numpy as np

from ..cameras import Camera, look_at
from ..gaussians import Gaussians

GOLDEN_ANGLE = np.pi * (3.0 - np.sqrt(5.0))
FRAME_MARGIN = 1.15  # the bounding sphere fills 1 / 1.15 of the narrower field of view
OPAQUE = 0.5  # Gaussians at least this opaque block a view
FREE_SPACE_MARGIN = 0.85  # a camera stands at this fraction of the distance to the first blocking Gaussian
BLOCK_SIGMAS = 2.0  # a Gaussian blocks the rays passing within this many of its largest scale


def view_rig(
    centre: np.ndarray,  # [3] what the views look at
    radius: float,  # of the sphere to frame
    count: int = 24,
    elevations: tuple[float, float] = (10.0, 55.0),  # degrees above the horizon: the band the views cover
    width: int = 512,
    height: int = 384,
    fov_x: float = 60.0,  # degrees
    obstacles: Gaussians | None = None,  # the splat: keep every camera in front of its opaque Gaussians
    up: tuple[float, float, float] = (0.0, 0.0, 1.0),
    prefix: str = "view",
) -> list[Camera]:
    """``count`` cameras around ``centre`` framing a sphere of ``radius`` (see the module docstring)."""
    if count < 1 or radius <= 0 or not np.isfinite(radius):
        raise ValueError(f"view_rig: count {count} and radius {radius} must be positive")
    centre = np.asarray(centre, dtype=np.float64)
    fx = 0.5 * width / np.tan(np.radians(fov_x) / 2.0)
    half_fov = min(np.arctan(0.5 * width / fx), np.arctan(0.5 * height / fx))
    distance = FRAME_MARGIN * radius / np.sin(half_fov)
    directions = rig_directions(count, elevations, np.asarray(up, dtype=np.float64))
    distances = np.full(count, distance)
    if obstacles is not None and len(obstacles):
        free = free_distances(obstacles, centre, directions, radius, distance)
        distances = np.maximum(np.minimum(distances, FREE_SPACE_MARGIN * free), 1.05 * radius)
    cameras = []
    for k, (direction, reach) in enumerate(zip(directions, distances, strict=True)):
        eye = centre + reach * direction
        cameras.append(Camera(look_at(eye, centre, up), fx, fx, width / 2.0, height / 2.0, width, height,
                              f"{prefix}_{k:03d}.png"))
    return cameras


def rig_directions(count: int, elevations: tuple[float, float], up: np.ndarray) -> np.ndarray:  # [count, 3]
    """Unit vectors from the target to the cameras: a Fibonacci spiral over the band of ``elevations``."""
    up = up / np.linalg.norm(up)
    side = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 1.0, 0.0])
    side /= np.linalg.norm(side)
    other = np.cross(up, side)
    low, high = np.sin(np.radians(min(elevations))), np.sin(np.radians(max(elevations)))
    heights = low + (high - low) * (np.arange(count) + 0.5) / count
    azimuths = GOLDEN_ANGLE * np.arange(count)
    flat = np.sqrt(np.maximum(1.0 - heights ** 2, 0.0))
    return (flat[:, None] * (np.cos(azimuths)[:, None] * side + np.sin(azimuths)[:, None] * other)
            + heights[:, None] * up)


def free_distances(
    gaussians: Gaussians,
    centre: np.ndarray,  # [3]
    directions: np.ndarray,  # [K, 3] unit
    radius: float,  # the target's: Gaussians closer to the centre are the target itself
    reach: float,  # no need to look further
) -> np.ndarray:  # [K] distance to the first opaque Gaussian along each direction (inf when none)
    """How far each ray from ``centre`` goes before an opaque Gaussian outside the target blocks it."""
    solid = gaussians.opacities >= OPAQUE
    offsets = gaussians.means[solid].astype(np.float64) - centre
    extent = BLOCK_SIGMAS * gaussians.scales[solid].max(axis=1).astype(np.float64)
    free = np.full(len(directions), np.inf)
    for k, direction in enumerate(directions):
        along = offsets @ direction
        across = np.linalg.norm(offsets - along[:, None] * direction, axis=1)
        blocking = (along > radius) & (along < reach) & (across < extent)
        if blocking.any():
            free[k] = along[blocking].min()
    return free
