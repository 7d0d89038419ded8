"""A splat lying on its side (the 3DGS frame: Y down) and its cameras: imported with Auto axes it stands upright
(the file's -Y) and Stand Upright leaves it; imported in the file's axes as they are, Add View Cameras circles the
cameras' up before it is stood upright; Stand Upright turns it and its cameras (up from the cameras);
a second press does nothing; segmenting afterwards gives the labels of the file's frame. Run by
tests/test_blender_bare.py (test_stand_upright_with_and_without_cameras)."""

import bpy
import numpy as np

from child import ARGS, RESULT
from snapshot import int_attr
from blender_gsseg.blender import camera_objects

scene = bpy.context.scene
settings = scene.gsseg
# without cameras: Import Splat's Auto axes stand it upright by the convention; Stand Upright finds it so
assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="SPLAT") == {"FINISHED"}
splat = bpy.context.active_object
RESULT["convention"] = [list(row) for row in splat.matrix_world]
bpy.context.view_layer.objects.active = splat
assert bpy.ops.gsseg.stand_upright() == {"FINISHED"}
RESULT["convention_again"] = [list(row) for row in splat.matrix_world]
bpy.data.objects.remove(splat)
# imported in the file's axes as they are (forward Y, up Z): lying on its side
assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], forward_axis="Y", up_axis="Z", display="SPLAT") == {"FINISHED"}
splat = bpy.context.active_object
settings.splat_object = splat
assert np.array_equal(np.array(splat.matrix_world), np.eye(4))
# its cameras imported, before standing upright: the rig circles their up (the file's -Y)
assert bpy.ops.gsseg.import_cameras(filepath=ARGS["cameras"]) == {"FINISHED"}
imported = settings.camera_collection
bpy.ops.object.select_all(action="DESELECT")
bpy.context.view_layer.objects.active = splat
assert bpy.ops.gsseg.add_view_cameras(count=8) == {"FINISHED"}
RESULT["rig_ups"] = [camera_objects.camera_from_object(o).world_to_camera[1, :3].tolist()
                     for o in settings.camera_collection.all_objects]
settings.camera_collection = imported
# with its cameras: up from them, and they turn with it
before = {o.name: camera_objects.camera_from_object(o).world_to_camera.tolist()
          for o in settings.camera_collection.all_objects}
bpy.context.view_layer.objects.active = splat
assert bpy.ops.gsseg.stand_upright() == {"FINISHED"}
RESULT["matrix"] = [list(row) for row in splat.matrix_world]
RESULT["before"] = before
RESULT["after"] = {o.name: camera_objects.camera_from_object(o).world_to_camera.tolist()
                   for o in settings.camera_collection.all_objects}
assert bpy.ops.gsseg.stand_upright() == {"FINISHED"}  # already upright
RESULT["again"] = [list(row) for row in splat.matrix_world]
# segmenting the upright splat with its turned cameras
settings.splat_object, settings.mask_dir, settings.backend, settings.scale = splat, ARGS["masks"], "cpu", 1.0
assert bpy.ops.gsseg.segment() == {"FINISHED"}
RESULT["labels"] = int_attr(splat, "gsseg_label").tolist()
