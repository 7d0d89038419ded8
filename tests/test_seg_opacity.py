"""segment --refine opacity (Binary-Gaussian's segmentation opacity): the torch render from the walk's lists
equals the per-pixel reference, its gradient equals finite differences, the cross-validation never scores a
view with a fit that saw it, the photometric opacity is never changed, render-masks uses the segmentation
opacity, a missing torch is one clear line, CPU and CUDA agree, and on the bundled demo it is not worse than
the closed form at γ = 0."""

import json
import os
import sys

import numpy as np
import pytest

from oracles import require

torch = require("torch")

from blender_gsseg.cli import main  # noqa: E402
from blender_gsseg.core.raster import projection, rasterize  # noqa: E402
from blender_gsseg.core.refine import seg_opacity  # noqa: E402
from blender_gsseg.core.files.ply import write_gaussians  # noqa: E402
from blender_gsseg.core.files.splats import read_gaussians  # noqa: E402
from blender_gsseg.core.raster.render import render_labels  # noqa: E402
from blender_gsseg.core.refine.seg_opacity import SEG_OPACITY_PROPERTY  # noqa: E402

from reference_raster import reference_weights  # noqa: E402
from scenes import front_camera, random_scene, rotated_camera  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "blender_gsseg", "data", "demo")


def _views(gaussians, n_labels=3, seed=0):
    """Two small views of a random scene, with random label maps (some pixels ignored) and their lists."""
    rng = np.random.default_rng(seed)
    cameras = [front_camera(40, 30), rotated_camera(seed, 36, 28)]
    maps = [rng.integers(-1, n_labels, (c.height, c.width)) for c in cameras]
    lists = seg_opacity.all_view_lists(gaussians, cameras, maps)
    return cameras, maps, lists


def _projected(gaussians, camera):
    covariances = projection.covariances_3d(gaussians.scales, gaussians.rotations)
    return projection.project_gaussians(gaussians.means, covariances, gaussians.opacities, camera)


@pytest.mark.parametrize("level_pairs", [None, 1])
def test_lists_render_what_the_reference_renders(level_pairs, monkeypatch):
    """With the photometric opacity, the lists' weights summed per pixel label are the accumulation of the
    per-pixel reference rasterizer, and the loss with certain labels is −log of the reference's label mass
    (also when the walk takes one pair of each tile per step, so a pixel's list is gathered from many chunks)."""
    if level_pairs:
        monkeypatch.setattr(rasterize, "LEVEL_PAIRS", level_pairs)
        monkeypatch.setattr(rasterize, "MIN_STEP_PAIRS", 1)
    gaussians = random_scene(3, n=90)
    cameras, maps, lists = _views(gaussians)
    n, label_ids = len(gaussians), np.arange(3)
    expected = np.zeros((3, n))
    labels = np.random.default_rng(1).integers(0, 3, n)
    expected_nll = 0.0
    for camera, label_map in zip(cameras, maps, strict=True):
        weights, t_final = reference_weights(_projected(gaussians, camera))  # [N, H, W], [H, W]
        for e in range(3):
            expected[e] += weights[:, label_map == e].sum(axis=1)
        mass = np.stack([weights[labels == e].sum(axis=0) for e in range(3)])  # [3, H, W]
        mass[0] += t_final
        masked = label_map >= 0
        expected_nll -= np.log(np.maximum(mass[label_map[masked], np.flatnonzero(masked) // camera.width,
                                               np.flatnonzero(masked) % camera.width], 1e-12)).sum()
    assert sum(len(view.gaussian) for view in lists) > 500
    accumulation = seg_opacity.list_accumulation(lists, gaussians.vertex["opacity"], label_ids)
    np.testing.assert_allclose(accumulation.weights, expected, rtol=1e-4, atol=1e-6)

    certain = np.full((n, 3), -60.0)
    certain[np.arange(n), labels] = 0.0
    base = torch.as_tensor(gaussians.vertex["opacity"].astype(np.float64))
    log_probs = torch.log_softmax(torch.as_tensor(certain), dim=1)
    nll = sum(float(seg_opacity.view_loss(torch, seg_opacity._TorchView(torch, view, "cpu", torch.float64), base,
                                         torch.zeros(n, dtype=torch.float64), log_probs)) for view in lists)
    assert nll == pytest.approx(expected_nll, rel=1e-4)


