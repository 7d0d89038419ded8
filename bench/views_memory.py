"""Peak memory of the lifting views: masks decoded per view (build_views) against all held at once.

Writes N label masks of W x H (8 labels, blocky) and a camera ring, then in one child process each (so the
peak RSS is its own): build_views + the accumulation of a small scene over all the views, and the same with
every label map decoded up front (what gsseg held before: 2000 views at 1008 x 756 are about 9 GB of int32 maps
and their int16 index maps). Prints seconds and peak RSS of both.
Usage: python bench/views_memory.py [--views 200] [--width 1008] [--height 756]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def child(folder, eager):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from blender_gsseg.core.lift.views import build_views
    from scenes import random_scene

    start = time.perf_counter()
    views = build_views(os.path.join(folder, "cameras.json"), os.path.join(folder, "masks"))
    held = [np.asarray(m) for m in views.index_maps()] if eager else None  # the old way: every map at once
    views.accumulate(random_scene(0, n=200), backend="cpu")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_mb": peak, "views": len(views),
                      "held": len(held or [])}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=200)
    parser.add_argument("--width", type=int, default=1008)
    parser.add_argument("--height", type=int, default=756)
    args = parser.parse_args()
    from PIL import Image

    from blender_gsseg.core.cameras import ring_cameras
    from blender_gsseg.core.files.inria_cameras import write_cameras_json

    with tempfile.TemporaryDirectory() as folder:
        cameras = ring_cameras(args.views, args.width, args.height, radius=5.0, height_above=1.0)
        write_cameras_json(os.path.join(folder, "cameras.json"), cameras)
        os.mkdir(os.path.join(folder, "masks"))
        rng = np.random.default_rng(0)
        for camera in cameras:
            blocks = rng.integers(0, 8, (args.height // 28 + 1, args.width // 28 + 1)).astype(np.uint8)
            mask = np.kron(blocks, np.ones((28, 28), np.uint8))[:args.height, :args.width]
            Image.fromarray(mask).save(os.path.join(folder, "masks", camera.image_name + ".png"))
        for eager in (False, True):
            out = subprocess.run([sys.executable, __file__, "--child", folder, str(int(eager))], check=True,
                                 capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            print(f"{'all maps held (before)' if eager else 'per view (build_views)':24s} {result['views']} views "
                  f"{args.width}x{args.height}: {result['seconds']:.1f} s, peak RSS {result['peak_mb']:.0f} MB")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], bool(int(sys.argv[3])))
    else:
        main()
