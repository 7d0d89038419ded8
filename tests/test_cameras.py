"""Camera loaders and writers: cameras.json, COLMAP (bin/txt) and transforms.json agree to 1e-6 px."""

import json
import math
import os
import struct
import warnings

import numpy as np
import pytest

from blender_gsseg.core.cameras import Camera, quaternions_to_rotations, rotations_to_quaternions
from blender_gsseg.core.files.camera_files import load_cameras
from blender_gsseg.core.files.colmap import write_colmap_binary, write_colmap_text
from blender_gsseg.core.files.inria_cameras import write_cameras_json
from blender_gsseg.core.files.nerf_transforms import write_transforms_json
from blender_gsseg.core.errors import BadInputError

TOLERANCE_PX = 1e-6


# ----------------------------------------------------------------------------------------------------- helpers

def axis_angle(axis, angle):
    """Rotation matrix (Rodrigues) about ``axis`` by ``angle`` radians."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def make_camera(c2w_rotation, centre, fx, fy, cx, cy, width, height, name):
    w2c = np.eye(4)
    w2c[:3, :3] = c2w_rotation.T
    w2c[:3, 3] = -c2w_rotation.T @ np.asarray(centre, dtype=np.float64)
    return Camera(w2c, fx, fy, cx, cy, width, height, name)


def full_rig():
    """Cameras with various rotations (180-degree ones included), sizes, fx != fy, off-centre principal points."""
    rng = np.random.default_rng(7)
    return [
        make_camera(np.eye(3), (0, 0, -5), 500.0, 510.0, 300.25, 250.75, 640, 480, "img_000.jpg"),
        make_camera(random_rotation(rng), (1.5, -2, 3), 700.0, 700.0, 410.5, 290.0, 800, 600, "sub/dir/b.png"),
        make_camera(axis_angle((1, 0, 0), math.pi), (0, 0, 4), 900.0, 880.0, 500.5, 388.5, 1001, 777, "c.png"),
        make_camera(axis_angle((0, 0, 1), math.pi / 2), (-3, 1, 0.5), 300.0, 320.0, 170.0, 110.0, 320, 240,
                    "a_first.jpg"),
        make_camera(axis_angle((1, 1, 0), math.pi), (2, 2, 2), 1200.0, 1100.0, 640.0, 355.0, 1280, 720, "z.png"),
        make_camera(random_rotation(rng), (10, -4, 7), 450.0, 455.5, 250.0, 251.0, 512, 512, "frame_0001.png"),
    ]


def square_rig():
    """The rig every format can hold exactly: principal point at the image centre and fx == fy."""
    return [Camera(c.world_to_camera, c.fx, c.fx, c.width / 2, c.height / 2, c.width, c.height, c.image_name)
            for c in full_rig()]


def points_in_front(camera, count=50, seed=0):
    """World points seen by ``camera`` at depths 1..20, inside its image."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(1, 20, count)
    x = rng.uniform(-0.4, 0.4, count) * z
    y = rng.uniform(-0.3, 0.3, count) * z
    local = np.stack([x, y, z], axis=1)
    c2w = camera.camera_to_world
    return local @ c2w[:3, :3].T + c2w[:3, 3]


def assert_same_cameras(loaded, expected):
    """Same names, sizes, intrinsics; the same world points project to the same pixels (1e-6 px)."""
    expected = sorted(expected, key=lambda c: c.image_name)
    assert [c.image_name for c in loaded] == [c.image_name for c in expected]
    for got, want in zip(loaded, expected, strict=True):
        assert (got.width, got.height) == (want.width, want.height)
        assert isinstance(got.width, int) and isinstance(got.height, int)
        np.testing.assert_allclose([got.fx, got.fy, got.cx, got.cy], [want.fx, want.fy, want.cx, want.cy],
                                   rtol=0, atol=1e-9)
        assert got.world_to_camera.shape == (4, 4)
        np.testing.assert_allclose(got.world_to_camera[3], [0, 0, 0, 1], atol=0)
        points = points_in_front(want)
        uv_got, depth_got = got.project(points)
        uv_want, depth_want = want.project(points)
        np.testing.assert_allclose(uv_got, uv_want, rtol=0, atol=TOLERANCE_PX)
        np.testing.assert_allclose(depth_got, depth_want, rtol=0, atol=1e-9)


