"""The splat display's ``Pixel Angle`` follows the scene camera and settles: after the import it already equals
the camera's, so the depsgraph handler changes nothing (and Blender does not evaluate the display a second time);
a new focal length changes it once, then nothing again. Run by tests/test_blender_display.py.

ARGS: ``ply``. RESULT: ``after_import`` (displays sync_pixel_angle changed right after the import),
``after_lens``, ``again``, ``stored_before``, ``stored_after`` (the modifier's Pixel Angle), ``expected_before``,
``expected_after`` (1 / focal length in pixels), ``handler_settled`` (after a depsgraph update with the handler)."""

import bpy

import blender_gsseg
from child import ARGS, RESULT

display = blender_gsseg.blender.splat_display
get_input = blender_gsseg.blender.modifiers.get_modifier_input

scene = bpy.context.scene
for obj in list(scene.objects):
    bpy.data.objects.remove(obj)
camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
scene.collection.objects.link(camera)
scene.camera = camera
camera.data.lens = 35.0
scene.render.resolution_x, scene.render.resolution_y = 1000, 800
assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="SPLAT") == {"FINISHED"}
splat = bpy.context.selected_objects[0]
modifier = splat.modifiers[display.SPLAT_MODIFIER_NAME]
RESULT["after_import"] = display.sync_pixel_angle(scene)
RESULT["stored_before"] = get_input(modifier, "Pixel Angle")
RESULT["expected_before"] = display.pixel_angle(scene)
camera.data.lens = 70.0
RESULT["after_lens"] = display.sync_pixel_angle(scene)
RESULT["again"] = display.sync_pixel_angle(scene)
RESULT["stored_after"] = get_input(modifier, "Pixel Angle")
RESULT["expected_after"] = display.pixel_angle(scene)
camera.data.lens = 50.0
bpy.context.view_layer.update()  # the handler sets it
RESULT["handler_settled"] = display.sync_pixel_angle(scene)
RESULT["stored_handler"] = get_input(modifier, "Pixel Angle")
RESULT["expected_handler"] = display.pixel_angle(scene)
