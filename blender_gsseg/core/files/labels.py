"""gsseg's labels as files carry them: the ``gsseg_label`` vertex property, the header comments that name and
colour each label (``comment gsseg_label <id> name=<name> color=#rrggbb``), the levels packed into
``gsseg_code`` with their layout comment (``comment gsseg_code_layout <level>:<bits> ...``), and the γ chosen per
render rule (``comment gsseg_gamma subset=<γ> argmax=<γ>``). Below the rest of the core, so every format reader
and writer can use them."""

from __future__ import annotations

import collections.abc
import colorsys
import dataclasses
import re

import numpy as np

from ..errors import BadInputError

LABEL_PROPERTY = "gsseg_label"
LABEL_COMMENT = "gsseg_label"
_LABEL_COMMENT_RE = re.compile(r"^gsseg_label (-?\d+) name=(.*?) color=#([0-9a-fA-F]{6})\s*$")
UNSEEN = -1  # the label of a Gaussian no view saw (the solver's UNSEEN)


def label_colour(label: int) -> tuple[int, int, int]:
    """A stable, distinct colour per label id (0 = grey background)."""
    if label == 0:
        return (128, 128, 128)
    hue = (label * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return (int(r * 255), int(g * 255), int(b * 255))


def read_label_table(comments: collections.abc.Iterable[str]) -> dict[int, tuple[str, str]]:
    """{id: (name, '#rrggbb')} from ``comment gsseg_label <id> name=<name> color=#rrggbb`` header lines."""
    table = {}
    for text in comments:
        match = _LABEL_COMMENT_RE.match(text)
        if match:
            table[int(match.group(1))] = (match.group(2), "#" + match.group(3).lower())
    return table


def label_table_comments(label_ids, existing: dict[int, tuple[str, str]] | None = None) -> list[str]:
    """Header comments naming every label; names and colours already in ``existing`` are kept."""
    existing = existing or {}
    lines = []
    for label in sorted(int(x) for x in label_ids):
        name, colour = existing.get(label, ("background" if label == 0 else f"label_{label}",
                                            "#%02x%02x%02x" % label_colour(label)))
        lines.append(f"{LABEL_COMMENT} {label} name={name} color={colour}")
    return lines


CODE_PROPERTY = "gsseg_code"
LAYOUT_COMMENT = "gsseg_code_layout"
MAX_CODE_BITS = 31
_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]+")


def _bits_fit(bits: collections.abc.Sequence[int]) -> bool:
    """At least one level, each of at least 1 bit, all within gsseg_code's 31."""
    return bool(bits) and min(bits) >= 1 and sum(bits) <= MAX_CODE_BITS


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

    @classmethod
    def checked(cls, names: collections.abc.Sequence[str], bits: collections.abc.Sequence[int],
                where: str = "scene") -> CodeLayout:
        """A layout read from a file, refused in one line unless it is one gsseg could have written: a name of
        letters, digits, '_', '.' or '-' and at least 1 bit per level, at most 31 bits in all."""
        names, bits = [str(n) for n in names], [int(b) for b in bits]
        if (len(names) != len(bits) or not _bits_fit(bits)
                or any(not name or _NAME_RE.search(name) for name in names)):
            raise BadInputError(f"{where}: bad gsseg_code layout: "
                                + " ".join(f"{n!r}:{b}" for n, b in zip(names, bits)))
        return cls(names, bits)

    @property
    def shifts(self) -> list[int]:
        return [sum(self.bits[k + 1:]) for k in range(len(self.bits))]

    def comment(self) -> str:
        return LAYOUT_COMMENT + " " + " ".join(f"{n}:{b}" for n, b in zip(self.names, self.bits, strict=True))

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
                if not _bits_fit(bits):
                    raise BadInputError(f"{where}: bad '{LAYOUT_COMMENT}' comment: {text!r}")
                return cls(names, bits)
        return None

    def pack(
        self,
        level_labels: collections.abc.Sequence[np.ndarray],  # [levels] of int [N], coarse first
    ) -> np.ndarray:  # [N] int32
        """int32 codes from per-level labels (level 0 unseen -> -1; a finer level's -1 packs as 0)."""
        code = np.zeros(len(level_labels[0]), dtype=np.int64)
        for labels, shift, bits in zip(level_labels, self.shifts, self.bits, strict=True):
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


GAMMA_COMMENT = "gsseg_gamma"  # PLY header comment: gsseg_gamma subset=-0.15 argmax=-0.3 (chosen by --gamma auto)


def gamma_comment(gamma: dict[str, float]) -> str:
    """The ``gsseg_gamma`` comment of {rule: γ}."""
    return GAMMA_COMMENT + " " + " ".join(f"{rule}={value:g}" for rule, value in gamma.items())


def read_gamma_comment(comments: collections.abc.Iterable[str]) -> dict[str, float] | None:
    """{rule: γ} from a PLY's ``gsseg_gamma`` comment, or None."""
    for text in comments:
        if text.startswith(GAMMA_COMMENT + " "):
            pairs = (item.split("=", 1) for item in text[len(GAMMA_COMMENT) + 1:].split())
            try:
                return {rule: float(value) for rule, value in pairs}
            except ValueError:
                return None
    return None
