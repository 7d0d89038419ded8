"""Blender 5.3's own drawing of Gaussian splats (issue 27) against gsseg's rasterizer, and where they differ.

    python bench/native_display.py [--engine CYCLES] [--samples 16] [--views 2] [--scale 0.25] [--release 5.3]
                                   [--out bench/results] [--name native_display]

The bundled demo's held-out views: gsseg's Import Splat on a release with native splats makes Blender's own
``GAUSSIAN_SPLAT`` point cloud (tests/blender_scripts/display_render.py renders it as an F12 does: view
transform "Standard", the same plain background), against ``core.render.render_colour`` at the same cameras
(``--scale`` of their size: EEVEE in software GL takes minutes a frame here). Two references per view: the
rasterizer as is (3DGS colours are display values), and the rasterizer run in scene-linear light with the
background linearised and then encoded with the sRGB curve, which is what Blender does if it reads the splat
colours as scene-linear (it does not: that reference scores far lower). Where the rest comes from, per view: the
background alone (pixels the rasterizer leaves at the background colour), the share of the squared error on the
10 % of pixels with the steepest gradient of the reference (edges: footprint, pixel filter, sorting), and the mean
offset (a brightness shift).

Writes ``NAME.json`` and ``NAME.md`` to --out (``bench/results/native_display.*``: Cycles;
``native_display_eevee.*``: ``--engine EEVEE --name native_display_eevee``).
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

from blender_harness import run_bpy  # noqa: E402  (the tests' runner of headless bpy children)

from blender_gsseg.core.files.camera_files import load_cameras  # noqa: E402
from blender_gsseg.core.files.inria_cameras import write_cameras_json  # noqa: E402
from blender_gsseg.core.files.splats import read_gaussians  # noqa: E402
from blender_gsseg.core.metrics import psnr, ssim  # noqa: E402
from blender_gsseg.core.raster.render import render_colour  # noqa: E402

DEMO = os.path.join(REPO, "blender_gsseg", "data", "demo")
BACKGROUND = (0.3, 0.3, 0.3)


def srgb_to_linear(values):
    values = np.asarray(values, dtype=np.float64)
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(values):
    values = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    return np.where(values <= 0.0031308, 12.92 * values, 1.055 * values ** (1 / 2.4) - 0.055)


def where_it_differs(rendered, reference):
    difference = rendered - reference
    background = np.all(np.abs(reference - np.asarray(BACKGROUND)) < 1e-6, axis=2)
    gy, gx = np.gradient(reference.mean(axis=2))
    gradient = np.hypot(gx, gy)
    edges = gradient > np.percentile(gradient, 90)
    squared = (difference ** 2).sum(axis=2)
    return {"background_mean": rendered[background].mean(axis=0).tolist() if background.any() else None,
            "background_share": float(background.mean()),
            "edge_error_share": float(squared[edges].sum() / squared.sum()),
            "mean_offset": float(difference.mean())}


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="CYCLES", choices=["CYCLES", "EEVEE"])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--scale", type=float, default=0.25)
    parser.add_argument("--release", default="5.3")
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    parser.add_argument("--name", default="native_display", help="the outputs' file name, without its ending")
    return parser.parse_args(argv)


def main(argv):
    args = parse(argv)
    work = tempfile.mkdtemp(prefix="gsseg-native-display-")
    ply = os.path.join(DEMO, "scene_trained.ply")
    cameras = [c.scaled(args.scale) for c in load_cameras(os.path.join(DEMO, "cameras_heldout.json"))[:args.views]]
    cameras_path = os.path.join(work, "cameras.json")
    write_cameras_json(cameras_path, cameras)
    cameras = load_cameras(cameras_path)
    names = [os.path.splitext(os.path.basename(c.image_name))[0] for c in cameras]
    result = run_bpy("display_render.py", home=os.path.join(work, "home"), blender=args.release, timeout=6 * 3600,
                     args={"ply": ply, "cameras": cameras_path, "views": names, "engine": args.engine,
                           "samples": args.samples, "background": BACKGROUND, "settings": [{"display": "SPLAT"}],
                           "import_display": "NATIVE",
                           "out": work})
    gaussians = read_gaussians(ply)
    rows = []
    for camera, name, path, seconds in zip(cameras, names, result["renders"][0], result["seconds"], strict=True):
        with Image.open(path) as image:
            rendered = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
        display = render_colour(gaussians, camera, background=BACKGROUND, sh_degree=None)[0]
        linear = render_colour(gaussians, camera, background=tuple(srgb_to_linear(BACKGROUND)), sh_degree=None)[0]
        encoded = linear_to_srgb(linear)
        rows.append({"view": name, "size": [camera.width, camera.height], "seconds": seconds,
                     "psnr": psnr(rendered, display), "ssim": ssim(rendered, display),
                     "psnr_colour_managed": psnr(rendered, encoded), "ssim_colour_managed": ssim(rendered, encoded),
                     "mean_rgb": rendered.reshape(-1, 3).mean(0).tolist(), **where_it_differs(rendered, display),
                     "mean_rgb_rasterizer": display.reshape(-1, 3).mean(0).tolist()})
        print(f"{name}: {rows[-1]['psnr']:.1f} dB against the rasterizer, {rows[-1]['psnr_colour_managed']:.1f} dB "
              f"against it colour-managed ({seconds:.0f} s)", flush=True)
    report = {"blender": result["blender"], "object": result.get("object"), "engine": args.engine,
              "samples": args.samples, "scale": args.scale, "views": rows}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, args.name + ".json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    lines = [f"# Blender {result['blender']}'s own splats ({result.get('object')}) against the rasterizer",
             "", f"`python bench/native_display.py --engine {args.engine} --samples {args.samples} --views "
             f"{args.views} --scale {args.scale}`: the demo's held-out views.", "",
             "| view | size | PSNR | SSIM | PSNR against the scene-linear hypothesis | squared error on the edges "
             "(top 10 % gradient) | mean offset | background | seconds |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        background = "—" if row["background_mean"] is None else f"{np.mean(row['background_mean']):.4f}"
        lines.append(f"| {row['view']} | {row['size'][0]}×{row['size'][1]} | {row['psnr']:.1f} dB | "
                     f"{row['ssim']:.3f} | "
                     f"{row['psnr_colour_managed']:.1f} dB | {100 * row['edge_error_share']:.0f} % | "
                     f"{row['mean_offset']:+.4f} | {background} (set {BACKGROUND[0]}) | {row['seconds']:.0f} |")
    with open(os.path.join(args.out, args.name + ".md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