def write_inria(tmp_path, cameras):
    path = tmp_path / "cameras.json"
    write_cameras_json(path, cameras)
    return path


def write_transforms(tmp_path, cameras):
    path = tmp_path / "transforms.json"
    write_transforms_json(path, cameras)
    return path


def colmap_writer(binary, model="PINHOLE", distortion=None):
    def write(tmp_path, cameras):
        folder = tmp_path / "sparse" / "0"
        (write_colmap_binary if binary else write_colmap_text)(folder, cameras, model=model, distortion=distortion)
        return folder
    return write


FULL_FORMATS = {
    "colmap-bin-PINHOLE": colmap_writer(True),
    "colmap-txt-PINHOLE": colmap_writer(False),
    "colmap-bin-OPENCV": colmap_writer(True, "OPENCV"),
    "colmap-txt-OPENCV": colmap_writer(False, "OPENCV"),
    "transforms": write_transforms,
}
SQUARE_FORMATS = {
    **FULL_FORMATS,
    "inria": write_inria,
    "colmap-bin-SIMPLE_PINHOLE": colmap_writer(True, "SIMPLE_PINHOLE"),
    "colmap-txt-SIMPLE_PINHOLE": colmap_writer(False, "SIMPLE_PINHOLE"),
    "colmap-bin-SIMPLE_RADIAL": colmap_writer(True, "SIMPLE_RADIAL"),
    "colmap-txt-SIMPLE_RADIAL": colmap_writer(False, "SIMPLE_RADIAL"),
    "colmap-bin-RADIAL": colmap_writer(True, "RADIAL"),
    "colmap-txt-RADIAL": colmap_writer(False, "RADIAL"),
}


