"""The instance list of a splat object (``Object.gsseg.labels``) and the label levels.

Each item is one label of one level: ``level`` -1 for ``gsseg_label`` (the finest level), k >= 0 for level k
of a multi-level scene (the field k of ``gsseg_code``, described by the header comment
``gsseg_code_layout``). Items carry an id, an editable name and colour, and the number of points that have
the label now. Names and colours of the ``gsseg_label`` level come from, and go back to, the PLY header
comments ``gsseg_label <id> name=<name> color=#rrggbb`` (the CLI reads and writes the same lines); coarser
levels have no such comments in the format, so their names live in the .blend only.

Manual edits survive re-solving at a new gamma: ``assign`` stores the label in the point attributes
``gsseg_manual`` (BOOLEAN) and ``gsseg_manual_label`` (INT); ``merge`` stores source -> target in the custom
property ``gsseg_merged`` (JSON). :func:`apply_edits` applies both to freshly solved labels.

Everything per point goes through foreach_get/foreach_set and numpy.
"""

import json

import numpy as np

from ..core.errors import BadInputError
from ..core.files.labels import (CODE_PROPERTY, LABEL_COMMENT, LABEL_PROPERTY, CodeLayout, label_colour,
                                 label_table_comments, read_gamma_comment, read_label_table)
from . import io_splat, native_splat
from .attributes import (LABEL_COLOR_ATTRIBUTE, MANUAL_ATTRIBUTE, MANUAL_LABEL_ATTRIBUTE, is_pointcloud,
                         read_attribute, srgb_to_linear, tag_update)

FINEST = "LABEL"  # Object.gsseg.level of the gsseg_label level
FINEST_LEVEL = -1  # item.level of the gsseg_label level
MERGED_KEY = "gsseg_merged"
UNSEEN = -1


# ---------------------------------------------------------------------------------------------------------------
# Point attributes

# ---------------------------------------------------------------------------------------------------------------
# Levels

def header_comments(obj):
    header = io_splat.header_of(obj) or {}
    return [text for kind, text in header.get("meta_lines", []) if kind == "comment"]


def layout_of(obj):
    """The CodeLayout of a multi-level splat (gsseg_code + layout comment), else None."""
    if CODE_PROPERTY not in obj.data.attributes:
        return None
    try:
        return CodeLayout.from_comments(header_comments(obj), f"'{obj.name}'")
    except BadInputError:
        return None


def level_items(obj):
    """(identifier, name, description) for the Level selector: each coarser level of gsseg_code, then
    gsseg_label (the finest)."""
    layout = layout_of(obj) if obj is not None and obj.type in ("MESH", "POINTCLOUD") else None
    if layout is None:
        return [(FINEST, "Labels", "gsseg_label: one label per point")]
    items = [(str(k), f"{k}: {name}", f"Level {k} of gsseg_code ({name}): selecting a label picks all its parts")
             for k, name in enumerate(layout.names[:-1])]
    items.append((FINEST, f"{len(layout.names) - 1}: {layout.names[-1]}",
                  f"The finest level ({layout.names[-1]}): gsseg_label"))
    return items


def level_number(obj, level=None):
    """-1 for gsseg_label, else the gsseg_code level index."""
    level = obj.gsseg.level if level is None else level
    return FINEST_LEVEL if level in (FINEST, "", None) else int(level)


def has_labels(obj):
    """Whether the splat has labels (gsseg_label or gsseg_code), without reading them (cheap enough to draw)."""
    return LABEL_PROPERTY in obj.data.attributes or CODE_PROPERTY in obj.data.attributes


def labels_at_level(obj, level=None):
    """int32 labels of every point at ``level`` (default: the object's Level); None when there are none."""
    number = level_number(obj, level)
    mesh = obj.data
    if number == FINEST_LEVEL:
        return read_attribute(mesh, LABEL_PROPERTY)
    layout = layout_of(obj)
    codes = read_attribute(mesh, CODE_PROPERTY)
    if layout is None or codes is None:
        raise BadInputError(f"'{obj.name}' has no gsseg_code levels")
    return layout.field(codes, number)


def require_labels(obj, level=None):
    labels = labels_at_level(obj, level)
    if labels is None:
        raise BadInputError(f"'{obj.name}' has no {LABEL_PROPERTY} attribute; run Segment first")
    return labels


