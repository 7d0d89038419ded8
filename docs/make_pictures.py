"""Render the pictures of the Blender workflow (docs/images/*.png) headless, with EEVEE (the splat display).

    python docs/make_pictures.py [--out docs/images] [--size 480x360] [--samples 16]
    blender -b -P docs/make_pictures.py -- [same options]

Needs bpy (``pip install bpy==5.0.1``, or Blender's own Python). It builds the synthetic scene of
``synthetic.scene`` (three spheres on a ground plane, exact ray-cast masks), writes it to a
temporary folder as an artist would get it (scene.ply, cameras.json, masks/), then goes through the add-on's
operators: import the splat and the cameras, segment, show the labels, name the instances, delete one, and
renders the steps from a viewpoint camera. It also renders the label map of one view from proxy spheres
("Masks from Proxies").
"""

import argparse
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import bpy  # noqa: E402
import numpy as np  # noqa: E402
from mathutils import Matrix  # noqa: E402
from PIL import Image  # noqa: E402

from blender_gsseg.core.files.inria_cameras import write_cameras_json  # noqa: E402
from blender_gsseg.core.files.ply import write_gaussians  # noqa: E402
from blender_gsseg.core.files.labels import label_colour  # noqa: E402
from synthetic.scene import make_scene  # noqa: E402

# Names and colours given in the instance list (sRGB): written to the PLY header on export.
NAMES = {1: ("red ball", (1.0, 0.3, 0.15)), 2: ("green ball", (0.3, 0.85, 0.3)), 3: ("blue ball", (0.25, 0.5, 1.0))}
HALO_GAMMA = -0.85


def parse(argv):
    argv = argv[argv.index("--") + 1:] if "--" in argv else argv[1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(HERE, "images"))
    parser.add_argument("--size", default="480x360", help="WIDTHxHEIGHT of the renders")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--density", type=float, default=400, help="Gaussians per unit area of the scene")
    return parser.parse_args(argv)


def write_inputs(folder, density):
    scene = make_scene(n_spheres=3, points_per_unit_area=density, n_cameras=16, width=160, height=120, seed=0)
    write_gaussians(os.path.join(folder, "scene.ply"), scene.gaussians)
    write_cameras_json(os.path.join(folder, "cameras.json"), scene.cameras)
    masks = os.path.join(folder, "masks")
    os.makedirs(masks)
    for camera in scene.cameras:
        Image.fromarray(scene.mask(camera).astype(np.uint8)).save(os.path.join(masks, camera.image_name + ".png"))
    return scene


def view_camera(scene):
    data = bpy.data.cameras.new("docs view")
    data.lens = 30
    obj = bpy.data.objects.new("docs view", data)
    scene.collection.objects.link(obj)
    obj.location = (5.2, -5.6, 4.2)
    direction = -obj.location.copy()
    direction.z += 0.5
    obj.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
    return obj


def render_settings(scene, width, height, samples):
    from blender_gsseg.blender.splat_display import eevee_engine

    scene.render.engine = eevee_engine()
    scene.eevee.taa_render_samples = samples
    scene.render.resolution_x = width
    scene.render.resolution_y = height
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    scene.render.film_transparent = False
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.image_settings.compression = 100
    scene.view_settings.view_transform = "Standard"
    for name in dir(scene.render):  # no date, render time or file name in the PNGs: reproducible pictures
        if name.startswith("use_stamp") and name != "use_stamp":
            setattr(scene.render, name, False)
    world = bpy.data.worlds.new("docs world")
    if world.node_tree is None:  # Blender < 5 makes the tree on request
        world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.035, 0.04, 0.05, 1.0)
    scene.world = world


def render(scene, path):
    scene.render.filepath = path
    bpy.ops.render.render(write_still=True)
    with Image.open(path) as image:  # drop the render-time metadata: the same scene gives the same file
        pixels = image.convert("RGB")
    pixels.save(path, optimize=True)
    print(f"make_pictures: {path} ({os.path.getsize(path) // 1024} KB)", flush=True)


def proxy_mask_picture(context, scene_data, path, size):
    """The label map 'Masks from Proxies' renders for one training view, from proxy spheres, in the label
    colours; beside it the exact mask of that view."""
    from blender_gsseg.blender import proxies
    from blender_gsseg.blender.camera_objects import cameras_in_collection

    made = []
    for k, (centre, radius) in enumerate(zip(scene_data.centres, scene_data.radii)):
        bpy.ops.mesh.primitive_uv_sphere_add(radius=float(radius), location=tuple(centre), segments=48,
                                             ring_count=24)
        proxy = context.active_object
        proxy.gsseg.proxy_instance = k + 1
        proxy.hide_render = True  # stand-ins: not in the pictures, yet rendered for the masks
        made.append(proxy)
    pairs = cameras_in_collection(context.scene.gsseg.camera_collection, context.scene)
    obj_camera, camera = pairs[3]
    camera = camera.scaled(2.0)
    label_map = proxies.render_label_maps(context, [camera])[0]
    truth = scene_data.mask(camera)
    palette = np.zeros((256, 3), dtype=np.uint8)
    for label in range(1, 256):
        palette[label] = label_colour(label)
    palette[0] = (30, 30, 34)
    gap = np.full((camera.height, 8, 3), 255, dtype=np.uint8)
    picture = np.concatenate([palette[np.clip(label_map, 0, 255)], gap, palette[np.clip(truth, 0, 255)]], axis=1)
    Image.fromarray(picture).save(path, optimize=True)
    print(f"make_pictures: {path} ({os.path.getsize(path) // 1024} KB); proxy map vs exact mask agreement "
          f"{(label_map == truth).mean():.4f}", flush=True)
    for proxy in made:
        bpy.data.objects.remove(proxy)


