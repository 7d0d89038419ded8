"""gsseg's labels as files carry them: the ``gsseg_label`` vertex property, and the header comments that name
and colour each label (``comment gsseg_label <id> name=<name> color=#rrggbb``). Below the rest of the core, so
every format reader and writer can use them."""

from __future__ import annotations

import collections.abc
import colorsys
import re

LABEL_PROPERTY = "gsseg_label"
LABEL_COMMENT = "gsseg_label"
_LABEL_COMMENT_RE = re.compile(r"^gsseg_label (-?\d+) name=(.*?) color=#([0-9a-fA-F]{6})\s*$")


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
