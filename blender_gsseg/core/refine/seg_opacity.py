"""Opacity-aware fine-tuning (``segment --refine opacity``): Binary-Gaussian's segmentation opacity, fitted
without retraining the scene.

The closed form takes every Gaussian's weight w_i(p) = α_i(p) T_i(p) as the photometric render gives it. A faint
Gaussian that spills past an object's silhouette, or an opaque one that a trained scene put where the masks
say "background", then decides pixels its label cannot explain (Binary-Gaussian's "incompatibility between
photometric rendering and semantic segmentation, which often leads to foreground-background confusion").
Here each Gaussian gets, for segmentation only, an opacity offset δ_i (in logit space) and a label
distribution softmax(z_i); both are fitted with torch autograd so that the label masks rendered with the
segmentation opacity õ_i = σ(logit o_i + δ_i) match the given masks:

    m_e(p) = Σ_i α̃_i(p) T̃_i(p) softmax(z_i)_e  + [e = 0] T̃_end(p),     α̃_i(p) = min(0.99, õ_i G_i(p))
    loss   = mean over masked pixels of −log m_{mask(p)}(p)  +  λ mean_i (δ_i² + |z_i − z⁰_i|²)

z⁰ are the logs of the closed form's shares (their argmax is the exact labels), so the fit starts at the
optimum of FlashSplat's objective and a Gaussian the masks say little about stays near it; with Adam's
per-parameter steps, a Gaussian without that pull would move on noise as fast as a well-seen one.

Geometry is fixed, so G_i(p) and each pixel's depth order come once from the CPU walk (the photometric
lists, :func:`.rasterize.iter_contributions` with ``with_falloff``) and only α̃ and T̃ are recomputed in torch.
A pixel's remaining transmittance counts as background, so m is a distribution over labels. Entries the
photometric walk skipped (α < 1/255, or behind the point where T fell below 1e-4) stay out: δ re-weighs what
the photometric render shows, it does not uncover what it hides.

The labels are the argmax of the fitted distributions (Gaussians no view saw stay −1); the segmentation opacity
is stored as the property ``gsseg_seg_opacity`` (a logit, as ``opacity`` is), the photometric ``opacity`` is
never changed, and ``render-masks`` renders with the segmentation opacity when the property is there. The
penalty λ and the step count are chosen by the cross-validation of :mod:`..lift.tune` (fit on the other folds,
hard masks of the held fold rendered with the fitted opacity and scored); the lists are held once per view.
"""

from __future__ import annotations

import collections.abc
import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from ..raster import projection
from ..raster.backends import BackendOrName
from ..lift.accumulate import Accumulation, accumulate_weights
from ..errors import BadInputError
from ..files.masks import resize_nearest
from ..metrics import add_counts, confusion_counts, metrics_from_counts
from ..raster.rasterize import iter_contributions
from ..raster.render import RENDER_MODES, render_labels
from ..files.masks import IndexMaps
from ..lift.tune import DEFAULT_FOLDS, fold_indices

if TYPE_CHECKING:
    from ..cameras import Camera
    from ..gaussians import Gaussians

SEG_OPACITY_PROPERTY = "gsseg_seg_opacity"  # float logit per Gaussian, the segmentation opacity
PENALTIES = (0.1, 1.0)  # λ candidates
STEP_CHECKPOINTS = (0, 10, 25)  # step counts scored by the cross-validation (0: the closed form's labels)
LEARNING_RATE = 0.1
SHARE_FLOOR = 1e-3  # the closed form's shares start the label logits: log(max(share, floor))
TORCH_MISSING = ("--refine opacity needs PyTorch: pip install 'blender-gsseg[refine]' (torch==2.13.0), "
                 "or choose another refinement")


def import_torch():
    try:
        import torch
    except ImportError:
        raise BadInputError(TORCH_MISSING) from None
    return torch


def default_device() -> str:
    """'cuda' when torch sees a GPU, else 'cpu'."""
    torch = import_torch()
    return "cuda" if torch.cuda.is_available() else "cpu"


# ----- the per-view lists


