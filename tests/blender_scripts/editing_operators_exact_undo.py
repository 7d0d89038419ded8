"""Every editing operator on a labeled splat, then undo all the way back and redo, comparing whole snapshots;
edit-mode undo; merges and manual labels across a re-solve; labels by hand on a raw splat. Run by
tests/test_blender_editing.py (test_editing_operators_and_exact_undo) on every tested release."""

import bpy
import numpy as np

from blender_gsseg.blender import attributes, io_splat
from blender_gsseg.blender import labels as label_list
from blender_gsseg.core.lift.sidecar import load_accumulation
from blender_gsseg.core.lift.solver import Shares
from child import ARGS, RESULT
from snapshot import bool_attr, int_attr, op, splats_drawn, snapshot

assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="SPLAT") == {"FINISHED"}  # the mesh path (5.3 too)
obj = bpy.context.active_object
NAME = obj.name
obj.gsseg.gamma = -0.4  # re-solves from the sidecar
obj.gsseg.delete_halo = False
bpy.ops.ed.undo_push(message="start")  # headless Blender starts without an undo stack
states = [snapshot(NAME)]
L = int_attr(obj, "gsseg_label")
n = len(L)
counts = {int(i): int(c) for i, c in zip(*np.unique(L, return_counts=True), strict=True)}
RESULT["counts"] = counts

def fresh():
    return bpy.data.objects[NAME]

op("select_instance", label=1)
assert (bool_attr(fresh(), ".select_vert") == (L == 1)).all()
states.append(snapshot(NAME))
op("select_instance", label=2, extend=True)
assert (bool_attr(fresh(), ".select_vert") == np.isin(L, [1, 2])).all()
states.append(snapshot(NAME))
op("deselect_instance", label=1)
assert (bool_attr(fresh(), ".select_vert") == (L == 2)).all()
states.append(snapshot(NAME))
op("invert_selection")
assert (bool_attr(fresh(), ".select_vert") == (L != 2)).all()
states.append(snapshot(NAME))
op("hide_instance", label=2)
obj = fresh()
assert (bool_attr(obj, ".hide_vert") == (L == 2)).all() and (bool_attr(obj, "gsseg_hidden") == (L == 2)).all()
assert splats_drawn(obj) == n - counts[2], (splats_drawn(obj), n - counts[2])
states.append(snapshot(NAME))
op("isolate_instance", label=1)
obj = fresh()
assert (bool_attr(obj, ".hide_vert") == (L != 1)).all()
assert (bool_attr(obj, ".select_vert") == (L == 1)).all()  # hidden points are deselected
assert splats_drawn(obj) == counts[1]
states.append(snapshot(NAME))
op("reveal")
obj = fresh()
assert not bool_attr(obj, ".hide_vert").any() and splats_drawn(obj) == n
states.append(snapshot(NAME))
# a manual fix: select some background points by hand and give them a new instance
picked = (L == 0) & (np.arange(n) % 5 == 0)
obj.data.attributes[".select_vert"].data.foreach_set("value", picked)
bpy.ops.ed.undo_push(message="select by hand")
states.append(snapshot(NAME))
op("assign_instance", new_instance=True)
obj = fresh()
new_id = max(counts) + 1
L2 = L.copy()
L2[picked] = new_id
assert (int_attr(obj, "gsseg_label") == L2).all()
assert label_list.find_item(obj, new_id).count == picked.sum()
states.append(snapshot(NAME))
op("merge_instances", source=3, target=1)
obj = fresh()
L3 = np.where(L2 == 3, 1, L2)
assert (int_attr(obj, "gsseg_label") == L3).all()
assert label_list.find_item(obj, 3) is None
assert label_list.find_item(obj, 1).count == (L3 == 1).sum()
states.append(snapshot(NAME))
# delete 1 with its halo at gamma -0.4: members of 1 and of 3 (merged into it), manual labels kept
shares = Shares.from_accumulation(load_accumulation(obj.gsseg.accumulation_path, n))
manual = picked
halo = ((L3 == 1) | shares.members(1, -0.4) | shares.members(3, -0.4)) & ~manual
RESULT["halo_extra"] = np.flatnonzero(halo & (L3 != 1)).tolist()
op("delete_instance", label=1, halo="ON")
obj = fresh()
assert len(obj.data.vertices) == (~halo).sum(), (len(obj.data.vertices), (~halo).sum())
assert (int_attr(obj, "gsseg_label") == L3[~halo]).all()
assert obj.gsseg.accumulation_path != states[-1]["path"]
states.append(snapshot(NAME))
L4 = L3[~halo]
op("delete_instance", label=2)
obj = fresh()
keep = L4 != 2
assert len(obj.data.vertices) == keep.sum()
assert (int_attr(obj, "gsseg_label") == L4[keep]).all()
assert label_list.find_item(obj, 2) is None and label_list.find_item(obj, 1) is None
states.append(snapshot(NAME))
L5 = L4[keep]
# separate the manual instance into a new object
colours = np.empty(4 * len(L5), np.float32)
obj.data.color_attributes["Col"].data.foreach_get("color", colours)
op("separate_instance", label=new_id)
obj = fresh()
new = next(o for o in bpy.data.objects if o.name.startswith(NAME + ".") and o.type == "MESH")
assert len(new.data.vertices) == (L5 == new_id).sum() and len(obj.data.vertices) == (L5 != new_id).sum()
assert io_splat.header_of(new) == io_splat.header_of(obj) and new.modifiers
part = np.empty(4 * len(new.data.vertices), np.float32)
new.data.color_attributes["Col"].data.foreach_get("color", part)
assert (part.reshape(-1, 4) == colours.reshape(-1, 4)[L5 == new_id]).all()
assert [i.id for i in new.gsseg.labels] == [new_id]
assert load_accumulation(new.gsseg.accumulation_path).n_gaussians == len(new.data.vertices)
states.append(snapshot(NAME))
RESULT["steps"] = len(states) - 1