def test_gradient_matches_finite_differences():
    gaussians = random_scene(5, n=70)
    gaussians = gaussians.with_float_property("opacity", np.clip(gaussians.vertex["opacity"], -3, 1.5))
    _, _, lists = _views(gaussians, seed=2)
    n = len(gaussians)
    rng = np.random.default_rng(0)
    views = [seg_opacity._TorchView(torch, view, "cpu", torch.float64) for view in lists]
    base = torch.as_tensor(gaussians.vertex["opacity"].astype(np.float64))
    delta0, logits0 = rng.normal(0, 0.3, n), rng.normal(0, 1.0, (n, 3))

    def loss(delta, logits):
        log_probs = torch.log_softmax(logits, dim=1)
        return sum(seg_opacity.view_loss(torch, view, base, delta, log_probs) for view in views)

    delta = torch.tensor(delta0, requires_grad=True)
    logits = torch.tensor(logits0, requires_grad=True)
    loss(delta, logits).backward()
    # away from the 0.99 clamp, where the loss has no derivative
    for view in views:
        alpha = torch.sigmoid(base[view.gaussian] + torch.as_tensor(delta0)[view.gaussian]) * view.falloff
        assert float(alpha.max()) < 0.99
    touched = np.unique(np.concatenate([view.gaussian for view in lists]))
    step = 1e-6
    for i in rng.choice(touched, 8, replace=False):
        d = delta0.copy()
        d[i] += step
        up = float(loss(torch.tensor(d), torch.tensor(logits0)))
        d[i] -= 2 * step
        down = float(loss(torch.tensor(d), torch.tensor(logits0)))
        assert float(delta.grad[i]) == pytest.approx((up - down) / (2 * step), rel=1e-5, abs=1e-8)
        z = logits0.copy()
        z[i, 1] += step
        up = float(loss(torch.tensor(delta0), torch.tensor(z)))
        z[i, 1] -= 2 * step
        down = float(loss(torch.tensor(delta0), torch.tensor(z)))
        assert float(logits.grad[i, 1]) == pytest.approx((up - down) / (2 * step), rel=1e-5, abs=1e-8)


def test_no_view_scores_a_fit_that_saw_it(monkeypatch):
    gaussians = random_scene(7, n=80)
    cameras = [rotated_camera(seed, 32, 24) for seed in range(6)]
    rng = np.random.default_rng(3)
    maps = [rng.integers(0, 3, (c.height, c.width)) for c in cameras]
    lists = seg_opacity.all_view_lists(gaussians, cameras, maps)
    fitted, scored = [], []
    real_fit, real_render = seg_opacity.fit, seg_opacity.render_labels
    monkeypatch.setattr(seg_opacity, "fit", lambda g, views, *a, **k: fitted.append(
        {id(v) for v in views}) or real_fit(g, views, *a, **k))
    monkeypatch.setattr(seg_opacity, "render_labels", lambda g, labels, camera, rule, backend=None: scored.append(
        (len(fitted) - 1, next(k for k, c in enumerate(cameras) if c is camera))) or real_render(g, labels, camera, rule))
    choice = seg_opacity.choose_fit(gaussians, cameras, lists, maps, np.arange(3), folds=3, penalties=(0.1,),
                                    checkpoints=(0, 2))
    assert len(fitted) == 3 and set(choice.scores) == {(0.1, 0), (0.1, 2)}
    for fold, held in enumerate(seg_opacity.fold_indices(6, 3)):
        assert fitted[fold] == {id(lists[k]) for k in range(6) if k not in held}
        assert {view for f, view in scored if f == fold} == set(held)


