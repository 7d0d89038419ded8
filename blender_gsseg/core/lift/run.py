"""One lift over a set of views: accumulate, or (``choose_gamma``) accumulate the folds of γ's cross-validation,
sum them and score γ on them, with no second pass over the views. The CLI's jobs and the Blender layer's
segmentation both lift through :func:`lift_views`; :class:`SegmentResult` is what a segmentation returns."""

from __future__ import annotations

import collections.abc
import dataclasses
import time

import numpy as np

from ..errors import BadInputError
from ..raster.backends import BackendOrName
from . import tune
from ..errors import default_memory_budget
from .accumulate import Accumulation
from .associate import Association, associate_views
from .solver import UNSEEN
from .views import IDS_PER_VIEW, Views


@dataclasses.dataclass
class Lift:
    accumulation: Accumulation  # all views' (the folds' sum when γ was cross-validated)
    fold_accumulations: list = dataclasses.field(default_factory=list)  # with choose_gamma
    gamma_choice: tune.GammaChoice | None = None  # with choose_gamma
    choose_gamma_s: float = 0.0  # time spent scoring γ
    views: Views | None = None  # the views lifted: per-view ids made consistent (association) when they were
    association: Association | None = None  # with per-view ids (views.ids == 'per-view', e.g. a SAM folder)
    associate_s: float = 0.0  # time spent associating


def lift_views(
    gaussians,
    views: Views,
    *,
    backend: BackendOrName,
    choose_gamma: bool = False,  # cross-validate γ over ``folds`` folds of the views
    folds: int = tune.DEFAULT_FOLDS,
    target: int | None = None,  # binary mode, for scoring γ
    memory_budget: int | None = None,  # bytes; default a quarter of RAM
    cameras_name: str = "the cameras",  # for the message when no camera sees the scene
    progress: collections.abc.Callable[[int, int], None] | None = None,
    cancel: collections.abc.Callable[[], bool] | None = None,
) -> Lift:
    budget = default_memory_budget() if memory_budget is None else memory_budget
    association, associate_s, assembled = None, 0.0, None
    if views.ids == IDS_PER_VIEW:  # ids that mean nothing across views: matched into 3D instances first
        start = time.perf_counter()
        # the lift itself is summed from the association's per-view pass (no second pass) unless γ's folds need
        # their own sums
        views, association, assembled = associate_views(gaussians, views, backend=backend, memory_budget=budget,
                                                         progress=progress, cancel=cancel, assemble=not choose_gamma)
        associate_s = time.perf_counter() - start
    if assembled is not None:
        lift = Lift(assembled)
    elif choose_gamma:
        fold_accumulations = tune.accumulate_folds(gaussians, views, folds, backend=backend, progress=progress,
                                                   cancel=cancel, memory_budget=budget)
        lift = Lift(tune.sum_folds(fold_accumulations), fold_accumulations)
    else:
        lift = Lift(views.accumulate(gaussians, backend=backend, progress=progress, cancel=cancel,
                                     memory_budget=budget))
    lift.views, lift.association, lift.associate_s = views, association, associate_s
    if not lift.accumulation.seen_any:
        raise BadInputError(f"{cameras_name}: no camera sees any Gaussian of {gaussians.path or 'the scene'} "
                            f"(check the camera file and the scene's coordinate frame)")
    if choose_gamma:
        start = time.perf_counter()
        lift.gamma_choice = tune.choose_gamma(gaussians, views, lift.fold_accumulations, target=target,
                                              backend=backend, progress=progress)
        lift.choose_gamma_s = time.perf_counter() - start
    return lift


@dataclasses.dataclass
class SegmentResult:
    gaussians: object  # the input scene plus the gsseg_label property and label comments
    labels: np.ndarray  # int32 [N]
    confidence: np.ndarray  # float32 [N]
    accumulation: Accumulation  # the finest level's
    report: dict
    views: Views  # the finest level's lifting views (cameras at the working size, masks, their source)
    coarse_accumulations: list = dataclasses.field(default_factory=list)  # levels 0..L-2, multi-level only
    parents: list = dataclasses.field(default_factory=list)  # per level: parent id per label id (None at 0)
    gamma_choice: tune.GammaChoice | None = None  # with gamma="auto"


def label_counts(labels: np.ndarray) -> dict:  # labels: [N] int32
    """The report's ``gaussians_per_label`` ({id: count}, unseen left out) and ``unseen`` count."""
    ids, counts = np.unique(labels, return_counts=True)
    return {"gaussians_per_label": {str(int(i)): int(c) for i, c in zip(ids, counts, strict=True) if i != UNSEEN},
            "unseen": int(np.count_nonzero(labels == UNSEEN))}
