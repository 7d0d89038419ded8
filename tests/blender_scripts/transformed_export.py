"""Export a splat under a parented object transform (world space: Blender's axes; object space on request) and refuse a
sheared one. Run by tests/test_blender_scene.py (test_transformed_export_moves_everything_and_rotates_sh)."""

import os

import bpy

from child import ARGS, RESULT, refused

assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="SPLAT") == {"FINISHED"}
obj = bpy.context.active_object
parent = bpy.data.objects.new("rig", None)
bpy.context.collection.objects.link(parent)
parent.location = (0.5, -2.0, 1.0)
parent.rotation_euler = (0.3, -0.7, 1.1)
parent.scale = (0.8, 0.8, 0.8)
obj.parent = parent
obj.location = (1.0, 2.0, -0.5)
obj.rotation_mode = "QUATERNION"
obj.rotation_quaternion = (0.8, 0.2, -0.5, 0.3)
obj.scale = (1.5, 1.5, 1.5)
bpy.context.view_layer.update()
RESULT["matrix"] = [list(row) for row in obj.matrix_world]
# in Blender's axes: the whole world transform (the file's axes take the import's turn off first: test_import_axes)
assert bpy.ops.gsseg.export_splat(filepath=ARGS["out"], include_label=True, axes="BLENDER") == {"FINISHED"}
# object space on request
assert bpy.ops.gsseg.export_splat(filepath=ARGS["local"], apply_transform=False) == {"FINISHED"}
# a non-uniformly scaled parent of a rotated child: a shear, refused before anything is written
parent.scale = (1.0, 2.0, 1.0)
bpy.context.view_layer.update()
RESULT["shear_error"] = refused(bpy.ops.gsseg.export_splat, "a sheared export", filepath=ARGS["sheared"])
assert not os.path.exists(ARGS["sheared"])
