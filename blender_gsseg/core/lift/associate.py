"""Per-view mask ids made consistent, model-free, from the lift's own weights (``segment --ids per-view``, and
every SAM-layout folder).

SAM's automatic masks number objects anew in every image. This module finds which mask ("segment": a distinct id
> 0 of a view's label map) of each view is which 3D instance, in closed form, then hands the re-numbered label
maps to the ordinary lift.

1. **Per-view pass** (:func:`per_view_weights`): the exact accumulation, on the backend, with every view's
   segments as labels of their own plus two slots per view: its background (0) pixels and its other pixels in
   no segment (ignored). Views go through one backend call side by side (at most ``MAX_LABELS_PER_CALL`` slots,
   times the workers of a cluster, fewer when the memory budget says so), so CUDA and ``--workers``/``--cluster``
   shard the pass by view as they shard the lift; a view with more segments than a call holds is done in chunks
   (each chunk re-draws the view). Kept, sparse: per view and Gaussian its weight in each segment it touches, in
   the background, and in no segment at all; never a dense [all masks, N] array. The association reads the
   entries above ``KEEP_SHARE`` (1%) of the Gaussian's weight in the view; the fainter ones are kept apart for
   step 5.
2. **Greedy pass.** A bank of instances holds evidence per instance and Gaussian ([K, N] float32, K instances,
   like the lift's own accumulation of K labels); a Gaussian's owner is its instance of most evidence. The views
   are met first the one with the most segments, then each time the view whose segment weight the bank already
   owns the largest share of (next-best view: each view is matched against instances seen from nearby). For a
   view, with the entries' weights: C[s, k] = weight of segment s's entries owned by k; ``size(s)`` its weight;
   ``visible(k)`` = weight of the view's entries owned by k (pixels in no segment included);
   ``inside = C / size`` (share of s that is k), ``cover = C / visible`` (share of k's visible weight in s),
   ``iou = C / (size + visible - C)``. Instance k *claims* segment s when s is k's best segment by iou and
   holds at least half of k's visible weight. The rules, in this order:

   * **merge**: two or more instances claim s and hold half of it together: s covers several instances; it
     adds no evidence and its pixels are ignored by the lift (reported);
   * **match**: s and k are each other's best by iou, iou >= ``MIN_IOU`` (0.2; below it the two barely
     overlap: a new object in front of an instance the view hardly sees); or exactly one instance claims s (the
     instance seen more fully than before);
   * **part**: an instance holds at least half of s (s is a part of it; two or more segments of one instance in
     a view are reported as a split);
   * **new**: less than half of s is owned by any instance: a new instance;
   * otherwise **unmatched** (s straddles instances without covering them): ignored.

   Matched, part and new segments add votes: each entry's weight times its share of the Gaussian's weight in the
   view (w^2 / W), so a Gaussian votes for the segment it lies in and little for one its edge spills into.
3. **Rounds** (at most ``ROUNDS``): *consensus*: in every view each instance's *home* is the segment where most
   of its Gaussians' votes in segments fall; two instances with one home are together in that view, with two
   homes apart; instances together in at least ``JOIN_MIN`` views and not more often apart are one (union-find:
   the two sides of an object first met from opposite sides, the two parts of an object cut in the first view),
   while objects merged in a minority of views stay apart. *Split*: a segment decided to be a part of instance
   k, in a view where k also has a matched segment, is followed through the other views where k has one: when
   its Gaussians fall in another segment than k's more often than in k's (and in at least ``MIN_APART`` views),
   they are an object of their own that the greedy pass gave to k (a small object whose splats spill onto the
   ground around it, met first in a view that shows it in parts) and become a new instance. Then
   *re-decision*: the evidence is rebuilt from every view's decisions against the whole bank, so no decision
   rests on the greedy order. The rounds stop once settled (no join, no split, at most ``SETTLED`` of the
   Gaussians changed owner).
4. **Final maps**: every segment decided once more: match and part -> the instance's id, merge and unmatched ->
   ignored (-1); pixels in no segment keep their value (0 background, -1 ignored), except in SAM folders, where
   a view's pixels in no mask show the instance that holds most of their weight when the view gives it no mask
   and shows it mostly there (the ground, which SAM gives as a mask in some views only): they count for it, as
   a consistent-id mask would have them. Ignoring them instead let splats at objects' edges go to the objects
   (held-out mIoU 0.90x the consistent lift on the demo, 1.00x with them). Instances are numbered 1, 2, ... by
   decreasing Gaussian count (ties: the first made), named ``instance_<k>``; instances no segment maps to are
   dropped.
5. **The lift** of the re-numbered maps is summed from the pass's entries (:func:`assemble_accumulation`): the
   same A as a second pass over the maps would give (float32 rounding per view apart), so the whole job costs
   one pass over the views plus the matching. γ's cross-validation (``--gamma auto``), or a dense A over the
   memory budget, lifts the re-numbered maps in a pass of their own instead.

Every threshold is a majority (0.5) except ``MIN_IOU``, ``JOIN_MIN`` and ``MIN_APART``; a majority is unique, so no assignment solver is needed.
Clean masks whose ids are permuted per view are associated exactly (each segment matches its object), so the lift
is the consistent-id lift up to renaming (tests/test_associate.py). Memory: the entries (about 12 bytes per
Gaussian per view that sees it, and a few more at segment borders), one call's [slots, N] and the bank's
[instances, N]; none grows with the number of masks.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import time
import warnings

import numpy as np

from ..errors import BadInputError, MemoryBudgetError
from ..files.masks import MaskSet
from ..read_on_use import ReadOnUse
from ..raster.backends import get_backend
from .accumulate import Accumulation, estimate_memory

MAJORITY = 0.5
MIN_IOU = 0.2  # a mutual best match needs at least this weighted IoU
JOIN_MIN = 2  # instances are joined when together in at least this many views (and not more often apart)
MIN_APART = 2  # a part is split off its instance when apart from it in at least this many other views
ORDER_SAMPLE = 1 << 20  # entries the view order is read from
KEEP_SHARE = 0.01  # entries the association reads: above this share of the Gaussian's weight in the view
# what the associated lift (per-view pass + matching; the lift summed from the pass) takes against the plain
# lift of the same views: 1.0-1.9x in bench/results/associate.md (a shared 2-core machine)
PER_VIEW_COST = 1.5
MAX_LABELS_PER_CALL = 64  # slots per backend call (per worker on a cluster), within the memory budget: a view of up to
# 62 masks is drawn once (a view with more is drawn once per chunk of them)


@dataclasses.dataclass
class ViewSegments:
    """One view's segments and its sparse weights: entry m is Gaussian ``gaussians[m]``'s weight ``weight[m]``
    in the pixels of segment ``segment[m]``, or, with segment -1, its weight in the view's pixels in no segment
    (background and ignored pixels); the association reads these, the entries above ``KEEP_SHARE`` of the
    Gaussian's weight in the view. The entries below it (``faint_*``) and the weights in the background (label 0)
    pixels are kept apart, so that the lift can be summed from the pass exactly."""

    ids: np.ndarray  # int64 [S] the label values > 0 of the view's map, ascending
    pixels: np.ndarray  # int64 [S] pixels per segment
    gaussians: np.ndarray  # int32 [M]
    segment: np.ndarray  # int32 [M] index into ids; -1: the view's pixels in no segment (background, ignored)
    weight: np.ndarray  # float32 [M]
    background_gaussians: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int32))  # [B]
    background_weight: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))  # [B]
    faint_gaussians: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int32))  # [F]
    faint_segment: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int32))  # [F]
    faint_weight: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))  # [F]
    votes: np.ndarray | None = dataclasses.field(default=None, repr=False)  # [M] the association's, made on use

    @property
    def nbytes(self) -> int:
        return sum(array.nbytes for array in (self.ids, self.pixels, self.gaussians, self.segment, self.weight,
                                              self.background_gaussians, self.background_weight,
                                              self.faint_gaussians, self.faint_segment, self.faint_weight))


def _segment_ids(label_map):
    values, counts = np.unique(label_map[label_map > 0], return_counts=True)
    return values.astype(np.int64), counts.astype(np.int64)


def labels_per_call(n_gaussians: int, max_view_pixels: int, memory_budget: int | None) -> int:
    """How many label slots one backend call of the per-view pass may hold within ``memory_budget``."""
    if memory_budget is None:
        return MAX_LABELS_PER_CALL
    fixed = estimate_memory(n_gaussians, 0, max_view_pixels)
    per_label = max(1, estimate_memory(n_gaussians, 1, max_view_pixels) - fixed + 4 * n_gaussians)
    cap = (memory_budget - fixed) // per_label
    if cap < 3:
        raise MemoryBudgetError(f"associating per-view masks needs about {(fixed + 3 * per_label) / 2**20:.0f} MB "
                                f"for {n_gaussians} Gaussians, over the memory budget of "
                                f"{memory_budget / 2**20:.0f} MB (raise --memory-budget or lower --scale)")
    return int(min(cap, MAX_LABELS_PER_CALL))


class _CallViews(ReadOnUse):
    """The (camera, slot map) pairs of one backend call: each job is one view's chunk of segments, its slots
    ``offset + 0`` (pixels in none of the chunk's segments) and ``offset + 1 + j`` (the chunk's j-th segment).
    The slot maps are made when the call is put together (each view's label map read once) and held only for
    the call (at most ``MAX_LABELS_PER_CALL`` views)."""

    def __init__(self, cameras, jobs):
        self.cameras = cameras
        self.jobs = jobs  # [(view, chunk ids int64 [c], offset, slot map int32 [H, W])]

    def __len__(self):
        return len(self.jobs)

    def _read(self, position):
        view, _ids, _offset, slots = self.jobs[position]
        return self.cameras[view], slots


def _slot_map(label_map, ids, offset):
    """Slots ``offset`` (ignored pixels and other chunks' segments), ``offset + 1`` (background, 0) and
    ``offset + 2 + j`` (the chunk's j-th segment)."""
    slots = np.where(label_map == 0, 1, 0).astype(np.int32)
    if len(ids):
        index = np.searchsorted(ids, label_map)
        np.minimum(index, len(ids) - 1, out=index)
        hit = ids[index] == label_map
        slots[hit] = index[hit] + 2
    return slots + offset


def per_view_weights(
    gaussians,
    cameras: collections.abc.Sequence,  # [V] at the label maps' size
    label_maps: collections.abc.Sequence,  # [V] of int [H, W]: per-view ids > 0, 0 background, -1 ignored
    *,
    backend="cpu",
    memory_budget: int | None = None,
    progress: collections.abc.Callable[[int, int], None] | None = None,
    cancel: collections.abc.Callable[[], bool] | None = None,
) -> list[ViewSegments]:
    """Step 1 of the module docstring: per view, the segment each Gaussian belongs to and its weight there."""
    backend = get_backend(backend)
    n = len(gaussians)
    max_pixels = max((c.width * c.height for c in cameras), default=0)
    # a cluster shards a call's views over its workers: one call per round of the workers
    cap = labels_per_call(n, max_pixels, memory_budget) * max(1, int(getattr(backend, "n_workers", 1) or 1))
    per_view = []

    def calls():  # lists of jobs (view, chunk ids, offset, slot map), each list within ``cap`` slots
        current, used = [], 0
        for view in range(len(cameras)):
            label_map = np.asarray(label_maps[view])
            ids, pixels = _segment_ids(label_map)
            per_view.append((ids, pixels))
            chunk = cap - 2
            for start in (range(0, len(ids), chunk) if len(ids) else [0]):
                chunk_ids = ids[start:start + chunk]
                if current and used + 2 + len(chunk_ids) > cap:
                    yield current
                    current, used = [], 0
                current.append((view, chunk_ids, used, _slot_map(label_map, chunk_ids, used)))
                used += 2 + len(chunk_ids)
        if current:
            yield current

    results = [[] for _ in cameras]  # per view, its chunks' entries until the view is complete
    out = [None] * len(cameras)

    def finish(view):  # the view's chunks made into its ViewSegments (the raw chunks dropped)
        chunks, results[view] = results[view], None
        ids, pixels = per_view[view]
        where, segment, weight = (np.concatenate(parts) for parts in zip(*[chunk[:3] for chunk in chunks]))
        seen, total, background, background_weight = next(chunk[3:] for chunk in chunks if chunk[3] is not None)
        # the view's pixels in no segment (background, ignored): segment -1, the rest of the Gaussian's weight
        outside = total - np.bincount(where, weights=weight, minlength=n)[seen]
        keep = outside > KEEP_SHARE * total
        faint_outside = ~keep & (outside > 0)
        view_total = np.zeros(n)
        view_total[seen] = total
        strong = weight > KEEP_SHARE * view_total[where]
        faint = ~strong
        out[view] = ViewSegments(ids, pixels, np.concatenate([where[strong], seen[keep].astype(np.int32)]),
                                 np.concatenate([segment[strong], np.full(int(keep.sum()), -1, np.int32)]),
                                 np.concatenate([weight[strong], outside[keep]]).astype(np.float32),
                                 background.astype(np.int32), background_weight.astype(np.float32),
                                 np.concatenate([where[faint], seen[faint_outside].astype(np.int32)]),
                                 np.concatenate([segment[faint], np.full(int(faint_outside.sum()), -1, np.int32)]),
                                 np.concatenate([weight[faint], outside[faint_outside]]).astype(np.float32))

    done = 0
    for call in calls():
        n_slots = call[-1][2] + 2 + len(call[-1][1])
        call_progress = None if progress is None else (
            lambda k, _count, before=done: progress(min(before + k, len(cameras)), len(cameras)))
        weights = np.asarray(backend.accumulate(gaussians, _CallViews(cameras, call), n_slots,
                                                call_progress, cancel), dtype=np.float32)
        for view, ids, offset, _slots in call:
            rows = weights[offset:offset + 2 + len(ids)]
            slot, where = np.nonzero(rows[2:] > 0)
            first = int(np.searchsorted(per_view[view][0], ids[0])) if len(ids) else 0
            entries = (where.astype(np.int32), (slot + first).astype(np.int32), rows[2:][slot, where])
            if first == 0:  # every chunk's slots cover the whole view: its sum is the Gaussian's view weight
                total = rows.sum(axis=0, dtype=np.float64)
                seen = np.flatnonzero(total > 0)
                background = np.flatnonzero(rows[1] > 0)
                results[view].append(entries + (seen, total[seen], background, rows[1][background]))
            else:
                results[view].append(entries + (None,) * 4)
        done += len(call)
        del weights
        for view in {job[0] for job in call}:
            if view < call[-1][0]:  # complete: a view's chunks are consecutive, only the last may go on
                finish(view)
    for view in range(len(cameras)):
        if out[view] is None:
            finish(view)
    return out


@dataclasses.dataclass
class Association:
    """The outcome: per view, the instance id of each segment (0 = none: its pixels are ignored), the instances
    and what was found on the way (for the report)."""

    segment_instances: list  # [V] of int32 [S_v]: instance id per segment (ids of ViewSegments), 0 = ignored
    segment_ids: list  # [V] of int64 [S_v]
    n_instances: int
    instance_gaussians: np.ndarray  # int64 [K]: Gaussians owned, per instance id 1..K (index id - 1)
    instance_views: np.ndarray  # int64 [K]: views where each instance is matched or joined by some segment
    counts: dict  # masks, matched, parts, new, merges, unmatched, splits, consensus_joins
    merges: list  # [(view, segment id, [instance ids])]
    splits: list  # [(view, instance id, [segment ids])]
    seen_in: list = dataclasses.field(default_factory=list)  # [K] of [view] where each instance has a segment
    unmasked_instances: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int32))  # [V]
    id_offset: int = 0  # segment id - id_offset = the mask's own id (SAM folders: <k>.png has the value k + 1)
    seconds: dict = dataclasses.field(default_factory=dict)  # per_view_pass, matching
    entries_bytes: int = 0  # the per-view pass's sparse entries, all views

    def report(self, view_names: collections.abc.Sequence[str] | None = None, limit: int = 50) -> dict:
        """The ``association`` entry of segment's report: instances (id, name, Gaussians, views seen in), the
        mask counts (matched, parts, new instances made, merges and unmatched: those two ignored by the lift,
        splits: an instance given as several masks of one view, consensus joins) and the first ``limit`` merges
        and splits (mask ids as in the folder)."""
        name = (lambda v: view_names[v]) if view_names is not None else (lambda v: v)
        offset = self.id_offset
        return {
            "n_instances": self.n_instances,
            "instances": [{"id": k + 1, "name": f"instance_{k + 1}", "gaussians": int(self.instance_gaussians[k]),
                           "views": int(self.instance_views[k]),
                           "seen_in": [name(v) for v in (self.seen_in[k] if self.seen_in else [])][:limit]}
                          for k in range(self.n_instances)],
            **{f"masks_{key}" if key != "masks" else "masks": int(value) for key, value in self.counts.items()},
            "merges": [{"view": name(v), "mask": int(s) - offset, "instances": [int(i) for i in ks]}
                       for v, s, ks in self.merges[:limit]],
            "splits": [{"view": name(v), "instance": int(k), "masks": [int(s) - offset for s in ss]}
                       for v, k, ss in self.splits[:limit]],
            "seconds": {key: round(value, 3) for key, value in self.seconds.items()},
            "per_view_entries_mb": round(self.entries_bytes / 2**20, 1),
        }

    def label_maps(self, label_maps: collections.abc.Sequence) -> AssociatedMaps:
        """The input label maps re-numbered with the instance ids (decoded when read)."""
        return AssociatedMaps(label_maps, self.segment_ids, self.segment_instances, self.unmasked_instances)


class AssociatedMaps(ReadOnUse):
    """Per view, the label map with each segment replaced by its instance id (-1 for a segment of none), pixels
    in no segment as they were (0 background, -1 ignored)."""

    def __init__(self, label_maps, segment_ids, segment_instances, unmasked_instances=()):
        self.label_maps = label_maps
        self.segment_ids = segment_ids
        self.segment_instances = segment_instances
        self.unmasked_instances = unmasked_instances  # [V]: the instance shown by pixels in no mask (0: none)

    def __len__(self):
        return len(self.label_maps)

    def _read(self, view):
        label_map = np.asarray(self.label_maps[view])
        ids, instances = self.segment_ids[view], self.segment_instances[view]
        out = np.where(label_map > 0, -1, label_map).astype(np.int32)
        if len(self.unmasked_instances) and self.unmasked_instances[view] > 0:
            out[label_map < 0] = self.unmasked_instances[view]
        if len(ids):
            index = np.searchsorted(ids, label_map)
            np.minimum(index, len(ids) - 1, out=index)
            hit = (ids[index] == label_map) & (label_map > 0)
            value = instances[index]
            out[hit] = np.where(value[hit] > 0, value[hit], -1)
        return out


class _Bank:
    """Evidence per instance and Gaussian (dense [K, N] float32, grown as instances appear) and each Gaussian's
    owner (instance of most evidence, -1 for none)."""

    def __init__(self, n):
        self.n = n
        self.evidence = np.zeros((8, n), dtype=np.float32)
        self.count = 0
        self.owner = np.full(n, -1, dtype=np.int32)

    def new(self) -> int:
        if self.count == len(self.evidence):
            grown = np.zeros((2 * len(self.evidence), self.n), dtype=np.float32)
            grown[:self.count] = self.evidence[:self.count]
            self.evidence = grown
        self.count += 1
        return self.count - 1

    def add(self, instance, gaussians, weights):
        np.add.at(self.evidence[instance], gaussians, weights)

    def update_owner(self, gaussians):
        if len(gaussians) == 0 or self.count == 0:
            return
        block = self.evidence[:self.count, gaussians]
        best = np.argmax(block, axis=0)
        top = np.take_along_axis(block, best[None], axis=0)[0]
        self.owner[gaussians] = np.where(top > 0, best, -1)


def _votes(view: ViewSegments, n_gaussians):
    """float32 [M]: each entry's evidence, its weight times its share of the Gaussian's weight in the view
    (w^2 / W): a Gaussian votes mostly for the segment it lies in, little for those its edge spills into.
    Computed once per view (every round reads them)."""
    if view.votes is None:
        total = np.bincount(view.gaussians, weights=view.weight, minlength=n_gaussians)[view.gaussians]
        view.votes = (view.weight * (view.weight / np.maximum(total, 1e-30))).astype(np.float32)
    return view.votes


def _unmasked(view: ViewSegments, gaussians, weight):
    """float64 [M]: the part of entries' weight (segment -1: pixels in no segment) in pixels in no mask at all,
    i.e. without the background (0) pixels' weight of the same Gaussian."""
    background = np.zeros(len(gaussians))
    if len(view.background_gaussians):
        index = np.minimum(np.searchsorted(view.background_gaussians, gaussians), len(view.background_gaussians) - 1)
        hit = view.background_gaussians[index] == gaussians
        background[hit] = view.background_weight[index[hit]]
    return np.maximum(weight - background, 0.0)


def _unmasked_instance(view: ViewSegments, owner, visible, present) -> int:
    """The instance (index into ``owner``'s ids) that the view's pixels in no mask show, or -1: the instance
    holding most of their weight, at least half of it, not given any mask of the view, and seen mostly there
    (the ground where it is not a mask); else the pixels stay ignored. ``visible``: each instance's weight in the
    whole view (:func:`_tables`'s)."""
    where = view.segment == -1
    if not where.any():
        return -1
    unmasked = _unmasked(view, view.gaussians[where], view.weight[where])
    total = unmasked.sum()
    if total <= 0 or len(visible) == 0:
        return -1
    own = owner[view.gaussians[where]]
    known = own >= 0
    there = np.bincount(own[known], weights=unmasked[known], minlength=len(visible))
    k = int(np.argmax(there))
    if k in present or there[k] < MAJORITY * total or there[k] < MAJORITY * visible[k]:
        return -1
    return k


def _tables(view: ViewSegments, bank, count):
    """(C [S, K], weight per segment [S], visible weight per instance [K]: in the whole view, pixels in no segment
    included, so an instance the view leaves unmasked is not 'covered' by the little of it a segment holds)."""
    s_count = len(view.ids)
    in_segment = view.segment >= 0
    size = np.bincount(view.segment[in_segment], weights=view.weight[in_segment], minlength=s_count)
    own = bank.owner[view.gaussians]
    known = own >= 0
    counted = view.weight
    visible = np.bincount(own[known], weights=counted[known], minlength=count)[:count]
    known &= in_segment
    table = np.bincount(view.segment[known].astype(np.int64) * max(count, 1) + own[known],
                        weights=counted[known], minlength=s_count * max(count, 1))
    table = table.reshape(s_count, max(count, 1))[:, :count]
    return table, size, visible


MATCH, PART, MERGE, NEW, UNMATCHED = "matched", "parts", "merges", "new", "unmatched"


def _decide(table, size, visible):
    """Per segment (decision, instance or -1, [covered instances for a merge]) by the module docstring's rules."""
    n_segments, count = table.shape
    if count == 0:
        return [(NEW, -1, []) if size[s] > 0 else (UNMATCHED, -1, []) for s in range(n_segments)]
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = np.where(size[:, None] > 0, table / size[:, None], 0.0)
        cover = np.where(visible[None, :] > 0, table / visible[None, :], 0.0)
        union = size[:, None] + visible[None, :] - table
        iou = np.where(union > 0, table / union, 0.0)
    best_instance = np.argmax(iou, axis=1)  # [S]
    best_segment = np.argmax(iou, axis=0)  # [K]
    seen = visible > 0
    # instance k claims segment s: s is k's best segment and holds most of k's visible weight
    claims = [np.flatnonzero(seen & (best_segment == s) & (cover[s] >= MAJORITY)) for s in range(n_segments)]
    decisions = []
    for s in range(n_segments):
        k = int(best_instance[s])
        if size[s] <= 0:
            decisions.append((UNMATCHED, -1, []))
        elif len(claims[s]) >= 2 and inside[s, claims[s]].sum() >= MAJORITY:
            decisions.append((MERGE, -1, claims[s].tolist()))
        elif best_segment[k] == s and iou[s, k] >= MIN_IOU:
            decisions.append((MATCH, k, []))
        elif len(claims[s]) == 1:
            decisions.append((MATCH, int(claims[s][0]), []))
        elif inside[s].max() >= MAJORITY:
            decisions.append((PART, int(np.argmax(inside[s])), []))
        elif inside[s].sum() < MAJORITY:
            decisions.append((NEW, -1, []))
        else:
            decisions.append((UNMATCHED, -1, []))
    return decisions


def _view_order(views, bank):
    """Views in the order the bank meets them: first the one with the most segments (ties: the first), then
    each time the remaining view whose segment weight the bank already knows best (the largest share owned by
    some instance; ties: more segments, then the first), so that each view is matched against instances seen
    from nearby rather than from the far side. The known weight of every view is kept up to date from the
    Gaussians that became known (an index of a sample of the entries by Gaussian: the order costs O(sample) memory
    and O(entries) time in all)."""
    remaining = [v for v in range(len(views)) if len(views[v].ids)]
    if not remaining:
        return
    # the order is read from a sample of the entries (every stride-th of each view), at most ORDER_SAMPLE
    stride = max(1, sum(len(views[v].gaussians) for v in remaining) // ORDER_SAMPLE)
    entry_view, entry_gaussian, entry_weight = [], [], []
    for v in remaining:
        in_segment = np.flatnonzero(views[v].segment >= 0)[::stride]
        entry_gaussian.append(views[v].gaussians[in_segment])
        entry_weight.append(views[v].weight[in_segment])
        entry_view.append(np.full(len(in_segment), v, dtype=np.int32))
    entry_gaussian = np.concatenate(entry_gaussian)
    by_gaussian = np.argsort(entry_gaussian, kind="stable")
    entry_view = np.concatenate(entry_view)[by_gaussian]
    entry_weight = np.concatenate(entry_weight)[by_gaussian]
    starts = np.searchsorted(entry_gaussian[by_gaussian], np.arange(bank.n + 1))
    del entry_gaussian, by_gaussian
    totals = np.bincount(entry_view, weights=entry_weight, minlength=len(views))
    known = np.zeros(len(views))
    was_known = bank.owner >= 0
    segments = np.array([len(view.ids) for view in views])
    first = min(remaining, key=lambda v: (-segments[v], v))
    while remaining:
        remaining.remove(first)
        yield first  # the caller adds the view to the bank
        newly = np.flatnonzero((bank.owner >= 0) & ~was_known)
        was_known[newly] = True
        lengths = starts[newly + 1] - starts[newly]
        if lengths.sum():
            index = np.repeat(starts[newly] - np.cumsum(np.r_[0, lengths[:-1]]), lengths) + \
                np.arange(int(lengths.sum()))
            known += np.bincount(entry_view[index], weights=entry_weight[index], minlength=len(views))
        if remaining:
            share = np.round(known[remaining] / np.maximum(totals[remaining], 1e-30), 6)
            first = remaining[int(np.lexsort((remaining, -segments[remaining], -share))[0])]


ROUNDS = 8  # consensus + re-decision rounds after the greedy pass (stops early once settled)
SETTLED = 0.001  # settled: no join, no split and at most this share of the Gaussians changed owner


def _homes(view, bank, count) -> np.ndarray:
    """int64 [K]: per instance, the segment of the view where most of its Gaussians' votes in segments fall (-1:
    none in a segment)."""
    own = bank.owner[view.gaussians]
    known = own >= 0
    votes = np.bincount(own[known].astype(np.int64) * (len(view.ids) + 1) + view.segment[known] + 1,
                        weights=_votes(view, bank.n)[known], minlength=count * (len(view.ids) + 1))
    votes = votes.reshape(count, len(view.ids) + 1)[:, 1:]
    home = np.argmax(votes, axis=1)
    home[votes.max(axis=1) <= 0] = -1
    return home


def _consensus(views, bank) -> int:
    """Join instances together at least as often as apart: per view, each instance's *home* is the segment where
    most of its Gaussians' votes in segments fall; two instances with one home are together in that view, with
    two different homes apart (no home: the view says nothing). The two sides of an object first met from
    opposite sides, or the two parts of an object cut in the first view, share a home wherever the object is one
    mask; objects merged in a minority of views stay apart. Joined: together in at least ``JOIN_MIN`` views and
    in at least as many as apart (ties join: measured on the demo and synthetic SAM folders, they join more
    halves of one object than they fuse two objects). Returns the number of joins."""
    count = bank.count
    together = collections.Counter()  # (a, b), a < b: views where both have the same home
    homes = []
    for view in views:
        if len(view.ids) == 0 or count == 0:
            continue
        home = _homes(view, bank, count)
        homes.append(home)
        housed = np.flatnonzero(home >= 0)
        order = housed[np.argsort(home[housed], kind="stable")]
        for group in np.split(order, np.flatnonzero(np.diff(home[order])) + 1):
            for a_index, a in enumerate(group.tolist()):
                for b in group[a_index + 1:].tolist():
                    together[(min(a, b), max(a, b))] += 1
    apart = collections.Counter()
    for home in homes:
        for a, b in together:
            if home[a] >= 0 and home[b] >= 0 and home[a] != home[b]:
                apart[(a, b)] += 1
    parent = list(range(count))

    def find(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    joins = 0
    for a, b in sorted(pair for pair, times in together.items() if times >= JOIN_MIN and times >= apart[pair]):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
            joins += 1
    if joins:
        roots = np.array([find(k) for k in range(count)], dtype=np.int64)
        unique_roots = np.unique(roots)
        fused = np.zeros((len(unique_roots), bank.n), dtype=np.float32)
        root_index = np.searchsorted(unique_roots, roots)
        for k in range(count):
            fused[root_index[k]] += bank.evidence[k]
        bank.evidence, bank.count = fused, len(unique_roots)
        bank.update_owner(np.arange(bank.n))
    return joins


def _main_segments(decisions) -> dict:
    """instance -> the first segment matched to it in one view's decisions (its 'main' segment there; a mutual
    best match is one per instance, a second match only comes by a claim)."""
    main = {}
    for s, (decision, k, _covered) in enumerate(decisions):
        if decision == MATCH and k not in main:
            main[k] = s
    return main


def _decisions(views, bank) -> list:
    """Per view, its segments decided against the bank (:func:`_decide`), None for a view without segments."""
    decided = []
    for view in views:
        if len(view.ids) == 0 or bank.count == 0:
            decided.append(None)
            continue
        decided.append(_decide(*_tables(view, bank, bank.count)))
    return decided


def _split_parts(views, bank, decided) -> int:
    """Split off the parts that stand apart from their instance: a segment decided to be a *part* of instance k
    in a view where k has a matched segment of its own is a candidate; its Gaussians (those lying mostly in it,
    owned by k) are followed through every other view where k has a matched segment: *together* when most of
    their votes in segments fall in that segment, *apart* when in another one (pixels in no segment say nothing).
    Apart in more views than together, and in at least ``MIN_APART``, the Gaussians are an object of their own
    that the greedy pass gave to k (a small object whose splats spill onto the ground around it): they become a
    new instance, taking k's evidence for them. A part cut from a whole is together with it wherever the whole is
    a mask, so it stays. All candidates are followed in one sweep over the views (a Gaussian lies in at most one
    segment per view, so in few candidates); each instance then gives up its largest such part, the others wait
    for the next round's decisions. Returns the number of splits."""
    mains = [None if d is None else _main_segments(d) for d in decided]
    candidates = []  # (view, instance, Gaussians)
    for v, (view, decisions) in enumerate(zip(views, decided, strict=True)):
        if decisions is None:
            continue
        total = np.bincount(view.gaussians, weights=view.weight, minlength=bank.n)
        for s, (decision, k, _covered) in enumerate(decisions):
            if decision != PART or k not in mains[v]:
                continue
            members = view.segment == s
            lying = view.gaussians[members][view.weight[members] >= MAJORITY * total[view.gaussians[members]]]
            lying = lying[bank.owner[lying] == k]
            if len(lying):
                candidates.append((v, k, lying))
    if not candidates:
        return 0
    # the candidates' Gaussians, grouped by Gaussian: pair p is (Gaussian pair_gaussian[p], candidate pair_of[p])
    pair_of = np.concatenate([np.full(len(c[2]), c_index, np.int64) for c_index, c in enumerate(candidates)])
    pair_gaussian = np.concatenate([c[2] for c in candidates])
    order = np.argsort(pair_gaussian, kind="stable")
    pair_of = pair_of[order]
    starts = np.searchsorted(pair_gaussian[order], np.arange(bank.n + 1))
    cand_view = np.array([c[0] for c in candidates])
    cand_instance = np.array([c[1] for c in candidates])
    together = np.zeros(len(candidates), np.int64)
    apart = np.zeros(len(candidates), np.int64)
    for u, view in enumerate(views):
        if mains[u] is None:
            continue
        main = np.array([mains[u].get(int(k), -1) for k in cand_instance])
        in_segment = np.flatnonzero(view.segment >= 0)
        lengths = starts[view.gaussians[in_segment] + 1] - starts[view.gaussians[in_segment]]
        entry = np.repeat(in_segment, lengths)
        if not len(entry):
            continue
        first = np.repeat(starts[view.gaussians[in_segment]] - np.cumsum(np.r_[0, lengths[:-1]]), lengths)
        candidate = pair_of[first + np.arange(len(entry))]
        n_segments = len(view.ids)
        votes = np.bincount(candidate * n_segments + view.segment[entry], weights=_votes(view, bank.n)[entry],
                            minlength=len(candidates) * n_segments).reshape(len(candidates), n_segments)
        counted = (votes.max(axis=1) > 0) & (main >= 0) & (cand_view != u)
        same = np.argmax(votes, axis=1) == main
        together += counted & same
        apart += counted & ~same
    split_from = set()
    for c_index in sorted(range(len(candidates)), key=lambda c: (-len(candidates[c][2]), candidates[c][0])):
        _v, k, lying = candidates[c_index]
        if k in split_from or not (apart[c_index] > together[c_index] and apart[c_index] >= MIN_APART):
            continue
        split_from.add(k)  # one split per instance and round: the next round re-decides against the new bank
        still = lying[bank.owner[lying] == k]
        j = bank.new()
        bank.evidence[j, still] = bank.evidence[k, still]
        bank.evidence[k, still] = 0
        bank.owner[still] = j
    return len(split_from)


def _rebuild(views, bank, decided) -> int:
    """Rebuild the evidence from every view's decisions against the whole bank (``decided``: matched and part
    segments vote), so that no decision rests on the order of the greedy pass; returns how many Gaussians changed
    owner."""
    evidence = np.zeros((bank.count, bank.n), dtype=np.float32)
    for view, decisions in zip(views, decided, strict=True):
        if decisions is None:
            continue
        vote = _votes(view, bank.n)
        for s, (decision, k, _covered) in enumerate(decisions):
            if decision in (MATCH, PART):
                members = view.segment == s
                np.add.at(evidence[k], view.gaussians[members], vote[members])
    before = bank.owner.copy()
    bank.evidence = evidence
    bank.update_owner(np.arange(bank.n))
    return int(np.count_nonzero(before != bank.owner))


def associate(views: list[ViewSegments], n_gaussians: int, fill_unmasked: bool = False) -> Association:
    """Steps 2-4 of the module docstring over the per-view pass's output; ``fill_unmasked``: a view's pixels in
    no mask may show an instance (SAM folders: step 4)."""
    bank = _Bank(n_gaussians)
    created_by = []  # per instance: (view, segment) that created it
    for v in _view_order(views, bank):
        view = views[v]
        if len(view.ids) == 0:
            continue
        table, size, visible = _tables(view, bank, bank.count)
        decisions = _decide(table, size, visible)
        vote = _votes(view, n_gaussians)
        for s, (decision, k, _covered) in enumerate(decisions):
            if decision == NEW:
                k = bank.new()
                created_by.append((v, s))
            elif decision not in (MATCH, PART):
                continue
            members = view.segment == s
            bank.add(k, view.gaussians[members], vote[members])
        bank.update_owner(view.gaussians)
    bank.update_owner(np.arange(n_gaussians))

    joins = split_off = 0
    for _round in range(ROUNDS):
        joined = _consensus(views, bank)
        joins += joined
        decided = _decisions(views, bank)
        split = _split_parts(views, bank, decided)
        split_off += split
        changed = _rebuild(views, bank, _decisions(views, bank) if split else decided)
        if not joined and not split and changed <= SETTLED * n_gaussians:
            break

    # Final maps against the merged bank.
    count = bank.count
    decided = []
    counts = collections.Counter()
    merges, splits = [], []
    used_views = np.zeros(count, dtype=np.int64)
    seen_in = [[] for _ in range(count)]
    unmasked = np.full(len(views), -1, dtype=np.int64)  # per view: the instance its pixels in no mask show
    for v, view in enumerate(views):
        if len(view.ids) == 0:
            decided.append(np.zeros(0, np.int64))
            continue
        table, size, visible = _tables(view, bank, count)
        decisions = _decide(table, size, visible)
        instances = np.full(len(view.ids), -1, dtype=np.int64)
        for s, (decision, k, covered) in enumerate(decisions):
            counts[decision] += 1
            if decision in (MATCH, PART):
                instances[s] = k
            elif decision == MERGE:
                merges.append((v, s, covered))
        decided.append(instances)
        if fill_unmasked:
            unmasked[v] = _unmasked_instance(view, bank.owner, visible, set(instances[instances >= 0].tolist()))
        present = np.unique(instances[instances >= 0])
        used_views[present] += 1
        for k in present:
            seen_in[k].append(v)
        for k in present:
            members = np.flatnonzero(instances == k)
            if len(members) > 1:
                splits.append((v, int(k), members.tolist()))
    # Number the instances by size (Gaussians owned), ties to the first created; drop those no segment maps to.
    owned = np.bincount(bank.owner[bank.owner >= 0], minlength=count)
    alive = np.flatnonzero(used_views > 0)
    ranked = alive[np.lexsort((alive, -owned[alive]))]
    new_id = np.zeros(count + 1, dtype=np.int32)  # index k + 1; slot 0 (k = -1) stays 0
    new_id[ranked + 1] = np.arange(1, len(ranked) + 1, dtype=np.int32)
    segment_instances = [new_id[instances + 1] for instances in decided]
    counts_out = {"masks": sum(len(view.ids) for view in views), MATCH: counts[MATCH], PART: counts[PART],
                  NEW: len(created_by), MERGE: counts[MERGE], UNMATCHED: counts[UNMATCHED],
                  "splits": len(splits), "consensus_joins": joins,
                  "parts_split_off": split_off, "unmasked_filled": int((new_id[unmasked + 1] > 0).sum())}
    return Association(
        segment_instances=segment_instances,
        segment_ids=[view.ids for view in views],
        n_instances=len(ranked),
        instance_gaussians=owned[ranked].astype(np.int64),
        instance_views=used_views[ranked],
        counts=counts_out,
        merges=[(v, int(views[v].ids[s]), [int(new_id[k + 1]) for k in ks]) for v, s, ks in merges],
        splits=[(v, int(new_id[k + 1]), [int(views[v].ids[s]) for s in ss]) for v, k, ss in splits],
        seen_in=[seen_in[k] for k in ranked],
        unmasked_instances=new_id[unmasked + 1],
    )


def assemble_accumulation(segments: list[ViewSegments], association: Association, n_gaussians: int,
                          memory_budget: int | None = None) -> Accumulation | None:
    """The lift of the associated label maps, summed from the per-view pass's entries instead of a second pass
    over the views: A[k, i] = the weights of Gaussian i in the segments decided to instance k, A[0, i] its
    background weights (every entry is kept, so this is the same sum as the pass over the re-numbered maps, up
    to float32 rounding per view). None when the dense [K + 1, N] form would not fit ``memory_budget`` (the
    caller then lifts the maps in a pass, which may take the bounded form)."""
    count = association.n_instances + 1
    if memory_budget is not None and count * n_gaussians * (8 + 4) > memory_budget:
        return None
    weights = np.zeros((count, n_gaussians), dtype=np.float64)
    flat = weights.reshape(-1)
    for v, (view, instances) in enumerate(zip(segments, association.segment_instances, strict=True)):
        np.add.at(weights[0], view.background_gaussians, view.background_weight)
        if not len(instances):
            continue
        instances = np.asarray(instances, dtype=np.int64)
        fill = int(association.unmasked_instances[v]) if len(association.unmasked_instances) else 0
        for gaussians, segment, weight in ((view.gaussians, view.segment, view.weight),
                                           (view.faint_gaussians, view.faint_segment, view.faint_weight)):
            if fill > 0:
                unmasked = segment == -1
                np.add.at(weights[fill], gaussians[unmasked], _unmasked(view, gaussians[unmasked], weight[unmasked]))
            in_segment = segment >= 0
            ids = instances[segment[in_segment]]
            keep = ids > 0
            np.add.at(flat, ids[keep] * n_gaussians + gaussians[in_segment][keep], weight[in_segment][keep])
    return Accumulation(np.arange(count, dtype=np.int32), weights.astype(np.float32))


def associate_views(gaussians, views, *, backend="cpu", memory_budget=None, progress=None, cancel=None,
                    assemble=False):
    """(the views with consistent ids, the :class:`Association`, the lift's accumulation or None): the per-view
    pass, the association, a :class:`~.views.Views` whose label maps carry the instance ids (decoded when read),
    and with ``assemble`` the lift of those maps summed from the pass (:func:`assemble_accumulation`)."""
    if len(views) == 1:
        warnings.warn("per-view ids with a single view: nothing to associate; each mask is an instance",
                      stacklevel=2)
    start = time.perf_counter()
    segments = per_view_weights(gaussians, views.cameras, views.label_maps, backend=backend,
                                memory_budget=memory_budget, progress=progress, cancel=cancel)
    middle = time.perf_counter()
    sam = bool(views.masks.kinds) and all(kind == "sam" for kind in views.masks.kinds)
    association = associate(segments, len(gaussians), fill_unmasked=sam)
    association.seconds = {"per_view_pass": middle - start, "matching": time.perf_counter() - middle}
    association.entries_bytes = sum(view.nbytes for view in segments)
    if sam:
        association.id_offset = 1
    if association.n_instances == 0:
        raise BadInputError(f"{views.source or 'the masks'}: no mask could be matched to any Gaussian "
                            "(no camera sees the masked objects)")
    masks = views.masks
    label_ids = np.arange(association.n_instances + 1, dtype=np.int32)
    consistent = MaskSet(masks.camera_indices, association.label_maps(masks.label_maps), label_ids, {},
                         masks.unmatched_masks, masks.files, masks.kinds)
    assembled = assemble_accumulation(segments, association, len(gaussians), memory_budget) if assemble else None
    return dataclasses.replace(views, masks=consistent), association, assembled
