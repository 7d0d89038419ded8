"""Render a splat through the splat display at given cameras, as an artist's F12 does, for comparison with the
rasterizer (tests/test_blender_display.py, bench/display.py).

ARGS: ``zip`` (install this extension zip first; else the package is registered by the runner), ``ply``,
``cameras`` (INRIA cameras.json), ``views`` (camera object names: the image names without extension),
``engine`` ('EEVEE' or 'CYCLES'), ``samples``, ``background`` (sRGB), ``settings`` (a list of {object property: value} dicts: one render of every view per
entry, e.g. [{"sh_degree": 3}, {"sh_degree": 0}]), ``out`` (folder). RESULT: ``renders`` [[path per view] per
settings entry], ``seconds`` [per render], ``blender``, ``drawn`` (Gaussians the display draws)."""

import os
import sys
import time

import bpy

from child import ARGS, RESULT

if ARGS.get("zip"):
    outcome = bpy.ops.extensions.package_install_files(filepath=ARGS["zip"], repo="user_default",
                                                        enable_on_install=True)
    assert outcome == {"FINISHED"}, outcome
    import bl_ext.user_default.gsseg as gsseg  # noqa: E402  (exists only once installed)
else:
    import blender_gsseg as gsseg
from drawn import splats_drawn  # noqa: E402

display = gsseg.blender.splat_display
RESULT["blender"] = bpy.app.version_string
scene = bpy.context.scene
for obj in list(scene.objects):
    bpy.data.objects.remove(obj)

assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display=ARGS.get("import_display", "SPLAT")) == {"FINISHED"}
# (``import_display`` 'NATIVE': Blender's own splat point cloud, 5.3+; bench/native_display.py)
splat = bpy.context.active_object
assert splat.gsseg.display == "SPLAT"
assert bpy.ops.gsseg.import_cameras(filepath=ARGS["cameras"]) == {"FINISHED"}
cameras = {obj.name: obj for obj in scene.gsseg.camera_collection.objects}
RESULT["drawn"] = splats_drawn(splat)
RESULT["object"] = f"{splat.type}/{getattr(splat.data, 'type', '-')}"  # 5.3+: Blender's own splat point cloud

# The comparison's conditions: the same plain background, the view transform "Standard"
world = bpy.data.worlds.new("plain")
if world.node_tree is None:  # Blender < 5 makes the tree on request
    world.use_nodes = True
linear = gsseg.blender.attributes.srgb_to_linear(ARGS["background"])
world.node_tree.nodes["Background"].inputs["Color"].default_value = (*linear.tolist(), 1.0)
scene.world = world
scene.view_settings.view_transform = "Standard"
scene.view_settings.look = "None"
scene.render.film_transparent = False
scene.render.dither_intensity = 0.0
scene.render.image_settings.file_format = "PNG"
scene.render.image_settings.color_mode = "RGB"
if ARGS["engine"] == "CYCLES":
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = ARGS["samples"]
    scene.cycles.use_denoising = False
    scene.cycles.transparent_max_bounces = ARGS.get("transparent_bounces", 1024)
else:
    scene.render.engine = display.eevee_engine()
    scene.eevee.taa_render_samples = ARGS["samples"]

RESULT["renders"], RESULT["seconds"] = [], []
for number, settings in enumerate(ARGS["settings"]):
    for name, value in settings.items():
        setattr(splat.gsseg, name, value)
    paths = []
    for view in ARGS["views"]:
        bpy.context.view_layer.objects.active = cameras[view]
        assert bpy.ops.gsseg.use_camera() == {"FINISHED"}  # scene camera and render size from the camera
        path = os.path.join(ARGS["out"], f"{ARGS['engine'].lower()}_{number}_{len(paths)}.png")
        scene.render.filepath = path
        start = time.perf_counter()
        bpy.ops.render.render(write_still=True)
        RESULT["seconds"].append(time.perf_counter() - start)
        paths.append(path)
    RESULT["renders"].append(paths)
sys.stdout.flush()
