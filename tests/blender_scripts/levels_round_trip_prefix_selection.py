"""Import a multi-level PLY: the level selector and the list filter, prefix selection of a coarse label, the
label display per level, merges refused, a bit-exact export, gamma re-solving every level, and refused once
the coarser sidecars no longer fit. Run by tests/test_blender_editing.py
(test_levels_round_trip_and_prefix_selection)."""

import bpy
import numpy as np

from blender_gsseg.blender import labels as label_list
from child import ARGS, RESULT
from snapshot import bool_attr, int_attr, op, splats_drawn

assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="SPLAT") == {"FINISHED"}
obj = bpy.context.active_object
RESULT["levels"] = [item[0] for item in label_list.level_items(obj)]
RESULT["names"] = [item[1] for item in label_list.level_items(obj)]
assert obj.gsseg.level == "LABEL"  # the finest level first
obj.gsseg.level = "0"
# the list shows the rows of the current level only (and filters by name or id)
import types
fake = types.SimpleNamespace(bitflag_filter_item=1 << 30, filter_name="")
flags, order = bpy.types.GSSEG_UL_instances.filter_items(fake, bpy.context, obj.gsseg, "labels")
assert [i.level for i, f in zip(obj.gsseg.labels, flags, strict=True) if f] == [0] * len(label_list.items_of_level(obj, 0))
fake.filter_name = "objects_2"
flags, _ = bpy.types.GSSEG_UL_instances.filter_items(fake, bpy.context, obj.gsseg, "labels")
assert [(i.level, i.id) for i, f in zip(obj.gsseg.labels, flags, strict=True) if f] == [(0, 2)]
RESULT["rows0"] = sorted((i.id, i.name, i.count) for i in obj.gsseg.labels if i.level == 0)
codes = int_attr(obj, "gsseg_code")
op("select_instance", label=2)  # object 2: both its parts
RESULT["selected"] = np.flatnonzero(bool_attr(obj, ".select_vert")).tolist()
op("isolate_instance", label=3)
assert splats_drawn(bpy.data.objects[obj.name]) == int(RESULT["rows0"][-1][2])
op("reveal")
# the label display follows the level
colours = np.empty(4 * len(codes), np.float32)
obj.data.color_attributes["gsseg_label_col"].data.foreach_get("color", colours)
RESULT["colours_level0"] = len({tuple(c) for c in colours.reshape(-1, 4).tolist()})
obj.gsseg.level = "LABEL"
obj.data.color_attributes["gsseg_label_col"].data.foreach_get("color", colours)
RESULT["colours_finest"] = len({tuple(c) for c in colours.reshape(-1, 4).tolist()})
try:
    bpy.ops.gsseg.merge_instances(source=1, target=2)
    raise AssertionError("merge on a multi-level scene did not fail")
except RuntimeError as error:
    RESULT["merge_error"] = str(error)
bpy.ops.object.select_all(action="DESELECT")
assert bpy.ops.gsseg.export_splat(filepath=ARGS["out"]) == {"FINISHED"}
# gamma re-solves every level (from the level sidecars) and rewrites label and code together
from blender_gsseg.core.files.splats import read_gaussians
from blender_gsseg.core.pipeline import relabel_scene
obj.gsseg.gamma = 0.4
expected, _ = relabel_scene(ARGS["ply"], read_gaussians(ARGS["ply"]), 0.4)
for name in ("gsseg_label", "gsseg_code"):
    assert (int_attr(obj, name) == expected.vertex[name]).all(), name
RESULT["changed"] = int((int_attr(obj, "gsseg_code") != codes).sum())
# after a deletion the coarser sidecars no longer fit: gamma is refused rather than desynchronised
assert bpy.ops.gsseg.delete_instance(label=1) == {"FINISHED"}
before = int_attr(obj, "gsseg_code").copy()
from blender_gsseg.blender.segment import apply_gamma
try:
    apply_gamma(obj, 0.1)
    raise AssertionError("re-solving a multi-level scene without its sidecars did not fail")
except Exception as error:
    RESULT["levels_error"] = str(error)
assert (int_attr(obj, "gsseg_code") == before).all()
