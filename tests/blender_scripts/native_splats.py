"""Blender 5.3's own Gaussian splats (issue 27), run by tests/test_blender_native.py on bpy 5.3:

A. gsseg's Import Splat gives a GAUSSIAN_SPLAT point cloud; its unedited export, to every written format, is what
   the core writes from the file (the test compares bytes).
B. a point cloud Blender's own PLY importer made: Segment (cameras + masks), select / hide / labels view / reveal /
   delete an instance, undo, redo, export with labels (the test re-reads it against the file).
C. Blender's own .spz import, exported back to the file's axes.
ARGS in, RESULT out (child.py)."""

import hashlib

import bpy
import numpy as np
from mathutils import Matrix

from blender_gsseg.blender import io_splat, native_splat
from blender_gsseg.core.files.radiance import blender_spz_to_file
from child import ARGS, RESULT

assert native_splat.has_native()


def values(obj, name, evaluated=False):
    if evaluated:
        obj = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    return native_splat.read_values(obj.data, obj.data.attributes[name])


def state(obj):
    """The point count and a digest of every point attribute, bit for bit."""
    digest = hashlib.sha1()
    for attribute in sorted(obj.data.attributes, key=lambda a: a.name):
        if attribute.domain == "POINT" and attribute.data_type in native_splat.LAYOUTS:
            digest.update(attribute.name.encode() + values(obj, attribute.name).tobytes())
    return len(obj.data.points), digest.hexdigest()


def op(name, **kwargs):
    result = getattr(bpy.ops.gsseg, name)("EXEC_DEFAULT", True, **kwargs)
    assert result == {"FINISHED"}, (name, result)


# A. gsseg's import: native by default, exported byte for byte
assert bpy.ops.gsseg.import_splat(filepath=ARGS["scene"]) == {"FINISHED"}
made = bpy.context.active_object
assert made.type == "POINTCLOUD" and made.data.type == "GAUSSIAN_SPLAT", (made.type, made.data.type)
assert io_splat.is_splat_object(made) and len(made.data.points) == ARGS["n"]
assert not made.modifiers  # Blender draws it: no display modifier until one is needed
for path in ARGS["exports"]:
    count, lost = io_splat.export_splat(made, path)
    assert count == ARGS["n"] and not any("imported by Blender" in text for text in lost), lost
evaluated = made.evaluated_get(bpy.context.evaluated_depsgraph_get())
RESULT["made_evaluated"] = [evaluated.type, evaluated.data.type, len(evaluated.data.points)]
bpy.data.objects.remove(made)

# B. Blender's own import of a labelled PLY (gsseg_label comes in as FLOAT)
assert bpy.ops.wm.ply_import(filepath=ARGS["labeled"]) == {"FINISHED"}
obj = bpy.context.selected_objects[0]
NAME = obj.name
n = len(obj.data.points)
assert obj.data.attributes["gsseg_label"].data_type == "FLOAT"
assert io_splat.is_splat_object(obj) and io_splat.header_of(obj) is None
count, lost = io_splat.export_splat(obj, ARGS["blender_plain"], include_label=True)
RESULT["plain_notes"] = lost
# its labels, from the file (FLOAT): selectable at once, the instance list made on first use
file_labels = np.rint(values(obj, "gsseg_label")).astype(np.int32)
bpy.context.view_layer.objects.active = obj
assert not obj.gsseg.labels
op("select_instance", label=1)
assert (values(obj, ".selection") == (file_labels == 1)).all() and (file_labels == 1).any()
assert sorted(item.id for item in obj.gsseg.labels) == sorted(set(file_labels.tolist()) - {-1})
# a fresh selection of every point (no .selection attribute, as Blender's Select All leaves it) exports them all
obj.data.attributes.remove(obj.data.attributes[".selection"])
assert io_splat.export_splat(obj, ARGS["blender_selected"], selected_only=True)[0] == n
native_splat.write_selection(obj, file_labels == 2)
assert io_splat.export_splat(obj, ARGS["blender_selected"], selected_only=True)[0] == (file_labels == 2).sum()
assert bpy.ops.gsseg.import_cameras(filepath=ARGS["cameras"]) == {"FINISHED"}
settings = bpy.context.scene.gsseg
settings.splat_object = obj
settings.mask_dir = ARGS["masks"]
settings.backend = "cpu"
settings.scale = 1.0  # as labeled_scene segments
bpy.context.view_layer.objects.active = obj
obj.select_set(True)
assert bpy.ops.gsseg.segment() == {"FINISHED"}
assert obj.data.attributes["gsseg_label"].data_type == "INT"  # converted once, by the first write
labels = values(obj, "gsseg_label")
RESULT["labels"] = labels.tolist()
base = values(obj, "radiance:base").copy()

