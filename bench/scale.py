"""Scale-out benchmark: one process against a local Dask cluster of worker processes on the same lift.

The synthetic scene of bench/accumulate.py (200k Gaussians, 30 views at 640x480, 8 labels by default) is lifted
(the accumulation only, CPU backend) by one process with every core, then by a local cluster of ``--workers``
processes with one thread each (`gsseg segment --workers N` runs the same code). Prints the times, the cluster's
start-up, what each shard sends (its views: cameras and mask readers, not the masks) and returns (its float64
partial sum, L x N x 8 bytes), the largest difference between the two results, and from the measured per-view
cost and reduction size, what N machines would take for a bigger job.

Usage: python bench/scale.py [--gaussians 200000] [--views 30] [--workers 2] [--width 640] [--height 480]
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from blender_gsseg.core.raster import cpu_kernels  # noqa: E402
from blender_gsseg.core.cluster import ClusterBackend, open_cluster  # noqa: E402
from blender_gsseg.core.files.inria_cameras import write_cameras_json  # noqa: E402
from blender_gsseg.core.files.ply import write_gaussians  # noqa: E402
from blender_gsseg.core.files.splats import read_gaussians  # noqa: E402
from blender_gsseg.core.lift.views import build_views  # noqa: E402
from synthetic.scene import make_scene  # noqa: E402

NETWORK_BYTES_PER_SECOND = 1.25e9  # 10 Gbit/s, for the N-machine estimate


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gaussians", type=int, default=200_000)
    parser.add_argument("--views", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args()

    scene = make_scene(n_spheres=6, points_per_unit_area=args.gaussians / 61.5, n_cameras=args.views,
                       width=args.width, height=args.height, seed=1)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "scene.ply")
        write_gaussians(path, scene.gaussians)
        write_cameras_json(os.path.join(folder, "cameras.json"), scene.cameras)
        os.makedirs(os.path.join(folder, "masks"))
        for camera in scene.cameras:
            Image.fromarray(scene.mask(camera).astype(np.uint8)).save(
                os.path.join(folder, "masks", camera.image_name + ".png"))
        gaussians = read_gaussians(path)
        views = build_views(os.path.join(folder, "cameras.json"), os.path.join(folder, "masks"))
        n_labels = len(views.label_ids)
        print(f"scene: {len(gaussians):,} Gaussians, {len(views)} views at {args.width}x{args.height}, "
              f"{n_labels} labels; CPU path: {'numba' if cpu_kernels.available() else 'numpy'}")

        views.accumulate(gaussians, backend="cpu")  # compile numba, warm the file cache
        start = time.perf_counter()
        single = views.accumulate(gaussians, backend="cpu")
        t_single = time.perf_counter() - start
        threads = cpu_kernels.numba.get_num_threads() if cpu_kernels.available() else 1
        print(f"one process ({threads} threads): {t_single:.2f} s ({t_single / len(views):.3f} s/view)")

        start = time.perf_counter()
        with open_cluster(workers=args.workers) as client:
            t_start = time.perf_counter() - start
            backend = ClusterBackend(client, "cpu", scene_path=path)
            # every worker reads the scene and loads the compiled walk before the clock starts
            views.subset(range(min(len(views), 2 * args.workers))).accumulate(gaussians, backend=backend)
            client.run(lambda: None)
            start = time.perf_counter()
            clustered = views.accumulate(gaussians, backend=backend)
            t_cluster = time.perf_counter() - start
        print(f"cluster of {args.workers} workers (1 thread each): {t_cluster:.2f} s "
              f"({t_single / t_cluster:.2f}x one process); start-up {t_start:.1f} s, then each worker reads the "
              f"scene from its path once")
        shards = len(backend.bytes_sent)
        print(f"{shards} shards of about {len(views) / shards:.1f} views: each sends "
              f"{np.mean(backend.bytes_sent):,.0f} bytes (cameras and mask readers) and returns {np.mean(backend.bytes_returned) / 2**20:,.1f} MiB "
              f"(its float64 partial sum, {n_labels} x {len(gaussians):,} x 8 bytes)")
        difference = np.abs(clustered.weights - single.weights).max() / np.abs(single.weights).max()
        same = (clustered.shares().solve(0.0)[0] == single.shares().solve(0.0)[0]).all()
        print(f"largest difference / largest weight: {difference:.1e}; labels {'identical' if same else 'DIFFER'}")

        per_view_one_core = t_cluster * args.workers / len(views)
        reduction = n_labels * len(gaussians) * 8
        print(f"\nper view on one core: {per_view_one_core:.3f} s; reduction per shard: {reduction / 2**20:.0f} MiB")
        big_views, big_gaussians, cores = 2000, 10_000_000, 32
        big_reduction = n_labels * big_gaussians * 8
        big_per_view = per_view_one_core * big_gaussians / len(gaussians) * 1008 * 756 / (args.width * args.height)
        print(f"a {big_gaussians / 1e6:.0f}M-Gaussian, {big_views}-view job at 1008x756 on machines of {cores} "
              f"cores (per-view cost scaled by Gaussians and pixels, {big_per_view:.1f} s per view per core; "
              f"one {big_reduction / 2**20:,.0f} MiB partial sum per machine over 10 Gbit/s):")
        for machines in (1, 4, 16, 64):
            compute = big_views * big_per_view / (machines * cores)
            transfer = machines * big_reduction / NETWORK_BYTES_PER_SECOND  # the client receives them one by one
            print(f"  {machines:3d} machines: about {(compute + transfer) / 60:.1f} min "
                  f"(compute {compute / 60:.1f} min, reduction transfer {transfer:.0f} s)")


if __name__ == "__main__":
    main()
