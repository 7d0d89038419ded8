"""Optional refinements of the exact labels (``segment --refine ...``); the exact optimum stays the default.

Why they exist (figures in the README's quality section): FlashSplat's closed form minimises the L1 error of
the *rendered* masks in the lifting views, taking the masks as they are.

* ``missing``: SAM-like masks lose objects: a boundary eroded by two pixels erases a pole three pixels wide,
  a tracker drops an instance for a few frames. Such a view votes "background" for every Gaussian of the
  object it shows, and a thin part flips to background. The refinement takes the Gaussians that could be
  ``t`` (``t`` is their best foreground label, with a share of at least 0.25), renders them in every lifting
  view, and where a view's mask holds less than a quarter of the ``t`` pixels they render, ignores the pixels
  they cover in that view (they count for nothing, as with ``--ignore-label``); then it accumulates again and
  re-solves (twice the accumulation time).
* ``opacity``: Binary-Gaussian's segmentation opacity (:mod:`.seg_opacity`): a per-Gaussian opacity for the
  masks only, fitted with torch together with label distributions so that the masks rendered with it match the
  given ones; strength and step count by cross-validation over the lifting views (never worse than the closed
  form there: zero steps is one of the choices). Needs PyTorch (the ``refine`` extra).
* ``hidden``: a Gaussian the lifting views barely see (its total weight is below 3% of what it would receive
  unoccluded: the underside of an object, the ground beneath it, the inside of an ear) takes its exact label
  from weight leaking through the Gaussians in front of it, which is close to noise. It takes instead the
  label under its projected centre in the most views (the centre vote of SAGS / Gaga): at a hidden surface
  the occluder is usually its own object. These Gaussians hardly show in the rendered masks, but they are
  what a removed object leaves behind. Costs one projection per view.
* ``seams``: a Gaussian on a silhouette (the limb of a sphere, the underside of an object where it meets the
  ground, the contact between two objects, the side of a thin pole) is hidden inside its own object's
  silhouette by that object's front surface and shows only where its footprint spills past the edge, onto the
  neighbour. Its weight is split and the optimum gives it to the neighbour: right for the rendered masks,
  wrong for the Gaussian, and the reason a removed object leaves a thin outline of itself behind. Here a
  Gaussian whose label is uncertain (primary share minus runner-up below ``margin``) takes, among the labels
  whose share is within ``margin`` of the primary one, the label under its projected centre in the most
  lifting views (occlusion ignored: at a silhouette the occluder is the Gaussian's own object). Confident
  Gaussians keep the exact label, so occlusion handling is untouched. Costs one projection per view.

Measured and left out (README): labelling unseen or barely seen Gaussians from their 3D neighbours (the
exact solver's tiny weights are right more often than the neighbours, and the rendered masks get worse),
smoothing shares over 3D neighbours (no better than a negative gamma on the clean scene, worse on the
trained-like one), per-view majority voting, squared or dominant-only weights, and the weight at the centre
pixel as evidence.
"""

from __future__ import annotations

import collections.abc
from typing import TYPE_CHECKING

import numpy as np

from ..raster import projection
from ..lift.accumulate import Accumulation, BoundedAccumulation, accumulate_weights
from ..raster.backends import BackendOrName
from ..errors import BadInputError
from ..read_on_use import ReadOnUse
from ..files.masks import IndexMaps
from ..files.labels import LABEL_PROPERTY
from ..lift.run import SegmentResult, label_counts
from ..raster.render import render_label_weights
from .seg_opacity import SEG_OPACITY_PROPERTY, refine_opacity, with_seg_opacity
from ..lift.solver import UNSEEN, Shares
from ..lift.tune import DEFAULT_FOLDS

if TYPE_CHECKING:
    from ..cameras import Camera
    from ..gaussians import Gaussians

REFINEMENTS = ("missing", "opacity", "hidden", "seams")
DEFAULT_SEAM_MARGIN = 0.2
DEFAULT_HIDDEN_RATIO = 0.03


# ----- candidates and centre votes