@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    """A small synthetic scene segmented with --refine opacity, with the fit forced to take steps."""
    from blender_gsseg.core.files.inria_cameras import write_cameras_json
    from PIL import Image
    from synthetic.mask_noise import noisy_mask
    from synthetic.scene import make_scene

    root = tmp_path_factory.mktemp("seg_opacity")
    scene = make_scene(n_spheres=2, points_per_unit_area=200, n_cameras=6, width=64, height=48, seed=5)
    write_gaussians(root / "scene.ply", scene.gaussians)
    write_cameras_json(root / "cams.json", scene.cameras)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for camera in scene.cameras:
        Image.fromarray(noisy_mask(scene.mask(camera), rng).astype("uint8")).save(
            root / "masks" / f"{camera.image_name}.png")
    patch = pytest.MonkeyPatch()
    patch.setattr(seg_opacity, "STEP_CHECKPOINTS", (3,))  # never the closed form: the property is written
    patch.setattr(seg_opacity, "PENALTIES", (1.0,))  # one candidate: three fits in the folds, not six
    try:
        assert main(["segment", str(root / "scene.ply"), "--cameras", str(root / "cams.json"), "--masks",
                     str(root / "masks"), "-o", str(root / "out.ply"), "--backend", "cpu", "--refine", "opacity",
                     "--report", str(root / "r.json")]) == 0
    finally:
        patch.undo()
    return root, scene


def test_refine_opacity_keeps_the_photometric_opacity(segmented):
    root, _ = segmented
    source, out = read_gaussians(root / "scene.ply"), read_gaussians(root / "out.ply")
    assert np.array_equal(out.vertex["opacity"], source.vertex["opacity"])
    seg = out.vertex[SEG_OPACITY_PROPERTY]
    assert seg.dtype == np.float32 and not np.array_equal(seg, source.vertex["opacity"])
    report = json.loads((root / "r.json").read_text())["refine"]["opacity"]
    assert report["steps"] == 3 and list(report["cross_validated_miou"]) == ["lambda=1 steps=3"]


def test_the_sidecar_holds_the_accumulation_seen_with_the_segmentation_opacity(segmented):
    """So relabel and remove --gamma measure membership as the masks see the scene."""
    from blender_gsseg.core.lift.sidecar import load_accumulation, sidecar_path
    from blender_gsseg.core.lift.views import build_views

    root, _ = segmented
    out = read_gaussians(root / "out.ply")
    stored = load_accumulation(sidecar_path(root / "out.ply"))
    views = build_views(root / "cams.json", root / "masks")
    seen = views.accumulate(seg_opacity.with_seg_opacity(out), backend="cpu", mode="dense")
    photometric = views.accumulate(out, backend="cpu", mode="dense")
    np.testing.assert_allclose(stored.weights, seen.weights, rtol=1e-5, atol=1e-7)
    assert not np.allclose(stored.weights, photometric.weights, rtol=1e-3, atol=1e-5)


def test_render_masks_renders_with_the_segmentation_opacity(segmented, tmp_path):
    from blender_gsseg.core.files.camera_files import load_cameras
    from blender_gsseg.core.files.masks import read_label_image

    root, _ = segmented
    out = read_gaussians(root / "out.ply")
    seg = out.vertex[SEG_OPACITY_PROPERTY].copy()
    seg[::2] = -12.0  # half the Gaussians vanish from the masks, and only there
    write_gaussians(tmp_path / "edited.ply", out.with_float_property(SEG_OPACITY_PROPERTY, seg))
    for suffix in (".gsseg.npz",):
        os.link(root / f"out{suffix}", tmp_path / f"edited{suffix}")
    assert main(["render-masks", str(tmp_path / "edited.ply"), "--cameras", str(root / "cams.json"), "-o",
                 str(tmp_path / "masks"), "--mode", "argmax"]) == 0
    edited = read_gaussians(tmp_path / "edited.ply")
    labels = edited.vertex["gsseg_label"]
    different = 0
    for camera in load_cameras(root / "cams.json"):
        written = read_label_image(tmp_path / "masks" / f"{camera.image_name}.png")
        expected = render_labels(seg_opacity.with_seg_opacity(edited), labels, camera, "argmax")
        np.testing.assert_array_equal(written, expected)
        different += int(np.count_nonzero(expected != render_labels(edited, labels, camera, "argmax")))
    assert different > 100


