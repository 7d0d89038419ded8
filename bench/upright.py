"""Which way up Import Splat's Auto axes put real scans and the demo, and whether Add View Cameras' rig then sees
them upright (issue 28, item 1), in headless Blender:

    python bench/upright.py [FILE ...] [--views 24] [--renders DIR] [--out bench/results]

Default files: the public PlayCanvas scans (examples/assets/splats/ of playcanvas/engine) in /work/scans (biker,
guitar: no cameras beside them, so Auto takes the file's convention) and the bundled demo (its cameras beside it). Per file: the axes Auto chose and why, the
object's rotation, the world extent of its Gaussians (2-98 percentile) before and after the turn, and over the
rig's views the share in which the top of the object (its highest 2 % of Gaussians in world Z) projects above its
foot (the lowest 2 %): 1.0 when every view sees it upright. ``--renders`` writes the rig's first view of each
(core rasterizer) to look at: whether the top is the head, the extent cannot say.
"""

import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import bpy  # noqa: E402

import blender_gsseg  # noqa: E402
from blender_gsseg.blender import camera_objects  # noqa: E402
from blender_gsseg.core.files.splats import read_gaussians  # noqa: E402

SCANS = "/work/scans"
DEFAULT_FILES = [os.path.join(SCANS, "biker.compressed.ply"), os.path.join(SCANS, "biker.spz"),
                 os.path.join(SCANS, "guitar.compressed.ply"),
                 os.path.join(REPO, "blender_gsseg", "data", "demo", "scene_trained.ply")]


def extent(points):
    return (np.percentile(points, 98.0, axis=0) - np.percentile(points, 2.0, axis=0)).round(3).tolist()


def measure(path, views, renders):
    scene = bpy.context.scene
    for obj in list(scene.objects):
        bpy.data.objects.remove(obj)
    scene.gsseg.camera_collection = None
    assert bpy.ops.gsseg.import_splat(filepath=path, display="NONE") == {"FINISHED"}
    splat = bpy.context.active_object
    scene.gsseg.splat_object = splat
    matrix = np.array(splat.matrix_world, dtype=np.float64)
    means = read_gaussians(path).means.astype(np.float64)
    world = means @ matrix[:3, :3].T + matrix[:3, 3]
    bpy.ops.object.select_all(action="DESELECT")
    assert bpy.ops.gsseg.add_view_cameras(count=views) == {"FINISHED"}
    rig = [camera for _, camera in camera_objects.cameras_in_collection(scene.gsseg.camera_collection, scene)]
    low, high = np.percentile(world[:, 2], 2.0), np.percentile(world[:, 2], 98.0)
    top, foot = world[world[:, 2] >= high], world[world[:, 2] <= low]
    upright = []
    for camera in rig:
        (top_px, top_depth), (foot_px, foot_depth) = camera.project(top), camera.project(foot)
        seen = (top_depth > 0).all() and (foot_depth > 0).all()
        upright.append(bool(seen and top_px[:, 1].mean() < foot_px[:, 1].mean()))
    row = {"file": os.path.basename(path), "splats": len(means), "axes": splat.get(camera_objects.AXES_KEY),
           "rotation": np.round(matrix[:3, :3], 6).tolist(), "extent_file": extent(means),
           "extent_world": extent(world), "tallest_world_axis": "XYZ"[int(np.argmax(extent(world)))],
           "views_upright": float(np.mean(upright)), "views": len(rig)}
    if renders:
        from PIL import Image

        from blender_gsseg.core.files.splats import read_gaussians as read
        from blender_gsseg.core.raster.render import render_colour
        from blender_gsseg.core.scene.object_transform import transform_gaussians

        rgb, _ = render_colour(transform_gaussians(read(path), matrix), rig[0], background=(1.0, 1.0, 1.0),
                               backend="cpu")
        os.makedirs(renders, exist_ok=True)
        name = os.path.join(renders, os.path.basename(path) + ".png")
        Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).save(name)
        row["render"] = name
    return row


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", default=DEFAULT_FILES)
    parser.add_argument("--views", type=int, default=24)
    parser.add_argument("--size", type=int, nargs=2, default=(320, 240))
    parser.add_argument("--renders", default="", help="write the rig's first view of each file here")
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    args = parser.parse_args(argv)
    blender_gsseg.register()
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = args.size
    scene.render.resolution_percentage = 100
    rows = [measure(path, args.views, args.renders) for path in args.files if os.path.exists(path)]
    blender_gsseg.unregister()
    lines = ["| file | splats | Auto's axes | extent in the file (x, y, z) | extent after import | tallest | "
             "rig views upright |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['file']} | {row['splats']:,} | {row['axes']} | {row['extent_file']} | "
                     f"{row['extent_world']} | {row['tallest_world_axis']} | "
                     f"{row['views_upright']:.2f} of {row['views']} |")
    print("\n".join(lines))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "upright.json"), "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)
        with open(os.path.join(args.out, "upright.md"), "w", encoding="utf-8") as handle:
            handle.write("Import Splat's Auto axes (bench/upright.py, bpy 5.0): 2-98 percentile extents; a rig view "
                         "is upright when the highest 2 % of Gaussians in world Z project above the lowest 2 %. The "
                         "rig circles Z, so that share only says no view sees the object upside down or on its "
                         "side; that the top is the right end (the biker's head, the guitar's headstock) was "
                         "checked on the renders (--renders). The demo is a flat scene: its tallest extent is "
                         "not its up.\n\n")
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:])