def candidate_shares(
    shares: Shares,
    ids: np.ndarray,  # [n] int, Gaussian ids
) -> tuple[np.ndarray, np.ndarray]:  # labels [K, n] int64, values [K, n] float32
    """(labels [K, n], values [K, n]) of the Gaussians ``ids``: background first, then the foreground rows of
    :class:`~blender_gsseg.core.lift.solver.Shares` (dense or bounded form); unused slots have label -1."""
    background = shares.background[ids][None]
    foreground = shares.foreground[:, ids]
    if getattr(shares, "foreground_labels", None) is not None:
        labels = shares.foreground_labels[:, ids]
    else:
        labels = np.repeat(shares.label_ids[1:, None], len(ids), axis=1)
    return (np.concatenate([np.zeros((1, len(ids)), dtype=np.int64), labels.astype(np.int64)]),
            np.concatenate([background, foreground]).astype(np.float32))


def centre_labels(
    means: np.ndarray,  # [n, 3]
    camera: Camera,
    label_map: np.ndarray,  # [H, W] int label ids, -1 ignored
) -> np.ndarray:  # [n] int64
    """Mask label under each projected centre (int64 [n]; -2 where the centre is outside the frame or behind
    the near plane; -1 stays -1 for ignored pixels)."""
    uv, depth = camera.project(means)
    height, width = label_map.shape
    sx, sy = width / camera.width, height / camera.height  # maps at another working size
    inside = (depth > projection.NEAR_PLANE) & (uv[:, 0] >= 0) & (uv[:, 0] < camera.width) & \
        (uv[:, 1] >= 0) & (uv[:, 1] < camera.height)
    out = np.full(len(means), -2, dtype=np.int64)
    col = np.minimum((uv[inside, 0] * sx).astype(np.int64), width - 1)
    row = np.minimum((uv[inside, 1] * sy).astype(np.int64), height - 1)
    out[inside] = label_map[row, col]
    return out


def _ambiguous(shares, ids, margin, chunk=1 << 18):
    """(Gaussian ids, candidate labels [K, n], eligible [K, n]) of the Gaussians among ``ids`` whose primary
    share beats the runner-up by less than ``margin``; eligible: within ``margin`` of the primary share.
    Chunked, so a dense accumulation with many labels is never copied whole."""
    out_ids, out_labels, out_eligible = [], [], []
    for lo in range(0, len(ids), chunk):
        part = ids[lo:lo + chunk]
        cand_labels, cand_values = candidate_shares(shares, part)
        cand_values = np.where(cand_labels >= 0, cand_values, -np.inf)
        ordered = -np.sort(-cand_values, axis=0)
        second = ordered[1] if len(ordered) > 1 else np.full(len(part), -np.inf)
        ambiguous = (ordered[0] - second) < margin
        out_ids.append(part[ambiguous])
        out_labels.append(cand_labels[:, ambiguous])
        out_eligible.append(cand_values[:, ambiguous] >= ordered[0][ambiguous] - margin)
    if not out_ids:
        return np.zeros(0, dtype=np.int64), None, None
    return np.concatenate(out_ids), np.concatenate(out_labels, axis=1), np.concatenate(out_eligible, axis=1)


def refine_seams(
    gaussians: Gaussians,
    shares: Shares,
    labels: np.ndarray,  # [N] int32
    cameras: collections.abc.Iterable[Camera],  # [V]
    label_maps: collections.abc.Iterable[np.ndarray],  # [V] of int [H, W] label ids, -1 ignored
    margin: float = DEFAULT_SEAM_MARGIN,
) -> np.ndarray:  # [N] int32
    """Labels after the ``seams`` refinement (see the module docstring). ``label_maps`` hold label *ids*
    (not indices), one per camera, at any size (read by nearest neighbour)."""
    labels = np.array(labels, dtype=np.int32, copy=True)
    ids, cand_labels, eligible = _ambiguous(shares, np.flatnonzero(labels != UNSEEN), margin)
    if len(ids) == 0:
        return labels
    votes = np.zeros(cand_labels.shape, dtype=np.int64)
    means = gaussians.means[ids]
    for camera, label_map in zip(cameras, label_maps, strict=True):
        under = centre_labels(means, camera, np.asarray(label_map))
        votes += (cand_labels == under[None]) & eligible
    # Most votes wins; ties (and no votes at all) keep the exact label.
    best_votes = votes.max(axis=0)
    current = cand_labels == labels[ids][None]
    keep = (votes[current.argmax(axis=0), np.arange(len(ids))] == best_votes) & current.any(axis=0)
    choice = cand_labels[votes.argmax(axis=0), np.arange(len(ids))]
    labels[ids] = np.where(keep | (best_votes == 0), labels[ids], choice).astype(np.int32)
    return labels


# ----- barely seen Gaussians


