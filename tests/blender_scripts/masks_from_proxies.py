"""Sphere proxies of the synthetic scene: 'Masks from Proxies' writes masks and segments the splat; the label
maps come back for comparison with the exact masks. Run by tests/test_blender_scene.py
(test_masks_from_proxies_segment_the_splat)."""

import time

import bpy

from blender_gsseg.blender import attributes
from blender_gsseg.blender import proxies
from blender_gsseg.blender.camera_objects import cameras_in_collection
from child import ARGS, RESULT

settings = bpy.context.scene.gsseg
assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="SPLAT") == {"FINISHED"}
splat = bpy.context.active_object
assert bpy.ops.gsseg.import_cameras(filepath=ARGS["cameras"]) == {"FINISHED"}
for k, (centre, radius) in enumerate(zip(ARGS["centres"], ARGS["radii"], strict=True)):
    bpy.ops.mesh.primitive_uv_sphere_add(radius=radius, location=centre, segments=48, ring_count=24)
    bpy.context.active_object.gsseg.proxy_instance = k + 1
    bpy.context.active_object.name = f"ball {k + 1}"
settings.scale = ARGS["scale"]
settings.backend = "cpu"
settings.proxy_mask_dir = ARGS["masks"]
bpy.context.view_layer.objects.active = splat
RESULT["plan_before"] = proxies.masks_plan(bpy.context)
RESULT["estimate_before"] = proxies.render_seconds([c for _, c in cameras_in_collection(settings.camera_collection)])
start = time.perf_counter()
assert bpy.ops.gsseg.masks_from_proxies() == {"FINISHED"}
RESULT["seconds"] = time.perf_counter() - start
RESULT["plan_after"] = proxies.masks_plan(bpy.context)
RESULT["estimate_after"] = proxies.render_seconds([c for _, c in cameras_in_collection(settings.camera_collection)])
RESULT["estimate_after_double"] = proxies.render_seconds(
    [c for _, c in cameras_in_collection(settings.camera_collection)] * 2)
RESULT["job_render_seconds"] = proxies._MEASURED["seconds"]  # what the job's renders took
RESULT["items"] = {item.id: item.name for item in splat.gsseg.labels}
RESULT["proxies_shown"] = sorted([o.gsseg.proxy_instance, o.display_type, o.hide_render]
                                 for o in proxies.proxy_objects(bpy.context.scene))
RESULT["labels"] = attributes.read_attribute(splat.data, "gsseg_label").tolist()
RESULT["rows"] = [(i.id, i.count) for i in splat.gsseg.labels]
cameras = [c for _, c in cameras_in_collection(settings.camera_collection)]
start = time.perf_counter()
RESULT["maps"] = [m.tolist() for m in proxies.render_label_maps(bpy.context, cameras)]
RESULT["render_seconds"] = time.perf_counter() - start  # the six renders again, as the job makes them
RESULT["names"] = [c.image_name for c in cameras]
