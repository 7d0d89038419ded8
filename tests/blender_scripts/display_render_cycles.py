"""Render an imported ball of splats through its camera in Cycles, shown as ARGS["display"] ('SPLAT' or 'POINTS'):
its coverage and centre colour. Run by tests/test_blender.py (test_display_renders_in_cycles)."""

import bpy
import numpy as np
from PIL import Image

from child import ARGS, RESULT

scene = bpy.context.scene
for obj in list(scene.objects):
    bpy.data.objects.remove(obj)
assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display=ARGS["display"]) == {"FINISHED"}
assert bpy.ops.gsseg.import_cameras(filepath=ARGS["cameras"]) == {"FINISHED"}
camera = scene.gsseg.camera_collection.objects[0]
bpy.context.view_layer.objects.active = camera
assert bpy.ops.gsseg.use_camera() == {"FINISHED"}
scene.render.engine = "CYCLES"
scene.cycles.samples = 128  # transparency is sampled: enough samples for a steady centre
scene.cycles.device = "CPU"
scene.cycles.transparent_max_bounces = 256  # splats are layers of transparency: every one is a bounce
scene.render.film_transparent = True
scene.render.dither_intensity = 0.0
scene.view_settings.view_transform = "Standard"
scene.render.filepath = ARGS["out"]
bpy.ops.render.render(write_still=True)
image = np.asarray(Image.open(ARGS["out"]).convert("RGBA")).astype(np.float64) / 255
covered = image[..., 3] > 0.99
RESULT["coverage"] = float(covered.mean())
RESULT["centre"] = image[22:27, 22:27].reshape(-1, 4).mean(axis=0).tolist()  # the central 5 x 5 pixels