@dataclasses.dataclass
class ViewLists:
    """One view's photometric walk, for the pixels its mask labels: entry k is Gaussian ``gaussian[k]`` at
    pixel ``pixel[k]`` (an index into ``target``), with value ``falloff[k]`` = G_i(p); a pixel's entries are
    consecutive, front to back."""

    gaussian: np.ndarray  # int32 [M]
    pixel: np.ndarray  # int32 [M], ascending runs (each pixel's entries front to back)
    falloff: np.ndarray  # float32 [M]
    target: np.ndarray  # int64 [P], the label index (column of the accumulation) of each listed pixel

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.gaussian, self.pixel, self.falloff, self.target))


def view_lists(
    gaussians: Gaussians,
    covariances: np.ndarray,  # [N, 3, 3] float32
    camera: Camera,
    label_indices: np.ndarray,  # int [H, W] at the camera's size, index into the label ids, -1 ignored
) -> ViewLists:
    """The lists of one view (:class:`ViewLists`), from the CPU walk with the photometric opacity."""
    projected = projection.project_gaussians(gaussians.means, covariances, gaussians.opacities, camera)
    flat = np.asarray(label_indices).ravel()
    chunks = list(iter_contributions(projected, pixel_mask=(flat >= 0).reshape(label_indices.shape),
                                     with_falloff=True))
    if not chunks:
        empty = np.zeros(0, dtype=np.int32)
        return ViewLists(empty, empty, np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64))
    # the walk yields each pixel's entries front to back across its chunks: a stable sort gathers each walk
    pixel_id = np.concatenate([c[1] for c in chunks])
    order = np.argsort(pixel_id, kind="stable")
    pixel_id = pixel_id[order]
    gid = np.concatenate([c[0] for c in chunks])[order]
    falloff = np.concatenate([c[3] for c in chunks])[order]
    new_pixel = np.r_[True, pixel_id[1:] != pixel_id[:-1]]
    pixel = (np.cumsum(new_pixel) - 1).astype(np.int32)
    return ViewLists(gid, pixel, falloff, flat[pixel_id[new_pixel]].astype(np.int64))


def all_view_lists(gaussians, cameras, index_maps, progress=None) -> list[ViewLists]:
    """:func:`view_lists` for every view (``index_maps[k]`` at ``cameras[k]``'s size or resized to it)."""
    covariances = projection.covariances_3d(gaussians.scales, gaussians.rotations)
    lists = []
    for k, camera in enumerate(cameras):
        indices = resize_nearest(np.asarray(index_maps[k]), camera.width, camera.height)
        lists.append(view_lists(gaussians, covariances, camera, indices))
        if progress is not None:
            progress(k + 1, len(cameras))
    return lists


# ----- the differentiable render


class _TorchView:
    """A view's lists as tensors on ``device``."""

    def __init__(self, torch, lists: ViewLists, device, dtype):
        as_long = lambda a: torch.as_tensor(a.astype(np.int64), device=device)  # noqa: E731
        self.gaussian = as_long(lists.gaussian)
        self.pixel = as_long(lists.pixel)
        self.falloff = torch.as_tensor(lists.falloff, device=device, dtype=dtype)
        self.target = as_long(lists.target)
        self.entry_target = self.target[self.pixel]
        self.background = (self.target == 0).to(dtype)
        first = torch.ones(len(lists.pixel), dtype=torch.bool, device=device)
        if len(lists.pixel) > 1:
            first[1:] = self.pixel[1:] != self.pixel[:-1]
        self.first = torch.nonzero(first).squeeze(1)  # index of each pixel's front entry
        self.n_pixels = len(lists.target)


def view_loss(torch, view: _TorchView, base_logit, delta, log_probs):
    """Σ over the view's pixels of −log m_{mask(p)}(p) (module docstring); differentiable in ``delta`` [N] and
    ``log_probs`` [N, K] (log label distributions)."""
    if view.n_pixels == 0:
        return delta.sum() * 0.0
    opacity = torch.sigmoid(base_logit[view.gaussian] + delta[view.gaussian])
    alpha = torch.clamp(opacity * view.falloff, max=projection.MAX_ALPHA)
    log_keep = torch.log1p(-alpha)
    running = torch.cumsum(log_keep, 0)
    before = running - log_keep
    log_t = before - before[view.first][view.pixel]  # log T̃ before each entry, within its pixel
    weight = alpha * torch.exp(log_t)
    label_prob = torch.exp(log_probs[view.gaussian, view.entry_target])
    covered = torch.zeros(view.n_pixels, dtype=alpha.dtype, device=alpha.device)
    covered = covered.index_add(0, view.pixel, weight * label_prob)
    log_end = torch.zeros(view.n_pixels, dtype=alpha.dtype, device=alpha.device).index_add(0, view.pixel, log_keep)
    probability = covered + view.background * torch.exp(log_end)  # what shows through counts as background
    return -torch.log(probability.clamp_min(1e-12)).sum()


