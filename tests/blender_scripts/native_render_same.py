"""Raw quaternions in ``rotation`` (gsseg's native import writes a file's unnormalised ones as stored): Cycles
(and Workbench) renders them as it renders them normalised (what Blender's own importer stores), so gsseg needs no
second rotation attribute. One object rendered with its raw rotations (seed 1), then normalised (seeds 1 and 2: Cycles'
noise, the floor any difference is judged against; a last-bit change already reshuffles the samples). Run by
tests/test_blender_native.py. ARGS: ``ply``, ``cameras``, ``out`` (folder). RESULT: ``renders`` [raw seed 1,
normalised seed 1, normalised seed 2], ``workbench`` [normalised, raw] (Workbench has no noise), ``norms`` (min,
max of the raw quaternions' norms)."""

import os

import bpy
import numpy as np

from child import ARGS, RESULT

scene = bpy.context.scene
for obj in list(scene.objects):
    bpy.data.objects.remove(obj)
assert bpy.ops.gsseg.import_cameras(filepath=ARGS["cameras"]) == {"FINISHED"}
camera = sorted(scene.gsseg.camera_collection.objects, key=lambda o: o.name)[0]
bpy.context.view_layer.objects.active = camera
assert bpy.ops.gsseg.use_camera() == {"FINISHED"}
scene.render.engine = "CYCLES"
scene.cycles.device = "CPU"
scene.cycles.samples = 16
scene.cycles.use_denoising = False
scene.render.resolution_percentage = 25
scene.render.image_settings.file_format = "PNG"
assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="NATIVE") == {"FINISHED"}
splat = bpy.context.selected_objects[0]
assert splat.data.type == "GAUSSIAN_SPLAT"
rotation = splat.data.attributes["rotation"]
quats = np.empty(4 * len(splat.data.points), np.float32)
rotation.data.foreach_get("value", quats)
quats = quats.reshape(-1, 4)
norms = np.linalg.norm(quats, axis=1)
RESULT["norms"] = [float(norms.min()), float(norms.max())]
RESULT["renders"] = []
for name, seed in (("raw", 1), ("normalised", 1), ("normalised", 2)):
    if name == "normalised":
        rotation.data.foreach_set("value", (quats / norms[:, None]).astype(np.float32).ravel())
        splat.data.update_tag()
    scene.cycles.seed = seed
    scene.render.filepath = os.path.join(ARGS["out"], f"{name}_{seed}.png")
    bpy.ops.render.render(write_still=True)
    RESULT["renders"].append(scene.render.filepath)
# Workbench (no noise): normalised, then raw again, pixel for pixel
scene.render.engine = "BLENDER_WORKBENCH"
RESULT["workbench"] = []
for name in ("normalised", "raw"):
    if name == "raw":
        rotation.data.foreach_set("value", quats.ravel())
        splat.data.update_tag()
    scene.render.filepath = os.path.join(ARGS["out"], f"workbench_{name}.png")
    bpy.ops.render.render(write_still=True)
    RESULT["workbench"].append(scene.render.filepath)
