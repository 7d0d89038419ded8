"""Masks from Proxies against Segment from Proxies on the same boxes (the demo scene, one box per object as
bench/proxies.py makes them), in headless Blender: per object, the Gaussians each path gives it, how many both
give it, and recall and precision against the truth; the time of each path.

    python bench/proxy_paths.py [--views 24] [--size 640 480] [--out bench/results]

Masks from Proxies renders each box's silhouette from the Add View Cameras rig and lifts these masks as masks
from SAM would be lifted: a Gaussian takes the box whose silhouettes cover it in the views where it shows, so
what lies in front of or behind a box from most views, inside its silhouettes, goes with it (the visual hull
of a box is the box only with views from every side). Segment from Proxies decides in 3D (module docstring of
core.scene.proxy_segment).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

import bpy  # noqa: E402

import blender_gsseg  # noqa: E402
from blender_gsseg.blender.attributes import read_attribute  # noqa: E402
from blender_gsseg.core.files.splats import read_gaussians  # noqa: E402
from proxies import box_proxies  # noqa: E402


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", default=os.path.join(REPO, "blender_gsseg", "data", "demo"))
    parser.add_argument("--views", type=int, default=24)
    parser.add_argument("--size", type=int, nargs=2, default=(640, 480))
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    args = parser.parse_args(argv)
    ply = os.path.join(args.scene, "scene_trained.ply")
    gaussians = read_gaussians(ply)
    truth = np.load(os.path.join(args.scene, "gt_labels_trained.npy"))
    proxies = box_proxies(gaussians, truth)
    blender_gsseg.register()
    scene = bpy.context.scene
    for obj in list(scene.objects):
        bpy.data.objects.remove(obj)
    scene.render.resolution_x, scene.render.resolution_y = args.size
    scene.render.resolution_percentage = 100
    assert bpy.ops.gsseg.import_splat(filepath=ply, display="NONE") == {"FINISHED"}
    splat = bpy.context.active_object
    boxes = []
    for proxy in proxies:
        corners = proxy.triangles.reshape(-1, 3)
        low, high = corners.min(axis=0), corners.max(axis=0)
        bpy.ops.mesh.primitive_cube_add(size=1.0, location=(low + high) / 2)
        box = bpy.context.active_object
        box.name, box.scale = f"object {proxy.label}", high - low
        box.gsseg.proxy_instance = proxy.label
        boxes.append(box)
    bpy.ops.object.select_all(action="DESELECT")
    bpy.context.view_layer.objects.active = splat
    assert bpy.ops.gsseg.add_view_cameras(count=args.views) == {"FINISHED"}
    settings = scene.gsseg
    settings.splat_object, settings.backend, settings.scale = splat, "cpu", 1.0
    from blender_gsseg.blender.proxies import masks_plan

    plan = masks_plan(bpy.context)  # what the Segment panel says before the run
    start = time.perf_counter()
    assert bpy.ops.gsseg.masks_from_proxies() == {"FINISHED"}
    masks_seconds = time.perf_counter() - start
    from_masks = read_attribute(splat.data, "gsseg_label").copy()
    for box in boxes:
        box.select_set(True)
    start = time.perf_counter()
    assert bpy.ops.gsseg.segment_proxies() == {"FINISHED"}
    direct_seconds = time.perf_counter() - start
    direct = read_attribute(splat.data, "gsseg_label").copy()
    rows, report = [], {"views": args.views, "size": list(args.size), "masks_seconds": masks_seconds,
                        "direct_seconds": direct_seconds, "plan": plan, "objects": {}}
    for proxy in proxies:
        label, actual = proxy.label, truth == proxy.label
        a, b = from_masks == label, direct == label
        entry = {"masks": int(a.sum()), "direct": int(b.sum()), "both": int((a & b).sum()),
                 "masks_recall": float((a & actual).sum() / actual.sum()),
                 "masks_precision": float((a & actual).sum() / max(a.sum(), 1)),
                 "direct_recall": float((b & actual).sum() / actual.sum()),
                 "direct_precision": float((b & actual).sum() / max(b.sum(), 1))}
        report["objects"][label] = entry
        rows.append(f"| {label} | {entry['masks']:,} | {entry['direct']:,} | {entry['both']:,} | "
                    f"{entry['masks_recall']:.3f} | {entry['masks_precision']:.3f} | {entry['direct_recall']:.3f} | "
                    f"{entry['direct_precision']:.3f} |")
        print(rows[-1], flush=True)
    unseen = int((from_masks < 0).sum())
    report["masks_unseen"] = unseen
    with open(os.path.join(args.out, "proxy_paths.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    with open(os.path.join(args.out, "proxy_paths.md"), "w", encoding="utf-8") as handle:
        handle.write("# Masks from Proxies against Segment from Proxies, same boxes\n\n"
                     f"`python bench/proxy_paths.py`: the demo scene ({len(gaussians):,} Gaussians), one box per "
                     f"object (bench/proxies.py's), {args.views} Add View Cameras at {args.size[0]}x{args.size[1]}; "
                     f"Masks from Proxies {masks_seconds:.1f} s (renders and lift, CPU; the panel said \"{plan}\"), "
                     "Segment from Proxies "
                     f"{direct_seconds:.1f} s; {unseen:,} Gaussians unseen by the views (no mask label).\n\n"
                     "| object | masks: points | proxies: points | both | masks recall | masks precision | "
                     "proxies recall | proxies precision |\n|---|---|---|---|---|---|---|---|\n"
                     + "\n".join(rows) + "\n")
    os._exit(0)  # bpy 4.2 crashes in Python's finalisation


if __name__ == "__main__":
    main(sys.argv[1:])