@dataclasses.dataclass
class OpacityFit:
    """Fitted labels (int32 [N], −1 unseen), segmentation opacity logits (float32 [N]) and, per checkpoint
    step count, the state at that step."""

    labels: np.ndarray
    seg_logit: np.ndarray
    checkpoints: dict[int, tuple[np.ndarray, np.ndarray]]  # steps -> (labels, seg_logit)
    losses: list[float]


def initial_logits(accumulation: Accumulation, gamma: float = 0.0) -> np.ndarray:  # float64 [N, K]
    """Label logits from the closed form's shares at ``gamma`` (background share plus γ, as the solver biases
    it): their argmax is the exact labels."""
    weights = np.asarray(accumulation.weights, dtype=np.float64)
    total = weights.sum(axis=0)
    shares = weights / np.where(total > 0, total, 1.0)
    shares[0] += gamma
    return np.log(np.maximum(shares, SHARE_FLOOR)).T


def fit(
    gaussians: Gaussians,
    lists: collections.abc.Sequence[ViewLists],
    accumulation: Accumulation,
    *,
    penalty: float = PENALTIES[0],
    steps: int = STEP_CHECKPOINTS[-1],
    checkpoints: collections.abc.Collection[int] = (),
    gamma: float = 0.0,
    device: str | None = None,
    progress: collections.abc.Callable[[int, int], None] | None = None,
) -> OpacityFit:
    """Fit δ and the label logits on ``lists`` (module docstring) with Adam for ``steps`` full passes over the
    views (each view's gradient added in turn, so only one view's graph is alive at a time)."""
    torch = import_torch()
    device = device or default_device()
    dtype = torch.float64
    seen = np.asarray(accumulation.weights).sum(axis=0) > 0
    base_logit = torch.as_tensor(np.asarray(gaussians.vertex["opacity"], dtype=np.float64), device=device)
    start = torch.tensor(initial_logits(accumulation, gamma), device=device, dtype=dtype)
    logits = start.clone().requires_grad_(True)
    delta = torch.zeros(len(gaussians), device=device, dtype=dtype, requires_grad=True)
    views = [_TorchView(torch, view, device, dtype) for view in lists]
    n_pixels = max(sum(view.n_pixels for view in views), 1)
    optimiser = torch.optim.Adam([logits, delta], lr=LEARNING_RATE)
    label_ids = np.asarray(accumulation.label_ids)

    def state():
        labels = label_ids[np.argmax(logits.detach().cpu().numpy(), axis=1)].astype(np.int32)
        labels[~seen] = -1
        offset = delta.detach().cpu().numpy()
        return labels, (np.asarray(gaussians.vertex["opacity"], dtype=np.float64) + offset).astype(np.float32)

    saved, losses = {}, []
    for step in range(steps + 1):
        if step in checkpoints:
            saved[step] = state()
        if step == steps:
            break
        optimiser.zero_grad()
        total = 0.0
        for view in views:
            loss = view_loss(torch, view, base_logit, delta, torch.log_softmax(logits, dim=1)) / n_pixels
            loss.backward()
            total += float(loss.detach())
        regulariser = penalty * ((delta * delta).mean() + ((logits - start) ** 2).sum(dim=1).mean())
        regulariser.backward()
        optimiser.step()
        losses.append(total + float(regulariser.detach()))
        if progress is not None:
            progress(step + 1, steps)
    labels, seg_logit = state()
    return OpacityFit(labels, seg_logit, saved, losses)


# ----- rendering with the segmentation opacity, and the cross-validation


def with_seg_opacity(gaussians: Gaussians, seg_logit: np.ndarray | None = None) -> Gaussians:
    """The scene as the masks see it: its opacity replaced by the segmentation opacity (``seg_logit``, or the
    scene's ``gsseg_seg_opacity`` property); the scene itself when it has none."""
    if seg_logit is None:
        if SEG_OPACITY_PROPERTY not in gaussians.property_names:
            return gaussians
        seg_logit = gaussians.vertex[SEG_OPACITY_PROPERTY]
    return gaussians.with_float_property("opacity", seg_logit)


