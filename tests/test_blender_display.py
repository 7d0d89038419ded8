"""The splat display against the rasterizer: EEVEE renders of the installed extension at held-out cameras of the
demo, and of an SH degree 3 scene, compared with core.raster.render.render_colour at the same cameras (the splat's real
look). Same resolution, view transform "Standard", the same plain background in both."""

import os

import numpy as np
import pytest
from PIL import Image

from blender_harness import REPO, run_bpy

from blender_gsseg.core.files.camera_files import load_cameras
from blender_gsseg.core.files.splats import read_gaussians
from blender_gsseg.core.metrics import psnr
from blender_gsseg.core.raster.render import render_colour

pytestmark = pytest.mark.blender

DEMO = os.path.join(REPO, "blender_gsseg", "data", "demo")
BACKGROUND = (0.3, 0.3, 0.3)  # sRGB, in both renders
GOAL_DB = 25.0  # issue 13: every view >= 25 dB (mean >= 30 dB in bench/display.py)


def view_name(camera):
    return os.path.splitext(os.path.basename(camera.image_name))[0]


def read_png(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def test_demo_display_matches_the_rasterizer_from_the_zip(extension_zip, tmp_path):
    """Issue 13's acceptance: the built zip, the demo, two held-out views, EEVEE, each >= 25 dB."""
    ply = os.path.join(DEMO, "scene_trained.ply")
    cameras_path = os.path.join(DEMO, "cameras_heldout.json")
    cameras = load_cameras(cameras_path)[:2]
    result = run_bpy("display_render.py", register="none", home=tmp_path / "home", timeout=600, args={
        "zip": extension_zip, "ply": ply, "cameras": cameras_path, "views": [view_name(c) for c in cameras],
        "engine": "EEVEE", "samples": 4, "background": BACKGROUND, "settings": [{}], "out": str(tmp_path)})
    gaussians = read_gaussians(ply)
    assert result["drawn"] == int(np.count_nonzero(gaussians.opacities > 1 / 255))
    scores = []
    for camera, path in zip(cameras, result["renders"][0], strict=True):
        reference, _ = render_colour(gaussians, camera, background=BACKGROUND)
        rendered = read_png(path)
        assert rendered.shape == reference.shape
        scores.append(psnr(rendered, reference))
    assert min(scores) >= GOAL_DB, scores


def test_view_dependent_colour_follows_the_sh_bands(tmp_path):
    """An SH degree 3 scene: the display with all bands matches the SH3 rasterizer, and is closer to it than
    the display limited to the base colour (so the Geometry Nodes SH sums are the INRIA ones)."""
    from blender_gsseg.core.files.inria_cameras import write_cameras_json
    from blender_gsseg.core.files.ply import write_gaussians
    from synthetic.scene import make_scene

    scene = make_scene(n_spheres=3, points_per_unit_area=60, n_cameras=2, width=96, height=72, seed=5,
                       sh_degree=3)
    rng = np.random.default_rng(1)  # stronger view dependence than the synthetic default
    vertex = scene.gaussians.vertex.copy()
    for index in range(45):
        vertex[f"f_rest_{index}"] = rng.normal(0.0, 0.25, len(vertex)).astype(np.float32)
    gaussians = type(scene.gaussians)(vertex)
    write_gaussians(tmp_path / "sh3.ply", gaussians)
    write_cameras_json(tmp_path / "cameras.json", scene.cameras)
    camera = scene.cameras[0]
    result = run_bpy("display_render.py", home=tmp_path / "home", timeout=600, args={
        "ply": str(tmp_path / "sh3.ply"), "cameras": str(tmp_path / "cameras.json"), "views": [view_name(camera)],
        "engine": "EEVEE", "samples": 4, "background": BACKGROUND,
        "settings": [{"sh_degree": 3}, {"sh_degree": 0}], "out": str(tmp_path)})
    (with_bands,), (base_only,) = result["renders"]
    reference, _ = render_colour(gaussians, camera, background=BACKGROUND, sh_degree=None)
    base_reference, _ = render_colour(gaussians, camera, background=BACKGROUND, sh_degree=0)
    full = psnr(read_png(with_bands), reference)
    assert full >= GOAL_DB, full
    assert full > psnr(read_png(base_only), reference) + 3.0
    assert psnr(read_png(base_only), base_reference) >= GOAL_DB


def test_boxes_are_drawn_back_to_front_for_every_camera_position(tmp_path):
    """The display re-sorts when the scene camera moves: the boxes, in drawing order, go from far to near."""
    from blender_gsseg.core.files.ply import write_gaussians
    from synthetic.scene import make_scene

    scene = make_scene(n_spheres=3, points_per_unit_area=40, n_cameras=2, width=64, height=48, seed=3)
    write_gaussians(tmp_path / "scene.ply", scene.gaussians)
    positions = [(4.0, 0.0, 2.0), (0.0, -4.0, 1.0), (-3.0, 3.0, 3.0)]
    result = run_bpy("display_timing.py", home=tmp_path / "home", args={
        "ply": str(tmp_path / "scene.ply"), "positions": positions, "target": (0.0, 0.0, 0.3)})
    assert result["drawn"] == int(np.count_nonzero(scene.gaussians.opacities > 1 / 255)) > 1000
    assert result["depth_order_ok"] == [True] * len(positions)


def test_pixel_angle_follows_the_camera_and_settles(tmp_path):
    """The display's Pixel Angle is the scene camera's (float32), and syncing it again changes nothing: the
    depsgraph handler does not tag the display after every update (which made Blender evaluate it twice)."""
    from blender_gsseg.core.files.ply import write_gaussians
    from synthetic.scene import make_scene

    scene = make_scene(n_spheres=2, points_per_unit_area=10, n_cameras=1, width=32, height=24, seed=5)
    write_gaussians(tmp_path / "scene.ply", scene.gaussians)
    result = run_bpy("display_pixel_angle.py", home=tmp_path / "home", args={"ply": str(tmp_path / "scene.ply")})
    assert (result["after_import"], result["after_lens"], result["again"], result["handler_settled"]) == (0, 1, 0, 0)
    for when in ("before", "after", "handler"):
        assert result[f"stored_{when}"] == pytest.approx(result[f"expected_{when}"], rel=1e-6)
    assert result["expected_after"] == pytest.approx(result["expected_before"] / 2, rel=1e-9)  # 70 mm vs 35 mm
    assert result["expected_handler"] == pytest.approx(result["expected_before"] * 35 / 50, rel=1e-9)