def label_counts(labels):
    """{label: number of points} (O(N) with a bincount when the ids are small, as they are in practice)."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return {}
    low, high = int(labels.min()), int(labels.max())
    if high - low < (1 << 22):
        counts = np.bincount(labels - low)
        present = np.flatnonzero(counts)
        return {int(v) + low: int(counts[v]) for v in present}
    values, counts = np.unique(labels, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


# ---------------------------------------------------------------------------------------------------------------
# The list

def hex_colour(rgb):
    return "#" + "".join("%02x" % int(round(min(max(float(v), 0.0), 1.0) * 255)) for v in rgb[:3])


def rgb_of_hex(text):
    text = text.lstrip("#")
    return tuple(int(text[i:i + 2], 16) / 255.0 for i in (0, 2, 4))


def clean_name(name, label):
    """A name that fits one header comment line (no line breaks, no ' color=#')."""
    text = " ".join(str(name).split())
    text = text.replace(" color=#", " color #")
    return text or ("background" if label == 0 else f"label_{label}")


def items_of_level(obj, number):
    return [item for item in obj.gsseg.labels if item.level == number]


def find_item(obj, label, number=FINEST_LEVEL):
    for item in obj.gsseg.labels:
        if item.level == number and item.id == label:
            return item
    return None


def colour_table(obj, number=FINEST_LEVEL):
    """{id: (r, g, b) sRGB floats in [0, 1]} from the list."""
    return {item.id: tuple(item.color) for item in items_of_level(obj, number)}


def _default(obj, number, label, layout, table):
    if number == FINEST_LEVEL and label in table:
        name, colour = table[label]
        return name, rgb_of_hex(colour)
    if number == FINEST_LEVEL or layout is None:
        name = "background" if label == 0 else f"label_{label}"
    else:
        name = "background" if label == 0 else f"{layout.names[number]}_{label}"
    return name, tuple(v / 255.0 for v in label_colour(int(label)))


def sync(obj, extra_ids=(), drop_empty=()):
    """Bring the list up to date with the point labels: add the labels present (and ``extra_ids``, e.g. the
    accumulation's) with their header-comment or default names and colours, refresh every count, and remove
    the items of ``drop_empty`` (ids of the current level) whose count is now 0. Items are sorted by (level, id);
    the active item keeps its label."""
    settings = obj.gsseg
    layout = layout_of(obj)
    table = read_label_table(header_comments(obj))
    levels = [FINEST_LEVEL] + (list(range(len(layout.bits) - 1)) if layout is not None else [])
    counts = {}
    wanted = {}
    first = not items_of_level(obj, FINEST_LEVEL)  # just imported: the header's table names the labels
    merged = set(merged_map(obj))
    for number in levels:
        labels = labels_at_level(obj, FINEST if number == FINEST_LEVEL else str(number))
        ids = set()
        level_counts = {}
        if labels is not None:
            level_counts = {k: c for k, c in label_counts(labels).items() if k >= 0}
            ids |= set(level_counts)
        if number == FINEST_LEVEL:
            extra = ({int(i) for i in table} if first and labels is not None else set())
            extra |= {int(i) for i in extra_ids if int(i) >= 0}
            ids |= extra - (merged - set(level_counts))
        counts[number] = level_counts
        wanted[number] = ids
    current = level_number(obj)
    drop = {(current, int(i)) for i in drop_empty}
    existing = {(item.level, item.id): (item.name, tuple(item.color)) for item in settings.labels}
    active = settings.labels[settings.labels_index] if 0 <= settings.labels_index < len(settings.labels) else None
    active_key = (active.level, active.id) if active is not None else None
    keys = set()
    for number, ids in wanted.items():
        keys |= {(number, i) for i in ids}
    keys |= {key for key in existing if key[0] in wanted}  # items are never dropped by a re-solve
    keys = {key for key in keys if not (key in drop and counts.get(key[0], {}).get(key[1], 0) == 0)}
    ordered = sorted(keys)
    if ordered != [(item.level, item.id) for item in settings.labels]:
        settings.labels.clear()
        for number, label in ordered:
            item = settings.labels.add()
            item.level = number
            item.id = label
            name, colour = existing.get((number, label)) or _default(obj, number, label, layout, table)
            item["name"] = name  # no update callbacks while rebuilding
            item["color"] = colour
    for item in settings.labels:
        item["count"] = counts.get(item.level, {}).get(item.id, 0)
    if active_key is not None and active_key in ordered:
        settings["labels_index"] = ordered.index(active_key)
    elif settings.labels_index >= len(settings.labels):
        settings["labels_index"] = max(len(settings.labels) - 1, 0)


def name_labels(obj, names):
    """Name the finest level's items: ``names`` {id: name} (labels a segmentation named, e.g. instance_<k>)."""
    for item in items_of_level(obj, FINEST_LEVEL):
        if item.id in names:
            item["name"] = names[item.id]  # no update callback: the table is marked by the segmentation


TABLE_KEY = "gsseg_label_table"  # set once labels were made or named in Blender: export writes the table


def mark_table(obj):
    obj[TABLE_KEY] = 1


def label_comment_lines(obj, table=None):
    """The gsseg_label header comments for the finest level: every label of the file's table and of the list,
    with the list's names and colours (edited in Blender) winning over the file's."""
    existing = dict(table or {})
    for item in items_of_level(obj, FINEST_LEVEL):
        existing[item.id] = (clean_name(item.name, item.id), hex_colour(item.color))
    return label_table_comments(sorted(existing), existing)


def with_label_comments(obj, gaussians):
    """``gaussians`` with the header's gsseg_label comments replaced by :func:`label_comment_lines` (the
    original lines, in place, when nothing changed). Unchanged when the scene has no gsseg_label property, or
    when it came without a label table and no label was made or named in Blender."""
    if LABEL_PROPERTY not in gaussians.property_names:
        return gaussians
    table = read_label_table(gaussians.comments)
    if not table and not obj.get(TABLE_KEY):
        return gaussians
    lines = label_comment_lines(obj, table)
    current = [text for kind, text in gaussians.meta_lines
               if kind == "comment" and text.startswith(LABEL_COMMENT + " ")]
    if current == lines:
        return gaussians
    return gaussians.with_comments(lines, drop_prefix=LABEL_COMMENT + " ")


# ---------------------------------------------------------------------------------------------------------------
# Label display

UNSEEN_COLOUR = (20, 20, 20)  # sRGB 8-bit, for points no view saw
HIGHLIGHT = 0.45  # the active instance's colour is mixed this far towards white in the label display


def write_label_colors(mesh, labels, colours=None, active=None):
    """``gsseg_label_col``: each label's colour (``colours``: {id: (r, g, b) sRGB in [0, 1]}, e.g. the instance
    list's; else the CLI's label colours), for the label display; the ``active`` label's lightened."""
    colours = colours or {}
    labels = np.asarray(labels, dtype=np.int64)
    low = int(labels.min(initial=0))
    if len(labels) and int(labels.max()) - low < (1 << 22):  # a lookup table by label: O(N)
        present = np.flatnonzero(np.bincount(labels - low))
        lookup = np.zeros(int(present[-1]) + 1, dtype=np.int64)
        lookup[present] = np.arange(len(present))
        ids, inverse = present + low, lookup[labels - low]
    else:
        ids, inverse = np.unique(labels, return_inverse=True)
    table = np.array([np.asarray(UNSEEN_COLOUR) / 255.0 if i < 0 else
                      colours.get(int(i), np.asarray(label_colour(int(i))) / 255.0) for i in ids],
                     dtype=np.float32).reshape(-1, 3)
    if active is not None and active >= 0:
        table[ids == active] += HIGHLIGHT * (1.0 - table[ids == active])
    rgba = np.ones((len(labels), 4), dtype=np.float32)
    rgba[:, :3] = srgb_to_linear(table)[inverse.ravel()]
    if is_pointcloud(mesh):  # a native splat: the label view's radiance (native_splat.update_display shows it)
        native_splat.label_radiance(mesh, rgba)
        return
    attribute = mesh.color_attributes.get(LABEL_COLOR_ATTRIBUTE)
    if attribute is not None and (attribute.data_type != "FLOAT_COLOR" or attribute.domain != "POINT"):
        mesh.color_attributes.remove(attribute)
        attribute = None
    if attribute is None:
        active = mesh.color_attributes.active_color_name
        attribute = mesh.color_attributes.new(LABEL_COLOR_ATTRIBUTE, "FLOAT_COLOR", "POINT")
        if active and active in mesh.color_attributes:
            mesh.color_attributes.active_color_name = active
    attribute.data.foreach_set("color", rgba.ravel())


def after_import(obj):
    """A newly imported splat: its instance list, named from the header's gsseg_label comments, and its label
    colours; a multi-level scene starts at its finest level (gsseg_label), the γ slider at the γ chosen by
    ``segment --gamma auto`` when the file says one."""
    if layout_of(obj) is not None:
        obj.gsseg.level = FINEST
    chosen = read_gamma_comment(header_comments(obj))
    if chosen and "subset" in chosen:  # the γ slider starts where 'segment --gamma auto' chose
        obj.gsseg.gamma = chosen["subset"]
    sync(obj)
    refresh_display(obj)
    tag_update(obj.data)


def ensure_listed(obj):
    """A splat with labels but no instance list yet -- one Blender's own importer made from a labelled PLY, whose
    gsseg_label came in as a FLOAT attribute -- gets its list (as after gsseg's import). Returns whether it did."""
    if obj.gsseg.labels or not has_labels(obj):
        return False
    after_import(obj)
    return True


def refresh_display(obj):
    """Rewrite ``gsseg_label_col`` from the labels of the object's Level and the list's colours, the active
    instance highlighted."""
    labels = labels_at_level(obj)
    if labels is None:
        return False
    write_label_colors(obj.data, labels, colour_table(obj, level_number(obj)), active=obj.gsseg.instance)
    if native_splat.is_native_splat(obj):
        native_splat.update_display(obj)
    tag_update(obj.data)
    return True


# ---------------------------------------------------------------------------------------------------------------
# Manual edits (kept across re-solves)

def merged_map(obj):
    """{source: final target} of the merges done on this object, chains resolved."""
    try:
        pairs = {int(k): int(v) for k, v in json.loads(obj.get(MERGED_KEY, "") or "{}").items()}
    except (ValueError, AttributeError):
        return {}
    resolved = {}
    for source in pairs:
        target, seen = pairs[source], {source}
        while target in pairs and target not in seen:
            seen.add(target)
            target = pairs[target]
        resolved[source] = target
    return resolved


def add_merge(obj, source, target):
    pairs = {int(k): int(v) for k, v in json.loads(obj.get(MERGED_KEY, "") or "{}").items()}
    pairs[int(source)] = int(target)
    pairs.pop(int(target), None)  # merging A into B after B into A: B keeps its own points again
    obj[MERGED_KEY] = json.dumps({str(k): v for k, v in sorted(pairs.items())})


def clear_edits(obj):
    if MERGED_KEY in obj:
        del obj[MERGED_KEY]
    for name in (MANUAL_ATTRIBUTE, MANUAL_LABEL_ATTRIBUTE):
        attribute = obj.data.attributes.get(name)
        if attribute is not None:
            obj.data.attributes.remove(attribute)


def apply_edits(obj, labels):
    """Solved labels with this object's merges and manual assignments applied (a new array)."""
    labels = np.array(labels, dtype=np.int32, copy=True)
    mapping = merged_map(obj)
    if mapping:
        solved = labels.copy()
        for source, target in mapping.items():
            labels[solved == source] = target
    mesh = obj.data
    manual = read_attribute(mesh, MANUAL_ATTRIBUTE, "BOOLEAN")
    if manual is not None and manual.any():
        values = read_attribute(mesh, MANUAL_LABEL_ATTRIBUTE)
        if values is not None:
            labels[manual] = values[manual]
    return labels


def members_with_edits(obj, shares, label, gamma, labels):
    """bool [N]: the members of ``label`` at ``gamma`` (share_t > (1 + gamma) / 2, from the core) of every
    solved label merged into it, plus the points that carry it now; manual assignments win."""
    picked = labels == label
    sources = [label] if label not in merged_map(obj) else []
    sources += [source for source, target in merged_map(obj).items() if target == label]
    for source in sources:
        picked |= shares.members(int(source), gamma)
    manual = read_attribute(obj.data, MANUAL_ATTRIBUTE, "BOOLEAN")
    if manual is not None and manual.any():
        picked[manual] = labels[manual] == label
    return picked