def visibility_ratio(
    gaussians: Gaussians,
    accumulation: Accumulation | BoundedAccumulation,
    cameras: collections.abc.Iterable[Camera],  # [V]
    covariances: np.ndarray | None = None,  # [N, 3, 3] float32, computed when None
) -> np.ndarray:  # [N] float64
    """float [N]: each Gaussian's total weight over the lifting views divided by what it would receive if
    nothing occluded it (opacity times the area of its 2D footprint, summed over the views that frame it)."""
    if covariances is None:
        covariances = projection.covariances_3d(gaussians.scales, gaussians.rotations)
    total = accumulation.total_weight()
    potential = np.zeros(len(gaussians))
    for camera in cameras:
        projected = projection.project_gaussians(gaussians.means, covariances, gaussians.opacities, camera)
        visible = projected.visible
        conic = projected.conics[visible].astype(np.float64)
        det = conic[:, 0] * conic[:, 2] - conic[:, 1] ** 2
        potential[visible] += projected.opacities[visible] * 2 * np.pi / np.sqrt(np.maximum(det, 1e-30))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(potential > 0, total / potential, 0.0)


def centre_vote(
    means: np.ndarray,  # [n, 3]
    cameras: collections.abc.Iterable[Camera],  # [V]
    label_maps: collections.abc.Sequence,  # [V] of int [H, W] label ids, -1 ignored
) -> np.ndarray:  # [n] int32
    """int32 [n]: the label found most often under each projected centre over the views (ties to the smaller
    id; -1 where no view frames it). Occlusion is ignored, as in SAGS / Gaga."""
    labels = np.unique(np.concatenate([np.unique(np.asarray(m)) for m in label_maps]))
    labels = labels[labels >= 0]
    votes = np.zeros((len(labels), len(means)), dtype=np.int32)
    for camera, label_map in zip(cameras, label_maps, strict=True):
        under = centre_labels(means, camera, np.asarray(label_map))
        ok = under >= 0
        np.add.at(votes, (np.searchsorted(labels, under[ok]), np.flatnonzero(ok)), 1)
    out = labels[np.argmax(votes, axis=0)].astype(np.int32) if len(labels) else np.full(len(means), UNSEEN)
    out[votes.sum(axis=0) == 0] = UNSEEN
    return out


def refine_hidden(
    gaussians: Gaussians,
    accumulation: Accumulation | BoundedAccumulation,
    labels: np.ndarray,  # [N] int32
    cameras: collections.abc.Sequence[Camera],  # [V]
    label_maps: collections.abc.Sequence,  # [V] of int [H, W] label ids, -1 ignored
    threshold: float = DEFAULT_HIDDEN_RATIO,
    covariances: np.ndarray | None = None,  # [N, 3, 3] float32, computed when None
) -> tuple[np.ndarray, np.ndarray]:  # labels [N] int32, ids of the hidden Gaussians [M] int64
    """Labels after the ``hidden`` refinement: Gaussians whose visibility ratio is below ``threshold`` take
    the centre vote (where a view frames them)."""
    ratio = visibility_ratio(gaussians, accumulation, cameras, covariances)
    hidden = np.flatnonzero(ratio < threshold)
    labels = np.array(labels, dtype=np.int32, copy=True)
    if len(hidden):
        vote = centre_vote(gaussians.means[hidden], cameras, label_maps)
        labels[hidden] = np.where(vote != UNSEEN, vote, labels[hidden])
    return labels, hidden


# ----- objects missing from a view


def foreground_candidates(shares: Shares, min_share: float = 0.25, chunk: int = 1 << 18) -> np.ndarray:  # [N] int32
    """int32 [N]: each Gaussian's best foreground label where its share reaches ``min_share``, else -1."""
    best_label, _ = shares.solve(-1.0)  # at gamma -1 any foreground share beats the background
    ids = np.flatnonzero(best_label > 0)
    out = np.full(len(best_label), UNSEEN, dtype=np.int32)
    for lo in range(0, len(ids), chunk):
        part = ids[lo:lo + chunk]
        cand_labels, cand_values = candidate_shares(shares, part)
        best_share = np.where(cand_labels[1:] == best_label[part][None], cand_values[1:], 0).max(axis=0)
        keep = best_share >= min_share
        out[part[keep]] = best_label[part[keep]]
    return out


