"""The closed-form solve (FlashSplat): shares, primary labels for a background bias gamma, membership.

Definitions (shared by every command and the add-on):
- shares s_e(i) = A[e, i] / sum_e A[e, i] (L1 normalisation);
- primary label = argmax_e (s_e + gamma * [e = 0]), ties to the smaller id, -1 where sum_e A[e, i] = 0;
- membership of i in instance t at gamma: s_t - (1 - s_t) > gamma, i.e. s_t > (1 + gamma) / 2;
- confidence = primary share - runner-up share.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ..errors import BadInputError
from ..files.labels import UNSEEN  # -1, the files' convention too


# In the bounded form only the 16 best non-background labels are kept; a share above 1/17 is always among
# them, so membership (share > (1 + gamma) / 2) is exact only while (1 + gamma) / 2 >= 1/17.
BOUNDED_MEMBERSHIP_MIN_GAMMA = -0.88


@dataclasses.dataclass
class Shares:
    """Per-Gaussian shares, computed once from an accumulation; every re-solve for a new gamma reuses them.

    ``background`` is the background share; ``foreground`` [K, N] the other shares, one row per label of
    ``label_ids[1:]`` (dense form) or, in the bounded form, the best K labels per Gaussian with their ids in
    ``foreground_labels`` [K, N] (-1 in unused slots).
    """

    label_ids: np.ndarray  # int32 [L], ascending, label_ids[0] == 0
    background: np.ndarray  # float32 [N]
    foreground: np.ndarray  # float32 [K, N]
    seen: np.ndarray  # bool [N]
    foreground_labels: np.ndarray | None = None  # int32 [K, N] in the bounded form
    membership_min_gamma: float = -1.0  # below this, membership is not exact (bounded form)

    @property
    def bounded(self) -> bool:
        return self.foreground_labels is not None

    @classmethod
    def from_accumulation(
        cls,
        accumulation,  # an Accumulation or BoundedAccumulation (.accumulate, which imports this module)
        target: int | None = None,
    ) -> Shares:
        """Scene mode, or binary mode with ``target`` as foreground and every other label as background."""
        label_ids = np.asarray(accumulation.label_ids, dtype=np.int32)
        if target is not None:
            if target == 0:
                raise BadInputError("--target 0: label 0 is the background")
            if not np.any(label_ids == target):
                raise BadInputError(f"--target {target}: no mask pixel has that label "
                                    f"(labels present: {label_ids.tolist()[:20]})")
        shares = accumulation.shares()
        if target is None:
            return shares
        foreground = shares.share_of(target)
        return cls(np.array([0, target], dtype=np.int32), np.where(shares.seen, 1 - foreground, 0),
                   foreground[None], shares.seen, None, shares.membership_min_gamma)

    @classmethod
    def bounded_form(
        cls,
        label_ids: np.ndarray,  # [L] int
        total: np.ndarray,  # [N] float32
        share_bg: np.ndarray,  # [N] float32
        top_labels: np.ndarray,  # [K, N] int32, -1 in unused slots
        top_shares: np.ndarray,  # [K, N] float32
    ) -> Shares:
        """From the bounded accumulation's arrays (see :class:`~.accumulate.BoundedAccumulation`)."""
        label_ids = np.asarray(label_ids, dtype=np.int32)
        seen = total > 0
        return cls(np.r_[np.int32(0), label_ids[label_ids != 0]].astype(np.int32),
                   np.where(seen, share_bg, 0).astype(np.float32), top_shares, seen, top_labels,
                   BOUNDED_MEMBERSHIP_MIN_GAMMA)

    @classmethod
    def dense(
        cls,
        weights: np.ndarray,  # [L, N] float32
        label_ids: np.ndarray,  # [L] int32
    ) -> Shares:
        """From a dense accumulation: ``weights`` float32 [L, N] of ``label_ids`` int32 [L]."""
        label_ids = np.asarray(label_ids, dtype=np.int32)
        total = weights.sum(axis=0, dtype=np.float64).astype(np.float32)
        seen = total > 0
        inverse = np.zeros_like(total)
        np.divide(1.0, total, out=inverse, where=seen)
        if len(label_ids) == 0 or label_ids[0] != 0:
            label_ids = np.r_[np.int32(0), label_ids].astype(np.int32)
            weights = np.concatenate([np.zeros((1, weights.shape[1]), np.float32), weights])
        return cls(label_ids, weights[0] * inverse, weights[1:] * inverse, seen)

    def share_of(self, label: int) -> np.ndarray:  # [N] float32
        """float32 [N]: each Gaussian's share of ``label`` (bounded form: 0 where it is not among the best)."""
        if label == 0:
            return self.background
        if not self.bounded:
            where = np.flatnonzero(self.label_ids[1:] == label)
            return self.foreground[where[0]] if len(where) else np.zeros_like(self.background)
        return np.where(self.foreground_labels == label, self.foreground, 0).sum(axis=0, dtype=np.float32)

    def _row_labels(self, row):
        return self.foreground_labels[row] if self.bounded else self.label_ids[row + 1]

    @functools.cached_property
    def _foreground_ranking(self):
        """gamma only moves the background share, so the best and second-best foreground labels (and their
        shares) are computed once; each solve is then a few O(N) comparisons."""
        n = len(self.background)
        best_label = np.zeros(n, dtype=np.int32)  # 0 = no foreground label at all
        best = np.full(n, -1.0, dtype=np.float32)
        second = np.zeros(n, dtype=np.float32)
        big = np.iinfo(np.int32).max
        for row_index, row in enumerate(self.foreground):
            labels = self._row_labels(row_index)
            if self.bounded:  # slots are unordered: ties go to the smaller id explicitly
                valid = labels >= 0
                better = valid & ((row > best) | ((row == best) & (labels < np.where(best_label > 0, best_label,
                                                                                       big))))
            else:  # rows ascend by id, so a strict comparison sends ties to the smaller id
                better = row > best
            np.maximum(second, np.where(better, best, np.where(labels >= 0, row, 0)), out=second)
            np.copyto(best, row, where=better)
            best_label = np.where(better, labels, best_label)
        np.maximum(best, 0, out=best)
        return best_label.astype(np.int32), best, second

    def solve(self, gamma: float = 0.0) -> tuple[np.ndarray, np.ndarray]:  # labels [N] int32, confidence [N] float32
        """(labels int32 [N], confidence float32 [N]) at background bias ``gamma``."""
        check_gamma(gamma)
        best_label, best, second = self._foreground_ranking
        background = self.background
        foreground_wins = (best > background + np.float32(gamma)) & (best_label > 0)  # ties go to 0
        labels = np.where(foreground_wins, best_label, 0).astype(np.int32)
        labels[~self.seen] = UNSEEN
        confidence = np.where(foreground_wins, best - np.maximum(background, second), background - best)
        confidence[~self.seen] = 0
        return labels, confidence.astype(np.float32)

    def members(self, label: int, gamma: float = 0.0) -> np.ndarray:  # [N] bool
        """bool [N]: Gaussians that belong to instance ``label`` at bias ``gamma`` (s_t > (1 + gamma) / 2)."""
        check_gamma(gamma)
        if gamma <= self.membership_min_gamma and self.membership_min_gamma > -1.0:
            raise BadInputError(f"--gamma {gamma}: membership below gamma {self.membership_min_gamma} needs the "
                                f"dense accumulation (this one keeps the 16 best labels per Gaussian; "
                                f"re-run segment with a larger --memory-budget)")
        return self.seen & (self.share_of(label) > np.float32((1.0 + gamma) / 2.0))


def check_gamma(gamma: float) -> None:
    if not -1.0 <= gamma <= 1.0:
        raise BadInputError(f"--gamma {gamma}: must lie in [-1, 1]")


def solve_labels(
    accumulation,  # an Accumulation or BoundedAccumulation (.accumulate, which imports this module)
    gamma: float = 0.0,
    target: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # labels [N] int32, confidence [N] float32
    """Primary labels and confidence straight from an accumulation."""
    return Shares.from_accumulation(accumulation, target).solve(gamma)
