"""View cameras for a splat without its own (core.scene.view_rig): every view frames the target, the views cover the
band of elevations evenly, and in a room they stay inside the walls."""

import numpy as np
import pytest

from blender_gsseg.core.scene.view_rig import view_rig
from scenes import gaussians_from_arrays

CENTRE = np.array([0.5, -0.2, 0.8])


def project(camera, points):
    cam = (camera.world_to_camera[:3, :3] @ points.T).T + camera.world_to_camera[:3, 3]
    return np.stack([camera.fx * cam[:, 0] / cam[:, 2] + camera.cx, camera.fy * cam[:, 1] / cam[:, 2] + camera.cy],
                    axis=1), cam[:, 2]


def sphere_points(centre, radius, count=2000, seed=0):
    direction = np.random.default_rng(seed).normal(size=(count, 3))
    return centre + radius * direction / np.linalg.norm(direction, axis=1, keepdims=True)


@pytest.mark.parametrize("width, height", [(512, 384), (300, 500)])
def test_every_view_frames_the_target(width, height):
    cameras = view_rig(CENTRE, 0.7, count=24, width=width, height=height)
    assert len(cameras) == 24 and len({c.image_name for c in cameras}) == 24
    points = sphere_points(CENTRE, 0.7)
    for camera in cameras:
        pixels, depth = project(camera, points)
        assert (depth > 0).all()
        assert (pixels[:, 0] > 0).all() and (pixels[:, 0] < width).all(), camera.image_name
        assert (pixels[:, 1] > 0).all() and (pixels[:, 1] < height).all(), camera.image_name
        centre_pixel, _ = project(camera, CENTRE[None])
        assert np.allclose(centre_pixel[0], (width / 2, height / 2), atol=1e-6)
        # framed, not lost in the middle: the sphere spans most of the narrower side
        span = pixels.max(axis=0) - pixels.min(axis=0)
        assert span.max() > 0.6 * min(width, height)


def test_views_cover_the_band_evenly():
    cameras = view_rig(CENTRE, 1.0, count=24, elevations=(10.0, 55.0))
    directions = np.array([c.centre - CENTRE for c in cameras])
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    elevation = np.degrees(np.arcsin(directions[:, 2]))
    assert elevation.min() >= 10.0 and elevation.max() <= 55.0
    azimuth = np.sort(np.degrees(np.arctan2(directions[:, 1], directions[:, 0])))
    gaps = np.diff(np.concatenate([azimuth, azimuth[:1] + 360.0]))
    assert gaps.max() < 3 * 360.0 / 24  # no side left unseen
    angles = np.degrees(np.arccos(np.clip(directions @ directions.T, -1, 1)))
    np.fill_diagonal(angles, 180.0)
    assert angles.min(axis=1).min() > 8.0  # no two views nearly the same


def test_in_a_room_the_views_stay_inside_the_walls():
    # a closed room of opaque Gaussians, 3.2 m wide, the target (radius 1) in the middle: framing it would put the
    # cameras 2.9 m away, behind the walls
    rng = np.random.default_rng(3)
    side = np.linspace(-1.6, 1.6, 60)
    a, b = (grid.ravel() for grid in np.meshgrid(side, side))
    walls = []
    for axis in range(3):
        for wall in (-1.6, 1.6):
            points = np.zeros((len(a), 3))
            points[:, axis] = wall
            points[:, (axis + 1) % 3], points[:, (axis + 2) % 3] = a, b
            walls.append(points)
    means = np.concatenate(walls) + CENTRE
    n = len(means)
    room = gaussians_from_arrays(means, np.full((n, 3), np.log(0.05)), np.tile([1.0, 0, 0, 0], (n, 1)),
                                 np.full(n, 3.0), rng.random((n, 3)))
    outside = view_rig(CENTRE, 1.0, count=24)
    assert all(np.abs(c.centre - CENTRE).max() > 1.6 for c in outside)  # the framing distance alone: outside
    inside = view_rig(CENTRE, 1.0, count=24, obstacles=room)
    for camera in inside:
        assert np.abs(camera.centre - CENTRE).max() < 1.6 - 0.05, camera.centre
        assert np.linalg.norm(camera.centre - CENTRE) > 1.0  # not inside the target