# Ctrl+Z all the way back: every earlier state comes back exactly
for expected in reversed(states[:-1]):
    assert bpy.ops.ed.undo() == {"FINISHED"}
    got = snapshot(NAME)
    assert got == expected, {k: (got[k], expected[k]) for k in got if got[k] != expected[k]}
# and Ctrl+Shift+Z forward again
for expected in states[1:]:
    assert bpy.ops.ed.redo() == {"FINISHED"}
    assert snapshot(NAME) == expected

# edit mode: select, then undo (the edit-mode undo step restores the selection)
for _ in states[1:]:
    bpy.ops.ed.undo()
bpy.context.view_layer.objects.active = fresh()
assert bpy.ops.object.mode_set("EXEC_DEFAULT", True, mode="EDIT") == {"FINISHED"}
bpy.ops.mesh.select_all("EXEC_DEFAULT", True, action="DESELECT")
before = snapshot(NAME)
op("select_instance", label=2)
assert fresh().mode == "EDIT"
assert (bool_attr(fresh(), ".select_vert") == (L == 2)).all()
assert bpy.ops.ed.undo() == {"FINISHED"}
assert snapshot(NAME) == before
# a delete from edit mode changes the cache path and the list too: it ends in object mode, so that its
# undo step restores all of it
op("delete_instance", label=2)
assert fresh().mode == "OBJECT" and len(fresh().data.vertices) == n - counts[2]
assert bpy.ops.ed.undo() == {"FINISHED"}
assert fresh().mode == "EDIT"
assert snapshot(NAME) == before
bpy.ops.object.mode_set(mode="OBJECT")

# merges and manual labels survive a re-solve at another gamma
obj = fresh()
op("merge_instances", source=3, target=1)
obj = fresh()
attributes.write_attribute(obj.data, ".select_vert", picked, "BOOLEAN")
op("assign_instance", label=2)
obj = fresh()
obj.gsseg.gamma = 0.3
solved = Shares.from_accumulation(load_accumulation(ARGS["ply"][:-4] + ".gsseg.npz")).solve(0.3)[0]
expected = np.where(solved == 3, 1, solved)
expected[picked] = 2
assert (int_attr(obj, "gsseg_label") == expected).all()
# a splat with no segmentation can be labelled by hand
assert bpy.ops.gsseg.import_splat(filepath=ARGS["raw"], display="SPLAT") == {"FINISHED"}
raw = bpy.context.active_object
m = len(raw.data.vertices)
attributes.write_attribute(raw.data, ".select_vert", np.arange(m) < 10, "BOOLEAN")
op("assign_instance", new_instance=True)
assert (int_attr(bpy.context.active_object, "gsseg_label") == (np.arange(m) < 10)).all()
