"""PLY IO benchmark: read and write a 1M-Gaussian SH-degree-3 PLY with gsseg, and with Blender's own
PLY importer/exporter (bpy.ops.wm.ply_import / ply_export) on the same file in the same run.

Usage: python bench/io.py [--gaussians 1000000] [--no-blender]
"""

import argparse
import os
import tempfile
import time

import numpy as np

from blender_gsseg.core.files.ply import write_gaussians
from blender_gsseg.core.files.splats import read_gaussians
from blender_gsseg.core.gaussians import Gaussians

NAMES = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(45)]
         + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def best_of(repeats, action):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gaussians", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-blender", action="store_true")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    vertex = np.zeros(args.gaussians, dtype=[(name, "<f4") for name in NAMES])
    for name in NAMES:
        vertex[name] = rng.normal(size=args.gaussians).astype(np.float32)
    scene = Gaussians(vertex)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "scene.ply")
        write_gaussians(path, scene)
        size_mb = os.path.getsize(path) / 2**20
        print(f"{args.gaussians} Gaussians, SH degree 3, {len(NAMES)} float properties, {size_mb:.0f} MB")
        read_s = best_of(args.repeats, lambda: read_gaussians(path))
        loaded = read_gaussians(path)
        write_s = best_of(args.repeats, lambda: write_gaussians(os.path.join(folder, "out.ply"), loaded))
        print(f"gsseg read (with NaN/Inf check): {read_s:.3f} s")
        print(f"gsseg write:                     {write_s:.3f} s")
        if args.no_blender:
            return
        import bpy

        def blender_import():
            bpy.ops.wm.read_factory_settings(use_empty=True)
            bpy.ops.wm.ply_import(filepath=path)

        import_s = best_of(args.repeats, blender_import)
        export_s = best_of(args.repeats, lambda: bpy.ops.wm.ply_export(
            filepath=os.path.join(folder, "blender_out.ply"), export_selected_objects=False, ascii_format=False))
        print(f"Blender ply_import:              {import_s:.3f} s   (gsseg read / Blender: {read_s / import_s:.2f})")
        print(f"Blender ply_export:              {export_s:.3f} s   (gsseg write / Blender: {write_s / export_s:.2f})")


if __name__ == "__main__":
    main()
