"""Formats out against PlayCanvas's splat-transform 3.7.0: error, size and time per format on real scenes.

For each scene (e.g. the public guitar and biker examples of playcanvas/engine, examples/assets/splats/) and each
format gsseg writes, the scene is written by `gsseg convert` and (where it writes the format) by splat-transform,
each file is decoded by splat-transform where it reads the format (else by gsseg; .spz by its writer, see
FORMATS), and the decoded splats are
compared with the source (core.metrics.splat_errors): RMS error of the position (relative to the largest side of
the bounding box), f_dc, opacity after the sigmoid, log-scale, rotation angle (degrees) and the SH bands 1-3. Both
writers put compressed PLYs and SOG files in the same Morton order (the compressed PLYs are the same bytes).

Usage: python bench/formats.py SCENE... --splat-transform /tmp/st/node_modules/@playcanvas/splat-transform/bin/cli.mjs
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from blender_gsseg.core.files.quantize import morton_order  # noqa: E402
from blender_gsseg.core.files.ply import write_gaussians  # noqa: E402
from blender_gsseg.core.files.splats import read_gaussians  # noqa: E402
from blender_gsseg.core.metrics import splat_errors  # noqa: E402

# format -> (splat-transform writes it, who decodes the files, the writer reorders the splats). .spz files are
# decoded by their own writer, as when the README's figures were measured: then gsseg stored RUB and
# splat-transform 3.7.0 PLY axes. Since issue 29 both store (and read) PLY axes, so either could decode both.
FORMATS = {".compressed.ply": (True, "splat-transform", True), ".sog": (True, "splat-transform", True),
           ".spz": (True, "own", False),
           ".splat": (False, "splat-transform", False), ".glb": (True, "gsseg", False)}
GOALS = "error <= 1.25x splat-transform's, size <= 1.10x, time <= splat-transform's"


def synthetic_scene(count):
    """Random SH3 Gaussians: normal positions, f_dc and SH, log-scales around -4, opacity logits around 0."""
    from blender_gsseg.core.gaussians import standard_dtype
    from blender_gsseg.core.gaussians import Gaussians

    rng = np.random.default_rng(0)
    vertex = np.zeros(count, dtype=standard_dtype(45))
    for name in vertex.dtype.names:
        vertex[name] = rng.normal(size=count)
    for k in range(3):
        vertex[f"scale_{k}"] = rng.normal(-4.0, 1.0, count)
    for k in range(45):
        vertex[f"f_rest_{k}"] *= 0.3
    return Gaussians(vertex)


def timed(command, limit=None):
    """Seconds ``command`` took, or None when it ran past ``limit`` seconds (and was stopped). The disk's dirty
    pages are flushed first, so that no writer pays for the previous one's (or the source's) write-back."""
    os.sync()
    start = time.perf_counter()
    try:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=limit)
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenes", nargs="*")
    parser.add_argument("--synthetic", type=int, metavar="N", help="also a random SH3 scene of N Gaussians")
    parser.add_argument("--synthetic-degree", type=int, default=3, metavar="D",
                        help="its SH degree (default 3; 0 lets splat-transform write .sog without its slow CPU "
                             "k-means)")
    parser.add_argument("--repeat", type=int, default=1, metavar="R",
                        help="time each writer R times and report the fastest (the disk makes single runs vary "
                             "by up to 2x on this machine)")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS),
                        help="only these formats (default all)")
    parser.add_argument("--splat-transform", required=True, help="path of splat-transform's bin/cli.mjs")
    parser.add_argument("--limit", type=float, default=900.0, metavar="S",
                        help="stop a writer after S seconds (splat-transform's CPU k-means for SOG's SH palette "
                             "takes minutes for 20k splats); its row then says so")
    args = parser.parse_args()
    # -g cpu: the SOG writer's SH k-means otherwise asks for a GPU device
    st = ["node", args.splat_transform, "-q", "-w", "-g", "cpu"]
    gsseg = [sys.executable, "-m", "blender_gsseg", "convert"]
    print(f"goals: {GOALS}\n")
    print("| scene | format | writer | size (MB) | encode (s) | position | f_dc | opacity | log-scale "
          "| rotation (°) | SH bands 1-3 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    scenes = list(args.scenes) + ([f"synthetic:{args.synthetic}:sh{args.synthetic_degree}"] if args.synthetic
                                  else [])
    for scene in scenes:
        with tempfile.TemporaryDirectory() as folder:
            source = synthetic_scene(int(scene.split(":")[1])).with_sh_degree(args.synthetic_degree) \
                if scene.startswith("synthetic:") else \
                read_gaussians(scene)
            source_ply = os.path.join(folder, "source.ply")
            write_gaussians(source_ply, source)
            order = morton_order(source.means)
            for kind, (st_writes, decoder, reorders) in FORMATS.items():
                if kind not in args.formats:
                    continue
                writers = [("gsseg", gsseg)] + ([("splat-transform", st)] if st_writes else [])
                for name, command in writers:
                    out = os.path.join(folder, f"{name}{kind}")
                    seconds = timed(command + [source_ply, out], args.limit)
                    for _ in range(args.repeat - 1):
                        if seconds is not None:
                            seconds = min(seconds, timed(command + [source_ply, out], args.limit) or seconds)
                    if seconds is None:
                        print(f"| {os.path.basename(scene)} | {kind} | {name} | | > {args.limit:.0f} (stopped) "
                              f"| | | | | | |", flush=True)
                        continue
                    if (decoder if decoder != "own" else name) == "splat-transform":
                        decoded_path = os.path.join(folder, f"{name}{kind}.decoded.ply")
                        timed(st + [out, decoded_path])
                    else:
                        decoded_path = out
                    decoded = read_gaussians(decoded_path)
                    assert len(decoded) == len(source), (kind, name, len(decoded))
                    e = splat_errors(source.subset(order) if reorders else source, decoded)
                    print(f"| {os.path.basename(scene)} | {kind} | {name} | {os.path.getsize(out) / 1e6:.2f} | "
                          f"{seconds:.2f} | {e['position']:.2e} | {e['f_dc']:.2e} | {e['opacity']:.2e} | "
                          f"{e['log_scale']:.2e} | {e['rotation_deg']:.3f} | "
                          f"{format(e['sh_rest'], '.2e') if 'sh_rest' in e else '—'} |", flush=True)


if __name__ == "__main__":
    main()
