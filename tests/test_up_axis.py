"""Which way is up (core.scene.up_axis): the cameras' mean up, and the smallest rotation that stands a scene
upright (issue 28, item 1)."""

import os

import numpy as np
import pytest

from blender_gsseg.core.cameras import Camera, look_at
from blender_gsseg.core.files.camera_files import load_cameras
from blender_gsseg.core.scene.up_axis import CONVENTION_UP, camera_up, cameras_up, upright_rotation

DEMO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "blender_gsseg", "data", "demo")
TURN_X = np.array([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])  # +90° about X: Z up -> -Y up


def turned(cameras, matrix):
    """The cameras of a scene moved by ``matrix`` (4x4, old world -> new world)."""
    return [Camera(c.world_to_camera @ np.linalg.inv(matrix), c.fx, c.fy, c.cx, c.cy, c.width, c.height,
                   c.image_name) for c in cameras]


def test_the_demo_cameras_say_z_is_up_and_turned_with_the_scene_they_follow():
    cameras = load_cameras(os.path.join(DEMO, "cameras.json"))
    up = cameras_up(cameras)
    assert up[2] > 0.99
    lying = cameras_up(turned(cameras, TURN_X))  # the demo as an INRIA capture would hold it: Y down
    np.testing.assert_allclose(lying, TURN_X[:3, :3] @ up, atol=1e-12)
    assert lying @ CONVENTION_UP > 0.99


def test_cameras_that_disagree_say_nothing():
    """Six views from one side, each rolled by another sixth of a turn (a handheld scan turned every way): their
    ups cancel out."""
    cameras = []
    for k in range(6):
        roll = 2 * np.pi * k / 6
        up = (np.cos(roll), 0.0, np.sin(roll))  # perpendicular to the view direction (along y)
        cameras.append(Camera(look_at((0, -3.0, 0), np.zeros(3), up), 50, 50, 32, 24, 64, 48, f"{k}.png"))
    np.testing.assert_allclose(camera_up(cameras[0]), [1, 0, 0], atol=1e-12)
    assert cameras_up(cameras) is None and cameras_up([]) is None
    assert cameras_up(cameras[:2]) is not None  # two a sixth of a turn apart agree enough


@pytest.mark.parametrize("up", [(0, -1, 0), (0, 1, 0), (0, 0, 1), (0, 0, -1), (1, 0, 0), (0.3, -0.9, 0.2)])
def test_upright_rotation_is_the_smallest_rotation_to_z(up):
    rotation = upright_rotation(np.array(up, float))
    unit = np.array(up, float) / np.linalg.norm(up)
    np.testing.assert_allclose(rotation @ unit, [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    angle = np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))
    assert angle == pytest.approx(np.degrees(np.arccos(np.clip(unit[2], -1, 1))), abs=1e-6)
    if up == (0, -1, 0):  # the 3DGS frame: -90° about X, the turn an artist would guess
        np.testing.assert_allclose(rotation, TURN_X[:3, :3].T, atol=1e-12)