target = int(np.bincount(labels[labels > 0]).argmax())
op("select_instance", label=target)
assert (values(obj, ".selection") == (labels == target)).all()
op("select_linked_instance")
op("deselect_instance", label=target)
assert not values(obj, ".selection").any()

# hide / isolate / reveal: the display modifier leaves hidden points out of the evaluated splat
op("hide_instance", label=target)
evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
assert len(evaluated.data.points) == n - (labels == target).sum(), len(evaluated.data.points)
assert evaluated.data.type == "GAUSSIAN_SPLAT"
op("reveal")
op("isolate_instance", label=target)
assert len(obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data.points) == (labels == target).sum()
op("reveal")

# the labels view (Segment switched it on): label colours in the evaluated radiance, the stored one untouched
assert obj.gsseg.display == "LABELS"
shown = values(obj, "radiance:base", evaluated=True)
expected = values(obj, "gsseg_label_radiance")
assert np.array_equal(shown, expected) and np.array_equal(shown[:, 3], base[:, 3])
evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
assert not [a.name for a in evaluated.data.attributes if a.name.startswith("radiance:sh_")]
assert evaluated.data.attributes["radiance:base"].data_type == "FLOAT_COLOR"
same_label = labels == labels[0]
assert np.allclose(expected[same_label, :3], expected[0, :3])
obj.gsseg.display = "SPLAT"  # back to the colours: the stored radiance as Blender imported it
assert np.array_equal(values(obj, "radiance:base", evaluated=True), base)
assert np.array_equal(values(obj, "radiance:base"), base)

# delete the instance, undo, redo
bpy.ops.ed.undo_push(message="before delete")
before = state(obj)
obj.gsseg.instance = target
op("delete_instance")
obj = bpy.data.objects[NAME]
after = state(obj)
assert after[0] == n - (labels == target).sum() and obj.data.type == "GAUSSIAN_SPLAT"
assert (values(obj, "gsseg_label") == labels[labels != target]).all()
assert bpy.ops.ed.undo() == {"FINISHED"}
obj = bpy.data.objects[NAME]
assert state(obj) == before, "undo did not bring the deleted instance back exactly"
assert bpy.ops.ed.redo() == {"FINISHED"}
obj = bpy.data.objects[NAME]
assert state(obj) == after, "redo did not delete it again"
RESULT["target"] = target
bpy.context.view_layer.objects.active = obj
assert bpy.ops.gsseg.export_splat(filepath=ARGS["blender_out"], include_label=True) == {"FINISHED"}

# D. the other operators on the native object: re-solve, select inside / unseen, assign, merge, separate,
# segment from proxies
from blender_gsseg.core.lift.sidecar import load_accumulation  # noqa: E402
from blender_gsseg.core.lift.solver import Shares  # noqa: E402

