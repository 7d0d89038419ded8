"""Quality tooling: SAM-like mask noise, the argmax render mode (against the dense reference rasterizer), the
'seams' refinement, render-masks --mode, and the bundled demo scene and demo."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from blender_gsseg.cli import main
from blender_gsseg.core.raster import projection
from blender_gsseg.core.lift.accumulate import Accumulation
from blender_gsseg.core.cameras import Camera
from blender_gsseg.core.refine.refinements import (centre_labels, centre_vote, missing_object_maps, refine, refine_hidden,
                                       refine_seams, visibility_ratio)
from blender_gsseg.core.raster.render import render_label_mask
from blender_gsseg.core.raster.render import (label_argmax, render_label_mask_argmax, render_label_weights,
                                             render_labels)
from blender_gsseg.core.lift.solver import Shares
from synthetic.mask_noise import MaskNoise, dilate, disc_offsets, erode, noisy_mask, noisy_masks

from reference_raster import reference_weights
from scenes import front_camera, gaussians_from_arrays, random_scene, rotated_camera


# ----- mask noise


def _scene_mask(height=96, width=128):
    label = np.zeros((height, width), dtype=np.int32)
    yy, xx = np.mgrid[:height, :width]
    label[(yy - 40) ** 2 + (xx - 40) ** 2 < 20 ** 2] = 1
    label[20:70, 70:110] = 2
    label[75:90, 10:120] = 3
    return label


def _dilate_reference(mask, radius):
    height, width = mask.shape
    out = np.zeros_like(mask)
    for y, x in zip(*np.nonzero(mask), strict=True):
        for dy, dx in disc_offsets(radius):
            if 0 <= y + dy < height and 0 <= x + dx < width:
                out[y + dy, x + dx] = True
    return out


@pytest.mark.parametrize("radius", [1, 2, 3])
def test_dilate_and_erode_match_brute_force(radius):
    rng = np.random.default_rng(radius)
    mask = rng.random((23, 31)) < 0.15
    mask[5:15, 8:20] = True
    assert np.array_equal(dilate(mask, radius), _dilate_reference(mask, radius))
    # erosion is the complement of the dilated complement, with outside the image counting as background
    padded = np.pad(~mask, 1, constant_values=True)
    assert np.array_equal(erode(mask, radius), ~_dilate_reference(padded, radius)[1:-1, 1:-1])
    assert not erode(np.ones((5, 5), bool), 1)[0].any()  # the border erodes


def test_noise_is_seeded_and_per_view():
    maps = [_scene_mask(), np.roll(_scene_mask(), 7, axis=1)]
    first = noisy_masks(maps, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(first, noisy_masks(maps, seed=4), strict=True))
    assert any(not np.array_equal(a, b) for a, b in zip(first, noisy_masks(maps, seed=5), strict=True))
    # view k depends only on (seed, k): dropping view 1 leaves view 0 as it was
    assert np.array_equal(noisy_masks(maps[:1], seed=4)[0], first[0])
    assert np.array_equal(noisy_mask(maps[0], np.random.default_rng(0), MaskNoise.none()), maps[0])


def test_each_noise_kind():
    clean = _scene_mask()
    rng = np.random.default_rng

    def only(**kwargs):
        return MaskNoise(**{**MaskNoise.none().__dict__, **kwargs})

    # boundaries move by at most boundary_px and only near the original boundaries
    for seed in range(10):
        out = noisy_mask(clean, rng(seed), only(boundary_prob=1.0, boundary_px=3))
        changed = out != clean
        near = np.zeros_like(changed)
        for label in (1, 2, 3):
            region = clean == label
            near |= dilate(region, 3) & ~erode(region, 3)
        assert not (changed & ~near).any()
        assert changed.any()
    # a missed part only turns object pixels into background, about miss_fraction of one object
    out = noisy_mask(clean, rng(1), only(miss_prob=1.0, miss_fraction=(0.3, 0.3)))
    changed = out != clean
    assert (out[changed] == 0).all() and (clean[changed] > 0).all()
    for label in (1, 2, 3):
        lost = np.sum(changed & (clean == label)) / np.sum(clean == label)
        assert 0.25 < lost < 0.35
    # blobs paint labels present in the view
    out = noisy_mask(clean, rng(2), only(blob_rate=5.0))
    assert set(np.unique(out)) <= {0, 1, 2, 3} and (out != clean).any()
    # a swap exchanges two whole objects
    out = noisy_mask(clean, rng(3), only(swap_prob=1.0))
    swapped = [l for l in (1, 2, 3) if not np.array_equal(out == l, clean == l)]
    assert len(swapped) == 2
    a, b = swapped
    assert np.array_equal(out == a, clean == b) and np.array_equal(out == b, clean == a)


# ----- argmax render mode


def _argmax_reference(projected, labels):
    """The argmax rule straight from dense per-Gaussian weights: (label image, sums [K, H, W], alpha)."""
    weights, t_final = reference_weights(projected)
    ids = np.unique(labels[labels >= 0])
    sums = np.stack([weights[labels == label].sum(axis=0) for label in ids])
    alpha = weights.sum(axis=0)
    assert np.allclose(alpha, 1 - t_final, atol=1e-6)
    result = ids[np.argmax(sums, axis=0)]
    result[(alpha < 0.5) | (sums.max(axis=0) <= 0)] = 0
    return result, sums, alpha


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_argmax_mode_matches_dense_reference(seed):
    gaussians = random_scene(seed, n=90)
    rng = np.random.default_rng(seed)
    labels = rng.integers(-1, 4, len(gaussians)).astype(np.int32)  # includes unseen (-1) and background
    camera = front_camera(40, 30) if seed != 2 else rotated_camera(seed, 40, 30)
    covs = projection.covariances_3d(gaussians.scales, gaussians.rotations)
    projected = projection.project_gaussians(gaussians.means, covs, gaussians.opacities, camera)
    expected, ref_sums, ref_alpha = _argmax_reference(projected, labels)
    ids, sums, alpha = render_label_weights(projected, labels)
    assert ids.tolist() == np.unique(labels[labels >= 0]).tolist()
    assert np.allclose(sums, ref_sums, atol=2e-5) and np.allclose(alpha, ref_alpha, atol=2e-5)
    got = render_label_mask_argmax(gaussians, labels, camera)
    # compare where the decision is not a float32 near-tie
    ordered = np.sort(ref_sums, axis=0)
    clear = (ordered[-1] - ordered[-2] > 1e-4) & (np.abs(ref_alpha - 0.5) > 1e-4)
    assert clear.mean() > 0.9
    assert np.array_equal(got[clear], expected[clear])
    assert np.array_equal(got, label_argmax(ids, sums, alpha))


def test_argmax_keeps_faint_gaussians_that_subset_drops():
    # Two faint label-1 discs (alone: alpha 0.45 < 0.5, so the subset rule gives 0) in front of a faint
    # background disc: the pixel's total alpha is 0.62 and label 1 carries most of it (argmax gives 1).
    means = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.99]])
    log_scales = np.log(np.array([[0.5, 0.5, 0.01], [0.3, 0.3, 0.01], [0.3, 0.3, 0.01]]))
    quats = np.tile([1.0, 0, 0, 0], (len(means), 1))
    opacity = np.array([0.3, 0.26, 0.26])
    gaussians = gaussians_from_arrays(means, log_scales, quats, np.log(opacity / (1 - opacity)))
    labels = np.array([0, 1, 1], dtype=np.int32)
    camera = front_camera(32, 24)
    centre = (12, 16)
    assert render_label_mask(gaussians, labels, camera)[centre] == 0
    assert render_label_mask_argmax(gaussians, labels, camera)[centre] == 1
    assert np.array_equal(render_labels(gaussians, labels, camera, "subset"),
                          render_label_mask(gaussians, labels, camera))
    with pytest.raises(ValueError):
        render_labels(gaussians, labels, camera, "nearest")


# ----- the seams refinement


def _line_camera(name):
    w2c = np.eye(4)
    w2c[2, 3] = 5.0
    return Camera(w2c, 50.0, 50.0, 8.0, 4.0, 16, 8, name)


def test_refine_seams_flips_only_ambiguous_gaussians():
    # Four Gaussians: 0 and 1 ambiguous between background and label 2, 2 confident background, 3 ambiguous but
    # with its centre on background in every view.
    means = np.array([[0.0, 0.0, 0.0], [0.2, 0.0, 0.0], [-0.2, 0.0, 0.0], [0.4, 0.0, 0.0]])
    gaussians = gaussians_from_arrays(means, np.full((4, 3), -3.0), np.tile([1.0, 0, 0, 0], (4, 1)),
                                      np.zeros(4))
    weights = np.array([[0.55, 0.6, 0.9, 0.55],  # background
                        [0.0, 0.0, 0.0, 0.0],  # label 1
                        [0.45, 0.4, 0.1, 0.45]], dtype=np.float32)  # label 2
    shares = Shares.from_accumulation(Accumulation(np.array([0, 1, 2], np.int32), weights))
    labels, _ = shares.solve(0.0)
    assert labels.tolist() == [0, 0, 0, 0]
    cameras = [_line_camera(f"v{k}") for k in range(3)]
    columns = [int(c) for c in np.floor(cameras[0].project(means)[0][:, 0])]
    label_map = np.zeros((8, 16), dtype=np.int32)
    for gid in (0, 1, 2):
        label_map[:, columns[gid]] = 2
    label_map[:, columns[3]] = 0
    assert centre_labels(means, cameras[0], label_map).tolist() == [2, 2, 2, 0]
    refined = refine_seams(gaussians, shares, labels, cameras, [label_map] * 3, margin=0.3)
    assert refined.tolist() == [2, 2, 0, 0]  # margins 0.1 and 0.2 flip; 0.8 and the background centre do not
    # a margin of 0.15 reaches only Gaussian 0; labels outside the candidates' shares are never chosen
    assert refine_seams(gaussians, shares, labels, cameras, [label_map] * 3, margin=0.15).tolist() == [2, 0, 0, 0]
    label_map[:, columns[0]] = 1  # label 1 has no share: not a candidate
    assert refine_seams(gaussians, shares, labels, cameras, [label_map] * 3, margin=0.3).tolist() == [0, 2, 0, 0]
    accumulation = Accumulation(np.array([0, 1, 2], np.int32), weights)
    with pytest.raises(ValueError):
        refine(gaussians, accumulation, ["seams"], cameras=None, label_maps=None)
    with pytest.raises(ValueError):
        refine(gaussians, accumulation, ["smooth"], cameras=cameras, label_maps=[label_map] * 3)
    labels, _, same, report, _ = refine(gaussians, accumulation, ["seams"], cameras=cameras,
                                     label_maps=[label_map] * 3, margin=0.3)
    assert labels.tolist() == [0, 2, 0, 0] and same is accumulation and report["seams_changed"] == 1


def test_refine_missing_ignores_views_that_lost_an_object():
    from blender_gsseg.core.lift.accumulate import accumulate_weights
    from synthetic.scene import make_scene

    scene = make_scene(n_spheres=3, points_per_unit_area=250, n_cameras=10, width=96, height=72, seed=5)
    truth = [scene.mask(camera) for camera in scene.cameras]
    erased = [0, 2, 3, 5, 7]  # a tracker lost sphere 1 in half of the views
    maps = [np.where((m == 1) & (k in erased), 0, m) for k, m in enumerate(truth)]
    ids = np.arange(4, dtype=np.int32)
    accumulation = accumulate_weights(scene.gaussians, scene.cameras, maps, ids, backend="cpu")
    exact, _ = Shares.from_accumulation(accumulation).solve(0.0)
    labels, _, refined, report, _ = refine(scene.gaussians, accumulation, ["missing"], cameras=scene.cameras,
                                        label_maps=maps, backend="cpu")
    found = {(entry["view"], entry["label"]) for entry in report["missing"]}
    assert {(scene.cameras[k].image_name, 1) for k in erased if (truth[k] == 1).sum() > 20} <= found
    assert all(label == 1 for _, label in found)
    assert refined is not accumulation
    sphere = scene.labels == 1
    assert np.mean(labels[sphere] == 1) > np.mean(exact[sphere] == 1) + 0.05
    assert np.mean(labels[~sphere] == scene.labels[~sphere]) >= np.mean(exact[~sphere] == scene.labels[~sphere]) - 0.01
    # the maps: erased views ignore where sphere 1 renders, the other views are untouched
    new_maps, missed = missing_object_maps(scene.gaussians, np.where(scene.labels == 1, 1, -1), scene.cameras, maps)
    for k, (old, new) in enumerate(zip(maps, new_maps, strict=True)):
        if k in erased and (k, 1) in missed:
            assert (new == -1).any() and np.array_equal(new[new >= 0], old[new >= 0])
        elif k not in erased:
            assert np.array_equal(new, old)


def test_visibility_ratio_and_refine_hidden():
    from blender_gsseg.core.lift.accumulate import accumulate_weights

    # an opaque wall (label 2 in the mask) in front of a small Gaussian; a second small Gaussian in the open
    means = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.5, 0.0, 1.0]])
    log_scales = np.log(np.array([[0.8, 0.8, 0.01], [0.05, 0.05, 0.05], [0.05, 0.05, 0.05]]))
    opacity = np.array([0.99, 0.9, 0.9])
    gaussians = gaussians_from_arrays(means, log_scales, np.tile([1.0, 0, 0, 0], (3, 1)),
                                      np.log(opacity / (1 - opacity)))
    cameras = [front_camera(60, 40)]
    label_map = np.zeros((40, 60), dtype=np.int32)
    label_map[:, 10:45] = 2
    accumulation = accumulate_weights(gaussians, cameras, [label_map], np.array([0, 1, 2], np.int32),
                                      backend="cpu")
    ratio = visibility_ratio(gaussians, accumulation, cameras)
    assert ratio[2] > 0.5 and ratio[1] < 0.03 and ratio[0] > 0.5  # small footprints sample their integral coarsely
    assert centre_vote(means, cameras, [label_map]).tolist() == [2, 2, 0]
    labels = np.array([0, 1, 0], dtype=np.int32)  # Gaussian 1's exact label came from leaking weight
    refined, hidden = refine_hidden(gaussians, accumulation, labels, cameras, [label_map])
    assert hidden.tolist() == [1] and refined.tolist() == [0, 2, 0]


# ----- the bundled demo


def test_bundled_demo_data_load_and_fit_the_budget():
    from blender_gsseg.core.files.masks import load_masks
    from blender_gsseg.demo import DEMO_DATA, demo_paths, load_demo_scene

    total = sum(os.path.getsize(os.path.join(root, name)) for root, _, files in os.walk(DEMO_DATA)
                for name in files)
    assert total <= 5 * 2**20
    gaussians, truth, lift, held = load_demo_scene()
    assert len(truth) == len(gaussians) and truth.dtype == np.int32
    assert set(np.unique(truth)) == set(range(8))
    assert gaussians.opacities.min() < 0.3  # the trained-like extras are there
    paths = demo_paths()
    for folder, cameras in ((paths["masks"], lift), (paths["truth"], held)):
        masks = load_masks(folder, cameras)
        assert len(masks) == len(cameras) and masks.label_ids.tolist() == list(range(8))
    with open(paths["info"]) as handle:
        info = json.load(handle)
    assert all(c["ray_agreement"] >= 0.995 for c in info["camera_checks"])


@pytest.mark.slow
def test_demo_runs(tmp_path):
    from blender_gsseg.demo import run_demo

    summary = run_demo(str(tmp_path / "demo"), backend="cpu")
    for key in ("n_gaussians", "lifting_views", "heldout_views", "heldout_miou", "heldout_macc",
                "heldout_miou_ceiling", "gaussian_label_accuracy", "gaussians_after_removal", "contact_sheet"):
        assert key in summary
    assert summary["heldout_miou_vs_ceiling"] > 0.97 and summary["heldout_macc"] > 0.95
    assert summary["gaussian_label_accuracy"] > 0.85
    assert summary["gaussians_after_removal"] < summary["n_gaussians"]
    sheet = Image.open(summary["contact_sheet"])
    assert sheet.size[0] > 512 and sheet.size[1] > 3 * 192
    assert len(os.listdir(tmp_path / "demo" / "rendered_masks")) == summary["heldout_views"]
    # its scenes go without their cameras, Z up (the bundled cameras' up) said in their headers: an import's Auto
    # axes leave them standing
    from blender_gsseg.core.files.splats import read_gaussians
    from blender_gsseg.core.scene.up_axis import choose_axes

    for name in ("scene_labeled.ply", "scene_without_label_3.ply"):
        path = tmp_path / "demo" / name
        choice = choose_axes(path, comments=read_gaussians(path).comments)
        assert (choice.up, choice.forward, choice.source) == ("Z", "Y", "its header: gsseg_up Z"), name


def test_render_masks_mode_flag(tmp_path, capsys):
    from blender_gsseg.demo import demo_paths

    paths = demo_paths()
    labeled = tmp_path / "labeled.ply"
    assert main(["segment", paths["scene"], "--cameras", paths["cameras"], "--masks", paths["masks"], "-o",
                 str(labeled), "--backend", "cpu", "--every", "3"]) == 0
    for mode in ("subset", "argmax"):
        assert main(["render-masks", str(labeled), "--cameras", paths["heldout_cameras"], "-o",
                     str(tmp_path / mode), "--mode", mode]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "argmax"), paths["truth"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["macc"] > 0.9
    a = np.asarray(Image.open(tmp_path / "subset" / "held_000.png"))
    b = np.asarray(Image.open(tmp_path / "argmax" / "held_000.png"))
    assert a.shape == b.shape and (a != b).any()


def test_segment_refine_flag_runs_from_the_cli(tmp_path):
    """`segment --refine` reaches the refinements and records them in the report."""
    import json

    from blender_gsseg.cli import main
    from blender_gsseg.core.files.inria_cameras import write_cameras_json
    from blender_gsseg.core.files.ply import write_gaussians
    from synthetic.scene import make_scene
    from PIL import Image

    scene = make_scene(n_spheres=2, points_per_unit_area=300, n_cameras=6, width=96, height=72, seed=9)
    write_gaussians(tmp_path / "scene.ply", scene.gaussians)
    write_cameras_json(tmp_path / "cams.json", scene.cameras)
    (tmp_path / "masks").mkdir()
    for camera in scene.cameras:
        Image.fromarray(scene.mask(camera).astype("uint8")).save(tmp_path / "masks" / f"{camera.image_name}.png")
    assert main(["segment", str(tmp_path / "scene.ply"), "--cameras", str(tmp_path / "cams.json"), "--masks",
                 str(tmp_path / "masks"), "-o", str(tmp_path / "out.ply"), "--backend", "cpu", "--refine",
                 "missing", "seams", "--report", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert "refine" in report and "changed" in report["refine"]
