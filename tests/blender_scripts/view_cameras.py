"""A splat without cameras: the panel says what to do, Add View Cameras makes a rig around the whole splat and
then around a selected proxy, chosen for segmentation. Run by tests/test_blender_bare.py."""

import bpy

from child import ARGS, RESULT
from blender_gsseg.blender import camera_objects as camera_io
from blender_gsseg.blender.panels import next_step

scene = bpy.context.scene
for obj in list(scene.objects):
    bpy.data.objects.remove(obj)
scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 320, 240, 100
RESULT["step_empty"] = next_step(bpy.context)
assert bpy.ops.gsseg.add_view_cameras.poll() is False
assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="SPLAT") == {"FINISHED"}
splat = bpy.context.active_object
RESULT["step_splat"] = next_step(bpy.context)

assert bpy.ops.gsseg.add_view_cameras(count=12) == {"FINISHED"}
collection = scene.gsseg.camera_collection
assert collection is not None and len(collection.objects) == 12
RESULT["step_cameras"] = next_step(bpy.context)
RESULT["whole"] = [camera_io.camera_from_object(obj, scene).world_to_camera.tolist()
                   for obj in sorted(collection.objects, key=lambda o: o.name)]
RESULT["intrinsics"] = [(c.fx, c.fy, c.cx, c.cy, c.width, c.height)
                        for c in (camera_io.camera_from_object(o, scene) for o in collection.objects)]

# a proxy cube selected: the rig frames it
bpy.ops.mesh.primitive_cube_add(size=0.5, location=ARGS["proxy"])
proxy = bpy.context.active_object
assert bpy.ops.gsseg.add_view_cameras(count=8) == {"FINISHED"}
assert scene.gsseg.camera_collection != collection and len(scene.gsseg.camera_collection.objects) == 8
RESULT["proxy"] = [camera_io.camera_from_object(obj, scene).world_to_camera.tolist()
                   for obj in scene.gsseg.camera_collection.objects]
# operators that cannot run say why (greyed, with the reason)
scene.gsseg.mask_dir = ""
assert bpy.ops.gsseg.segment.poll() is False
RESULT["segment_without_masks"] = True