def bare_file_picture(context, folder, scene_data, path):
    """From a bare splat file: a loose box around each ball (named and coloured as in step 2; not rendered),
    Segment from Proxies, the labels; rendered from the view camera."""
    assert bpy.ops.gsseg.import_splat(filepath=os.path.join(folder, "scene.ply")) == {"FINISHED"}
    splat = context.active_object
    boxes = []
    for k, (centre, radius) in enumerate(zip(scene_data.centres, scene_data.radii)):
        bpy.ops.mesh.primitive_cube_add(size=2.3 * float(radius), location=tuple(centre))
        box = context.active_object
        box.name, colour = NAMES[k + 1]
        box.color = (*colour, 1.0)  # the instance takes the box's name and colour
        box.display_type = "WIRE"
        box.hide_render = True
        boxes.append(box)
    bpy.ops.object.select_all(action="DESELECT")
    for box in boxes:
        box.select_set(True)
    context.view_layer.objects.active = splat
    assert bpy.ops.gsseg.segment_proxies() == {"FINISHED"}
    print("make_pictures: from proxies", [(i.id, i.name, i.count) for i in splat.gsseg.labels], flush=True)
    render(context.scene, path)
    for box in boxes:
        bpy.data.objects.remove(box)


def view_cameras_picture(context, path):
    """Add View Cameras around the whole splat (the one imported for step 5), each camera drawn as a small
    pyramid pointing where it looks (cameras do not render); seen from farther back than the other steps."""
    bpy.ops.object.select_all(action="DESELECT")
    assert bpy.ops.gsseg.add_view_cameras() == {"FINISHED"}
    scene = context.scene
    rig = [obj for obj in scene.gsseg.camera_collection.objects if obj.type == "CAMERA"]
    marker = bpy.data.materials.new("docs camera marker")
    marker.diffuse_color = (1.0, 0.8, 0.2, 1.0)
    if marker.node_tree is None:  # Blender < 5 makes the tree on request
        marker.use_nodes = True
    shader = marker.node_tree.nodes["Principled BSDF"]
    shader.inputs["Emission Color"].default_value = (1.0, 0.75, 0.15, 1.0)
    shader.inputs["Emission Strength"].default_value = 3.0
    markers = []
    for camera in rig:
        # a four-sided cone whose apex is the camera centre and whose base lies ahead of it, along -Z
        bpy.ops.mesh.primitive_cone_add(vertices=4, radius1=0.45, radius2=0.0, depth=0.7)
        pyramid = context.active_object
        pyramid.data.transform(Matrix.Translation((0.0, 0.0, -0.35)))
        pyramid.matrix_world = camera.matrix_world.normalized()
        pyramid.data.materials.append(marker)
        markers.append(pyramid)
    far = view_camera(scene)
    far.location = far.location * 3.2
    far.data.lens = 30
    scene.camera = far
    render(scene, path)
    for obj in markers + [far]:
        bpy.data.objects.remove(obj)


def main(argv):
    args = parse(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    os.makedirs(args.out, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="gsseg-docs-")
    try:
        scene_data = write_inputs(folder, args.density)
        bpy.ops.wm.read_factory_settings(use_empty=True)
        import blender_gsseg

        blender_gsseg.register()
        context = bpy.context
        scene = context.scene
        render_settings(scene, width, height, args.samples)

        # 1. import the splat and the cameras
        assert bpy.ops.gsseg.import_splat(filepath=os.path.join(folder, "scene.ply")) == {"FINISHED"}
        splat = context.active_object
        assert bpy.ops.gsseg.import_cameras(filepath=os.path.join(folder, "cameras.json"),
                                            set_resolution=False) == {"FINISHED"}
        scene.camera = view_camera(scene)
        render(scene, os.path.join(args.out, "01_imported.png"))

        # 2. segment from the masks, show the labels, name the instances
        settings = scene.gsseg
        settings.mask_dir = os.path.join(folder, "masks")
        settings.scale = 1.0
        settings.backend = "cpu"
        context.view_layer.objects.active = splat
        assert bpy.ops.gsseg.segment() == {"FINISHED"}
        for item in splat.gsseg.labels:
            if item.id in NAMES:
                item.name, item.color = NAMES[item.id]
        print("make_pictures: instances", [(i.id, i.name, i.count) for i in splat.gsseg.labels], flush=True)
        splat.gsseg.display = "LABELS"
        render(scene, os.path.join(args.out, "02_labels.png"))

        # 3. delete the red ball with its halo (the points that share it, down to a share of 7.5 %)
        splat.gsseg.gamma = HALO_GAMMA
        splat.gsseg.display = "SPLAT"
        assert bpy.ops.gsseg.delete_instance(label=1, halo="ON") == {"FINISHED"}
        render(scene, os.path.join(args.out, "03_removed.png"))

        # 4. masks from proxies: the label map of one view rendered from proxy spheres
        proxy_mask_picture(context, scene_data, os.path.join(args.out, "04_proxy_mask.png"), (width, height))

        # 5. a bare splat file: boxes around the balls, Segment from Proxies (no cameras, no masks)
        for obj in list(scene.objects):
            if obj.type == "MESH":
                bpy.data.objects.remove(obj)
        bare_file_picture(context, folder, scene_data, os.path.join(args.out, "05_from_proxies.png"))

        # 6. the same bare splat: Add View Cameras, the rig Masks from Proxies or masks made elsewhere can use
        view_cameras_picture(context, os.path.join(args.out, "06_view_cameras.png"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv)
    import blender_gsseg

    blender_gsseg.unregister()
    # bpy 4.2 as a module crashes in Python's finalisation once Python classes were registered: leave first
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
