"""Accumulation of per-label weights A[e, i] = sum over views and pixels with label e of alpha_i * T_i, in the
dense form (:class:`Accumulation`) or the bounded one for many labels (:class:`BoundedAccumulation`). The passes
over the views run on a backend (:mod:`..raster.backends`); the sidecar file that keeps an accumulation beside a
labelled scene is :mod:`.sidecar`.
"""

from __future__ import annotations

import collections.abc
import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from ..raster.backends import BackendOrName, get_backend
from ..errors import MemoryBudgetError, default_memory_budget
from ..read_on_use import ReadOnUse
from ..raster.rasterize import DEFAULT_CHUNK_ENTRIES
from .solver import Shares

if TYPE_CHECKING:
    from ..cameras import Camera
    from ..gaussians import Gaussians

TOP_K = 16  # other labels kept per Gaussian in the bounded form
LABELS_PER_PASS = 32  # labels accumulated per pass over the views in the bounded form


@dataclasses.dataclass
class Accumulation:
    """``label_ids`` int32 [L] (ascending, 0 = background first) and ``weights`` float32 [L, N].

    ``run_id`` binds it to the PLY written with it (``comment gsseg_run <id>``); ``kind`` is 'accumulation'
    (raw weights) or 'shares' (a refined result that has no raw weights: ``weights`` are then the shares times
    each Gaussian's total weight, so everything downstream reads them alike); ``original_index`` [N] int64, when
    set, gives each Gaussian's index in the scene the sidecar was made for (an edited scene)."""

    label_ids: np.ndarray
    weights: np.ndarray
    run_id: str = ""
    kind: str = "accumulation"
    original_index: np.ndarray | None = None

    @property
    def n_gaussians(self):
        return self.weights.shape[1]

    @property
    def seen_any(self):
        return bool(np.any(self.weights))

    def total_weight(self) -> np.ndarray:  # [N] float64
        """float64 [N]: each Gaussian's weight summed over every label."""
        return self.weights.sum(axis=0, dtype=np.float64)

    def subset(self, keep: np.ndarray) -> Accumulation:  # keep: [N] bool, or [M] int indices
        """The accumulation of the Gaussians where ``keep`` (bool [N]) is true, or at the indices ``keep`` (int
        [M], repeats allowed: a duplicated point keeps its weights)."""
        return dataclasses.replace(self, weights=self.weights[:, keep],
                                   original_index=_original_index(self, keep))

    def shares(self) -> Shares:
        """The L1-normalised shares (:class:`~.solver.Shares`, dense form)."""
        return Shares.dense(self.weights, self.label_ids)


@dataclasses.dataclass
class BoundedAccumulation:
    """The bounded form for many labels: per Gaussian the total weight, the background share and the
    ``TOP_K`` best other labels with their shares (label -1 in unused slots). At most 2 + 2 * 16 numbers per
    Gaussian for any label count; the primary label is exact for any gamma and membership exact for
    gamma > -0.88 (a share above 1/17 is always among the best 16). ``run_id``, ``kind`` and
    ``original_index`` as in :class:`Accumulation`."""

    label_ids: np.ndarray  # int32 [L]
    total: np.ndarray  # float32 [N]
    share_bg: np.ndarray  # float32 [N]
    top_labels: np.ndarray  # int32 [K, N]
    top_shares: np.ndarray  # float32 [K, N]
    run_id: str = ""
    kind: str = "accumulation"
    original_index: np.ndarray | None = None

    @property
    def n_gaussians(self):
        return len(self.total)

    @property
    def seen_any(self):
        return bool(np.any(self.total))

    def total_weight(self) -> np.ndarray:  # [N] float64
        """float64 [N]: each Gaussian's weight summed over every label."""
        return self.total.astype(np.float64)

    def subset(self, keep: np.ndarray) -> BoundedAccumulation:  # keep: [N] bool, or [M] int indices
        """As :meth:`Accumulation.subset`."""
        return dataclasses.replace(self, total=self.total[keep], share_bg=self.share_bg[keep],
                                   top_labels=self.top_labels[:, keep], top_shares=self.top_shares[:, keep],
                                   original_index=_original_index(self, keep))

    def shares(self) -> Shares:
        """The shares (:class:`~.solver.Shares`, bounded form: the best labels per Gaussian)."""
        return Shares.bounded_form(self.label_ids, self.total, self.share_bg, self.top_labels, self.top_shares)


