"""γ chosen by cross-validation (segment --gamma auto): folds partition the views and sum to the full
accumulation, no view scores a fit that saw it, the choice round-trips through PLY and sidecar and is the
default of relabel / remove --gamma auto / render-masks, and on the bundled demo it is not worse than γ = 0."""

import json
import os

import numpy as np
import pytest

from blender_gsseg.cli import main
from blender_gsseg.core.lift import tune
from blender_gsseg.core.lift.sidecar import load_accumulation, sidecar_path
from blender_gsseg.core.files.labels import read_gamma_comment
from blender_gsseg.core.files.splats import read_gaussians
from blender_gsseg.core.lift.views import build_views
from synthetic.mask_noise import noisy_mask
from synthetic.scene import make_scene, write_inputs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    scene = make_scene(n_spheres=2, points_per_unit_area=150, n_cameras=9, width=48, height=36, seed=4)
    rng = np.random.default_rng(1)
    write_inputs(root, scene, {"masks": lambda camera: noisy_mask(scene.mask(camera), rng)})
    return root, scene


def test_folds_partition_the_views_and_sum_to_the_whole(small):
    root, scene = small
    views = build_views(root / "cameras.json", root / "masks")
    folds = tune.fold_indices(len(views), 3)
    assert sorted(sum(folds, [])) == list(range(len(views))) and all(len(f) == 3 for f in folds)
    parts = tune.accumulate_folds(scene.gaussians, views, 3, backend="cpu")
    whole = views.accumulate(scene.gaussians, backend="cpu", mode="dense")
    np.testing.assert_allclose(tune.sum_folds(parts).weights, whole.weights, rtol=1e-5, atol=1e-6)
    with pytest.raises(Exception, match="folds need at least"):
        tune.fold_indices(2, 3)


def test_no_view_scores_a_fit_that_saw_it(small, monkeypatch):
    root, scene = small
    views = build_views(root / "cameras.json", root / "masks")
    parts = tune.accumulate_folds(scene.gaussians, views, 3, backend="cpu")
    fits, scored = [], []
    real_shares, real_render = tune.Shares.from_accumulation, tune.render_labels
    monkeypatch.setattr(tune.Shares, "from_accumulation",
                        staticmethod(lambda acc, target=None: fits.append(acc.weights.copy()) or real_shares(acc, target)))
    monkeypatch.setattr(tune, "render_labels", lambda g, labels, camera, rule, backend=None: scored.append(
        (len(fits) - 1, camera.image_name)) or real_render(g, labels, camera, rule, backend=backend))
    tune.choose_gamma(scene.gaussians, views, parts, rules=("subset",), grid=(-0.3, 0.0, 0.3), backend="cpu")
    folds = tune.fold_indices(len(views), 3)
    assert len(fits) == 3
    for fold, held in enumerate(folds):
        others = [k for k in range(len(views)) if k not in held]
        expected = views.subset(others).accumulate(scene.gaussians, backend="cpu", mode="dense").weights
        np.testing.assert_allclose(fits[fold], expected, rtol=1e-4, atol=1e-5)  # the fit saw the others only
        names = {views.cameras[k].image_name for k in held}
        assert {name for f, name in scored if f == fold} == names  # and scores its own views only


def test_the_choice_round_trips_and_is_the_default(small, tmp_path, capsys):
    root, _ = small
    out = tmp_path / "auto.ply"
    assert main(["segment", str(root / "scene.ply"), "--cameras", str(root / "cameras.json"), "--masks",
                 str(root / "masks"), "-o", str(out), "--gamma", "auto", "--backend", "cpu", "--report",
                 str(tmp_path / "report.json")]) == 0
    report = json.loads((tmp_path / "report.json").read_text())["gamma_auto"]
    chosen = report["chosen"]
    assert set(chosen) == {"subset", "argmax"} and report["folds"] == 3
    assert set(report["cross_validated_miou"]["subset"]) == {f"{g:g}" for g in tune.GAMMA_GRID}
    labeled = read_gaussians(out)
    assert read_gamma_comment(labeled.comments) == chosen
    with np.load(sidecar_path(out)) as data:
        assert json.loads(str(data["chosen_gamma"])) == chosen
    accumulation = load_accumulation(sidecar_path(out))
    from blender_gsseg.core.lift.solver import Shares
    assert np.array_equal(labeled.vertex["gsseg_label"], Shares.from_accumulation(accumulation).solve(chosen["subset"])[0])
    capsys.readouterr()
    assert main(["relabel", str(out), "-o", str(tmp_path / "again.ply")]) == 0  # default: the chosen γ
    assert json.loads(capsys.readouterr().out)["gamma"] == chosen["subset"]
    assert np.array_equal(read_gaussians(tmp_path / "again.ply").vertex["gsseg_label"], labeled.vertex["gsseg_label"])
    assert main(["remove", str(out), "--labels", "1", "--gamma", "auto", "-o", str(tmp_path / "r.ply")]) == 0
    # a scene segmented at a fixed γ has no choice to fall back on
    assert main(["segment", str(root / "scene.ply"), "--cameras", str(root / "cameras.json"), "--masks",
                 str(root / "masks"), "-o", str(tmp_path / "fixed.ply"), "--backend", "cpu"]) == 0
    assert read_gamma_comment(read_gaussians(tmp_path / "fixed.ply").comments) is None
    assert main(["relabel", str(tmp_path / "fixed.ply")]) == 2
    assert "give --gamma" in capsys.readouterr().err


@pytest.mark.slow
def test_on_the_demo_auto_is_not_worse_than_zero():
    """Held-out views never used to choose anything; SAM-like noisy masks, both render rules."""
    from blender_gsseg.core.raster.backends import get_backend
    from blender_gsseg.core.files.camera_files import load_cameras
    from blender_gsseg.core.files.masks import read_label_image
    from blender_gsseg.core.metrics import segmentation_metrics
    from blender_gsseg.core.raster.render import render_labels
    from blender_gsseg.core.lift.solver import Shares

    demo = os.path.join(REPO, "blender_gsseg", "data", "demo")
    gaussians = read_gaussians(os.path.join(demo, "scene_trained.ply"))
    views = build_views(os.path.join(demo, "cameras.json"), os.path.join(demo, "masks_noisy"))
    parts = tune.accumulate_folds(gaussians, views, 3, backend="cpu")
    choice = tune.choose_gamma(gaussians, views, parts, backend="cpu")
    shares = Shares.from_accumulation(tune.sum_folds(parts))
    held = load_cameras(os.path.join(demo, "cameras_heldout.json"))
    truths = [read_label_image(os.path.join(demo, "truth", f"{c.image_name}.png")) for c in held]
    backend = get_backend("cpu")
    figures = {}
    for rule in ("subset", "argmax"):
        for name, gamma in (("zero", 0.0), ("auto", choice.gamma[rule])):
            labels = shares.solve(gamma)[0]
            predicted = [render_labels(gaussians, labels, c, rule, backend=backend) for c in held]
            figures[(rule, name)] = segmentation_metrics(predicted, truths)["miou"]
        assert figures[(rule, "auto")] >= figures[(rule, "zero")] - 0.005, figures
    print(f"\nheld-out mIoU, γ = 0 vs auto: {figures}; chosen {choice.gamma}")
