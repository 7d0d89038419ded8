"""Which way is up in a splat scene, and the rotation that stands it upright (Blender's +Z up).

Every reader gives the 3DGS frame of INRIA/COLMAP-trained scenes, OpenCV's axes (x right, y down, z forward):
their up is -Y, whatever the file (``.spz`` and ``.glb`` are turned into that frame by their readers). A capture
is not always aligned with its axes, though: where the scene's cameras are known, their mean up vector (each
camera's image up, OpenCV's -y, in the world) says which way is up, as long as they agree (a rig looking down at
an object from one side of it does; cameras all around a sphere do not).
"""

from __future__ import annotations

import collections.abc

import numpy as np

from ..cameras import Camera

CONVENTION_UP = np.array([0.0, -1.0, 0.0])  # the 3DGS frame (OpenCV, COLMAP): y points down
MIN_AGREEMENT = 0.5  # the cameras' mean up must be at least this long (1: all alike) to be trusted


def camera_up(camera: Camera) -> np.ndarray:  # [3] unit, world
    """The world direction of ``camera``'s image up (OpenCV's -y)."""
    return -np.asarray(camera.world_to_camera, dtype=np.float64)[1, :3]


def cameras_up(cameras: collections.abc.Sequence[Camera]) -> np.ndarray | None:  # [3] unit, or None
    """The cameras' mean up vector, unit; None when there are none or they disagree (the mean of their unit up
    vectors shorter than :data:`MIN_AGREEMENT`)."""
    if not len(cameras):
        return None
    ups = np.array([camera_up(camera) / max(np.linalg.norm(camera_up(camera)), 1e-12) for camera in cameras])
    mean = ups.mean(axis=0)
    length = float(np.linalg.norm(mean))
    return mean / length if length >= MIN_AGREEMENT else None


def upright_rotation(up: np.ndarray, target: np.ndarray = (0.0, 0.0, 1.0)) -> np.ndarray:  # [3, 3]
    """The smallest rotation taking the direction ``up`` to ``target`` (default +Z); a half turn about X (or Y,
    for a target along X) when they are opposite."""
    up = np.asarray(up, dtype=np.float64)
    up = up / np.linalg.norm(up)
    target = np.asarray(target, dtype=np.float64)
    target = target / np.linalg.norm(target)
    axis = np.cross(up, target)
    sine, cosine = float(np.linalg.norm(axis)), float(np.dot(up, target))
    if sine < 1e-12:
        if cosine > 0:
            return np.eye(3)
        other = np.array([1.0, 0.0, 0.0]) if abs(target[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        axis = np.cross(target, other)
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)  # a half turn about ``axis``
    axis /= sine
    cross = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + sine * cross + (1.0 - cosine) * (cross @ cross)  # Rodrigues