def missing_object_maps(
    gaussians: Gaussians,
    candidates: np.ndarray,  # [N] int, -1: none
    cameras: collections.abc.Iterable[Camera],  # [V]
    label_maps: collections.abc.Sequence,  # [V] of int [H, W] label ids, -1 ignored
    *,
    ratio: float = 0.25,
    min_pixels: float = 4.0,
    covariances: np.ndarray | None = None,  # [N, 3, 3] float32, computed when None
) -> tuple[collections.abc.Sequence, list[tuple[int, int]]]:  # label maps [V], missed (view, label)
    """Label maps with the objects a view *misses* set to -1 (ignored), and the list of (view, label) missed.

    ``candidates`` [N]: the label each Gaussian may have (-1: none), e.g. :func:`foreground_candidates`.
    Label ``t`` is missed in view ``v`` when its candidates render there (in the whole scene, so occlusion
    counts) with a summed weight of at least ``min_pixels`` pixels but the mask holds fewer than ``ratio`` times
    that many ``t`` pixels: SAM erased a thin part, or a tracker lost the object. Where the candidates of ``t``
    carry a weight of at least 0.5, such a view then says nothing, instead of "background".
    """
    if covariances is None:
        covariances = projection.covariances_3d(gaussians.scales, gaussians.rotations)
    if not np.any(candidates > 0):
        return label_maps, []
    changed, missed = {}, []
    for index, (camera, label_map) in enumerate(zip(cameras, label_maps, strict=True)):
        label_map = np.asarray(label_map)
        height, width = label_map.shape
        scaled = camera if (camera.width, camera.height) == (width, height) else camera.scaled(width / camera.width)
        projected = projection.project_gaussians(gaussians.means, covariances, gaussians.opacities, scaled)
        ids, sums, _alpha = render_label_weights(projected, candidates)
        expected = sums.reshape(len(ids), -1).sum(axis=1)
        present = np.array([np.count_nonzero(label_map == t) for t in ids])
        lost = (expected >= min_pixels) & (present < ratio * expected) & (ids > 0)
        if lost.any():
            label_map = label_map.copy()
            for k in np.flatnonzero(lost):
                label_map[sums[k] >= 0.5] = -1
                missed.append((index, int(ids[k])))
            changed[index] = label_map
    return ChangedMaps(label_maps, changed), missed


class ChangedMaps(ReadOnUse):
    """``label_maps`` with the maps of a few views replaced (``changed``: {view: map}); the others are read from
    ``label_maps`` when used, as the lifting views' are."""

    def __init__(
        self,
        label_maps: collections.abc.Sequence,  # [V] of int [H, W] label ids
        changed: dict[int, np.ndarray],  # view -> its replacement map
    ):
        self.label_maps = label_maps
        self.changed = changed

    def __len__(self) -> int:
        return len(self.label_maps)

    def _read(self, view: int) -> np.ndarray:  # [H, W] label ids
        return self.changed[view] if view in self.changed else np.asarray(self.label_maps[view])


# ----- the entry point