def _original_index(accumulation, keep):
    positions = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep, dtype=np.int64)
    index = accumulation.original_index
    return positions if index is None else index[positions]


def estimate_memory(n_gaussians, n_labels, max_view_pixels, chunk_entries=DEFAULT_CHUNK_ENTRIES):
    """Bytes the CPU accumulation needs at its peak: A in float64 while summing (one slab per thread group on
    the numba path, a running sum plus one view's bincount on the numpy path), the float32 result, per-Gaussian
    projection state, per-view contribution lists and the chunk temporaries."""
    from ..raster import cpu_kernels

    slabs = max(2, cpu_kernels.group_count()) if cpu_kernels.available() else 2
    weights = n_gaussians * n_labels * (8 * slabs + 8 + 4)
    per_gaussian = n_gaussians * 120  # covariances, projected state, depth order
    contributions = max(max_view_pixels * 8, chunk_entries // 4) * 24
    return weights + per_gaussian + contributions + chunk_entries * 40


MASK_BYTES_PER_PIXEL = 16  # a view's label map at the working size: decoded, resized (int32) and as indices


def check_view_memory(sizes, n_gaussians: int, memory_budget: int | None, where: str, scale: float = 1.0):
    """Refuse (:class:`MemoryBudgetError`) views too large to lift within ``memory_budget`` (bytes; default a
    quarter of RAM) before any mask is read: the least the accumulation needs at the largest working size (two
    labels, the form that needs less) and that view's label maps. ``sizes``: (width, height) per view."""
    if not sizes:
        return
    budget = default_memory_budget() if memory_budget is None else memory_budget
    width, height = max(sizes, key=lambda size: size[0] * size[1])
    pixels = width * height
    need = min(estimate_memory(n_gaussians, 2, pixels), estimate_bounded_memory(n_gaussians, 2, pixels)) \
        + pixels * MASK_BYTES_PER_PIXEL
    if need > budget:
        raise MemoryBudgetError(f"{where}: a view of {width}x{height} pixels (at --scale {scale:g}) needs about "
                                f"{need / 2**20:.0f} MB to lift, over the memory budget of {budget / 2**20:.0f} MB "
                                f"(lower --scale or raise --memory-budget)")


def estimate_bounded_memory(n_gaussians, n_labels, max_view_pixels, chunk_entries=DEFAULT_CHUNK_ENTRIES):
    """Bytes the bounded form needs at its peak: the kept numbers, one pass of <= 32 labels and the merge."""
    per_pass = min(n_labels, LABELS_PER_PASS)
    kept = n_gaussians * (2 + 2 * TOP_K) * 4
    merge = n_gaussians * (TOP_K + per_pass) * (4 + 4 + 8)  # candidate shares, labels, partition indices
    return kept + merge + estimate_memory(n_gaussians, per_pass, max_view_pixels, chunk_entries)


def accumulate_weights(
    gaussians: Gaussians,
    cameras: collections.abc.Sequence[Camera],  # [V] at the label maps' size
    index_maps: collections.abc.Sequence[np.ndarray],  # [V] of int [H, W]: indices into label_ids, -1 ignored
    label_ids: np.ndarray,  # [L] int32, ascending
    *,
    backend: BackendOrName = "auto",
    progress: collections.abc.Callable[[int, int], None] | None = None,
    cancel: collections.abc.Callable[[], bool] | None = None,
    memory_budget: int | None = None,  # bytes
    mode: str = "auto",  # "auto", "dense" or "bounded"
) -> Accumulation | BoundedAccumulation:
    """Accumulate A over the views ``zip(cameras, index_maps)``.

    Returns an :class:`Accumulation` (dense), or a :class:`BoundedAccumulation` when ``mode`` is "bounded",
    or "auto" and the dense form would exceed ``memory_budget`` (bytes) while the bounded one fits. Refuses
    with :class:`MemoryBudgetError` before allocating when neither fits.
    """
    label_ids = np.asarray(label_ids, dtype=np.int32)
    if len(cameras) != len(index_maps):
        raise ValueError(f"{len(index_maps)} label maps for {len(cameras)} cameras")
    if mode not in ("auto", "dense", "bounded"):
        raise ValueError(f"unknown accumulation mode {mode!r}")
    max_pixels = max((c.width * c.height for c in cameras), default=0)
    if mode == "auto":
        dense_need = estimate_memory(len(gaussians), len(label_ids), max_pixels)
        mode = "dense" if memory_budget is None or dense_need <= memory_budget else "bounded"
    if memory_budget is not None:
        estimate = estimate_memory if mode == "dense" else estimate_bounded_memory
        need = estimate(len(gaussians), len(label_ids), max_pixels)
        if need > memory_budget:
            raise MemoryBudgetError(
                f"accumulating {len(label_ids)} labels for {len(gaussians)} Gaussians needs about "
                f"{need / 2**20:.0f} MB ({mode} form), over the memory budget of {memory_budget / 2**20:.0f} MB "
                f"(raise --memory-budget or lower --scale)")
    backend = get_backend(backend)
    views = ViewPairs(cameras, index_maps)
    if mode == "dense":
        weights = backend.accumulate(gaussians, views, len(label_ids), progress, cancel)
        return Accumulation(label_ids, np.asarray(weights, dtype=np.float32))
    return _accumulate_bounded(gaussians, views, label_ids, backend, progress, cancel)


class ViewPairs(ReadOnUse):
    """``(camera, label index map)`` per view, what backends iterate: a map is read (and passed through
    ``lookup``, when given) only when its view is used, so the views of a long capture are never all in memory."""

    def __init__(self, cameras, index_maps, lookup=None):
        self.cameras = cameras
        self.index_maps = index_maps
        self.lookup = lookup

    def __len__(self):
        return len(self.cameras)

    def _read(self, view):
        camera, index_map = self.cameras[view], np.asarray(self.index_maps[view])
        if index_map.shape != (camera.height, camera.width):
            raise ValueError(f"{camera.image_name}: label map {index_map.shape} does not match the camera "
                             f"{camera.height}x{camera.width}")
        return camera, index_map if self.lookup is None else self.lookup[index_map]


def _accumulate_bounded(gaussians, views, label_ids, backend, progress, cancel):
    """At most 32 labels per pass; after each pass keep only the 16 best non-background labels."""
    n = len(gaussians)
    total = np.zeros(n, dtype=np.float64)
    background = np.zeros(n, dtype=np.float64)
    top_weights = np.zeros((0, n), dtype=np.float32)
    top_labels = np.zeros((0, n), dtype=np.int32)
    passes = range(0, len(label_ids), LABELS_PER_PASS)
    for number, first in enumerate(passes):
        last = min(first + LABELS_PER_PASS, len(label_ids))
        # label index -> index within this pass, -1 for the others (and for ignored pixels: last slot)
        lookup = np.full(len(label_ids) + 1, -1, dtype=np.int32)
        lookup[first:last] = np.arange(last - first, dtype=np.int32)
        pass_views = ViewPairs(views.cameras, views.index_maps, lookup)
        pass_progress = None if progress is None else (
            lambda done, count, number=number: progress(number * count + done, len(passes) * count))
        weights = np.asarray(backend.accumulate(gaussians, pass_views, last - first, pass_progress, cancel),
                             dtype=np.float32)
        total += weights.sum(axis=0, dtype=np.float64)
        ids = label_ids[first:last]
        if ids[0] == 0:
            background += weights[0]
            weights, ids = weights[1:], ids[1:]
        candidates = np.concatenate([top_weights, weights])
        candidate_labels = np.concatenate([top_labels, np.broadcast_to(ids[:, None], weights.shape)])
        if len(candidates) > TOP_K:
            keep = np.argpartition(-candidates, TOP_K - 1, axis=0)[:TOP_K]
            candidates = np.take_along_axis(candidates, keep, axis=0)
            candidate_labels = np.take_along_axis(candidate_labels, keep, axis=0)
        top_weights, top_labels = candidates, candidate_labels.astype(np.int32)
    inverse = np.zeros(n, dtype=np.float64)
    np.divide(1.0, total, out=inverse, where=total > 0)
    top_shares = (top_weights * inverse).astype(np.float32)
    top_labels = np.where(top_weights > 0, top_labels, -1).astype(np.int32)
    if len(top_shares) < TOP_K:  # fewer labels than slots: pad, so the sidecar always holds [16, N]
        pad = TOP_K - len(top_shares)
        top_shares = np.concatenate([top_shares, np.zeros((pad, n), np.float32)])
        top_labels = np.concatenate([top_labels, np.full((pad, n), -1, np.int32)])
    return BoundedAccumulation(label_ids, total.astype(np.float32), (background * inverse).astype(np.float32),
                               top_labels, top_shares)
