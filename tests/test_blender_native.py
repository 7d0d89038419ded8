"""Blender 5.3's own Gaussian splats (issue 27), on bpy 5.3.0 (tests/blender_releases.txt): gsseg's import makes
one and exports it byte for byte to what the core writes; one Blender's own PLY importer made is segmented,
edited (select, hide, labels view, delete, undo, redo) and exported with its labels; Blender's own .spz import
is exported back to the file's axes. The child script: tests/blender_scripts/native_splats.py."""

import os
import zipfile

import numpy as np
import pytest

from blender_harness import REPO, labeled_scene, run_bpy

from blender_gsseg.core.files.formats import WRITTEN_FORMATS
from blender_gsseg.core.files.radiance import logit_error_bound
from blender_gsseg.core.files.splats import read_gaussians, write_splat_file

pytestmark = [pytest.mark.blender, pytest.mark.slow]


def contents(path):
    """A file's bytes; a .sog's members' (its zip stamps the time of writing)."""
    if path.endswith(".sog"):
        with zipfile.ZipFile(path) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    return open(path, "rb").read()


def test_native_splats_on_blender_5_3(tmp_path):
    paths = labeled_scene(tmp_path / "scene", sh_degree=3)
    scene = read_gaussians(paths["scene.ply"])
    spz = str(tmp_path / "scene.spz")
    write_splat_file(spz, scene)
    exports = [str(tmp_path / f"made{f.ending}") for f in WRITTEN_FORMATS]
    result = run_bpy("native_splats.py", home=tmp_path / "home", blender="5.3", timeout=600, args={
        "scene": paths["scene.ply"], "n": len(scene), "exports": exports, "labeled": paths["labeled.ply"],
        "cameras": paths["cameras.json"], "masks": paths["masks"], "spz": spz,
        "blender_plain": str(tmp_path / "plain.ply"), "blender_out": str(tmp_path / "blender_out.ply"),
        "blender_selected": str(tmp_path / "selected.ply"),
        "spz_out": str(tmp_path / "spz_out.ply"), "proxy_masks": str(tmp_path / "proxy_masks"), "spz_moved": str(tmp_path / "spz_moved.ply")})
    assert result["made_evaluated"] == ["POINTCLOUD", "GAUSSIAN_SPLAT", len(scene)]

    # A: an unedited gsseg import exports what the core writes from the file, byte for byte, in every format
    assert open(exports[0], "rb").read() == open(paths["scene.ply"], "rb").read()
    for path, splat_format in zip(exports, WRITTEN_FORMATS, strict=True):
        reference = str(tmp_path / f"reference{splat_format.ending}")
        write_splat_file(reference, scene)
        assert contents(path) == contents(reference), splat_format.ending

    # B: Blender's own import, exported unedited: exact where Blender keeps the values, said where it does not
    labeled = read_gaussians(paths["labeled.ply"])
    plain = read_gaussians(tmp_path / "plain.ply")
    exact = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(45)] + ["gsseg_label"]
    for name in exact:
        assert plain.vertex[name].tobytes() == labeled.vertex[name].tobytes(), name
    alpha = labeled.opacities
    assert np.abs(plain.vertex["opacity"] - labeled.vertex["opacity"]).max() <= 2 * logit_error_bound(alpha) + 1e-6
    np.testing.assert_allclose(plain.vertex["scale_0"], labeled.vertex["scale_0"], atol=1e-6)
    np.testing.assert_allclose(plain.rotations, labeled.rotations, atol=1e-6)
    assert any("imported by Blender" in note for note in result["plain_notes"]), result["plain_notes"]
    assert any("logit" in note for note in result["plain_notes"]), result["plain_notes"]

    selected = read_gaussians(tmp_path / "selected.ply")  # the points of instance 2, as the file has them
    assert (selected.vertex["x"] == labeled.vertex["x"][labeled.vertex["gsseg_label"] == 2]).all()

    # Segment in Blender gives the core's labels; the exported scene lacks the deleted instance
    labels = np.array(result["labels"])
    assert (labels == np.array(paths["labels"])).mean() > 0.999
    keep = labels != result["target"]
    out = read_gaussians(tmp_path / "blender_out.ply")
    assert len(out) == keep.sum() < len(labeled)
    for name in exact[:-1]:
        assert out.vertex[name].tobytes() == labeled.vertex[name][keep].tobytes(), name
    assert (out.vertex["gsseg_label"] == labels[keep]).all()

    # D: re-solve, select inside / unseen, assign, merge, separate checked in the child; the proxy labels the
    # points inside the cube it stands for (a label propagation from the surface: most, not all), none far outside
    assert result["resolved_changed"] > 0
    assert result["proxy_inside"] > 0.8 and result["proxy_far_outside"] == 0, result
    # Masks from Proxies likewise, but masks know no depth: a few splats in front of the cube in some view take it
    assert result["masks_inside"] > 0.8 and result["masks_far_outside"] < 0.02, result

    # C: Blender's .spz import, exported with the matrix that undoes its axes: gsseg's reading of the .spz
    back = read_gaussians(tmp_path / "spz_out.ply")
    decoded = read_gaussians(spz)
    assert result["spz_count"] == len(decoded) == len(back)
    np.testing.assert_allclose(back.means, decoded.means, atol=1e-6)
    np.testing.assert_allclose(back.sh_rest, decoded.sh_rest, atol=1e-6)
    np.testing.assert_allclose(back.opacities, decoded.opacities, atol=2e-6)
    np.testing.assert_allclose(back.scales, decoded.scales, rtol=1e-6)
    np.testing.assert_allclose(covariances(back), covariances(decoded), atol=1e-6)  # an equivalent quaternion
    moved = read_gaussians(tmp_path / "spz_moved.ply")  # the object's matrix is float32 Euler angles: close only
    np.testing.assert_allclose(moved.means, back.means, atol=1e-6)


