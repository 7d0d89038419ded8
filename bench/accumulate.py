"""CPU accumulation benchmark: a 200k-Gaussian scene, 30 views at 640x480 (the engine issue's yardstick).

Prints Gaussian-pixel alpha tests per second, seconds per view, the whole `gsseg segment` time and its peak RSS
(with the default CPU path: numba when installed), the time of a plain C loop doing the same walk
(bench/plain_walk.c, compiled here with cc and OpenMP; skipped without a compiler), then the numpy-only path's
seconds per view.
Usage: python bench/accumulate.py [--gaussians 200000] [--views 30] [--width 640] [--height 480]
       python bench/accumulate.py --real guitar.compressed.ply biker.compressed.ply [--views 24]

``--real``: real scans instead (PlayCanvas's public examples, examples/assets/splats/ of playcanvas/engine):
a ring of views from the Add View Cameras rig (core.view_rig) at 640x480 and 8-label masks (vertical
stripes: the labels' shapes do not change the walk's cost), timed for numba, CUDA (when present) and numpy,
with the estimate the Blender panel shows.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from blender_gsseg.core.raster import projection
from blender_gsseg.core.files.inria_cameras import write_cameras_json
from blender_gsseg.core.files.ply import write_gaussians
from blender_gsseg.core.raster.rasterize import iter_contributions

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root, for synthetic/
from synthetic.scene import make_scene  # noqa: E402


def scene_for(n_gaussians, views, width, height):
    # make_scene's ground is 36 square units and holds most Gaussians: pick the density for the count asked.
    scene = make_scene(n_spheres=6, points_per_unit_area=n_gaussians / 61.5, n_cameras=views, width=width,
                       height=height, seed=1)
    return scene


def count_alpha_tests(scene):
    """Gaussian-pixel pairs evaluated by the kernel rule (every pixel of every touched tile), one view."""
    covs = projection.covariances_3d(scene.gaussians.scales, scene.gaussians.rotations)
    projected = projection.project_gaussians(scene.gaussians.means, covs, scene.gaussians.opacities,
                                             scene.cameras[0])
    tiles = ((projected.tile_max - projected.tile_min).prod(axis=1) * projected.visible).sum()
    contributions = sum(len(w) for _, _, w in iter_contributions(projected))
    return int(tiles) * projection.TILE_SIZE ** 2, contributions


def plain_walk_library(folder):
    """bench/plain_walk.c compiled with the system's C compiler and OpenMP (ctypes), or None without one."""
    import ctypes
    import shutil

    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    library = os.path.join(folder, "plain_walk.so")
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plain_walk.c")
    subprocess.run([compiler, "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", source, "-o", library, "-lm"],
                   check=True)
    return ctypes.CDLL(library)


def plain_walk_seconds(library, gaussians, cameras, maps, n_labels, threads):
    """Seconds of the plain C walk over the views (the walk only, as issue 18 timed it), and its weights."""
    import ctypes

    from blender_gsseg.core.raster.rasterize import sorted_tile_pairs

    n = len(gaussians)
    out = np.zeros((threads, n_labels, n))
    covs = projection.covariances_3d(gaussians.scales, gaussians.rotations)
    pointer = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    seconds = 0.0
    for camera, index_map in zip(cameras, maps):
        projected = projection.project_gaussians(gaussians.means, covs, gaussians.opacities, camera)
        pair_ids, pair_tiles = sorted_tile_pairs(projected)
        starts = np.flatnonzero(np.r_[True, pair_tiles[1:] != pair_tiles[:-1]])
        arrays = [pair_tiles[starts].astype(np.int64), np.r_[starts, len(pair_tiles)].astype(np.int64)]
        pair = [pair_ids.astype(np.int64)] + [np.ascontiguousarray(a, dtype=np.float32) for a in (
            projected.means2d[pair_ids, 0], projected.means2d[pair_ids, 1], projected.conics[pair_ids, 0],
            projected.conics[pair_ids, 1], projected.conics[pair_ids, 2], projected.opacities[pair_ids])]
        labels = np.ascontiguousarray(index_map, dtype=np.int32)
        start = time.perf_counter()
        library.plain_walk(ctypes.c_int64(len(starts)), pointer(arrays[0]), pointer(arrays[1]),
                           ctypes.c_int64(projected.tile_grid[0]), ctypes.c_int64(camera.width),
                           ctypes.c_int64(camera.height), *[pointer(a) for a in pair], pointer(labels),
                           ctypes.c_int64(n_labels), ctypes.c_int64(n), pointer(out))
        seconds += time.perf_counter() - start
    return seconds, out.sum(axis=0)


