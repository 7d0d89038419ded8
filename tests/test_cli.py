"""The gsseg command line end to end, on a scene written by the test, plus its bad-input behaviour."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from blender_gsseg.cli import main
from blender_gsseg.core.lift.accumulate import Accumulation
from blender_gsseg.core.lift.sidecar import load_accumulation, save_accumulation, sidecar_path
from blender_gsseg.core.files.commit import MANIFEST_NAME
from blender_gsseg.core.files.inria_cameras import write_cameras_json
from blender_gsseg.core.files.ply import write_gaussians
from blender_gsseg.core.files.splats import read_gaussians
from synthetic.scene import make_scene


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    scene = make_scene(n_spheres=3, points_per_unit_area=500, n_cameras=16, width=128, height=96, seed=3)
    lift, held = scene.cameras[0::2], scene.cameras[1::2]
    write_gaussians(root / "scene.ply", scene.gaussians)
    write_cameras_json(root / "lift.json", lift)
    write_cameras_json(root / "held.json", held)
    for folder, cameras in (("masks", lift), ("truth", held)):
        (root / folder).mkdir()
        for camera in cameras:
            Image.fromarray(scene.mask(camera).astype(np.uint8)).save(root / folder / f"{camera.image_name}.png")
    return root, scene


def run(*args):
    return main([str(a) for a in args])


def test_segment_render_eval_round_trip(workspace, capsys):
    root, scene = workspace
    out = root / "labeled.ply"
    assert run("segment", root / "scene.ply", "--cameras", root / "lift.json", "--masks", root / "masks",
               "-o", out, "--report", root / "report.json", "--backend", "cpu") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["views"] == 8 and summary["n_gaussians"] == len(scene.gaussians)

    labeled = read_gaussians(out)
    source = read_gaussians(root / "scene.ply")
    assert labeled.property_names == source.property_names + ["gsseg_label"]
    for name in source.property_names:  # input properties unchanged, bit for bit
        assert labeled.vertex[name].tobytes() == source.vertex[name].tobytes()
    labels = labeled.vertex["gsseg_label"]
    assert labeled.property_types["gsseg_label"] == "int"
    seen = labels >= 0
    assert np.mean(labels[seen] == scene.labels[seen]) > 0.9
    assert any(c.startswith("gsseg_label 1 name=") for c in labeled.comments)

    accumulation = load_accumulation(sidecar_path(out), len(labeled))
    assert accumulation.label_ids.tolist() == [0, 1, 2, 3]
    report = json.loads((root / "report.json").read_text())
    assert report["unseen"] == int((~seen).sum())
    assert sum(report["gaussians_per_label"].values()) == int(seen.sum())

    assert run("render-masks", out, "--cameras", root / "held.json", "-o", root / "pred", "--colour") == 0
    assert sorted(os.listdir(root / "pred"))[:3] == [MANIFEST_NAME, "view_001.png", "view_001_colour.png"]
    capsys.readouterr()
    assert run("eval", root / "pred", root / "truth", "--json") == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["views"] == 8
    assert metrics["miou"] > 0.75 and metrics["macc"] > 0.97


def test_relabel_remove_extract_split(workspace, capsys):
    root, _ = workspace
    out = root / "labeled2.ply"
    assert run("segment", root / "scene.ply", "--cameras", root / "lift.json", "--masks", root / "masks",
               "-o", out, "--backend", "cpu") == 0
    labeled = read_gaussians(out)
    labels = labeled.vertex["gsseg_label"].copy()
    shares_total = load_accumulation(sidecar_path(out)).weights
    shares = shares_total / np.maximum(shares_total.sum(0), 1e-30)

    assert run("relabel", out, "--gamma", "0.5", "-o", root / "relabeled.ply") == 0
    relabeled = read_gaussians(root / "relabeled.ply").vertex["gsseg_label"]
    assert (relabeled > 0).sum() < (labels > 0).sum()
    assert os.path.exists(sidecar_path(root / "relabeled.ply"))

    assert run("remove", out, "--labels", 1, 3, "-o", root / "removed.ply") == 0
    removed = read_gaussians(root / "removed.ply").vertex
    assert len(removed) == int((~np.isin(labels, [1, 3])).sum())
    assert not np.isin(removed["gsseg_label"], [1, 3]).any()

    assert run("extract", out, "--labels", 2, "-o", root / "two.ply") == 0
    assert len(read_gaussians(root / "two.ply")) == int((labels == 2).sum())

    # with --gamma: every member of instance 1 at that bias (s_1 > (1 + gamma) / 2), halo included
    assert run("remove", out, "--labels", 1, "--gamma", "-0.5", "-o", root / "halo.ply") == 0
    members = (shares[1] > 0.25) & (labels >= 0)
    assert len(read_gaussians(root / "halo.ply")) == len(labels) - int(members.sum())
    assert members.sum() >= (labels == 1).sum()

    assert run("split", out, "-o", root / "parts") == 0
    files = sorted(n for n in os.listdir(root / "parts") if n != MANIFEST_NAME)
    assert files[:4] == ["labeled2_label_0.ply", "labeled2_label_1.ply", "labeled2_label_2.ply",
                         "labeled2_label_3.ply"]
    total = sum(len(read_gaussians(root / "parts" / f)) for f in files)
    assert total == len(labels)


def test_info_json(workspace, capsys):
    root, scene = workspace
    assert run("info", root / "scene.ply", "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["count"] == len(scene.gaussians) and info["sh_degree"] == 0
    assert info["properties"][0] == {"name": "x", "type": "float"}


def _assert_failed_cleanly(code, capsys, folder, expected_code=2, phrase=None):
    assert code == expected_code
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("gsseg: error:"), err
    assert "Traceback" not in "\n".join(err)
    if phrase:
        assert phrase in err[-1]
    assert not [f for f in os.listdir(folder) if f.startswith("out") or f.endswith(".part")]


def test_bad_inputs_exit_2_and_write_nothing(workspace, tmp_path, capsys):
    root, _ = workspace
    common = ["--cameras", root / "lift.json", "--masks", root / "masks", "-o", tmp_path / "out.ply"]
    # not a PLY
    (tmp_path / "junk.ply").write_bytes(b"hello")
    _assert_failed_cleanly(run("segment", tmp_path / "junk.ply", *common), capsys, tmp_path, phrase="junk.ply")
    # a scene with 0 Gaussians
    empty = read_gaussians(root / "scene.ply").subset(np.zeros(0, dtype=int))
    write_gaussians(tmp_path / "empty.ply", empty)
    _assert_failed_cleanly(run("segment", tmp_path / "empty.ply", *common), capsys, tmp_path, phrase="0 Gaussians")
    # all-background masks
    (tmp_path / "bg").mkdir()
    for name in os.listdir(root / "masks"):
        Image.fromarray(np.zeros((96, 128), np.uint8)).save(tmp_path / "bg" / name)
    _assert_failed_cleanly(run("segment", root / "scene.ply", "--cameras", root / "lift.json", "--masks",
                               tmp_path / "bg", "-o", tmp_path / "out.ply"), capsys, tmp_path,
                           phrase="only background")
    # over the memory budget: exit 3
    _assert_failed_cleanly(run("segment", root / "scene.ply", *common, "--memory-budget", "1"), capsys, tmp_path,
                           expected_code=3)
    # cameras that see nothing
    far = read_gaussians(root / "scene.ply")
    far.vertex["z"] -= 1000
    write_gaussians(tmp_path / "far.ply", far)
    _assert_failed_cleanly(run("segment", tmp_path / "far.ply", *common), capsys, tmp_path, phrase="sees")
    # a sidecar that does not match the PLY
    assert run("segment", root / "scene.ply", *common[:4], "-o", tmp_path / "ok.ply", "--backend", "cpu") == 0
    capsys.readouterr()
    other = Accumulation(np.array([0, 1], np.int32), np.zeros((2, 5), np.float32))
    save_accumulation(sidecar_path(tmp_path / "ok.ply"), other)
    _assert_failed_cleanly(run("relabel", tmp_path / "ok.ply", "--gamma", "0.1", "-o", tmp_path / "out.ply"),
                           capsys, tmp_path, phrase="5 Gaussians")
    # a label list on a file without labels
    _assert_failed_cleanly(run("remove", root / "scene.ply", "--labels", "1", "-o", tmp_path / "out.ply"),
                           capsys, tmp_path, phrase="gsseg_label")


def test_cuda_requested_without_cuda_exits_4(workspace, tmp_path, capsys):
    from blender_gsseg.core.raster.backends import cuda_available

    if cuda_available():
        pytest.skip("a CUDA device is present")
    root, _ = workspace
    code = run("segment", root / "scene.ply", "--cameras", root / "lift.json", "--masks", root / "masks",
               "-o", tmp_path / "out.ply", "--backend", "cuda")
    _assert_failed_cleanly(code, capsys, tmp_path, expected_code=4, phrase="CUDA")
    code = run("render-masks", root / "scene.ply", "--cameras", root / "held.json", "-o", tmp_path / "out_masks",
               "--backend", "cuda")
    _assert_failed_cleanly(code, capsys, tmp_path, expected_code=4, phrase="CUDA")


def test_console_entry_points():
    version = subprocess.run([sys.executable, "-m", "blender_gsseg", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("gsseg ")
    helped = subprocess.run([sys.executable, "-m", "blender_gsseg", "segment", "--help"], capture_output=True,
                            text=True)
    assert helped.returncode == 0 and "--gamma" in helped.stdout
    # importing the package must not import bpy
    probe = subprocess.run([sys.executable, "-c", "import sys, blender_gsseg, blender_gsseg.cli, "
                            "blender_gsseg.core.pipeline; print('bpy' in sys.modules)"],
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "False"


def test_render_masks_overlay_and_wide_labels(workspace, tmp_path, capsys):
    root, scene = workspace
    out = tmp_path / "labeled.ply"
    assert run("segment", root / "scene.ply", "--cameras", root / "lift.json", "--masks", root / "masks",
               "-o", out, "--backend", "cpu") == 0
    assert run("render-masks", out, "--cameras", root / "lift.json", "-o", tmp_path / "ov", "--overlay",
               root / "masks", "--scale", "0.5") == 0
    overlay = np.asarray(Image.open(tmp_path / "ov" / "view_000_overlay.png"))
    mask = np.asarray(Image.open(tmp_path / "ov" / "view_000.png"))
    assert overlay.shape == (48, 64, 3) and mask.shape == (48, 64) and mask.dtype == np.uint8
    # label ids above 255 come out as 16-bit PNGs with the ids intact
    labeled = read_gaussians(out)
    labels = labeled.vertex["gsseg_label"]
    wide = labeled.with_int_property("gsseg_label", np.where(labels > 0, labels + 1000, labels))
    write_gaussians(tmp_path / "wide.ply", wide)
    assert run("render-masks", tmp_path / "wide.ply", "--cameras", root / "lift.json", "-o", tmp_path / "w") == 0
    with Image.open(tmp_path / "w" / "view_000.png") as image:
        assert image.mode.startswith("I")  # 16-bit
        wide_mask = np.asarray(image)
    assert set(np.unique(wide_mask)) <= {0, 1001, 1002, 1003} and len(np.unique(wide_mask)) > 2


def test_render_masks_colour_labels(workspace, tmp_path, capsys):
    """--colour-labels adds <stem>_colour_labels.png: each label's pixels in its label-table colour (the fixed
    palette for a label the table does not name); the id images are the same with or without it."""
    from blender_gsseg.core.files.labels import label_colour

    root, scene = workspace
    out = tmp_path / "labeled.ply"
    assert run("segment", root / "scene.ply", "--cameras", root / "lift.json", "--masks", root / "masks",
               "-o", out, "--backend", "cpu") == 0
    labeled = read_gaussians(out)
    # label 2 gets a colour of its own; label 3 is left out of the table (so it takes the palette)
    table = [c for c in labeled.comments if c.startswith("gsseg_label ") and not c.startswith(("gsseg_label 2 ",
                                                                                               "gsseg_label 3 "))]
    custom = labeled.with_comments(table + ["gsseg_label 2 name=green color=#12ab34"], drop_prefix="gsseg_label ")
    write_gaussians(tmp_path / "custom.ply", custom)

    assert run("render-masks", tmp_path / "custom.ply", "--cameras", root / "held.json", "-o", tmp_path / "ids",
               "--backend", "cpu") == 0
    assert run("render-masks", tmp_path / "custom.ply", "--cameras", root / "held.json", "-o", tmp_path / "both",
               "--backend", "cpu", "--colour-labels") == 0
    capsys.readouterr()
    plain = sorted(os.listdir(tmp_path / "ids"))
    assert not [name for name in plain if "_colour_labels" in name]
    both = sorted(os.listdir(tmp_path / "both"))
    assert set(plain) < set(both)
    assert sorted(set(both) - set(plain)) == sorted(n[:-4] + "_colour_labels.png" for n in plain if n.endswith(".png"))
    manifest = json.loads((tmp_path / "both" / MANIFEST_NAME).read_text())  # written through the commit
    assert sorted(manifest["files"]) == [name for name in both if name != MANIFEST_NAME]
    seen = set()
    for name in plain:
        if not name.endswith(".png"):
            continue
        ids = np.asarray(Image.open(tmp_path / "ids" / name))
        assert np.array_equal(ids, np.asarray(Image.open(tmp_path / "both" / name)))  # ids unchanged
        colour = np.asarray(Image.open(tmp_path / "both" / (name[:-4] + "_colour_labels.png")))
        assert colour.shape == ids.shape + (3,) and colour.dtype == np.uint8
        for label, expected in ((2, (0x12, 0xab, 0x34)), (3, label_colour(3)), (0, (128, 128, 128))):
            if (ids == label).any():
                seen.add(label)
                assert (colour[ids == label] == expected).all(), (name, label)
    assert seen == {0, 2, 3}
    # the folder's files are still read by eval as label maps: the previews are not taken for predictions
    assert run("eval", tmp_path / "both", root / "truth", "--json") == 0
    assert json.loads(capsys.readouterr().out)["views"] == 8


def test_spz_axes_reads_old_rub_files(tmp_path, capsys):
    """`--spz-axes rub` reads a .spz written in RUB without the coordinate-system extension (gsseg before it wrote
    PLY axes, splat-transform 2.x) with y and z turned back; the default reads PLY axes as they are."""
    import glob
    import json

    spz = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "data", "formats", "*.spz")))[0]
    bounds = {}
    for axes in (None, "rub"):
        assert main(["info", "--json", spz] + (["--spz-axes", axes] if axes else [])) == 0
        bounds[axes] = json.loads(capsys.readouterr().out)["bounds"]
    plain, rub = bounds[None], bounds["rub"]
    assert rub["min"][0] == plain["min"][0] and rub["max"][0] == plain["max"][0]
    for axis in (1, 2):  # negated: the ends swap and change sign
        assert rub["min"][axis] == -plain["max"][axis] and rub["max"][axis] == -plain["min"][axis]
    out = tmp_path / "upright.ply"
    assert main(["convert", spz, str(out), "--spz-axes", "rub"]) == 0
    capsys.readouterr()
    assert main(["info", "--json", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["bounds"] == rub
