"""Which way is up (core.scene.up_axis): the cameras' mean up, the smallest rotation that stands a scene upright, and
the Forward / Up axes a file is imported with, Auto among them (issue 28, item 1)."""

import os

import numpy as np
import pytest

from blender_gsseg.core.cameras import Camera, look_at
from blender_gsseg.core.files.camera_files import load_cameras
from blender_gsseg.core.errors import BadInputError
from blender_gsseg.core.scene.up_axis import (AXES, CONVENTION_UP, axis_turn, axis_vector, camera_up, cameras_up,
                                             choose_axes, upright_forward, upright_rotation)

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


VALID_AXES = [(forward, up) for forward in AXES for up in AXES if forward[-1] != up[-1]]


@pytest.mark.parametrize("forward,up", VALID_AXES)
def test_axis_turn_takes_forward_to_y_and_up_to_z(forward, up):
    """What Blender's axis_conversion(from_forward, from_up) does (the Blender test compares them entry by entry):
    a proper rotation, the file's forward onto +Y and its up onto +Z."""
    turn = axis_turn(forward, up)
    np.testing.assert_array_equal(turn @ axis_vector(forward), [0, 1, 0])
    np.testing.assert_array_equal(turn @ axis_vector(up), [0, 0, 1])
    np.testing.assert_array_equal(turn @ turn.T, np.eye(3))
    assert np.linalg.det(turn) == pytest.approx(1.0)
    assert set(np.abs(turn).ravel()) == {0.0, 1.0}  # exact: no float noise in the object's rotation


def test_axis_turn_refuses_one_line():
    for forward, up in (("Y", "Y"), ("Z", "-Z")):
        with pytest.raises(BadInputError, match="different axes"):
            axis_turn(forward, up)
    with pytest.raises(BadInputError, match="axis 'W'"):
        choose_axes("scene.ply", up="W")


@pytest.mark.parametrize("up", AXES)
def test_auto_forward_is_the_smallest_turn(up):
    """Auto's forward goes with the smallest turn of the up onto +Z (upright_rotation): the turn it gives takes the
    up to Z and is that rotation (none at all for a file already Z up; -90° about X for the 3DGS frame)."""
    turn = axis_turn(upright_forward(up), up)
    np.testing.assert_allclose(turn, upright_rotation(axis_vector(up)), atol=1e-12)
    if up == "Z":
        np.testing.assert_array_equal(turn, np.eye(3))
    if up == "-Y":
        np.testing.assert_array_equal(turn, TURN_X[:3, :3].T)


def test_auto_without_cameras_takes_the_convention(tmp_path):
    choice = choose_axes(tmp_path / "scene.ply")
    assert (choice.forward, choice.up) == ("Z", "-Y") and "convention" in choice.source
    np.testing.assert_array_equal(choice.turn @ CONVENTION_UP, [0, 0, 1])
    (tmp_path / "cameras.json").write_text("[{]")  # a damaged camera file beside it: the import goes on
    assert choose_axes(tmp_path / "scene.ply").up == "-Y"


def test_auto_leaves_the_demo_scene_as_it_is():
    """The demo's cameras (beside scene_trained.ply) look 3° off Z: Auto snaps to the axis and does not tip it."""
    choice = choose_axes(os.path.join(DEMO, "scene_trained.ply"))
    assert (choice.forward, choice.up) == ("Y", "Z") and choice.source == "the cameras of cameras.json"
    assert 0.5 < choice.off_axis_degrees < 5.0
    np.testing.assert_array_equal(choice.turn, np.eye(3))


