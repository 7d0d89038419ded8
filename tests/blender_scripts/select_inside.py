"""Select Inside Object (a rotated, scaled cube over a splat) and Select Linked Instance (a few points grown to
their instances), from object mode: both end in edit mode showing the selection. Run by tests/test_blender_bare.py."""

import bpy
import numpy as np

from child import ARGS, RESULT
from snapshot import bool_attr

scene = bpy.context.scene
for obj in list(scene.objects):
    bpy.data.objects.remove(obj)
assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"]) == {"FINISHED"}
splat = bpy.context.active_object
splat.location = ARGS["splat_location"]
assert bpy.ops.gsseg.select_inside.poll() is False  # no mesh to select inside
bpy.ops.mesh.primitive_cube_add(size=2.0, location=ARGS["box_location"], rotation=ARGS["box_rotation"])
box = bpy.context.active_object
box.scale = ARGS["box_scale"]  # the object's transform, as an artist scales a proxy
splat.select_set(True)
bpy.context.view_layer.objects.active = splat
assert bpy.ops.gsseg.select_inside() == {"FINISHED"}
assert splat.mode == "EDIT"
RESULT["box_world"] = [list(row) for row in box.matrix_world]
RESULT["splat_world"] = [list(row) for row in splat.matrix_world]
RESULT["inside"] = np.flatnonzero(bool_attr(splat, ".select_vert")).tolist()

# grow a few selected points to their whole instances
bpy.ops.object.mode_set(mode="OBJECT")
seed = np.zeros(len(splat.data.vertices), bool)
seed[ARGS["seed_points"]] = True
splat.data.attributes[".select_vert"].data.foreach_set("value", seed)
assert bpy.ops.gsseg.select_linked_instance() == {"FINISHED"}
assert splat.mode == "EDIT"
RESULT["linked"] = np.flatnonzero(bool_attr(splat, ".select_vert")).tolist()
RESULT["menus"] = {name: [f.__name__ for f in getattr(bpy.types, name).draw._draw_funcs]
                   for name in ("VIEW3D_MT_select_edit_mesh", "VIEW3D_MT_edit_mesh_context_menu", "VIEW3D_MT_add")}
