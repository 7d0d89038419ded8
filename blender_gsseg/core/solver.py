"""The closed-form solve (FlashSplat): shares, primary labels for a background bias gamma, membership.

Definitions (shared by every command and the add-on):
- shares s_e(i) = A[e, i] / sum_e A[e, i] (L1 normalisation);
- primary label = argmax_e (s_e + gamma * [e = 0]), ties to the smaller id, -1 where sum_e A[e, i] = 0;
- membership of i in instance t at gamma: s_t - (1 - s_t) > gamma, i.e. s_t > (1 + gamma) / 2;
- confidence = primary share - runner-up share.
"""

import dataclasses
import functools

import numpy as np

from .errors import BadInputError

UNSEEN = -1


@dataclasses.dataclass
class Shares:
    """Per-Gaussian shares, computed once from an accumulation; every re-solve for a new gamma reuses them."""

    label_ids: np.ndarray  # int32 [L], ascending
    shares: np.ndarray  # float32 [L, N]; zero columns for unseen Gaussians
    seen: np.ndarray  # bool [N]

    @classmethod
    def from_accumulation(cls, accumulation, target=None):
        """Scene mode, or binary mode with ``target`` as foreground and every other label as background."""
        weights = accumulation.weights
        label_ids = np.asarray(accumulation.label_ids, dtype=np.int32)
        total = weights.sum(axis=0, dtype=np.float64).astype(np.float32)
        seen = total > 0
        inverse = np.zeros_like(total)
        np.divide(1.0, total, out=inverse, where=seen)
        if target is not None:
            where = np.flatnonzero(label_ids == target)
            if len(where) == 0:
                raise BadInputError(f"--target {target}: no mask pixel has that label "
                                    f"(labels present: {label_ids.tolist()[:20]})")
            if target == 0:
                raise BadInputError("--target 0: label 0 is the background")
            foreground = weights[where[0]] * inverse
            return cls(np.array([0, target], dtype=np.int32), np.stack([1 - foreground, foreground]) * seen,
                       seen)
        if len(label_ids) == 0 or label_ids[0] != 0:
            label_ids = np.r_[np.int32(0), label_ids].astype(np.int32)
            weights = np.concatenate([np.zeros((1, weights.shape[1]), np.float32), weights])
        return cls(label_ids, weights * inverse, seen)

    @functools.cached_property
    def _foreground_ranking(self):
        """gamma only moves the background share, so the best and second-best foreground labels (and their
        shares) are computed once; each solve is then a few O(N) comparisons."""
        shares = self.shares
        n = shares.shape[1]
        best_index = np.zeros(n, dtype=np.int32)  # 0 = no foreground label at all
        best = np.full(n, -1.0, dtype=np.float32)
        second = np.zeros(n, dtype=np.float32)
        for index in range(1, len(shares)):
            row = shares[index]
            better = row > best  # strict: ties go to the smaller id
            np.maximum(second, np.where(better, best, row), out=second)
            np.copyto(best, row, where=better)
            best_index[better] = index
        np.maximum(best, 0, out=best)
        return best_index, best, second

    def solve(self, gamma=0.0):
        """(labels int32 [N], confidence float32 [N]) at background bias ``gamma``."""
        check_gamma(gamma)
        best_index, best, second = self._foreground_ranking
        background = self.shares[0]
        foreground_wins = best > background + np.float32(gamma)  # ties go to 0, the smaller id
        labels = np.where(foreground_wins, self.label_ids[best_index], 0).astype(np.int32)
        labels[~self.seen] = UNSEEN
        confidence = np.where(foreground_wins, best - np.maximum(background, second), background - best)
        confidence[~self.seen] = 0
        return labels, confidence.astype(np.float32)

    def members(self, label, gamma=0.0):
        """bool [N]: Gaussians that belong to instance ``label`` at bias ``gamma`` (s_t > (1 + gamma) / 2)."""
        check_gamma(gamma)
        where = np.flatnonzero(self.label_ids == label)
        if len(where) == 0:
            return np.zeros(self.shares.shape[1], dtype=bool)
        return self.seen & (self.shares[where[0]] > np.float32((1.0 + gamma) / 2.0))


def check_gamma(gamma):
    if not -1.0 <= gamma <= 1.0:
        raise BadInputError(f"--gamma {gamma}: must lie in [-1, 1]")


def solve_labels(accumulation, gamma=0.0, target=None):
    """Primary labels and confidence straight from an accumulation."""
    return Shares.from_accumulation(accumulation, target).solve(gamma)
