"""Hierarchical labels (Binary-Gaussian style): coarse-to-fine levels packed into one int32, ``gsseg_code``.

Level 0 (e.g. objects) is lifted as usual. A finer level (e.g. parts) is lifted among the Gaussians of each
coarser label: a Gaussian of object c may only take a part whose parent is c (or 0, no part), so a part always
lies inside its object. A part's parent is the coarse label it overlaps most in the masks.

Packing (:class:`~.files.labels.CodeLayout`): each level gets the fewest bits that hold its largest id, coarse
levels in the high bits, bit 31 never set, -1 for Gaussians unseen at level 0. A coarser level is then a prefix of
a finer one. The layout travels as the PLY header comment ``gsseg_code_layout <level name>:<bits> ...`` (coarse
first).
"""

from __future__ import annotations

import collections.abc

import numpy as np

from .solver import UNSEEN, Shares

def parent_labels(
    fine_maps: collections.abc.Iterable[np.ndarray],  # [V] of int [H, W] label ids, -1 ignored
    coarse_maps: collections.abc.Iterable[np.ndarray],  # [V] of int [H, W] label ids, -1 ignored
    fine_ids: np.ndarray,  # [L] int
) -> np.ndarray:  # [L] int32
    """For each fine label id, the coarse label it overlaps most over the given pairs of label maps (ids, not
    indices; ignored pixels -1). Fine label 0 maps to 0."""
    fine_ids = np.asarray(fine_ids, dtype=np.int64)
    counts = {}
    for fine, coarse in zip(fine_maps, coarse_maps, strict=True):
        keep = (fine > 0) & (coarse >= 0)
        pairs, n = np.unique(np.stack([fine[keep].astype(np.int64), coarse[keep].astype(np.int64)]), axis=1,
                             return_counts=True)
        for (f, c), k in zip(pairs.T, n, strict=True):
            counts.setdefault(int(f), {}).setdefault(int(c), 0)
            counts[int(f)][int(c)] += int(k)
    parents = np.zeros(len(fine_ids), dtype=np.int32)
    for index, fine in enumerate(fine_ids):
        if fine > 0 and fine in counts:
            # most overlap; ties to the smaller coarse id
            parents[index] = min(counts[fine].items(), key=lambda item: (-item[1], item[0]))[0]
    return parents


def solve_within_parents(
    shares: Shares,
    parents: np.ndarray,  # [L] int32, per label of shares.label_ids
    coarse_labels: np.ndarray,  # [N] int32
    gamma: float = 0.0,
) -> np.ndarray:  # [N] int32
    """Finer-level labels restricted to each Gaussian's coarse label.

    ``shares``: the fine level's :class:`Shares`; ``parents``: int32 parent per fine label id in
    ``shares.label_ids``; ``coarse_labels``: the coarser level's labels. A Gaussian takes argmax over the parts
    of its coarse label of s_e, against its background share + gamma (ties to the smaller id); coarse 0 gives
    0, coarse unseen gives -1, fine unseen (but coarse seen) gives 0.
    """
    n = len(coarse_labels)
    best = np.full(n, -1.0, dtype=np.float32)
    best_label = np.zeros(n, dtype=np.int32)
    for label, parent in zip(shares.label_ids, parents, strict=True):
        if label == 0 or parent == 0:
            continue
        share = np.where(coarse_labels == parent, shares.share_of(int(label)), -1.0)
        better = share > best  # label ids ascend: ties go to the smaller id
        np.copyto(best, share, where=better)
        best_label[better] = label
    wins = (best_label > 0) & (best > shares.background + np.float32(gamma)) & shares.seen
    labels = np.where(wins, best_label, 0).astype(np.int32)
    labels[coarse_labels == UNSEEN] = UNSEEN
    return labels


def solve_levels(accumulations: list, parents: list, gamma: float = 0.0,
                 target: int | None = None) -> tuple[list[np.ndarray], np.ndarray, Shares]:
    """Labels per level (coarsest first), the finest level's confidence and its :class:`Shares`."""
    shares = Shares.from_accumulation(accumulations[0], target)
    labels, confidence = shares.solve(gamma)
    level_labels = [labels]
    for accumulation, parent in zip(accumulations[1:], parents[1:], strict=True):
        shares = Shares.from_accumulation(accumulation)
        fine_parents = _align_parents(parent, accumulation.label_ids, shares.label_ids)
        level_labels.append(solve_within_parents(shares, fine_parents, level_labels[-1], gamma))
        confidence = shares.solve(gamma)[1]
    return level_labels, confidence, shares


def _align_parents(parents, accumulation_ids, share_ids):
    """Parents indexed like ``share_ids`` (Shares may prepend background 0)."""
    lookup = dict(zip(np.asarray(accumulation_ids).tolist(), np.asarray(parents).tolist(), strict=True))
    return np.array([lookup.get(int(i), 0) for i in share_ids], dtype=np.int32)
