"""Fidelity and cost of the Blender splat display (issue 13).

    python bench/display.py [--views 6] [--samples 16] [--cycles-views 1] [--cycles-samples 32]
                            [--timing-count 1000000] [--skip-timing] [--skip-fidelity] [--out bench/results]
                            [--picture docs/images/display_vs_rasterizer.png]

Fidelity: held-out views of the bundled demo (SH degree 0, with the faint Gaussians and floaters of a trained
splat) and of an SH degree 3 scene (``bench/make_scene.py --sh 3``) rendered by the installed add-on (headless
bpy, the splat display and, for comparison, the point display) with EEVEE and Cycles, against
``core.render.render_colour`` with every SH band at the same cameras: same resolution, view transform "Standard",
the same plain background. PSNR and SSIM per view. Goal: every view >= 25 dB, mean >= 30 dB.

Cost: a random SH3 scene of ``--timing-count`` Gaussians: the import, the first evaluation of the display, and
for a sequence of scene-camera positions the display's re-evaluation (the modifier's own execution time: the
re-sort, view-dependent colours and boxes) and the re-sort alone (a group that only sorts the points). Goal: the
re-sort <= 200 ms; the display's setup no more than the import's own time. Memory: process RSS growth.

Writes ``display.json`` and ``display.md`` to --out, and the side-by-side picture (points | splat display |
rasterizer) of the first demo view.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

from blender_harness import run_bpy  # noqa: E402  (the tests' runner of headless bpy children)

from blender_gsseg.core.files.camera_files import load_cameras  # noqa: E402
from blender_gsseg.core.files.ply import write_gaussians  # noqa: E402
from blender_gsseg.core.files.splats import read_gaussians  # noqa: E402
from blender_gsseg.core.gaussians import Gaussians  # noqa: E402
from blender_gsseg.core.metrics import psnr, ssim  # noqa: E402
from blender_gsseg.core.raster.render import render_colour  # noqa: E402

DEMO = os.path.join(REPO, "blender_gsseg", "data", "demo")
BACKGROUND = (0.3, 0.3, 0.3)
GOAL_VIEW_DB, GOAL_MEAN_DB, GOAL_SORT_S = 25.0, 30.0, 0.2


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--views", type=int, default=6, help="held-out views per scene (EEVEE)")
    parser.add_argument("--samples", type=int, default=16, help="EEVEE samples")
    parser.add_argument("--cycles-views", type=int, default=1)
    parser.add_argument("--cycles-samples", type=int, default=32)
    parser.add_argument("--timing-count", type=int, default=1_000_000)
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-fidelity", action="store_true", help="keep the fidelity figures of --out")
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    parser.add_argument("--picture", default=os.path.join(REPO, "docs", "images", "display_vs_rasterizer.png"))
    return parser.parse_args(argv)


def read_png(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def view_name(camera):
    return os.path.splitext(os.path.basename(camera.image_name))[0]


def fidelity(name, ply, cameras_path, views, engine, samples, work, displays=("SPLAT", "POINTS")):
    """{display: [{view, psnr, ssim, seconds, path}]} of ``engine`` renders against render_colour."""
    cameras = load_cameras(cameras_path)[:views]
    gaussians = read_gaussians(ply)
    out = os.path.join(work, f"{name}_{engine.lower()}")
    os.makedirs(out, exist_ok=True)
    result = run_bpy("display_render.py", home=os.path.join(work, "home"), timeout=6 * 3600, args={
        "ply": ply, "cameras": cameras_path, "views": [view_name(c) for c in cameras], "engine": engine,
        "samples": samples, "background": BACKGROUND, "settings": [{"display": d} for d in displays],
        "out": out})
    references = [render_colour(gaussians, camera, background=BACKGROUND, sh_degree=None)[0] for camera in cameras]
    scores = {}
    seconds = iter(result["seconds"])
    for display, paths in zip(displays, result["renders"]):
        scores[display] = []
        for camera, path, reference in zip(cameras, paths, references):
            image = read_png(path)
            scores[display].append({"view": view_name(camera), "psnr": psnr(image, reference),
                                    "ssim": ssim(image, reference), "seconds": next(seconds), "path": path})
    return scores, references, result["blender"]


def sh3_scene(work):
    folder = os.path.join(work, "sh3")
    subprocess.run([sys.executable, os.path.join(REPO, "bench", "make_scene.py"), "-o", folder, "--lift", "2",
                    "--heldout", "6", "--sh", "3", "--kinds", "trained"], check=True, stdout=subprocess.DEVNULL)
    return os.path.join(folder, "scene_trained.ply"), os.path.join(folder, "cameras_heldout.json")


def cached_sh3_scene(prefix, count):
    """A new temporary folder (``prefix``) holding ``timing.ply`` (:func:`random_sh3_scene`), read once so that
    the timed imports find it in the page cache; returns (folder, path)."""
    work = tempfile.mkdtemp(prefix=prefix)
    ply = os.path.join(work, "timing.ply")
    random_sh3_scene(ply, count)
    with open(ply, "rb") as handle:
        while handle.read(1 << 24):
            pass
    return work, ply


def random_sh3_scene(path, count, seed=0):
    """``count`` Gaussians in a 4 m box: random rotations, log-normal sizes, opacities of a trained splat."""
    rng = np.random.default_rng(seed)
    names = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(45)]
             + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])
    vertex = np.zeros(count, dtype=[(name, "<f4") for name in names])
    for axis, name in enumerate("xyz"):
        vertex[name] = rng.uniform(-2.0, 2.0, count)
    for name in ("f_dc_0", "f_dc_1", "f_dc_2"):
        vertex[name] = rng.normal(0.0, 1.0, count)
    for index in range(45):
        vertex[f"f_rest_{index}"] = rng.normal(0.0, 0.1, count)
    vertex["opacity"] = rng.normal(0.0, 2.0, count)
    for axis in range(3):
        vertex[f"scale_{axis}"] = rng.normal(np.log(0.01), 0.8, count)
    quaternions = rng.normal(size=(count, 4))
    for axis in range(4):
        vertex[f"rot_{axis}"] = quaternions[:, axis]
    write_gaussians(path, Gaussians(vertex))


def timing(count, work):
    ply = os.path.join(work, "timing.ply")
    random_sh3_scene(ply, count)
    angles = np.linspace(0.0, 2.0 * np.pi, 9)[:-1]
    positions = [(6.0 * np.cos(a), 6.0 * np.sin(a), 2.0 + np.sin(3 * a)) for a in angles]
    return run_bpy("display_timing.py", home=os.path.join(work, "home"), timeout=3600, args={
        "ply": ply, "positions": positions, "target": (0.0, 0.0, 0.0), "sort_only": True})


def side_by_side(path, panels, titles):
    height, width = panels[0].shape[:2]
    picture = Image.new("RGB", (width * len(panels), height + 18), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    for index, (panel, title) in enumerate(zip(panels, titles)):
        picture.paste(Image.fromarray((np.clip(panel, 0, 1) * 255 + 0.5).astype(np.uint8)), (index * width, 18))
        draw.text((index * width + 4, 3), title, fill=(0, 0, 0))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    picture.save(path, optimize=True)


def table(rows):
    lines = ["| scene | engine | display | view | PSNR (dB) | SSIM | render (s) |", "|---|---|---|---|---|---|---|"]
    for scene, engine, display, score in rows:
        lines.append(f"| {scene} | {engine} | {display} | {score['view']} | {score['psnr']:.2f} | "
                     f"{score['ssim']:.4f} | {score['seconds']:.1f} |")
    return "\n".join(lines)


def main(argv):
    args = parse(argv)
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="gsseg-display-")
    scenes = {} if args.skip_fidelity else {
        "demo": (os.path.join(DEMO, "scene_trained.ply"), os.path.join(DEMO, "cameras_heldout.json")),
        "sh3": sh3_scene(work)}
    report = {"goal": {"view_db": GOAL_VIEW_DB, "mean_db": GOAL_MEAN_DB, "sort_s": GOAL_SORT_S}, "fidelity": {}}
    rows = []
    if args.skip_fidelity:
        with open(os.path.join(args.out, "display.json"), encoding="utf-8") as handle:
            kept = json.load(handle)
        report["fidelity"], report["blender"] = kept["fidelity"], kept.get("blender", "?")
        for key, value in kept["fidelity"].items():
            rows += [tuple(key.split("/")) + (score,) for score in value["views"]]
        scenes = {}
    for scene, (ply, cameras_path) in scenes.items():
        for engine, views, samples, displays in (("EEVEE", args.views, args.samples, ("SPLAT", "POINTS")),
                                                 ("CYCLES", args.cycles_views, args.cycles_samples, ("SPLAT",))):
            if views <= 0:
                continue
            scores, references, blender = fidelity(scene, ply, cameras_path, views, engine, samples, work, displays)
            report["blender"] = blender
            for display, per_view in scores.items():
                values = [s["psnr"] for s in per_view]
                report["fidelity"][f"{scene}/{engine}/{display}"] = {
                    "views": [{k: v for k, v in s.items() if k != "path"} for s in per_view],
                    "mean_psnr": float(np.mean(values)), "min_psnr": float(np.min(values)),
                    "mean_ssim": float(np.mean([s["ssim"] for s in per_view]))}
                rows += [(scene, engine, display, s) for s in per_view]
                print(f"{scene} {engine} {display}: PSNR mean {np.mean(values):.2f} dB, min {np.min(values):.2f} dB",
                      flush=True)
            if scene == "demo" and engine == "EEVEE":
                side_by_side(args.picture, [read_png(scores["POINTS"][0]["path"]),
                                            read_png(scores["SPLAT"][0]["path"]), references[0]],
                             ["point display (before)", "splat display (EEVEE)", "rasterizer (render_colour)"])
    if not args.skip_timing:
        result = timing(args.timing_count, work)
        report["timing"] = {key: result[key] for key in ("import_s", "setup_s", "evaluate_s", "sort_s", "drawn",
                                                         "faces", "rss_mb", "rss_mb_before", "depth_order_ok")}
        report["timing"]["count"] = args.timing_count
        print(f"timing: import {result['import_s']:.2f} s, first evaluation {result['setup_s']:.2f} s, "
              f"re-evaluation median {np.median(result['evaluate_s']):.2f} s, re-sort alone median "
              f"{np.median(result['sort_s']) * 1000:.0f} ms, RSS {result['rss_mb'] - result['rss_mb_before']:.0f} MB",
              flush=True)
    with open(os.path.join(args.out, "display.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    with open(os.path.join(args.out, "display.md"), "w", encoding="utf-8") as handle:
        handle.write(f"# Splat display against the rasterizer (Blender {report.get('blender', '?')})\n\n")
        handle.write(f"Produced by `python bench/display.py` (EEVEE {args.samples} samples, Cycles "
                     f"{args.cycles_samples} samples, 256x192, background {BACKGROUND}).\n\n")
        summary = ["| scene / engine / display | mean PSNR (dB) | min PSNR (dB) | mean SSIM |", "|---|---|---|---|"]
        for key, value in report["fidelity"].items():
            summary.append(f"| {key} | {value['mean_psnr']:.2f} | {value['min_psnr']:.2f} | {value['mean_ssim']:.4f} |")
        handle.write("\n".join(summary) + "\n\n" + table(rows) + "\n")
        if "timing" in report:
            t = report["timing"]
            handle.write(f"\n## Cost at {t['count']:,} Gaussians (SH 3)\n\n"
                         f"- import {t['import_s']:.2f} s; first evaluation of the display {t['setup_s']:.2f} s\n"
                         f"- re-evaluation per camera position (median of {len(t['evaluate_s'])}): "
                         f"{np.median(t['evaluate_s']):.2f} s; the re-sort alone: "
                         f"{np.median(t['sort_s']) * 1000:.0f} ms\n"
                         f"- {t['drawn']:,} boxes drawn ({t['faces']:,} faces); process memory grew by "
                         f"{t['rss_mb'] - t['rss_mb_before']:.0f} MB\n")
    print(f"wrote {os.path.join(args.out, 'display.md')}")


if __name__ == "__main__":
    main(sys.argv[1:])
