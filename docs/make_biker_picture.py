"""The upright biker before and after removing his head (README, issue 28): docs/images/biker_head.png.

    python docs/make_biker_picture.py [--scan /work/scans/biker.compressed.ply] [--out docs/images/biker_head.png]

Needs bpy (``pip install bpy==5.0.1``) and the public PlayCanvas biker scan (SuperSplat's compressed PLY, from
examples/assets/splats/ of playcanvas/engine). Goes
through the add-on's operators as an artist would: Import Splat with the default Auto axes (no cameras beside the
file: the 3DGS convention, -Y up, stands him upright), a box around the head (its bottom at the neck: the first
height above the shoulders where the figure is less than half as wide), Segment from Proxies, Delete Instance
With Halo at γ = HALO_GAMMA; renders both states with gsseg's own rasterizer (CPU) from one camera, side by side,
and prints the residue: the Gaussians left in the box and the render's coverage (alpha) of the box's image.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import bpy  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import blender_gsseg  # noqa: E402
from blender_gsseg.blender import io_splat  # noqa: E402
from blender_gsseg.core.cameras import Camera, look_at  # noqa: E402
from blender_gsseg.core.raster.render import render_colour  # noqa: E402

HALO_GAMMA = -0.4  # as bench/proxies.py: a box takes a Gaussian its score beats the background's by more than γ
AZIMUTH = 215.0  # degrees about Z from Blender's +Y (the file's forward after the turn): his face, three-quarters
ELEVATION = 8.0


def head_box(world):
    """(low, high) corners of a box around the head of an upright figure (world [N, 3], Z up)."""
    z = world[:, 2]
    bottom, top = np.percentile(z, 0.1), np.percentile(z, 99.9)
    height = top - bottom
    edges = np.arange(bottom + 0.6 * height, top, 0.02 * height)
    widths = []
    for low in edges:
        ring = world[(z >= low) & (z < low + 0.02 * height)]
        widths.append(np.ptp(np.percentile(ring[:, :2], [5, 95], axis=0), axis=0).max() if len(ring) > 20 else 0)
    widths = np.array(widths)
    shoulders = int(np.argmax(widths))
    neck = next(k for k in range(shoulders, len(widths)) if widths[k] < 0.5 * widths[shoulders])
    inside = world[z >= edges[neck]]
    margin = 0.03 * height
    low = np.percentile(inside, 1.0, axis=0) - margin
    high = np.percentile(inside, 99.0, axis=0) + margin
    low[2], high[2] = edges[neck], top + margin
    return low, high


def view(world, width, height):
    centre = (np.percentile(world, 1, axis=0) + np.percentile(world, 99, axis=0)) / 2
    extent = np.percentile(world[:, 2], 99) - np.percentile(world[:, 2], 1)
    fx = 1.8 * height  # the figure fills most of the frame
    distance = 1.3 * extent * fx / height
    a, e = np.radians(AZIMUTH), np.radians(ELEVATION)
    eye = centre + distance * np.array([np.sin(a) * np.cos(e), np.cos(a) * np.cos(e), np.sin(e)])
    return Camera(look_at(eye, centre), fx, fx, width / 2, height / 2, width, height, "docs")


def box_pixels(camera, low, high):
    corners = np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])])
    pixels, _ = camera.project(corners)
    (x0, y0), (x1, y1) = np.floor(pixels.min(axis=0)).astype(int), np.ceil(pixels.max(axis=0)).astype(int)
    return max(x0, 0), max(y0, 0), min(x1, camera.width), min(y1, camera.height)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scan", default="/work/scans/biker.compressed.ply")
    parser.add_argument("--out", default=os.path.join(HERE, "images", "biker_head.png"))
    parser.add_argument("--size", type=int, nargs=2, default=(360, 500))
    args = parser.parse_args(argv)
    blender_gsseg.register()
    context = bpy.context
    for obj in list(context.scene.objects):
        bpy.data.objects.remove(obj)
    assert bpy.ops.gsseg.import_splat(filepath=args.scan, display="NONE") == {"FINISHED"}
    splat = context.active_object
    before = io_splat.in_world(splat, io_splat.gaussians_from_object(splat))
    world = before.means.astype(np.float64)
    low, high = head_box(world)
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=tuple((low + high) / 2))
    box = context.active_object
    box.name, box.scale = "head", tuple(high - low)
    bpy.ops.object.select_all(action="DESELECT")
    box.select_set(True)
    splat.select_set(True)
    context.view_layer.objects.active = splat
    assert bpy.ops.gsseg.segment_proxies() == {"FINISHED"}
    splat.gsseg.gamma = HALO_GAMMA
    label = next(item.id for item in splat.gsseg.labels if item.name == "head")
    assert bpy.ops.gsseg.delete_instance(label=label, halo="ON") == {"FINISHED"}
    after = io_splat.in_world(splat, io_splat.gaussians_from_object(splat))

    camera = view(world, *args.size)
    tiles, coverage = [], []
    x0, y0, x1, y1 = box_pixels(camera, low, high)
    for gaussians in (before, after):
        rgb, alpha = render_colour(gaussians, camera, background=(1.0, 1.0, 1.0), backend="cpu")
        tiles.append((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
        coverage.append(float(alpha[y0:y1, x0:x1].mean()))
    inside = [int(np.all((g.means >= low) & (g.means <= high), axis=1).sum()) for g in (before, after)]
    gap = np.full((args.size[1], 6, 3), 255, dtype=np.uint8)
    picture = Image.fromarray(np.concatenate([tiles[0], gap, tiles[1]], axis=1))
    draw = ImageDraw.Draw(picture)
    draw.text((6, args.size[1] - 16), f"imported upright (Auto): {len(before):,}", fill=(0, 0, 0))
    draw.text((args.size[0] + 12, args.size[1] - 16), f"head deleted with halo: {len(after):,}", fill=(0, 0, 0))
    draw.rectangle((x0, y0, x1, y1), outline=(220, 60, 40))
    draw.rectangle((args.size[0] + 6 + x0, y0, args.size[0] + 6 + x1, y1), outline=(220, 60, 40))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    picture.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"make_biker_picture: {args.out} ({os.path.getsize(args.out) // 1024} KB); axes: "
          f"{splat.get('gsseg_axes')}; head box {np.round(low, 3).tolist()} - {np.round(high, 3).tolist()}; "
          f"deleted {len(before) - len(after):,} Gaussians; in the box {inside[0]:,} -> {inside[1]:,}; "
          f"coverage of the box's image {coverage[0]:.3f} -> {coverage[1]:.3f}", flush=True)
    blender_gsseg.unregister()


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:])