def load_quietly(path):
    """Load, failing on any warning (zero distortion must not warn)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return load_cameras(path)


def no_part_files(folder):
    return [name for _, _, names in os.walk(folder) for name in names if name.endswith(".part")] == []


# ----------------------------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("fmt", sorted(FULL_FORMATS))
def test_full_rig_round_trip(tmp_path, fmt):
    rig = full_rig()
    path = FULL_FORMATS[fmt](tmp_path, rig)
    assert no_part_files(tmp_path)
    assert_same_cameras(load_quietly(path), rig)


@pytest.mark.parametrize("fmt", sorted(SQUARE_FORMATS))
def test_square_rig_round_trip(tmp_path, fmt):
    rig = square_rig()
    path = SQUARE_FORMATS[fmt](tmp_path, rig)
    assert_same_cameras(load_quietly(path), rig)


def test_every_format_projects_the_same_points_to_the_same_pixels(tmp_path):
    rig = square_rig()
    loaded = {}
    for fmt, write in SQUARE_FORMATS.items():
        folder = tmp_path / fmt
        folder.mkdir()
        loaded[fmt] = load_quietly(write(folder, rig))
    points = np.concatenate([points_in_front(c, count=20, seed=i) for i, c in enumerate(rig)])
    reference = loaded["inria"]
    for fmt, cameras in loaded.items():
        for got, want in zip(cameras, reference, strict=True):
            assert got.image_name == want.image_name
            _, depth = want.project(points)
            visible = depth > 0.5  # avoid the blow-up near the camera plane
            uv_got, _ = got.project(points[visible])
            uv_want, _ = want.project(points[visible])
            np.testing.assert_allclose(uv_got, uv_want, rtol=0, atol=TOLERANCE_PX, err_msg=fmt)


@pytest.mark.parametrize("fmt", sorted(FULL_FORMATS))
def test_point_straight_ahead_lands_on_principal_point(tmp_path, fmt):
    rig = full_rig()
    for camera in load_quietly(FULL_FORMATS[fmt](tmp_path, rig)):
        c2w = camera.camera_to_world
        forward = c2w[:3, 2]
        points = camera.centre + np.outer([0.5, 3.0, 100.0], forward)
        uv, depth = camera.project(points)
        np.testing.assert_allclose(uv, [[camera.cx, camera.cy]] * 3, rtol=0, atol=TOLERANCE_PX)
        np.testing.assert_allclose(depth, [0.5, 3.0, 100.0], rtol=1e-12)


def test_cameras_come_back_sorted_by_name(tmp_path):
    rig = full_rig()
    write_colmap_text(tmp_path, rig)
    names = [c.image_name for c in load_cameras(tmp_path)]
    assert names == sorted(c.image_name for c in rig)
    assert "sub/dir/b.png" in names  # relative paths are kept


# ----------------------------------------------------------------------------------------- hand computations

def test_blender_transforms_by_hand(tmp_path):
    """Blender synthetic style: camera_angle_x only, file_path without extension, size from the image."""
    from PIL import Image

    (tmp_path / "train").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "train" / "r_0.png")
    Image.new("RGB", (40, 30)).save(tmp_path / "train" / "r_1.png")
    angle = 2 * math.atan(0.5)  # fx = 0.5 * 40 / tan(angle / 2) = 40
    meta = {
        "camera_angle_x": angle,
        "frames": [
            # at (0, 0, 5), OpenGL camera looking down -z (identity rotation)
            {"file_path": "./train/r_0", "rotation": 0.0,
             "transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 5], [0, 0, 0, 1]]},
            # at (5, 0, 0) looking down -x: camera right = world -z, up = world +y, backward = world +x
            {"file_path": "./train/r_1", "rotation": 0.0,
             "transform_matrix": [[0, 0, 1, 5], [0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 1]]},
        ],
    }
    path = tmp_path / "transforms_train.json"
    path.write_text(json.dumps(meta))
    front, side = load_quietly(path)
    assert front.image_name == "train/r_0" and side.image_name == "train/r_1"
    for camera in (front, side):
        assert (camera.width, camera.height) == (40, 30)
        assert camera.fx == pytest.approx(40.0, abs=1e-12) and camera.fy == pytest.approx(40.0, abs=1e-12)
        assert (camera.cx, camera.cy) == (20.0, 15.0)
    uv, depth = front.project([[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_allclose(uv, [[20, 15], [20 + 40 / 5, 15], [20, 15 - 40 / 5]], atol=1e-9)
    np.testing.assert_allclose(depth, [5, 5, 5], atol=1e-12)
    uv, depth = side.project([[0, 0, 0], [0, 0, -1], [0, 1, 0]])
    np.testing.assert_allclose(uv, [[20, 15], [20 + 40 / 5, 15], [20, 15 - 40 / 5]], atol=1e-9)
    np.testing.assert_allclose(depth, [5, 5, 5], atol=1e-12)
    np.testing.assert_allclose(front.centre, [0, 0, 5], atol=1e-12)


def test_nerfstudio_transforms_top_level_and_per_frame_intrinsics(tmp_path):
    meta = {
        "camera_model": "OPENCV", "fl_x": 100.0, "fl_y": 110.0, "cx": 33.0, "cy": 20.0, "w": 64, "h": 48,
        "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0,
        "frames": [
            {"file_path": "images/frame_0001.png",
             "transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 2], [0, 0, 0, 1]]},
            {"file_path": "images/frame_0002.png", "w": 128, "h": 96, "fl_x": 200.0, "cx": 60.0,
             "transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 2], [0, 0, 0, 1]]},
        ],
    }
    path = tmp_path / "transforms.json"
    path.write_text(json.dumps(meta))
    first, second = load_quietly(tmp_path)  # the folder holding transforms.json
    assert (first.image_name, first.width, first.height) == ("images/frame_0001.png", 64, 48)
    assert (first.fx, first.fy, first.cx, first.cy) == (100.0, 110.0, 33.0, 20.0)
    assert (second.width, second.height) == (128, 96)
    assert (second.fx, second.fy, second.cx, second.cy) == (200.0, 110.0, 60.0, 20.0)
    uv, _ = first.project([[0, 0, 0], [0.2, 0.2, 0]])
    np.testing.assert_allclose(uv, [[33, 20], [33 + 100 * 0.1, 20 - 110 * 0.1]], atol=1e-12)


def test_transforms_writer_shares_common_intrinsics(tmp_path):
    rig = [Camera(c.world_to_camera, 300.0, 301.0, 160.5, 120.5, 320, 240, c.image_name) for c in full_rig()]
    path = write_transforms(tmp_path, rig)
    meta = json.loads(path.read_text())
    assert {meta[k] for k in ("fl_x", "fl_y", "cx", "cy", "w", "h")} == {300.0, 301.0, 160.5, 120.5, 320, 240}
    assert all(set(frame) == {"file_path", "transform_matrix"} for frame in meta["frames"])
    assert_same_cameras(load_quietly(path), rig)


def test_colmap_text_by_hand(tmp_path):
    """Hand-written cameras.txt / images.txt: a non-empty 2D points line, a missing last points line."""
    s = math.sqrt(0.5)
    (tmp_path / "cameras.txt").write_text(
        "# Camera list\n1 PINHOLE 200 100 150 160 90.5 40.25\n2 SIMPLE_PINHOLE 64 64 50 32 32\n")
    (tmp_path / "images.txt").write_text(
        "# Image list\n"
        "1 1 0 0 0 0 0 0 1 straight.jpg\n"
        "10.0 20.0 -1 30.5 40.5 7\n"
        # 90 degrees about y (world-to-camera): world (-3, 0, 0) -> camera (0, 0, 3)
        f"2 {s!r} 0 {s!r} 0 0 0 0 1 turned.jpg\n"
        "\n"
        "3 1 0 0 0 0 0 -2 2 my image.png\n")
    cameras = load_quietly(tmp_path)
    assert [c.image_name for c in cameras] == ["my image.png", "straight.jpg", "turned.jpg"]
    shifted, straight, turned = cameras
    uv, depth = straight.project([[0, 0, 3], [0.3, 0.6, 3]])
    np.testing.assert_allclose(uv, [[90.5, 40.25], [90.5 + 15, 40.25 + 32]], atol=1e-9)
    np.testing.assert_allclose(depth, [3, 3])
    uv, depth = turned.project([[-3, 0, 0], [-3, 0.3, 0.6]])
    np.testing.assert_allclose(uv, [[90.5, 40.25], [90.5 + 150 * 0.2, 40.25 + 160 * 0.1]], atol=1e-9)
    np.testing.assert_allclose(depth, [3, 3], atol=1e-12)
    # tz = -2: the camera sits at world z = +2
    assert (shifted.fx, shifted.fy, shifted.cx, shifted.cy, shifted.width) == (50, 50, 32, 32, 64)
    uv, depth = shifted.project([[0, 0, 5]])
    np.testing.assert_allclose(uv, [[32, 32]], atol=1e-12)
    np.testing.assert_allclose(depth, [3])


def test_colmap_images_txt_without_points_lines(tmp_path):
    (tmp_path / "cameras.txt").write_text("1 PINHOLE 10 10 5 5 5 5\n")
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.png\n2 1 0 0 0 1 0 0 1 b.png\n")
    assert [c.image_name for c in load_quietly(tmp_path)] == ["a.png", "b.png"]


def test_inria_cameras_json_by_hand(tmp_path):
    entry = {"id": 0, "img_name": "DSC_0001", "width": 100, "height": 80, "position": [1, 2, 3],
             "rotation": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "fx": 50.0, "fy": 60.0}
    # second camera: 90 degrees about z (camera x axis = world y, camera y axis = world -x)
    turned = dict(entry, id=1, img_name="DSC_0002", position=[0, 0, 0],
                  rotation=[[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps([turned, entry]))
    first, second = load_quietly(path)
    assert (first.image_name, second.image_name) == ("DSC_0001", "DSC_0002")
    assert (first.cx, first.cy) == (50.0, 40.0)
    uv, depth = first.project([[1, 2, 13], [2, 2, 13], [1, 3, 13]])
    np.testing.assert_allclose(uv, [[50, 40], [55, 40], [50, 46]], atol=1e-12)
    np.testing.assert_allclose(depth, [10, 10, 10])
    uv, _ = second.project([[0, 1, 10], [-1, 0, 10]])  # world +y is camera right, world -x is camera down
    np.testing.assert_allclose(uv, [[55, 40], [50, 46]], atol=1e-12)


def test_inria_writer_layout(tmp_path):
    rig = square_rig()
    path = write_inria(tmp_path, rig)
    data = json.loads(path.read_text())
    assert [e["id"] for e in data] == list(range(len(rig)))
    for entry, camera in zip(data, rig, strict=True):
        np.testing.assert_allclose(entry["position"], camera.centre, atol=1e-12)
        np.testing.assert_allclose(entry["rotation"], camera.camera_to_world[:3, :3], atol=1e-12)


def test_inria_writer_warns_about_off_centre_principal_point(tmp_path):
    with pytest.warns(UserWarning, match="principal point"):
        write_inria(tmp_path, full_rig())


def test_quaternion_round_trip():
    rng = np.random.default_rng(3)
    rotations = np.array([np.eye(3), axis_angle((1, 0, 0), math.pi), axis_angle((0, 1, 0), math.pi),
                          axis_angle((0, 0, 1), math.pi), axis_angle((1, 1, 1), math.pi),
                          axis_angle((1, -2, 0.5), 3.0)] + [random_rotation(rng) for _ in range(20)])
    quaternions = rotations_to_quaternions(rotations)
    assert (quaternions[:, 0] >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(quaternions, axis=1), 1, atol=1e-14)
    np.testing.assert_allclose(quaternions_to_rotations(quaternions), rotations, atol=1e-12)
    # COLMAP convention: 90 degrees about z is (cos 45, 0, 0, sin 45) and maps x to y
    q = rotations_to_quaternions(axis_angle((0, 0, 1), math.pi / 2)[None])[0]
    np.testing.assert_allclose(q, [math.sqrt(0.5), 0, 0, math.sqrt(0.5)], atol=1e-12)
    np.testing.assert_allclose(quaternions_to_rotations(q[None])[0] @ [1, 0, 0], [0, 1, 0], atol=1e-12)


# ------------------------------------------------------------------------------------------ folder detection

@pytest.mark.parametrize("layout", ["model", "sparse", "sparse/0", "file"])
@pytest.mark.parametrize("binary", [True, False])
def test_colmap_folder_layouts(tmp_path, layout, binary):
    rig = full_rig()
    scene = tmp_path / "scene"
    folder = scene if layout in ("model", "file") else scene / layout
    (write_colmap_binary if binary else write_colmap_text)(folder, rig)
    target = folder / ("images.bin" if binary else "cameras.txt") if layout == "file" else scene
    assert_same_cameras(load_quietly(target), rig)


def test_colmap_bin_preferred_over_txt(tmp_path):
    rig = full_rig()
    write_colmap_binary(tmp_path, rig)
    write_colmap_text(tmp_path, rig[:2])
    assert len(load_quietly(tmp_path)) == len(rig)


@pytest.mark.parametrize("name", ["cameras.json", "transforms.json"])
def test_json_folder(tmp_path, name):
    rig = square_rig()
    (write_inria if name == "cameras.json" else write_transforms)(tmp_path, rig)
    assert_same_cameras(load_quietly(tmp_path), rig)


def test_colmap_shares_camera_ids(tmp_path):
    rig = [Camera(c.world_to_camera, 300.0, 300.0, 160.0, 120.0, 320, 240, c.image_name) for c in full_rig()]
    write_colmap_text(tmp_path, rig)
    lines = [l for l in (tmp_path / "cameras.txt").read_text().splitlines() if not l.startswith("#")]
    assert len(lines) == 1
    assert_same_cameras(load_quietly(tmp_path), rig)


# ---------------------------------------------------------------------------------------------- distortion

@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("model,distortion", [
    ("SIMPLE_RADIAL", (0.1,)), ("RADIAL", (0.1, -0.02)), ("OPENCV", (0.1, -0.05, 0.001, 0.002)),
])
def test_colmap_distortion_is_ignored_with_a_warning(tmp_path, binary, model, distortion):
    rig = square_rig()
    (write_colmap_binary if binary else write_colmap_text)(tmp_path, rig, model=model, distortion=distortion)
    with pytest.warns(UserWarning, match=model) as record:
        cameras = load_cameras(tmp_path)
    assert len(record) == 1 and "ignored" in str(record[0].message)
    assert_same_cameras(cameras, rig)


def test_transforms_distortion_warns(tmp_path):
    path = write_transforms(tmp_path, square_rig())
    meta = json.loads(path.read_text())
    meta["k1"] = 0.05
    path.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="distortion"):
        assert_same_cameras(load_cameras(path), square_rig())


def test_writer_refuses_single_focal_model_for_fx_ne_fy(tmp_path):
    with pytest.raises(ValueError, match="fx"):
        write_colmap_text(tmp_path / "out", full_rig(), model="SIMPLE_PINHOLE")
    with pytest.raises(ValueError, match="distortion"):
        write_colmap_binary(tmp_path / "out", square_rig(), model="OPENCV", distortion=(0.1,))
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ bad input

def expect_bad(path, name=None):
    with pytest.raises(BadInputError) as info:
        load_cameras(path)
    assert info.value.exit_code == 2
    message = str(info.value)
    assert "\n" not in message
    assert (name or os.path.basename(os.fspath(path))) in message
    return message


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path


INRIA_ENTRY = {"id": 0, "img_name": "a", "width": 100, "height": 80, "position": [0, 0, 0],
               "rotation": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "fx": 50.0, "fy": 50.0}


@pytest.mark.parametrize("data", [{"foo": 1}, 3, "text", None, {"camera_angle_x": 0.5}])
def test_json_that_is_neither(tmp_path, data):
    assert "neither" in expect_bad(write_json(tmp_path / "cams.json", data))


def test_invalid_json(tmp_path):
    path = tmp_path / "cameras.json"
    path.write_text("[{")
    assert "JSON" in expect_bad(path)


@pytest.mark.parametrize("key", ["img_name", "width", "height", "position", "rotation", "fx", "fy"])
def test_inria_missing_key(tmp_path, key):
    entry = {k: v for k, v in INRIA_ENTRY.items() if k != key}
    assert repr(key) in expect_bad(write_json(tmp_path / "cameras.json", [INRIA_ENTRY, entry]))


@pytest.mark.parametrize("change,words", [
    ({"rotation": [[float("nan"), 0, 0], [0, 1, 0], [0, 0, 1]]}, "non-finite"),
    ({"rotation": [[0, 0, 0], [0, 0, 0], [0, 0, 0]]}, "singular"),
    ({"rotation": [[1, 0, 0], [0, 1, 0], [0, 0, 0]]}, "singular"),
    ({"rotation": [[2, 0, 0], [0, 2, 0], [0, 0, 2]]}, "not a rotation"),
    ({"rotation": [[1, 0, 0], [0, 1, 0], [0, 0, -1]]}, "reflection"),
    ({"rotation": [[1, 0], [0, 1]]}, "rotation"),
    ({"position": [0, float("inf"), 0]}, "position"),
    ({"position": [0, 0]}, "position"),
    ({"width": "abc"}, "width"),
    ({"height": 12.5}, "height"),
    ({"fx": -1.0}, "fx"),
    ({"fy": float("nan")}, "fy"),
    ({"img_name": 7}, "img_name"),
])
def test_inria_bad_values(tmp_path, change, words):
    assert words in expect_bad(write_json(tmp_path / "cameras.json", [dict(INRIA_ENTRY, **change)]))


def test_empty_camera_list(tmp_path):
    expect_bad(write_json(tmp_path / "cameras.json", []))


IDENTITY_4 = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]


@pytest.mark.parametrize("meta,words", [
    ({"fl_x": 10, "w": 8, "h": 8, "frames": [{"file_path": "a"}]}, "transform_matrix"),
    ({"fl_x": 10, "w": 8, "h": 8, "frames": [{"transform_matrix": IDENTITY_4}]}, "file_path"),
    ({"w": 8, "h": 8, "frames": [{"file_path": "a", "transform_matrix": IDENTITY_4}]}, "fl_x"),
    ({"fl_x": 10, "frames": [{"file_path": "missing", "transform_matrix": IDENTITY_4}]}, "image"),
    ({"fl_x": 10, "w": 8, "h": 8, "frames": [{"file_path": "a", "transform_matrix": [[1, 0, 0, float("inf")],
                                                                                        [0, 1, 0, 0], [0, 0, 1, 0],
                                                                                        [0, 0, 0, 1]]}]},
     "non-finite"),
    ({"fl_x": 10, "w": 8, "h": 8, "frames": [{"file_path": "a", "transform_matrix": [[0, 0, 0, 1],
                                                                                        [0, 0, 0, 0], [0, 0, 0, 0],
                                                                                        [0, 0, 0, 1]]}]},
     "singular"),
    ({"fl_x": 10, "w": 8, "h": 8, "frames": [{"file_path": "a", "transform_matrix": [[1, 0, 0]]}]}, "4x4"),
    ({"camera_model": "OPENCV_FISHEYE", "fl_x": 10, "w": 8, "h": 8,
      "frames": [{"file_path": "a", "transform_matrix": IDENTITY_4}]}, "OPENCV_FISHEYE"),
    ({"camera_angle_x": 4.0, "w": 8, "h": 8, "frames": [{"file_path": "a", "transform_matrix": IDENTITY_4}]},
     "camera_angle_x"),
    ({"fl_x": 10, "w": 0, "h": 8, "frames": [{"file_path": "a", "transform_matrix": IDENTITY_4}]}, "'w'"),
    ({"fl_x": 10, "w": 8, "h": 8, "frames": []}, "no frames"),
    ({"fl_x": 10, "w": 8, "h": 8, "frames": {"a": 1}}, "frames"),
    ({"fl_x": 10, "w": 8, "h": 8, "frames": [7]}, "frame 0"),
])
def test_transforms_bad_values(tmp_path, meta, words):
    assert words in expect_bad(write_json(tmp_path / "transforms.json", meta))


def colmap_text(tmp_path, cameras_txt, images_txt):
    (tmp_path / "cameras.txt").write_text(cameras_txt)
    (tmp_path / "images.txt").write_text(images_txt)
    return tmp_path


@pytest.mark.parametrize("cameras_txt,images_txt,name,words", [
    ("1 PINHOLE 10 10 5 5 5 5\n", "1 1 0 0 0 0 0 0 2 a.png\n\n", "images.txt", "camera id 2"),
    ("1 OPENCV_FISHEYE 10 10 5 5 5 5 0 0 0 0\n", "1 1 0 0 0 0 0 0 1 a.png\n\n", "cameras.txt", "OPENCV_FISHEYE"),
    ("1 FOO 10 10 5 5 5 5\n", "1 1 0 0 0 0 0 0 1 a.png\n\n", "cameras.txt", "FOO"),
    ("1 PINHOLE 10 10 5 5 5\n", "1 1 0 0 0 0 0 0 1 a.png\n\n", "cameras.txt", "parameters"),
    ("1 PINHOLE 10 x 5 5 5 5\n", "1 1 0 0 0 0 0 0 1 a.png\n\n", "cameras.txt", "bad number"),
    ("1 PINHOLE 10 10 5 5 5 5\n1 PINHOLE 10 10 5 5 5 5\n", "1 1 0 0 0 0 0 0 1 a.png\n\n", "cameras.txt",
     "duplicate"),
    ("1 PINHOLE 10 10 -5 5 5 5\n", "1 1 0 0 0 0 0 0 1 a.png\n\n", "cameras.txt", "fx"),
    ("1 PINHOLE 10 10 5 5 5 5\n", "1 nan 0 0 0 0 0 0 1 a.png\n\n", "images.txt", "non-finite"),
    ("1 PINHOLE 10 10 5 5 5 5\n", "1 0 0 0 0 0 0 0 1 a.png\n\n", "images.txt", "singular"),
    ("1 PINHOLE 10 10 5 5 5 5\n", "1 1 0 0 0 0 0 0 1\n\n", "images.txt", "IMAGE_ID"),
    ("1 PINHOLE 10 10 5 5 5 5\n", "# nothing\n", "images.txt", "no images"),
])
def test_colmap_text_bad_input(tmp_path, cameras_txt, images_txt, name, words):
    assert words in expect_bad(colmap_text(tmp_path, cameras_txt, images_txt), name)


def test_colmap_binary_missing_camera_id(tmp_path):
    rig = full_rig()
    write_colmap_binary(tmp_path, rig)
    data = bytearray((tmp_path / "images.bin").read_bytes())
    struct.pack_into("<i", data, 8 + 60, 99)  # camera id of the first image
    (tmp_path / "images.bin").write_bytes(bytes(data))
    assert "camera id 99" in expect_bad(tmp_path, "images.bin")


@pytest.mark.parametrize("model_id,words", [(5, "OPENCV_FISHEYE"), (99, "model id 99")])
def test_colmap_binary_unsupported_model(tmp_path, model_id, words):
    write_colmap_binary(tmp_path, full_rig())
    data = bytearray((tmp_path / "cameras.bin").read_bytes())
    struct.pack_into("<i", data, 8 + 4, model_id)  # model of the first camera
    (tmp_path / "cameras.bin").write_bytes(bytes(data))
    assert words in expect_bad(tmp_path, "cameras.bin")


@pytest.mark.parametrize("which", ["cameras.bin", "images.bin"])
def test_colmap_binary_truncated_everywhere(tmp_path, which):
    rig = full_rig()[:2]
    write_colmap_binary(tmp_path, rig)
    full = (tmp_path / which).read_bytes()
    for length in range(len(full)):
        (tmp_path / which).write_bytes(full[:length])
        assert "truncated" in expect_bad(tmp_path, which), length
    (tmp_path / which).write_bytes(full)
    assert len(load_quietly(tmp_path)) == 2


def test_colmap_binary_truncated_points(tmp_path):
    """An image that promises 2D points the file does not hold."""
    write_colmap_binary(tmp_path, full_rig()[:1])
    data = bytearray((tmp_path / "images.bin").read_bytes())
    struct.pack_into("<Q", data, len(data) - 8, 3)
    (tmp_path / "images.bin").write_bytes(bytes(data) + b"\x00" * 50)
    assert "truncated" in expect_bad(tmp_path, "images.bin")


def test_incomplete_colmap_folder(tmp_path):
    (tmp_path / "cameras.txt").write_text("1 PINHOLE 10 10 5 5 5 5\n")
    assert "incomplete" in expect_bad(tmp_path, "cameras.txt")


def test_missing_and_unknown_paths(tmp_path):
    expect_bad(tmp_path / "nowhere.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no cameras found" in expect_bad(empty)
    other = tmp_path / "cameras.yaml"
    other.write_text("x")
    assert "unknown camera file" in expect_bad(other)


def test_camera_from_camera_to_world_and_centre():
    rig = full_rig()
    for camera in rig:
        again = Camera.from_camera_to_world(camera.camera_to_world, camera.fx, camera.fy, camera.cx, camera.cy,
                                            camera.width, camera.height, camera.image_name)
        np.testing.assert_allclose(again.world_to_camera, camera.world_to_camera, atol=1e-12)
        np.testing.assert_allclose(again.centre, camera.camera_to_world[:3, 3], atol=1e-12)