def real_scene(path, views, width, height, numpy_views):
    """Time the accumulation of a real scan (see the module docstring) with numba and with numpy."""
    from blender_gsseg.core.lift.accumulate import accumulate_weights
    from blender_gsseg.core.raster.backends import CpuBackend, cuda_available, estimate_sample, expected_seconds, \
        planned_backend
    from blender_gsseg.core.files.splats import read_gaussians
    from blender_gsseg.core.scene.view_rig import view_rig

    gaussians = read_gaussians(path)
    means = gaussians.means.astype(np.float64)
    centre = np.median(means, axis=0)
    radius = float(np.percentile(np.linalg.norm(means - centre, axis=1), 90))
    cameras = view_rig(centre, radius, count=views, width=width, height=height, up=(0.0, -1.0, 0.0))
    stripes = np.broadcast_to((np.arange(width) * 8 // width)[None, :], (height, width)).astype(np.int32)
    maps, label_ids = [stripes] * views, np.arange(8)
    covs = projection.covariances_3d(gaussians.scales, gaussians.rotations)
    tests = 0
    for camera in cameras:
        projected = projection.project_gaussians(gaussians.means, covs, gaussians.opacities, camera)
        tests += int(((projected.tile_max - projected.tile_min).prod(axis=1) * projected.visible).sum()) * 256
    print(f"{os.path.basename(path)}: {len(gaussians):,} Gaussians, {views} views at {width}x{height}, "
          f"{tests / views:,.0f} kernel-rule alpha tests per view")
    flavour, description = planned_backend("auto")
    estimate = expected_seconds(estimate_sample(gaussians), len(gaussians), cameras, flavour)
    print(f"  the panel's estimate: {estimate:.1f} s on {description}")
    numba_seconds = None
    if CpuBackend().use_numba:
        accumulate_weights(gaussians, cameras[:1], maps[:1], label_ids, backend=CpuBackend())  # compile
        start = time.perf_counter()
        accumulation = accumulate_weights(gaussians, cameras, maps, label_ids, backend=CpuBackend())
        seconds = time.perf_counter() - start
        numba_seconds = seconds
        print(f"  numba: {seconds:.2f} s ({seconds / views:.3f} s/view, {tests / seconds / 1e6:.0f} M tests/s); "
              f"total weight {accumulation.weights.sum():.6g}")
    with tempfile.TemporaryDirectory() as folder:
        library = plain_walk_library(folder)
        if library is not None:
            from blender_gsseg.core.raster import cpu_kernels
            threads = cpu_kernels.numba.get_num_threads() if cpu_kernels.available() else os.cpu_count()
            seconds, plain = plain_walk_seconds(library, gaussians, cameras, maps, len(label_ids), threads)
            print(f"  plain C loop (bench/plain_walk.c): {seconds:.2f} s ({seconds / views:.3f} s/view, "
                  f"{tests / seconds / 1e6:.0f} M tests/s); its total weight {plain.sum():.6g}")
            if numba_seconds:
                print(f"  numba takes {numba_seconds / seconds:.2f}x the plain C loop's time")
    if cuda_available():
        from blender_gsseg.core.raster.cuda_backend import CudaBackend
        accumulate_weights(gaussians, cameras[:1], maps[:1], label_ids, backend=CudaBackend())  # compile
        start = time.perf_counter()
        accumulate_weights(gaussians, cameras, maps, label_ids, backend=CudaBackend())
        seconds = time.perf_counter() - start
        print(f"  cuda: {seconds:.2f} s ({seconds / views:.4f} s/view, {tests / seconds / 1e6:.0f} M tests/s)")
    if numpy_views:
        start = time.perf_counter()
        accumulate_weights(gaussians, cameras[:numpy_views], maps[:numpy_views], label_ids,
                           backend=CpuBackend(use_numba=False))
        per_view = (time.perf_counter() - start) / numpy_views
        print(f"  numpy: {per_view:.3f} s/view over {numpy_views} views (~{per_view * views:.0f} s for all)")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gaussians", type=int, default=200_000)
    parser.add_argument("--views", type=int, default=30)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--numpy-views", type=int, default=3, help="also time the numpy-only path on this many "
                        "views (0: skip)")
    parser.add_argument("--real", nargs="+", metavar="SPLAT", help="time real scans instead (module docstring)")
    args = parser.parse_args()
    if args.real:
        for path in args.real:
            real_scene(path, args.views if args.views != 30 else 24, args.width, args.height, args.numpy_views)
        return

    scene = scene_for(args.gaussians, args.views, args.width, args.height)
    with tempfile.TemporaryDirectory() as folder:
        write_gaussians(os.path.join(folder, "scene.ply"), scene.gaussians)
        write_cameras_json(os.path.join(folder, "cameras.json"), scene.cameras)
        os.makedirs(os.path.join(folder, "masks"))
        for camera in scene.cameras:
            Image.fromarray(scene.mask(camera).astype(np.uint8)).save(
                os.path.join(folder, "masks", camera.image_name + ".png"))
        tests, contributions = count_alpha_tests(scene)

        start = time.perf_counter()
        child = subprocess.run(
            [sys.executable, "-m", "blender_gsseg", "segment", os.path.join(folder, "scene.ply"),
             "--cameras", os.path.join(folder, "cameras.json"), "--masks", os.path.join(folder, "masks"),
             "-o", os.path.join(folder, "out.ply"), "--backend", "cpu",
             "--report", os.path.join(folder, "report.json")],
            capture_output=True, text=True)
        wall = time.perf_counter() - start
        if child.returncode:
            sys.exit(child.stderr)
        import json
        report = json.load(open(os.path.join(folder, "report.json")))
    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    accumulate = report["timings"]["accumulate_s"]
    print(f"scene: {len(scene.gaussians)} Gaussians, {args.views} views at {args.width}x{args.height}")
    print(f"kernel-rule alpha tests per view (every pixel of touched tiles): {tests:,}")
    print(f"contributions per view (w > 0 after the alpha/T rules): {contributions:,}")
    print(f"accumulate: {accumulate:.2f} s  ({accumulate / args.views:.3f} s/view, "
          f"{tests * args.views / accumulate / 1e6:.0f} M kernel-rule tests/s)")
    print(f"gsseg segment wall time: {wall:.2f} s   peak RSS: {peak_rss_mb:.0f} MB")
    print("timings:", {k: round(v, 3) for k, v in report["timings"].items()})
    with tempfile.TemporaryDirectory() as folder:
        library = plain_walk_library(folder)
        if library is not None:
            from blender_gsseg.core.raster import cpu_kernels
            maps = [scene.mask(camera).astype(np.int32) for camera in scene.cameras]
            threads = cpu_kernels.numba.get_num_threads() if cpu_kernels.available() else os.cpu_count()
            seconds, _ = plain_walk_seconds(library, scene.gaussians, scene.cameras, maps,
                                            int(max(m.max() for m in maps)) + 1, threads)
            print(f"plain C loop (bench/plain_walk.c, {threads} threads): {seconds:.2f} s; the accumulation takes "
                  f"{accumulate / seconds:.2f}x its time")
    if args.numpy_views:
        from blender_gsseg.core.lift.accumulate import accumulate_weights
        from blender_gsseg.core.raster.backends import CpuBackend

        cameras = scene.cameras[:args.numpy_views]
        maps = [scene.mask(camera).astype(np.int32) for camera in cameras]
        start = time.perf_counter()
        accumulate_weights(scene.gaussians, cameras, maps, np.arange(int(max(m.max() for m in maps)) + 1),
                           backend=CpuBackend(use_numba=False))
        per_view = (time.perf_counter() - start) / len(cameras)
        print(f"numpy-only path: {per_view:.3f} s/view (over {len(cameras)} views; "
              f"~{per_view * args.views:.0f} s for all {args.views})")


if __name__ == "__main__":
    main()