def test_auto_follows_the_cameras_beside_the_file(tmp_path):
    """The demo's cameras as a capture holds them (Y down), as cameras.json and as a COLMAP sparse/0 model: Auto
    takes -Y; turned the other way round (Y up) it takes Y; cameras that disagree leave the convention."""
    from blender_gsseg.core.files.colmap import write_colmap_text
    from blender_gsseg.core.files.inria_cameras import write_cameras_json

    cameras = load_cameras(os.path.join(DEMO, "cameras.json"))
    write_cameras_json(tmp_path / "cameras.json", turned(cameras, TURN_X))
    choice = choose_axes(tmp_path / "lying.ply")
    assert (choice.forward, choice.up) == ("Z", "-Y") and choice.source == "the cameras of cameras.json"
    sparse = tmp_path / "colmap" / "sparse" / "0"
    os.makedirs(sparse)
    write_colmap_text(sparse, turned(cameras, np.linalg.inv(TURN_X)))
    choice = choose_axes(tmp_path / "colmap" / "point_cloud.ply")
    assert (choice.forward, choice.up) == ("-Z", "Y") and "sparse" in choice.source
    np.testing.assert_array_equal(choice.turn @ [0, 1, 0], [0, 0, 1])
    rolled = []
    for k in range(6):
        roll = 2 * np.pi * k / 6
        rolled.append(Camera(look_at((0, -3.0, 0), np.zeros(3), (np.cos(roll), 0.0, np.sin(roll))), 50, 50, 32, 24,
                             64, 48, f"{k}.png"))
    os.makedirs(tmp_path / "rolled")
    write_cameras_json(tmp_path / "rolled" / "cameras.json", rolled)
    choice = choose_axes(tmp_path / "rolled" / "scene.ply")
    assert choice.up == "-Y" and "disagree" in choice.source


def test_explicit_axes_are_kept_and_auto_fills_in(tmp_path):
    choice = choose_axes(tmp_path / "scene.ply", "X", "Y")
    assert (choice.forward, choice.up, choice.source) == ("X", "Y", "the options")
    assert choose_axes(tmp_path / "scene.ply", up="X").forward == upright_forward("X")
    assert choose_axes(tmp_path / "scene.ply", forward="X").up == "-Y"  # the convention, forward as asked
    assert choose_axes(tmp_path / "scene.ply", forward="Y").forward == "Z"  # along the found up: Auto's forward
    with pytest.raises(BadInputError, match="different axes"):
        choose_axes(tmp_path / "scene.ply", "Z", "-Z")


def test_cameras_imported_before_the_splat_say_which_way_is_up(tmp_path):
    """Cameras already imported (in the file's frame) stand in for a camera file beside the splat; one beside it
    comes first."""
    from blender_gsseg.core.files.inria_cameras import write_cameras_json

    cameras = load_cameras(os.path.join(DEMO, "cameras.json"))
    imported = (turned(cameras, np.linalg.inv(TURN_X)), "'gsseg cameras'")  # Y up
    choice = choose_axes(tmp_path / "scene.ply", imported=imported)
    assert (choice.forward, choice.up, choice.source) == ("-Z", "Y", "the cameras of 'gsseg cameras'")
    assert choose_axes(tmp_path / "scene.ply", imported=([], "'empty'")).up == "-Y"
    write_cameras_json(tmp_path / "cameras.json", turned(cameras, TURN_X))  # beside: -Y up
    choice = choose_axes(tmp_path / "scene.ply", imported=imported)
    assert choice.up == "-Y" and choice.source == "the cameras of cameras.json"


def test_a_header_that_declares_its_up_comes_first(tmp_path):
    """'comment gsseg_up AXIS' (gsseg demo's outputs, an export in Blender's axes) decides before cameras beside the
    file; a malformed one is no declaration; with_up_comment replaces an earlier one."""
    from blender_gsseg.core.files.inria_cameras import write_cameras_json
    from blender_gsseg.core.files.ply import write_gaussians
    from blender_gsseg.core.files.splats import read_gaussians
    from blender_gsseg.core.scene.up_axis import declared_up, with_up_comment

    write_cameras_json(tmp_path / "cameras.json", turned(load_cameras(os.path.join(DEMO, "cameras.json")), TURN_X))
    choice = choose_axes(tmp_path / "scene.ply", comments=["made by hand", "gsseg_up Z"])
    assert (choice.forward, choice.up, choice.source) == ("Y", "Z", "its header: gsseg_up Z")
    assert choose_axes(tmp_path / "scene.ply", comments=["gsseg_up W", "gsseg_up", "gsseg_up Z Y"]).up == "-Y"
    assert declared_up(["gsseg_up -X", "gsseg_up Z"]) == "-X" and declared_up([]) is None
    scene = read_gaussians(os.path.join(DEMO, "scene_trained.ply"))
    marked = with_up_comment(with_up_comment(scene, "X"), "Z")
    assert marked.comments == scene.comments + ["gsseg_up Z"]
    write_gaussians(tmp_path / "marked.ply", marked)
    assert declared_up(read_gaussians(tmp_path / "marked.ply").comments) == "Z"
