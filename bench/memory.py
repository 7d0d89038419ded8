"""Dense vs bounded accumulation: 1M Gaussians with 8, 64, 256 and 1024 labels.

Each run is a child process (so its peak RSS is its own): a random scene, a few views, random blocky label maps.
Prints time and peak RSS per mode and whether the primary labels (gamma 0 and 0.5) are identical.
Usage: python bench/memory.py [--gaussians 1000000] [--views 4] [--labels 8 64 256 1024]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def child(mode, n_gaussians, n_labels, n_views, out):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from blender_gsseg.core.lift.accumulate import accumulate_weights
    from blender_gsseg.core.lift.solver import Shares
    from blender_gsseg.core.cameras import ring_cameras
    from scenes import gaussians_from_arrays

    rng = np.random.default_rng(0)
    means = rng.normal(0, 1.0, (n_gaussians, 3))
    scene = gaussians_from_arrays(means, rng.normal(-4.0, 0.5, (n_gaussians, 3)), rng.normal(size=(n_gaussians, 4)),
                                  rng.normal(1.0, 1.0, n_gaussians))
    cameras = ring_cameras(n_views, 320, 240, radius=5.0, height_above=1.0)
    maps = []
    for camera in cameras:
        coarse = rng.integers(0, n_labels, (camera.height // 4, camera.width // 4))
        maps.append(np.kron(coarse, np.ones((4, 4), int)).astype(np.int32))
    start = time.perf_counter()
    accumulation = accumulate_weights(scene, cameras, maps, np.arange(n_labels), backend="cpu", mode=mode)
    seconds = time.perf_counter() - start
    shares = Shares.from_accumulation(accumulation)
    np.save(out, np.stack([shares.solve(0.0)[0], shares.solve(0.5)[0]]))
    import resource as res
    print(json.dumps({"seconds": seconds, "peak_rss_mb": res.getrusage(res.RUSAGE_SELF).ru_maxrss / 1024}))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gaussians", type=int, default=1_000_000)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--labels", type=int, nargs="+", default=[8, 64, 256, 1024])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, n_labels, n_views, out = args.child
        child(mode, args.gaussians, int(n_labels), int(n_views), out)
        return
    total_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"{args.gaussians} Gaussians, {args.views} views at 320x240, machine RAM {total_gb:.0f} GB")
    print(f"{'labels':>6} {'mode':>8} {'seconds':>8} {'peak RSS MB':>12}  labels identical")
    with tempfile.TemporaryDirectory() as folder:
        for n_labels in args.labels:
            results = {}
            for mode in ("dense", "bounded"):
                dense_bytes = args.gaussians * n_labels * 20
                if mode == "dense" and dense_bytes > 0.7 * total_gb * 2**30:
                    print(f"{n_labels:>6} {mode:>8} {'-':>8} {'-':>12}  (dense needs ~{dense_bytes / 2**30:.0f} GB)")
                    continue
                out = os.path.join(folder, f"{mode}_{n_labels}.npy")
                run = subprocess.run([sys.executable, __file__, "--gaussians", str(args.gaussians), "--child", mode,
                                      str(n_labels), str(args.views), out], capture_output=True, text=True)
                if run.returncode:
                    print(run.stderr)
                    continue
                figures = json.loads(run.stdout.strip().splitlines()[-1])
                results[mode] = np.load(out)
                same = ""
                if mode == "bounded" and "dense" in results:
                    same = "yes" if np.array_equal(results["dense"], results["bounded"]) else "NO"
                print(f"{n_labels:>6} {mode:>8} {figures['seconds']:>8.1f} {figures['peak_rss_mb']:>12.0f}  {same}")


if __name__ == "__main__":
    main()