@dataclasses.dataclass
class FitChoice:
    penalty: float
    steps: int
    scores: dict[tuple[float, int], dict[str, float]]  # (λ, steps) -> {rule: held-out mIoU over the folds}
    folds: int

    def report(self) -> dict:
        return {"penalty": self.penalty, "steps": self.steps, "folds": self.folds,
                "cross_validated_miou": {f"lambda={p:g} steps={s}": {rule: round(v, 4) for rule, v in row.items()}
                                         for (p, s), row in self.scores.items()}}


def list_accumulation(lists: collections.abc.Sequence[ViewLists], opacity_logit: np.ndarray,
                      label_ids: np.ndarray) -> Accumulation:
    """The accumulation of ``lists`` (the photometric weights w = α T of their entries, summed per pixel
    label): the closed form's input at the lists' size, so a fold's fit starts from its own exact labels."""
    n = len(opacity_logit)
    with np.errstate(over="ignore"):
        opacity = 1.0 / (1.0 + np.exp(-np.asarray(opacity_logit, dtype=np.float64)))
    weights = np.zeros(len(label_ids) * n)
    for view in lists:
        if len(view.gaussian) == 0:
            continue
        alpha = np.minimum(projection.MAX_ALPHA, opacity[view.gaussian] * view.falloff)
        log_keep = np.log1p(-alpha)
        before = np.cumsum(log_keep) - log_keep
        first = np.flatnonzero(np.r_[True, view.pixel[1:] != view.pixel[:-1]])
        log_t = before - before[first][view.pixel]
        weights += np.bincount(view.target[view.pixel] * n + view.gaussian, weights=alpha * np.exp(log_t),
                               minlength=len(weights))
    return Accumulation(np.asarray(label_ids, dtype=np.int32), weights.reshape(len(label_ids), n).astype(np.float32))


def sum_except(fold_accumulations: collections.abc.Sequence[Accumulation], fold: int) -> Accumulation:
    """The accumulation of every fold but ``fold`` (float64 sum)."""
    total = np.zeros(np.shape(fold_accumulations[0].weights))
    for k, accumulation in enumerate(fold_accumulations):
        if k != fold:
            total += accumulation.weights
    return Accumulation(fold_accumulations[0].label_ids, total.astype(np.float32))


def choose_fit(
    gaussians: Gaussians,
    cameras: collections.abc.Sequence[Camera],  # [V] the lifting views, at the lists' size
    lists: collections.abc.Sequence[ViewLists],  # [V]
    truths: collections.abc.Sequence[np.ndarray],  # [V] label ids [H, W] at the cameras' size, -1 ignored
    label_ids: np.ndarray,  # [L] the accumulation's label ids
    *,
    fold_accumulations: collections.abc.Sequence[Accumulation] | None = None,  # per fold, at full size
    folds: int = DEFAULT_FOLDS,
    penalties: collections.abc.Sequence[float] | None = None,  # default PENALTIES
    checkpoints: collections.abc.Sequence[int] | None = None,  # default STEP_CHECKPOINTS
    gamma: float = 0.0,
    device: str | None = None,
    progress=None,
) -> FitChoice:
    """λ and the step count by k-fold cross-validation: for each fold, fit on the other folds' views (their
    lists only) and score the hard masks of the fold's own views, rendered by both rules with the fitted
    segmentation opacity; the best mean of the two rules' pooled mIoU wins (ties to fewer steps, then the
    larger λ). Step count 0 is the closed form itself, so the choice is never worse than it in the folds.
    Each fold's fit starts from the closed form of the other folds: from ``fold_accumulations`` (the folds'
    accumulations at the lifting views' own size, as the final fit starts from the full one) when given, else
    from the lists' own weights."""
    penalties = PENALTIES if penalties is None else penalties
    checkpoints = STEP_CHECKPOINTS if checkpoints is None else checkpoints
    held_out = fold_indices(len(cameras), folds)
    counts = {(p, s, rule): {} for p in penalties for s in checkpoints for rule in RENDER_MODES}
    done, work = 0, len(held_out) * len(penalties)
    for fold, held in enumerate(held_out):
        held_set = set(held)
        train = [lists[k] for k in range(len(cameras)) if k not in held_set]
        if fold_accumulations is None:
            accumulation = list_accumulation(train, gaussians.vertex["opacity"], label_ids)
        else:
            accumulation = sum_except(fold_accumulations, fold)
        for penalty in penalties:
            result = fit(gaussians, train, accumulation, penalty=penalty, steps=max(checkpoints),
                         checkpoints=checkpoints, gamma=gamma, device=device)
            for steps, (labels, seg_logit) in result.checkpoints.items():
                if steps == 0 and penalty != penalties[0]:  # the closed form: scored once, copied
                    for rule in RENDER_MODES:
                        counts[(penalty, 0, rule)] = counts[(penalties[0], 0, rule)]
                    continue
                scene = with_seg_opacity(gaussians, seg_logit) if steps else gaussians
                for k in held:
                    for rule in RENDER_MODES:
                        predicted = render_labels(scene, labels, cameras[k], rule)
                        add_counts(counts[(penalty, steps, rule)],
                                   confusion_counts([predicted], [truths[k]], ignore_label=-1))
            done += 1
            if progress is not None:
                progress(done, work)
    scores = {(p, s): {rule: metrics_from_counts(counts[(p, s, rule)])["miou"] for rule in RENDER_MODES}
              for p in penalties for s in checkpoints}
    best = max(scores, key=lambda key: (round(float(np.mean(list(scores[key].values()))), 6), -key[1], key[0]))
    return FitChoice(best[0], best[1], scores, len(held_out))


