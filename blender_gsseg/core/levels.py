"""Hierarchical labels (Binary-Gaussian style): coarse-to-fine levels packed into one int32, ``gsseg_code``.

Level 0 (e.g. objects) is lifted as usual. A finer level (e.g. parts) is lifted among the Gaussians of each
coarser label: a Gaussian of object c may only take a part whose parent is c (or 0, no part), so a part always
lies inside its object. A part's parent is the coarse label it overlaps most in the masks.

Packing: each level gets the fewest bits that hold its largest id, coarse levels in the high bits, bit 31 never
set, -1 for Gaussians unseen at level 0. A coarser level is then a prefix of a finer one. The layout travels as
the PLY header comment ``gsseg_code_layout <level name>:<bits> ...`` (coarse first).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import re

import numpy as np

from .errors import BadInputError
from .solver import UNSEEN, Shares

CODE_PROPERTY = "gsseg_code"
LAYOUT_COMMENT = "gsseg_code_layout"
MAX_CODE_BITS = 31
_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclasses.dataclass
class CodeLayout:
    names: list[str]  # one per level, coarse first
    bits: list[int]  # one per level, coarse first

    @classmethod
    def for_levels(cls, names: collections.abc.Sequence[str], max_ids: collections.abc.Iterable[int]) -> CodeLayout:
        bits = [max(1, int(top).bit_length()) for top in max_ids]
        if sum(bits) > MAX_CODE_BITS:
            raise BadInputError(f"the levels need {sum(bits)} bits ({', '.join(map(str, bits))}); "
                                f"gsseg_code holds {MAX_CODE_BITS}")
        return cls([_NAME_RE.sub("_", n) or f"level{k}" for k, n in enumerate(names)], bits)

    @property
    def shifts(self) -> list[int]:
        return [sum(self.bits[k + 1:]) for k in range(len(self.bits))]

    def comment(self) -> str:
        return LAYOUT_COMMENT + " " + " ".join(f"{n}:{b}" for n, b in zip(self.names, self.bits))

    @classmethod
    def from_comments(cls, comments: collections.abc.Iterable[str], where: str = "scene") -> CodeLayout | None:
        """The layout from the header comments, or None when there is none."""
        for text in comments:
            if text.startswith(LAYOUT_COMMENT + " "):
                names, bits = [], []
                for field in text.split()[1:]:
                    name, _, count = field.rpartition(":")
                    if not name or not count.isdigit() or int(count) < 1:
                        raise BadInputError(f"{where}: bad '{LAYOUT_COMMENT}' comment: {text!r}")
                    names.append(name)
                    bits.append(int(count))
                if not bits or sum(bits) > MAX_CODE_BITS:
                    raise BadInputError(f"{where}: bad '{LAYOUT_COMMENT}' comment: {text!r}")
                return cls(names, bits)
        return None

    def pack(
        self,
        level_labels: collections.abc.Sequence[np.ndarray],  # [levels] of int [N], coarse first
    ) -> np.ndarray:  # [N] int32
        """int32 codes from per-level labels (level 0 unseen -> -1; a finer level's -1 packs as 0)."""
        code = np.zeros(len(level_labels[0]), dtype=np.int64)
        for labels, shift, bits in zip(level_labels, self.shifts, self.bits):
            labels = np.asarray(labels, dtype=np.int64)
            if labels.max(initial=0) >= (1 << bits):
                raise ValueError(f"label {labels.max()} does not fit {bits} bits")
            code |= np.maximum(labels, 0) << shift
        code[np.asarray(level_labels[0]) == UNSEEN] = -1
        return code.astype(np.int32)

    def field(self, codes: np.ndarray, level: int) -> np.ndarray:  # int [N] -> int32 [N]
        """int32 labels of ``level`` from codes (-1 where the code is -1)."""
        if not 0 <= level < len(self.bits):
            raise BadInputError(f"--level {level}: the scene has levels 0..{len(self.bits) - 1} "
                                f"({' '.join(self.names)})")
        codes = np.asarray(codes, dtype=np.int64)
        values = (codes >> self.shifts[level]) & ((1 << self.bits[level]) - 1)
        return np.where(codes < 0, UNSEEN, values).astype(np.int32)


def parent_labels(
    fine_maps: collections.abc.Iterable[np.ndarray],  # [V] of int [H, W] label ids, -1 ignored
    coarse_maps: collections.abc.Iterable[np.ndarray],  # [V] of int [H, W] label ids, -1 ignored
    fine_ids: np.ndarray,  # [L] int
) -> np.ndarray:  # [L] int32
    """For each fine label id, the coarse label it overlaps most over the given pairs of label maps (ids, not
    indices; ignored pixels -1). Fine label 0 maps to 0."""
    fine_ids = np.asarray(fine_ids, dtype=np.int64)
    counts = {}
    for fine, coarse in zip(fine_maps, coarse_maps):
        keep = (fine > 0) & (coarse >= 0)
        pairs, n = np.unique(np.stack([fine[keep].astype(np.int64), coarse[keep].astype(np.int64)]), axis=1,
                             return_counts=True)
        for (f, c), k in zip(pairs.T, n):
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
    for label, parent in zip(shares.label_ids, parents):
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
