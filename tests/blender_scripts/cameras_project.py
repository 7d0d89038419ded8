"""Import cameras (transforms.json, COLMAP text) and measure how Blender's camera view projects points against
the core's projection. Run by tests/test_blender.py (test_cameras_project_like_the_core)."""

import bpy
import numpy as np
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from blender_gsseg.blender import camera_objects as camera_io
from child import ARGS, RESULT

scene = bpy.context.scene
assert bpy.ops.gsseg.import_cameras(filepath=ARGS["transforms"]) == {"FINISHED"}
collection = scene.gsseg.camera_collection
objects = sorted((o for o in collection.objects if o.type == "CAMERA"), key=lambda o: o["gsseg_image_name"])
assert [o["gsseg_image_name"] for o in objects] == ["img_0.png", "img_1.png", "img_2.png"]
errors, derived_errors = [], []
for obj, expect in zip(objects, ARGS["expected"], strict=True):
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.gsseg.use_camera() == {"FINISHED"}
    width, height = scene.render.resolution_x, scene.render.resolution_y
    for point, uv, front in zip(ARGS["points"], expect["uv"], expect["front"], strict=True):
        if not front:
            continue
        ndc = world_to_camera_view(scene, obj, Vector(point))
        errors.append(max(abs(ndc.x * width - uv[0]), abs((1 - ndc.y) * height - uv[1])))
    # the camera rebuilt from Blender's own settings (no gsseg_* intrinsics) projects the same
    exact = camera_io.camera_from_object(obj, scene)
    for key in camera_io.INTRINSIC_KEYS:
        del obj["gsseg_" + key]
    derived = camera_io.camera_from_object(obj, scene)
    for attr in ("fx", "fy", "cx", "cy"):
        derived_errors.append(abs(getattr(derived, attr) - getattr(exact, attr)))
    assert (derived.width, derived.height) == (exact.width, exact.height)
    derived_errors.append(float(np.abs(derived.world_to_camera - exact.world_to_camera).max()))
RESULT["max_error_px"] = max(errors)
RESULT["points_checked"] = len(errors)
RESULT["max_derived_error"] = max(derived_errors)
# COLMAP text model, given as its folder's file
assert bpy.ops.gsseg.import_cameras(filepath=ARGS["colmap"]) == {"FINISHED"}
exact = [camera_io.camera_from_object(o) for o in scene.gsseg.camera_collection.objects]
RESULT["colmap"] = sorted([c.image_name, c.fx, c.fy, c.cx, c.cy, c.width, c.height] for c in exact)
