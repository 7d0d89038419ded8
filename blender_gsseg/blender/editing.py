"""Editing a segmented splat: selection, hiding, deleting, separating, manual labels, merges.

Each function works from object or edit mode (edit-mode data is flushed first), reads and writes whole
attributes with foreach_get/foreach_set, and leaves undo to the operators that call it (all registered with
UNDO). Selection and hiding return to edit mode (they change the mesh only, which an edit-mode undo step
restores); deleting, separating, assigning and merging also change object-level state (cache path, instance
list, merges) and end in object mode, where the undo step restores all of it.

A native splat point cloud (Blender 5.3+) is edited the same way: its selection is Blender's own ``.selection``
(absent: every point selected), and since point clouds have no hide flags, hiding is ``gsseg_hidden`` alone, which
the native display modifier leaves out (:func:`.native_splat.update_display`).

``level`` is a Level identifier (``labels.FINEST`` = gsseg_label, or "k" for level k of gsseg_code; default:
the object's Level): a label of a coarser level picks every point whose code has that prefix, i.e. all its
parts.
"""

import bpy
import numpy as np

from ..core.errors import BadInputError
from ..core.files.labels import LABEL_PROPERTY
from ..core.lift.sidecar import save_accumulation
from . import labels as label_list
from . import native_splat
from .attributes import (HIDDEN_ATTRIBUTE, MANUAL_ATTRIBUTE, MANUAL_LABEL_ATTRIBUTE, MESH_HIDE, MESH_SELECTION,
                         NATIVE_POSITION, ObjectMode, is_pointcloud, keep_points, point_count, read_attribute,
                         tag_update, write_attribute)
from .segment import cache_path_for, cached_accumulation, shares_for, write_point_index


def _bool(mesh, name):
    values = read_attribute(mesh, name, "BOOLEAN")
    return np.zeros(point_count(mesh), dtype=bool) if values is None else values


def _set_bool(mesh, name, values):
    write_attribute(mesh, name, values, "BOOLEAN")


def selection(obj):
    if is_pointcloud(obj.data):
        return native_splat.selection(obj)
    return _bool(obj.data, MESH_SELECTION)


def hidden(obj):
    return _bool(obj.data, HIDDEN_ATTRIBUTE if is_pointcloud(obj.data) else MESH_HIDE)


def _write_selection(obj, selected):
    mesh = obj.data
    if is_pointcloud(mesh):
        native_splat.write_selection(obj, selected & ~hidden(obj))
    else:
        _set_bool(mesh, MESH_SELECTION, selected & ~hidden(obj))
    tag_update(mesh)


def _write_hidden(obj, hide):
    """Edit-mode hide flags and the gsseg_hidden attribute the point display reads; hidden points are
    deselected (as Blender does). A point cloud has no hide flags: gsseg_hidden, and its display modifier."""
    mesh = obj.data
    if is_pointcloud(mesh):
        selected = selection(obj)
        _set_bool(mesh, HIDDEN_ATTRIBUTE, hide)
        native_splat.write_selection(obj, selected & ~hide)
        native_splat.update_display(obj)
    else:
        _set_bool(mesh, MESH_HIDE, hide)
        _set_bool(mesh, HIDDEN_ATTRIBUTE, hide)
        _set_bool(mesh, MESH_SELECTION, _bool(mesh, MESH_SELECTION) & ~hide)
    tag_update(mesh)


def _pick(obj, label, level):
    return label_list.require_labels(obj, level) == label


# ---------------------------------------------------------------------------------------------------------------
# Selection and visibility

def select_instance(obj, label, extend=False, level=None):
    """Select the points of ``label`` (edit-mode selection); returns how many points carry it."""
    with ObjectMode(obj):
        picked = _pick(obj, label, level)
        _write_selection(obj, picked | selection(obj) if extend else picked)
    return int(np.count_nonzero(picked))


def deselect_instance(obj, label, level=None):
    with ObjectMode(obj):
        picked = _pick(obj, label, level)
        _write_selection(obj, selection(obj) & ~picked)
    return int(np.count_nonzero(picked))


def select_unseen(obj, extend=False):
    """Select the points no view saw (label -1)."""
    return select_instance(obj, label_list.UNSEEN, extend, label_list.FINEST)


def invert_selection(obj):
    """Select the visible points that are not selected, and deselect the others; returns the new count."""
    with ObjectMode(obj):
        selected = ~selection(obj) & ~hidden(obj)
        _write_selection(obj, selected)
    return int(np.count_nonzero(selected))