def covariances(gaussians):
    """[N, 3, 3] covariances M S^2 M^T from the unit quaternions (w, x, y, z) and the scales."""
    w, x, y, z = gaussians.rotations.astype(np.float64).T
    m = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                  2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                  2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], 1).reshape(-1, 3, 3)
    s = gaussians.scales.astype(np.float64)
    return np.einsum("nij,nj,nkj->nik", m, s * s, m)


def test_raw_quaternions_render_as_normalised_ones(tmp_path):
    """Unnormalised quaternions (as trained splats may store them) written raw into ``rotation`` by gsseg's import
    (bit-exact export needs them): Cycles and Workbench normalise them, so the picture is the one normalised ones
    give: within Cycles' own noise (unnormalised, a norm of 0.3-3 would scale the splats by 0.09-9: far outside
    it), pixel for pixel in Workbench."""
    from PIL import Image

    from blender_gsseg.core.files.ply import write_gaussians

    demo = os.path.join(REPO, "blender_gsseg", "data", "demo")
    scene = read_gaussians(os.path.join(demo, "scene_trained.ply"))
    factors = np.random.default_rng(0).uniform(0.3, 3.0, len(scene)).astype(np.float32)
    vertex = scene.vertex.copy()
    for i in range(4):
        vertex[f"rot_{i}"] *= factors
    write_gaussians(tmp_path / "raw.ply", scene._replace(vertex))
    result = run_bpy("native_render_same.py", home=tmp_path / "home", blender="5.3", args={
        "ply": str(tmp_path / "raw.ply"), "cameras": os.path.join(demo, "cameras_heldout.json"),
        "out": str(tmp_path)})
    assert result["norms"][0] < 0.5 and result["norms"][1] > 2.0  # the object holds the raw ones
    raw, normalised, reseeded = (np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
                                 for path in result["renders"])
    assert raw.std() > 10  # a picture, not an empty frame
    noise = np.abs(normalised - reseeded).mean()
    assert np.abs(raw - normalised).mean() <= 1.25 * noise, (np.abs(raw - normalised).mean(), noise)
    assert abs(raw.mean() - normalised.mean()) <= 0.5, (raw.mean(), normalised.mean())
    normalised, raw = (np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) for path in result["workbench"])
    assert raw.std() > 10 and np.array_equal(raw, normalised)  # Workbench: the same pixels


def test_native_import_of_every_format(tmp_path):
    """Every format gsseg reads comes in as Blender's own splat point cloud and goes out as the PLY the core writes
    from its reading of the file, byte for byte (a .splat and a compressed PLY written here, the others from
    splat-transform and GaussianSplats3D)."""
    from blender_gsseg.core.files.formats import READ_FORMATS
    from blender_gsseg.core.files.ply import write_gaussians

    data = os.path.join(REPO, "tests", "data", "splat_transform_3.7.0")
    inputs = [os.path.join(data, name) for name in ("source_sh3.ply", "st_sh3.compressed.ply", "st_sh3.spz",
                                                    "st_sh3.sog", "gs3d_sh1_300_l1.ksplat", "st_sh3.glb")]
    dot_splat = str(tmp_path / "scene.splat")
    write_splat_file(dot_splat, read_gaussians(inputs[0]))
    inputs.append(dot_splat)
    endings = {f.ending for f in READ_FORMATS if f.ending.startswith(".")}
    assert endings <= {ending for path in inputs for ending in endings if path.endswith(ending)}, endings
    outs = [str(tmp_path / f"out_{i}.ply") for i in range(len(inputs))]
    result = run_bpy("native_formats.py", home=tmp_path / "home", blender="5.3",
                     args={"inputs": inputs, "outs": outs})
    assert result["types"] == ["POINTCLOUD/GAUSSIAN_SPLAT"] * len(inputs)
    for path, out in zip(inputs, outs, strict=True):
        reference = str(tmp_path / "reference.ply")
        write_gaussians(reference, read_gaussians(path))
        assert open(out, "rb").read() == open(reference, "rb").read(), path
