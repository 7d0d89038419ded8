"""The γ slider through Blender's own edits and through saving: segment (an unsaved file: the cache waits in the
temporary folder), delete and duplicate vertices with Blender's own operators, move γ; save (the cache goes beside
the .blend, relative), reopen, move γ; save as elsewhere (copied there too). Run by tests/test_blender_bare.py."""

import os

import bpy
import numpy as np

from child import ARGS, RESULT
from snapshot import int_attr
from blender_gsseg.blender import segment
from blender_gsseg.blender.attributes import write_attribute

assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="SPLAT") == {"FINISHED"}
splat = bpy.context.active_object
name = splat.name
assert bpy.ops.gsseg.import_cameras(filepath=ARGS["cameras"]) == {"FINISHED"}
settings = bpy.context.scene.gsseg
settings.splat_object, settings.mask_dir, settings.backend, settings.scale = splat, ARGS["masks"], "cpu", 1.0
bpy.context.view_layer.objects.active = splat
assert bpy.ops.gsseg.segment() == {"FINISHED"}
RESULT["cache"] = bpy.path.abspath(splat.gsseg.accumulation_path)
assert segment.cache_is_temporary(splat) and segment.cache_problem(splat) is None

# Blender's own edits: delete every third vertex, duplicate the first ten
mesh = splat.data
n = len(mesh.vertices)
chosen = np.zeros(n, bool)
chosen[::3] = True
write_attribute(mesh, ".select_vert", chosen, "BOOLEAN")
bpy.ops.object.mode_set(mode="EDIT")
bpy.ops.mesh.delete(type="VERT")
bpy.ops.object.mode_set(mode="OBJECT")
chosen = np.zeros(len(splat.data.vertices), bool)
chosen[:10] = True
write_attribute(splat.data, ".select_vert", chosen, "BOOLEAN")
bpy.ops.object.mode_set(mode="EDIT")
bpy.ops.mesh.duplicate()
bpy.ops.object.mode_set(mode="OBJECT")
splat = bpy.data.objects[name]
assert segment.cache_problem(splat) is None
splat.gsseg.gamma = ARGS["gamma"]
RESULT["index"] = int_attr(splat, "gsseg_index").tolist()
RESULT["labels"] = int_attr(splat, "gsseg_label").tolist()

# save: the cache beside the .blend, by a relative path; reopen; γ again
blend = os.path.join(ARGS["folder"], "first", "scene.blend")
os.makedirs(os.path.dirname(blend))
bpy.ops.wm.save_as_mainfile(filepath=blend)
RESULT["saved_path"] = bpy.data.objects[name].gsseg.accumulation_path
bpy.ops.wm.open_mainfile(filepath=blend)
splat = bpy.data.objects[name]
RESULT["reopened_path"] = splat.gsseg.accumulation_path
assert not segment.cache_is_temporary(splat) and segment.cache_problem(splat) is None
splat.gsseg.gamma = ARGS["gamma2"]
RESULT["labels2"] = int_attr(splat, "gsseg_label").tolist()

# an edit by gsseg writes a new cache; the old one is orphaned but kept while undo could bring it back; opening
# the file again removes it (and never a sidecar bound to a PLY)
import dataclasses

from blender_gsseg.core.lift.sidecar import load_accumulation, save_accumulation

first = os.path.dirname(blend)
bound = os.path.join(first, "scene.cli-0123abcd.gsseg.npz")
save_accumulation(bound, dataclasses.replace(load_accumulation(bpy.path.abspath(splat.gsseg.accumulation_path)),
                                             run_id="cli-run"))
old_cache = bpy.path.abspath(splat.gsseg.accumulation_path)
assert bpy.ops.gsseg.delete_instance(label=ARGS["delete"]) == {"FINISHED"}
splat = bpy.data.objects[name]
bpy.ops.wm.save_mainfile()
RESULT["orphan_kept_until_open"] = os.path.isfile(old_cache)
bpy.ops.wm.open_mainfile(filepath=blend)
splat = bpy.data.objects[name]
RESULT["orphan_removed"] = not os.path.isfile(old_cache)
RESULT["bound_kept"] = os.path.isfile(bound)
assert segment.cache_problem(splat) is None

# save as a copy in another folder: the cache is copied there as well
copy = os.path.join(ARGS["folder"], "second", "copy.blend")
os.makedirs(os.path.dirname(copy))
bpy.ops.wm.save_as_mainfile(filepath=copy)
RESULT["copy_files"] = sorted(os.listdir(os.path.dirname(copy)))
RESULT["first_files"] = sorted(os.listdir(os.path.dirname(blend)))
RESULT["copy_path"] = bpy.data.objects[name].gsseg.accumulation_path