def refine_opacity(
    gaussians: Gaussians,
    accumulation: Accumulation,
    cameras: collections.abc.Sequence[Camera],  # [V] the lifting views
    label_maps: collections.abc.Sequence,  # [V] int [H, W] label ids, -1 ignored
    *,
    gamma: float = 0.0,
    folds: int = DEFAULT_FOLDS,
    device: str | None = None,
    backend: BackendOrName = None,  # the accumulation backend of the folds' closed forms
    progress: collections.abc.Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None, dict]:  # labels [N] int32, seg logits [N] float32, report
    """``segment --refine opacity``: the lists of every lifting view, λ and steps by cross-validation, then the
    fit over every view from the exact labels at ``gamma``. Returns (labels, segmentation opacity logits,
    report); (None, None, report) when the cross-validation keeps the closed form (0 steps).

    Lists and scores are at the views' own (working) size, as the closed form's: masks shrunk by nearest
    neighbour sit up to half a pixel off a shrunk camera's pixel centres, and a fit there learns that shift (on
    the demo with model-consistent masks it then "improved" the folds at half size while losing 5 points at
    full size). ``segment --scale`` shrinks both consistently when the cost matters."""
    import time

    start = time.perf_counter()
    label_ids = np.asarray(accumulation.label_ids)
    index_maps = IndexMaps(label_maps, label_ids, np.int32)
    lists = all_view_lists(gaussians, cameras, index_maps)
    fold_accumulations = [accumulate_weights(gaussians, [cameras[k] for k in held], IndexMaps(
        [label_maps[k] for k in held], label_ids, np.int32), label_ids, backend=backend)
        for held in fold_indices(len(cameras), folds)]
    truths = [resize_nearest(np.asarray(label_maps[k]), c.width, c.height) for k, c in enumerate(cameras)]
    report = {"lists_mb": round(sum(view.nbytes for view in lists) / 2**20, 1),
              "entries": int(sum(len(view.gaussian) for view in lists)), "device": device or default_device()}
    choice = choose_fit(gaussians, cameras, lists, truths, label_ids, fold_accumulations=fold_accumulations,
                        folds=folds, gamma=gamma, device=device, progress=progress)
    report.update(choice.report())
    if choice.steps == 0:
        report["seconds"] = round(time.perf_counter() - start, 1)
        return None, None, report
    result = fit(gaussians, lists, accumulation, penalty=choice.penalty, steps=choice.steps, gamma=gamma,
                 device=device)
    report["final_loss"] = round(result.losses[-1], 6)
    report["seconds"] = round(time.perf_counter() - start, 1)
    return result.labels, result.seg_logit, report
