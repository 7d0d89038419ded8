"""Formats out against PlayCanvas's splat-transform 3.7.0: error, size and time per format on real scenes.

For each scene (e.g. the public guitar and biker examples of playcanvas/engine, examples/assets/splats/) and each
format gsseg writes, the scene is written by `gsseg convert` and (where it writes the format) by splat-transform,
each file is decoded by splat-transform where it reads the format (else by gsseg; .spz by its writer, see
FORMATS), and the decoded splats are
compared with the source: RMS error of the position (relative to the largest side of the bounding box), f_dc,
opacity after the sigmoid, log-scale, and rotation angle (degrees). Both writers put compressed PLYs in the same
Morton order (checked: every decoded splat lies within its quantisation of the source's in that order).

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

from blender_gsseg.core.files.compressed import morton_order  # noqa: E402
from blender_gsseg.core.files.splats import read_gaussians, write_gaussians  # noqa: E402

# format -> (splat-transform writes it, who decodes the files, the writer reorders the splats). .spz files are
# decoded by their own writer: splat-transform 3.7.0 stores PLY axes as they are, gsseg (as the SPZ library and
# splat-transform 2.7.1) stores RUB, so each reads the other's files with y and z flipped.
FORMATS = {".compressed.ply": (True, "splat-transform", True), ".spz": (True, "own", False),
           ".splat": (False, "splat-transform", False), ".glb": (True, "gsseg", False)}
GOALS = "error <= 1.25x splat-transform's, size <= 1.10x, time <= splat-transform's"


def errors(source, decoded, order):
    """RMS errors of ``decoded`` against ``source`` taken in ``order``."""
    s = source.vertex[order]
    d = decoded.vertex
    side = float((source.means.max(axis=0) - source.means.min(axis=0)).max())
    rms = lambda a: float(np.sqrt(np.mean(np.square(a))))  # noqa: E731
    column = lambda v, names: np.stack([v[n].astype(np.float64) for n in names], axis=1)  # noqa: E731
    sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x.astype(np.float64)))  # noqa: E731
    qs = column(s, ["rot_0", "rot_1", "rot_2", "rot_3"])
    qd = column(d, ["rot_0", "rot_1", "rot_2", "rot_3"])
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    qd /= np.linalg.norm(qd, axis=1, keepdims=True)
    angle = np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(qs * qd, axis=1)), 0, 1)))
    return {"position": rms(column(d, "xyz") - column(s, "xyz")) / side,
            "f_dc": rms(column(d, ["f_dc_0", "f_dc_1", "f_dc_2"]) - column(s, ["f_dc_0", "f_dc_1", "f_dc_2"])),
            "opacity": rms(sigmoid(d["opacity"]) - sigmoid(s["opacity"])),
            "log_scale": rms(column(d, ["scale_0", "scale_1", "scale_2"])
                             - column(s, ["scale_0", "scale_1", "scale_2"])),
            "rotation_deg": rms(angle)}


def synthetic_scene(count):
    """Random SH3 Gaussians: normal positions, f_dc and SH, log-scales around -4, opacity logits around 0."""
    from blender_gsseg.core.files.compressed import standard_dtype
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


def timed(command):
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenes", nargs="*")
    parser.add_argument("--synthetic", type=int, metavar="N", help="also a random SH3 scene of N Gaussians")
    parser.add_argument("--splat-transform", required=True, help="path of splat-transform's bin/cli.mjs")
    args = parser.parse_args()
    st = ["node", args.splat_transform, "-q", "-w"]
    gsseg = [sys.executable, "-m", "blender_gsseg", "convert"]
    print(f"goals: {GOALS}\n")
    print("| scene | format | writer | size (MB) | encode (s) | position | f_dc | opacity | log-scale "
          "| rotation (°) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    scenes = list(args.scenes) + ([f"synthetic:{args.synthetic}"] if args.synthetic else [])
    for scene in scenes:
        with tempfile.TemporaryDirectory() as folder:
            source = synthetic_scene(int(scene.split(":")[1])) if scene.startswith("synthetic:") else \
                read_gaussians(scene)
            source_ply = os.path.join(folder, "source.ply")
            write_gaussians(source_ply, source)
            order = morton_order(source.means)
            for kind, (st_writes, decoder, reorders) in FORMATS.items():
                writers = [("gsseg", gsseg)] + ([("splat-transform", st)] if st_writes else [])
                for name, command in writers:
                    out = os.path.join(folder, f"{name}{kind}")
                    seconds = timed(command + [source_ply, out])
                    if (decoder if decoder != "own" else name) == "splat-transform":
                        decoded_path = os.path.join(folder, f"{name}{kind}.decoded.ply")
                        timed(st + [out, decoded_path])
                    else:
                        decoded_path = out
                    decoded = read_gaussians(decoded_path)
                    assert len(decoded) == len(source), (kind, name, len(decoded))
                    e = errors(source, decoded, order if reorders else np.arange(len(source)))
                    print(f"| {os.path.basename(scene)} | {kind} | {name} | {os.path.getsize(out) / 1e6:.2f} | "
                          f"{seconds:.2f} | {e['position']:.2e} | {e['f_dc']:.2e} | {e['opacity']:.2e} | "
                          f"{e['log_scale']:.2e} | {e['rotation_deg']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