obj.gsseg.gamma = 0.6  # re-solves from the cached accumulation (of the points left)
index = values(obj, "gsseg_index")
solved, _ = Shares.from_accumulation(load_accumulation(obj.gsseg.accumulation_path).subset(index)).solve(0.6)
assert (values(obj, "gsseg_label") == solved).all()
RESULT["resolved_changed"] = int((solved != labels[labels != target]).sum())
op("select_unseen")
assert (values(obj, ".selection") == (solved == -1)).all()
bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, 0.0, 0.0))
cube = bpy.context.active_object
positions = values(obj, "position")
inside = np.all(np.abs(positions) < 0.5, axis=1)
obj.select_set(True)
bpy.context.view_layer.objects.active = obj
op("select_inside")
assert (values(obj, ".selection") == inside).all() and inside.any()
current = values(obj, "gsseg_label")
op("assign_instance", new_instance=True)
new_id = int(current.max()) + 1
assert (values(obj, "gsseg_label") == np.where(inside, new_id, current)).all()
assert values(obj, "gsseg_manual")[inside].all()
op("merge_instances", source=new_id, target=0)
assert (values(obj, "gsseg_label") == np.where(inside, 0, current)).all()
left = values(obj, "gsseg_label")
part = int(left[left > 0][0])
obj.gsseg.instance = part
op("separate_instance")
obj = bpy.data.objects[NAME]
parts = [o for o in bpy.data.objects if o.name.startswith(NAME + ".") and native_splat.is_native_splat(o)]
assert len(parts) == 1 and len(parts[0].data.points) == (left == part).sum()
assert len(obj.data.points) == (left != part).sum() and parts[0].data.type == "GAUSSIAN_SPLAT"
assert (values(parts[0], "gsseg_label") == part).all()
# edit mode: Blender's own point-cloud selection is the one gsseg reads and writes; an edit-mode undo step
bpy.context.view_layer.objects.active = obj
bpy.ops.object.mode_set(mode="EDIT")
bpy.ops.pointcloud.select_all(action="DESELECT")
op("select_instance", label=0)
bpy.ops.object.mode_set(mode="EDIT")  # the operator ran from a script: it leaves the mode to the script
chosen = values(obj, ".selection")
assert (chosen == (values(obj, "gsseg_label") == 0)).all() and chosen.any()
bpy.ops.pointcloud.select_all(action="DESELECT")  # in edit mode: an operator's step, undone in edit mode
bpy.ops.ed.undo_push(message="deselected in edit mode")
op("select_instance", label=0)
obj = bpy.data.objects[NAME]
assert obj.mode == "EDIT" and (values(obj, ".selection") == chosen).all()
assert bpy.ops.ed.undo() == {"FINISHED"}
obj = bpy.data.objects[NAME]
assert obj.mode == "EDIT" and not values(obj, ".selection").any(), "edit-mode undo did not restore the selection"
bpy.ops.object.mode_set(mode="OBJECT")
# segment from proxies: the cube stands for instance 1
cube.gsseg.proxy_instance = 1
for other in bpy.context.selected_objects:
    other.select_set(False)
cube.select_set(True)
bpy.context.view_layer.objects.active = obj
bpy.context.scene.gsseg.splat_object = obj
assert bpy.ops.gsseg.segment_proxies() == {"FINISHED"}
proxied = values(obj, "gsseg_label")
distance = np.abs(values(obj, "position")).max(axis=1)  # to the cube's centre, in its axes
RESULT["proxy_inside"] = float((proxied[distance < 0.5] == 1).mean())
RESULT["proxy_far_outside"] = int((proxied[distance > 0.75] == 1).sum())
# masks from proxies: the cube's instance id rendered from the cameras (the native splat hidden), then lifted
bpy.context.scene.gsseg.proxy_mask_dir = ARGS["proxy_masks"]
bpy.context.scene.gsseg.scale = 1.0
bpy.context.view_layer.objects.active = obj
assert bpy.ops.gsseg.masks_from_proxies() == {"FINISHED"}
masked = values(obj, "gsseg_label")
RESULT["masks_inside"] = float((masked[distance < 0.5] == 1).mean())
RESULT["masks_far_outside"] = float((masked[distance > 0.75] == 1).mean())

# C. Blender's own .spz import: back to the file's axes by the core's matrix
assert bpy.ops.wm.spz_import(filepath=ARGS["spz"]) == {"FINISHED"}
spz = bpy.context.selected_objects[0]
assert native_splat.is_native_splat(spz)
bpy.context.view_layer.objects.active = spz
assert bpy.ops.gsseg.export_splat(filepath=ARGS["spz_out"], undo_spz_axes=True) == {"FINISHED"}
spz.matrix_world = Matrix(blender_spz_to_file().tolist())  # the same as an object transform
bpy.context.view_layer.update()
count, lost = io_splat.export_splat(spz, ARGS["spz_moved"])
RESULT["spz_count"] = count