def refine(
    gaussians: Gaussians,
    accumulation: Accumulation | BoundedAccumulation,
    refinements: collections.abc.Collection[str],  # any of REFINEMENTS
    *,
    cameras: collections.abc.Sequence[Camera],  # [V], the lifting views
    label_maps: collections.abc.Sequence,  # [V] of int [H, W] label ids, -1 ignored
    gamma: float = 0.0,
    target: int | None = None,
    backend: BackendOrName = "auto",
    margin: float = DEFAULT_SEAM_MARGIN,
    folds: int = DEFAULT_FOLDS,
    progress: collections.abc.Callable[[int, int], None] | None = None,  # (views done, views)
) -> tuple[np.ndarray, np.ndarray, Accumulation | BoundedAccumulation, dict, np.ndarray | None]:
    """Labels after ``refinements`` (any of :data:`REFINEMENTS`, applied in that order).

    ``cameras`` and ``label_maps`` (label ids, -1 ignored) are the lifting views ``accumulation`` came from.
    Returns ``(labels [N] int32, confidence [N] float32, accumulation, report, seg_opacity)``: the accumulation
    is the input one, or after ``missing`` the one re-accumulated without the ignored pixels, or after
    ``opacity`` the one of the scene seen with its segmentation opacity (what the sidecar should then hold);
    ``seg_opacity`` is the fitted segmentation opacity logits [N] float32 (``opacity``), else None.
    """
    unknown = [r for r in refinements if r not in REFINEMENTS]
    if unknown:
        raise ValueError(f"unknown refinement {unknown[0]!r} (choose from {', '.join(REFINEMENTS)})")
    if cameras is None or label_maps is None:
        raise ValueError("refinements need the lifting cameras and their masks")
    shares = Shares.from_accumulation(accumulation, target)
    labels, confidence = shares.solve(gamma)
    report = {"steps": [r for r in REFINEMENTS if r in refinements]}
    if "missing" in refinements:
        label_maps, missed = missing_object_maps(gaussians, foreground_candidates(shares), cameras, label_maps)
        report["missing"] = [{"view": cameras[v].image_name, "label": t} for v, t in missed]
        if missed:
            label_ids = np.asarray(accumulation.label_ids)
            accumulation = accumulate_weights(gaussians, cameras, IndexMaps(label_maps, label_ids, np.int32),
                                              label_ids, backend=backend, progress=progress)
            shares = Shares.from_accumulation(accumulation, target)
            labels, confidence = shares.solve(gamma)
    seg_opacity = None
    if "opacity" in refinements:
        if target is not None or not isinstance(accumulation, Accumulation):
            raise BadInputError("--refine opacity needs every label (no --target) and the dense accumulation "
                                "(raise --memory-budget)")
        fitted, seg_opacity, report["opacity"] = refine_opacity(
            gaussians, accumulation, cameras, label_maps, gamma=gamma, folds=folds, device=_torch_device(backend),
            backend=backend, progress=progress)
        if fitted is not None:
            label_ids = np.asarray(accumulation.label_ids)
            accumulation = accumulate_weights(with_seg_opacity(gaussians, seg_opacity), cameras,
                                              IndexMaps(label_maps, label_ids, np.int32), label_ids,
                                              backend=backend, progress=progress)
            shares = Shares.from_accumulation(accumulation, target)
            confidence = shares.solve(gamma)[1]
            labels = fitted
    hidden = np.zeros(0, dtype=np.int64)
    if "hidden" in refinements:
        before = labels
        labels, hidden = refine_hidden(gaussians, accumulation, labels, cameras, label_maps)
        report["hidden"] = int(len(hidden))
        report["hidden_changed"] = int(np.count_nonzero(labels != before))
    if "seams" in refinements:
        before = labels
        refined = refine_seams(gaussians, shares, labels, cameras, label_maps, margin)
        refined[hidden] = labels[hidden]  # the hidden ones are decided
        labels = refined
        report["seams_changed"] = int(np.count_nonzero(labels != before))
    return labels, confidence, accumulation, report, seg_opacity


def _torch_device(backend: BackendOrName) -> str | None:
    """Where the opacity fit runs: on the GPU when the backend asked is CUDA, else torch's default."""
    name = backend if isinstance(backend, str) or backend is None else getattr(backend, "name", None)
    return "cpu" if name == "cpu" else None


def refine_segment_result(
    result: SegmentResult,
    refinements: collections.abc.Collection[str],  # any of REFINEMENTS
    *,
    backend: BackendOrName = "auto",
    margin: float = DEFAULT_SEAM_MARGIN,
    progress: collections.abc.Callable[[int, int], None] | None = None,  # (views done, views)
) -> SegmentResult:
    """Refine a :class:`~blender_gsseg.core.lift.run.SegmentResult` in place, over the lifting views it carries
    (``result.views``) at its gamma and target: its ``labels``, the ``gsseg_label`` property of its
    ``gaussians``, its ``accumulation`` (after ``missing``) and ``report``. ``relabel`` later re-solves the
    exact labels from the stored accumulation: ``seams`` is not kept by a relabel. Returns the result."""
    if not refinements:
        return result
    if result.coarse_accumulations:
        raise BadInputError("--refine takes a single --masks folder")
    labels, confidence, accumulation, report, seg_opacity = refine(
        result.gaussians, result.accumulation, refinements, cameras=result.views.cameras,
        label_maps=result.views.label_maps, gamma=result.report["gamma"], target=result.report["target"],
        backend=backend, margin=margin, progress=progress)
    report["changed"] = int(np.count_nonzero(labels != result.labels))
    result.labels, result.confidence, result.accumulation = labels, confidence, accumulation
    result.gaussians = result.gaussians.with_int_property(LABEL_PROPERTY, labels)  # same ids, same comments
    if seg_opacity is not None:  # the photometric opacity stays as it was
        result.gaussians = result.gaussians.with_float_property(SEG_OPACITY_PROPERTY, seg_opacity)
    result.report["refine"] = report
    result.report.update(label_counts(labels))
    return result
