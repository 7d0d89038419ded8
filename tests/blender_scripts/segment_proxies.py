"""A bare splat file, one box proxy around each object, Segment from Proxies (no cameras, no masks), then an
object removed. Run by tests/test_blender_bare.py."""

import bpy
import numpy as np

from child import ARGS, RESULT
from snapshot import int_attr

scene = bpy.context.scene
for obj in list(scene.objects):
    bpy.data.objects.remove(obj)
assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"]) == {"FINISHED"}
splat = bpy.context.active_object
assert bpy.ops.gsseg.segment_proxies.poll() is False  # no proxies yet
boxes = []
for name, (centre, size) in ARGS["boxes"].items():
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=centre)
    box = bpy.context.active_object
    box.name = name
    box.scale = size
    boxes.append(box)
bpy.ops.object.select_all(action="DESELECT")
for box in boxes:
    box.select_set(True)
bpy.context.view_layer.objects.active = splat
assert scene.gsseg.camera_collection is None
assert bpy.ops.gsseg.segment_proxies() == {"FINISHED"}
assert scene.gsseg.camera_collection is None  # no cameras were needed
RESULT["labels"] = int_attr(splat, "gsseg_label").tolist()
RESULT["items"] = {item.id: item.name for item in splat.gsseg.labels}
assert splat.gsseg.display == "LABELS"
for box in boxes:
    box.hide_set(True)
# remove one object
splat.gsseg.instance = ARGS["remove"]
assert bpy.ops.gsseg.delete_instance() == {"FINISHED"}
RESULT["after"] = len(bpy.data.objects[splat.name].data.vertices)
