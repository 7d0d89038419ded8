"""γ chosen by cross-validation over the lifting views (``segment --gamma auto``).

The closed form is the exact optimum of the L1 error of the *soft* rendered masks at a given background bias
γ; what a user sees is a *hard* mask (the subset or argmax rule, :mod:`..raster.render`) at other views, and γ = 0 is
rarely its best bias. Here the lifting views are split into ``k`` folds (view j in fold j mod k); each fold is
accumulated once (A is a sum over views, so the full accumulation is the sum of the folds'); for each fold the
Gaussians are solved from the *other* folds at every γ of a grid, hard masks are rendered at the fold's own
views by each rule and scored against their masks (mIoU, pooled over all folds). The γ with the best score
wins, per rule (ties to the γ closest to 0). No view ever scores a fit that saw it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .accumulate import Accumulation
from ..raster.backends import BackendOrName, CpuBackend, get_backend
from ..errors import BadInputError
from ..files.masks import resize_nearest
from ..metrics import add_counts, confusion_counts, metrics_from_counts
from ..raster.rasterize import iter_contributions
from ..raster.render import RENDER_MODES, label_argmax, render_label_weights, render_labels
from .solver import Shares

GAMMA_GRID = (-0.6, -0.45, -0.3, -0.15, 0.0, 0.15, 0.3, 0.45, 0.6)
DEFAULT_FOLDS = 3
CV_SCALE = 0.5


@dataclasses.dataclass
class GammaChoice:
    """The γ chosen per render rule, and the cross-validated mIoU of every γ tried."""

    gamma: dict[str, float]  # rule -> chosen γ
    scores: dict[str, dict[float, float]]  # rule -> {γ: held-out mIoU over the folds}
    folds: int

    def report(self) -> dict:
        return {"folds": self.folds, "chosen": self.gamma,
                "cross_validated_miou": {rule: {f"{g:g}": round(v, 4) for g, v in table.items()}
                                         for rule, table in self.scores.items()}}


def fold_indices(n_views: int, folds: int) -> list[list[int]]:
    """View j goes to fold j mod ``folds`` (views in image-name order, so each fold spans the capture)."""
    if folds < 2 or folds > n_views:
        raise BadInputError(f"--gamma auto: {folds} folds need at least {max(folds, 2)} lifting views "
                            f"(there are {n_views})")
    return [list(range(f, n_views, folds)) for f in range(folds)]


def accumulate_folds(gaussians, views, folds: int = DEFAULT_FOLDS, **options) -> list[Accumulation]:
    """One dense accumulation per fold of ``views`` (``options`` as for :meth:`.views.Views.accumulate`)."""
    accumulations = []
    for indices in fold_indices(len(views), folds):
        accumulation = views.subset(indices).accumulate(gaussians, mode="dense", **options)
        accumulations.append(accumulation)
    return accumulations


def sum_folds(accumulations: list[Accumulation]) -> Accumulation:
    """The accumulation over every view: the sum of the folds' (float64 sum, as the backends sum)."""
    total = np.zeros(accumulations[0].weights.shape, dtype=np.float64)
    for accumulation in accumulations:
        total += accumulation.weights
    return Accumulation(accumulations[0].label_ids, total.astype(np.float32))


def choose_gamma(gaussians, views, fold_accumulations: list[Accumulation], *, rules=RENDER_MODES,
                 grid=GAMMA_GRID, target: int | None = None, scale: float = CV_SCALE,
                 backend: BackendOrName = None, progress=None) -> GammaChoice:
    """Cross-validate γ over ``grid`` for each rule of ``rules`` (see the module docstring); the hard masks are
    rendered and scored at ``scale`` times the lifting views' size (they are compared pixel by pixel: half the
    size scores the same boundaries at a quarter of the cost)."""
    folds = fold_indices(len(views), len(fold_accumulations))
    backend = get_backend(backend)  # one backend object: it keeps each view's projection across the γ grid
    total = sum_folds(fold_accumulations)
    counts = {(rule, gamma): {} for rule in rules for gamma in grid}
    steps, done = len(views), 0
    for fold, held in enumerate(folds):
        # the fit of this fold sees the other folds' views only
        train = Accumulation(total.label_ids, np.maximum(total.weights - fold_accumulations[fold].weights, 0))
        shares = Shares.from_accumulation(train, target)
        labels = {gamma: shares.solve(gamma)[0] for gamma in grid}
        for index in held:
            camera = views.cameras[index].scaled(scale) if scale != 1 else views.cameras[index]
            truth = resize_nearest(np.asarray(views.label_maps[index]), camera.width, camera.height)
            if target is not None:
                truth = np.where(truth < 0, -1, np.where(truth == target, target, 0))
            walk = None
            if "argmax" in rules and isinstance(backend, CpuBackend):  # one walk serves every γ
                projected = backend.project(gaussians, camera)
                walk = (projected, list(iter_contributions(projected)))
            for gamma in grid:
                for rule in rules:
                    if rule == "argmax" and walk is not None:
                        predicted = label_argmax(*render_label_weights(walk[0], labels[gamma], walk[1]))
                    else:
                        predicted = render_labels(gaussians, labels[gamma], camera, rule, backend=backend)
                    add_counts(counts[(rule, gamma)], confusion_counts([predicted], [truth], ignore_label=-1))
            done += 1
            if progress is not None:
                progress(done, steps)
    scores = {rule: {gamma: metrics_from_counts(counts[(rule, gamma)])["miou"] for gamma in grid} for rule in rules}
    chosen = {rule: max(grid, key=lambda g: (scores[rule][g], -abs(g))) for rule in rules}
    return GammaChoice(chosen, scores, len(folds))