def world_triangles(obj):
    """[T, 3, 3] world-space triangles of a mesh object as evaluated (modifiers applied)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        mesh.calc_loop_triangles()
        corners = np.empty(3 * len(mesh.vertices), dtype=np.float64)
        mesh.vertices.foreach_get("co", corners)
        indices = np.empty(3 * len(mesh.loop_triangles), dtype=np.int64)
        mesh.loop_triangles.foreach_get("vertices", indices)
    finally:
        evaluated.to_mesh_clear()
    matrix = np.array(obj.matrix_world, dtype=np.float64)
    corners = corners.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
    return corners[indices.reshape(-1, 3)]


def world_positions(obj):
    bpy.context.evaluated_depsgraph_get()  # brings matrix_world up to date after a transform set from Python
    data = obj.data
    positions = np.empty(3 * point_count(data), dtype=np.float32)
    data.attributes[NATIVE_POSITION].data.foreach_get("vector", positions)  # a mesh's vertices are 'position' too
    positions = positions.astype(np.float64)
    matrix = np.array(obj.matrix_world, dtype=np.float64)
    return positions.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def select_inside(obj, volumes, extend=False):
    """Select the points of ``obj`` whose centres lie inside any of the mesh objects ``volumes`` (closed meshes,
    as evaluated, in world space); returns how many are inside."""
    from ..core.scene.proxy_geometry import points_inside

    if not volumes:
        raise BadInputError("select a mesh object to select inside (the splat active, in edit mode or not)")
    with ObjectMode(obj):
        positions = world_positions(obj)
        inside = np.zeros(len(positions), dtype=bool)
        for volume in volumes:
            inside |= points_inside(positions, world_triangles(volume))
        _write_selection(obj, inside | selection(obj) if extend else inside)
    return int(np.count_nonzero(inside))


def select_linked_instance(obj, level=None):
    """Grow the selection to whole instances: every point of a label that a selected point carries (unseen
    points, label -1, are not an instance); returns the labels and the new selection count."""
    with ObjectMode(obj):
        labels = label_list.require_labels(obj, level)
        picked = np.unique(labels[selection(obj)])
        picked = picked[picked >= 0]
        grown = selection(obj) | np.isin(labels, picked)
        _write_selection(obj, grown)
    return picked.tolist(), int(np.count_nonzero(grown & ~hidden(obj)))


def hide_instance(obj, label, level=None):
    with ObjectMode(obj):
        picked = _pick(obj, label, level)
        _write_hidden(obj, hidden(obj) | picked)
    return int(np.count_nonzero(picked))


def isolate_instance(obj, label, level=None):
    """Hide every point but those of ``label`` (and show those); returns how many stay visible."""
    with ObjectMode(obj):
        picked = _pick(obj, label, level)
        _write_hidden(obj, ~picked)
    return int(np.count_nonzero(picked))


def reveal(obj):
    """Show every point; returns how many were hidden."""
    with ObjectMode(obj):
        count = int(np.count_nonzero(hidden(obj)))
        _write_hidden(obj, np.zeros(point_count(obj.data), dtype=bool))
    return count


# ---------------------------------------------------------------------------------------------------------------
# Removing points

def _load_accumulation(obj):
    try:
        return cached_accumulation(obj)
    except BadInputError:
        return None


def _keep(obj, keep, accumulation):
    """keep_points, with the cached accumulation following (saved to a new cache file, never over one that
    came with the file or that undo may bring back)."""
    keep_points(obj, keep)
    if accumulation is not None:
        path = cache_path_for(obj)
        save_accumulation(path, accumulation.subset(keep))
        obj.gsseg.accumulation_path = path
        write_point_index(obj)


def delete_instance(obj, label, *, halo=False, gamma=None, level=None):
    """Delete the points of ``label``; with ``halo``, also every member at ``gamma`` (default: the object's
    slider) of the label (s_t > (1 + gamma) / 2: at negative gamma the shared halo). Returns how many."""
    with ObjectMode(obj, stay=True):
        labels = label_list.require_labels(obj, level)
        picked = labels == label
        if halo:
            if label_list.level_number(obj, level) != label_list.FINEST_LEVEL:
                raise BadInputError("'with halo' works on the finest level (gsseg_label) only")
            if not obj.gsseg.accumulation_path:
                raise BadInputError(f"'{obj.name}' has no cached segmentation: 'with halo' needs one")
            shares = shares_for(obj)
            gamma = obj.gsseg.gamma if gamma is None else gamma
            picked = label_list.members_with_edits(obj, shares, label, gamma, labels)
        removed = int(np.count_nonzero(picked))
        if removed == 0:
            return 0
        _keep(obj, ~picked, _load_accumulation(obj))
        label_list.sync(obj, drop_empty=[label])
        label_list.refresh_display(obj)
    return removed


def separate_instance(context, obj, label, level=None):
    """Move the points of ``label`` into a new object (same attributes, header, display, cache subset) linked
    to the same collections; returns (count, new object)."""
    with ObjectMode(obj, stay=True):
        picked = _pick(obj, label, level)
        count = int(np.count_nonzero(picked))
        if count == 0:
            raise BadInputError(f"'{obj.name}': instance {label} has no points")
        item = label_list.find_item(obj, label, label_list.level_number(obj, level))
        suffix = label_list.clean_name(item.name, label) if item is not None else f"label_{label}"
        new = obj.copy()
        new.data = obj.data.copy()
        new.name = f"{obj.name}.{suffix}"
        for collection in obj.users_collection:
            collection.objects.link(new)
        accumulation = _load_accumulation(obj)
        _keep(new, picked, accumulation)
        _keep(obj, ~picked, accumulation)
        label_list.sync(obj, drop_empty=[label])
        number = label_list.level_number(new, level)
        label_list.sync(new, drop_empty=[item.id for item in label_list.items_of_level(new, number)])
        for target in (obj, new):
            label_list.refresh_display(target)
        new.select_set(False)
    return count, new


# ---------------------------------------------------------------------------------------------------------------
# Manual fixes

def _refuse_multilevel(obj, what):
    if label_list.layout_of(obj) is not None:
        raise BadInputError(f"'{obj.name}' is a multi-level scene (gsseg_code): {what} would leave its codes "
                            f"stale, so it is not offered there")


def assign_selection(obj, label=None):
    """Give the selected points the label ``label`` (None: a new instance, one above the largest id), as a
    manual label that re-solving at another gamma keeps. Returns (label, count)."""
    _refuse_multilevel(obj, "assigning labels")
    with ObjectMode(obj, stay=True):
        mesh = obj.data
        picked = selection(obj)
        count = int(np.count_nonzero(picked))
        if count == 0:
            raise BadInputError(f"'{obj.name}': no points are selected (select some in edit mode)")
        labels = read_attribute(mesh, LABEL_PROPERTY)
        if labels is None:  # a splat never segmented: everything starts as background
            labels = np.zeros(point_count(mesh), dtype=np.int32)
        if label is None:
            known = [item.id for item in label_list.items_of_level(obj, label_list.FINEST_LEVEL)]
            label = max([0, int(labels.max(initial=0))] + known) + 1
        if label < 0:
            raise BadInputError(f"label {label}: assign a label >= 0 (0 = background)")
        before = labels[picked]
        labels[picked] = label
        manual = _bool(mesh, MANUAL_ATTRIBUTE)
        values = read_attribute(mesh, MANUAL_LABEL_ATTRIBUTE)
        if values is None:
            values = np.zeros(len(labels), dtype=np.int32)
        manual |= picked
        values[picked] = label
        write_attribute(mesh, LABEL_PROPERTY, labels)
        write_attribute(mesh, MANUAL_ATTRIBUTE, manual, "BOOLEAN")
        write_attribute(mesh, MANUAL_LABEL_ATTRIBUTE, values)
        label_list.mark_table(obj)
        label_list.sync(obj, extra_ids=[label], drop_empty=np.unique(before[before != label]))
        label_list.refresh_display(obj)
        tag_update(mesh)
    return label, count


def merge_instances(obj, source, target):
    """Relabel every point of ``source`` as ``target`` (kept across re-solves); ``source`` leaves the list.
    Returns how many points moved."""
    if source == target:
        raise BadInputError(f"cannot merge instance {source} into itself")
    if source < 0 or target < 0:
        raise BadInputError("merge instances with ids >= 0 (unseen points are not an instance)")
    _refuse_multilevel(obj, "merging labels")
    with ObjectMode(obj, stay=True):
        mesh = obj.data
        labels = label_list.require_labels(obj, label_list.FINEST)
        picked = labels == source
        labels[picked] = target
        label_list.add_merge(obj, source, target)
        label_list.mark_table(obj)
        values = read_attribute(mesh, MANUAL_LABEL_ATTRIBUTE)
        if values is not None:  # manual labels of the source follow it
            values[values == source] = target
            write_attribute(mesh, MANUAL_LABEL_ATTRIBUTE, values)
        write_attribute(mesh, LABEL_PROPERTY, labels)
        label_list.sync(obj, extra_ids=[target], drop_empty=[source])
        label_list.refresh_display(obj)
        tag_update(mesh)
    return int(np.count_nonzero(picked))