def test_missing_torch_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    code = main(["segment", os.path.join(DEMO, "scene_trained.ply"), "--cameras", os.path.join(DEMO, "cameras.json"),
                 "--masks", os.path.join(DEMO, "masks"), "-o", str(tmp_path / "out.ply"), "--refine", "opacity"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "PyTorch" in err and "refine" in err
    assert os.listdir(tmp_path) == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU for torch")
def test_cpu_and_cuda_agree():
    gaussians = random_scene(11, n=120)
    _, maps, lists = _views(gaussians, seed=4)
    accumulation = seg_opacity.list_accumulation(lists, gaussians.vertex["opacity"], np.arange(3))
    cpu = seg_opacity.fit(gaussians, lists, accumulation, penalty=0.1, steps=20, device="cpu")
    gpu = seg_opacity.fit(gaussians, lists, accumulation, penalty=0.1, steps=20, device="cuda")
    np.testing.assert_allclose(gpu.seg_logit, cpu.seg_logit, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gpu.losses, cpu.losses, rtol=1e-9)
    assert np.array_equal(gpu.labels, cpu.labels)


@pytest.mark.slow
def test_on_the_demo_opacity_is_not_worse_than_zero(monkeypatch):
    """SAM-like noisy masks; held-out views never used to choose anything; both render rules. Quarter-size
    lifting views, and the cross-validation chooses between the closed form and one fit (λ 1, 10 steps, what the
    full grid chooses on the demo's noisy masks in the README's table), which it takes: half a minute instead
    of a quarter of an hour. The full grid's figures on the demo are bench/quality.py's (--refine opacity
    --check-goals)."""
    from blender_gsseg.core.files.camera_files import load_cameras
    from blender_gsseg.core.files.masks import read_label_image
    from blender_gsseg.core.metrics import segmentation_metrics
    from blender_gsseg.core.refine.refinements import refine
    from blender_gsseg.core.lift.solver import Shares
    from blender_gsseg.core.lift.views import build_views

    gaussians = read_gaussians(os.path.join(DEMO, "scene_trained.ply"))
    views = build_views(os.path.join(DEMO, "cameras.json"), os.path.join(DEMO, "masks_noisy"), scale=0.25)
    accumulation = views.accumulate(gaussians, backend="cpu", mode="dense")
    monkeypatch.setattr(seg_opacity, "PENALTIES", (1.0,))
    monkeypatch.setattr(seg_opacity, "STEP_CHECKPOINTS", (0, 10))
    labels, _, _, report, seg = refine(gaussians, accumulation, ["opacity"], cameras=views.cameras,
                                       label_maps=views.label_maps, backend="cpu")
    exact = Shares.from_accumulation(accumulation).solve(0.0)[0]
    held = load_cameras(os.path.join(DEMO, "cameras_heldout.json"))
    truths = [read_label_image(os.path.join(DEMO, "truth", f"{c.image_name}.png")) for c in held]
    fitted_scene = seg_opacity.with_seg_opacity(gaussians, seg) if seg is not None else gaussians
    figures = {}
    for rule in ("subset", "argmax"):
        for name, scene, chosen in (("zero", gaussians, exact), ("opacity", fitted_scene, labels)):
            predicted = [render_labels(scene, chosen, c, rule) for c in held]
            figures[(rule, name)] = segmentation_metrics(predicted, truths)["miou"]
        assert figures[(rule, "opacity")] >= figures[(rule, "zero")] - 0.005, figures
    assert report["opacity"]["steps"] == 10, report  # the fit, not the closed form kept
    print(f"\nheld-out mIoU, closed form vs --refine opacity: {figures}; "
          f"λ {report['opacity']['penalty']}, {report['opacity']['steps']} steps")
