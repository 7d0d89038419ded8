"""Per-view ids (issue 31): quality, time and peak memory of the associated lift against the consistent-id lift.

For each scene, the same views' consistent label maps are lifted as they are (the reference), and turned into
SAM-style folders (synthetic/sam_folders.py: random ids per view, merges of touching objects, objects split
into parts with the whole sometimes given too, the ground a mask in half the views, 1 px boundary jitter) and
lifted through `segment` (association, then the lift). Reported per scene and mask kind (clean, noisy):

* per-Gaussian accuracy: predicted ids matched one-to-one to the true ids (greedy by shared Gaussians, largest
  first), over the Gaussians the truth labels; a Gaussian left unseen counts as wrong;
* held-out mIoU / mAcc: the labels mapped to the true ids the same way, rendered at held-out cameras (subset
  rule) against exact masks;
* the ratio associated / consistent of both, the instance count against the truth (objects + the ground);
* seconds of the association (per-view pass + matching; the lift of the re-numbered maps is summed from the
  pass, so "associated_lift" is ~0) against the consistent lift's accumulation, and the peak traced memory
  (tracemalloc) of each whole segment_scene call, and the size of the per-view pass's sparse entries.
Results of a run: bench/results/associate.md.

Scenes: the bundled demo (12 lifting views; clean Cycles masks and the SAM-like noisy ones; 6 held-out views)
and a synthetic scene (spheres on a plane, exact ray-cast masks; --gaussians sets its size). ``--large`` runs the
1M-Gaussian x 200 views x ~40 masks size (30 spheres; too big for a small shared machine: hours on 2 CPU
cores, and the spheres of make_scene's ring overlap at that count: a timing run, not a quality one).
``--real SPLAT`` adds real scans (the public PlayCanvas biker or guitar): they come with no cameras or masks, so
their objects are k-means regions of the opaque splats, seen by a rig of cameras (see real_runs).
Usage: python bench/associate.py [--scenes demo synthetic] [--gaussians 60000] [--views 24] [--spheres 5]
       [--real SPLAT ...] [--large]
"""

import argparse
import json
import os
import sys
import tempfile
import time
import tracemalloc

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from blender_gsseg.core.files.camera_files import load_cameras  # noqa: E402
from blender_gsseg.core.files.splats import read_gaussians  # noqa: E402
from blender_gsseg.core.metrics import matched_labels, segmentation_metrics  # noqa: E402
from blender_gsseg.core.pipeline import segment_scene  # noqa: E402
from blender_gsseg.core.raster.backends import get_backend  # noqa: E402
from blender_gsseg.core.raster.render import render_labels  # noqa: E402
from blender_gsseg.demo import DEMO_DATA, demo_paths  # noqa: E402
from synthetic.mask_noise import noisy_masks  # noqa: E402
from synthetic.sam_folders import SamStyle, write_sam_folders  # noqa: E402


def evaluate(gaussians, labels, truth_labels, held_cameras, held_truths, backend):
    named = matched_labels(labels, truth_labels)
    accuracy = float(np.mean(named == truth_labels))
    predictions = [render_labels(gaussians, named, camera, "subset", backend=backend) for camera in held_cameras]
    metrics = segmentation_metrics(predictions, held_truths)
    return {"accuracy": round(accuracy, 4), "miou": round(metrics["miou"], 4), "macc": round(metrics["macc"], 4)}


def timed(function):
    tracemalloc.start()
    start = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak


def compare(name, scene_path, cameras_path, mask_dir, label_maps, image_names, truth_labels, held_cameras,
            held_truths, backend, seed=1, style=SamStyle()):
    gaussians = read_gaussians(scene_path)
    with tempfile.TemporaryDirectory() as sam_dir:
        written = write_sam_folders(sam_dir, image_names, label_maps, seed=seed, style=style)
        reference, ref_s, ref_peak = timed(lambda: segment_scene(gaussians, cameras_path, mask_dir,
                                                                 backend=backend))
        associated, as_s, as_peak = timed(lambda: segment_scene(gaussians, cameras_path, sam_dir,
                                                                backend=backend))
    ref = evaluate(gaussians, reference.labels, truth_labels, held_cameras, held_truths, backend)
    got = evaluate(gaussians, associated.labels, truth_labels, held_cameras, held_truths, backend)
    report = associated.report["association"]
    true_instances = len(np.unique(truth_labels))
    timings = associated.report["timings"]
    result = {
        "scene": name, "gaussians": len(gaussians), "views": len(image_names), "sam_masks": int(sum(written)),
        "consistent": ref, "associated": got,
        "accuracy_ratio": round(got["accuracy"] / ref["accuracy"], 4),
        "miou_ratio": round(got["miou"] / ref["miou"], 4),
        "instances": report["n_instances"], "true_instances": true_instances,
        "masks": {k: v for k, v in report.items() if k.startswith("masks")},
        "seconds": {"consistent_lift": round(reference.report["timings"]["accumulate_s"], 2),
                    "associate": round(timings["associate_s"], 2),
                    "associated_lift": round(timings["accumulate_s"], 2),
                    "ratio_total": round((timings["associate_s"] + timings["accumulate_s"])
                                         / reference.report["timings"]["accumulate_s"], 3),
                    "per_view_pass": report["seconds"]["per_view_pass"], "matching": report["seconds"]["matching"],
                    "consistent_segment_total": round(ref_s, 2), "associated_segment_total": round(as_s, 2)},
        "per_view_entries_mb": report["per_view_entries_mb"],
        "peak_traced_mb": {"consistent": round(ref_peak / 2**20, 1), "associated": round(as_peak / 2**20, 1)},
    }
    print(json.dumps(result), flush=True)  # as each run ends: a large run takes hours
    return result


def demo_runs(backend, kinds):
    paths = demo_paths()
    cameras = load_cameras(paths["cameras"])
    held = load_cameras(paths["heldout_cameras"])
    truth_labels = np.load(paths["labels"])
    held_truths = [np.asarray(Image.open(os.path.join(paths["truth"], c.image_name + ".png")), np.int32)
                   for c in held]
    out = []
    for kind in kinds:
        mask_dir = os.path.join(DEMO_DATA, "masks" if kind == "clean" else "masks_noisy")
        maps = [np.asarray(Image.open(os.path.join(mask_dir, c.image_name + ".png")), np.int32) for c in cameras]
        out.append(compare(f"demo ({kind})", paths["scene"], paths["cameras"], mask_dir, maps,
                           [c.image_name for c in cameras], truth_labels, held, held_truths, backend))
    return out


def synthetic_runs(backend, kinds, gaussians, views, spheres=5, width=256, height=192):
    """``spheres`` objects on the ground (about spheres + 2 SAM masks per view once parts are counted)."""
    from synthetic.scene import make_scene, write_inputs

    # points_per_unit_area from the Gaussian count: the ground (36 units) plus the spheres
    density = max(50, int(gaussians / 44))
    scene = make_scene(n_spheres=spheres, points_per_unit_area=density, n_cameras=2 * views, width=width,
                       height=height, seed=3)
    lift_cameras, held = scene.cameras[0::2], scene.cameras[1::2][::max(1, views // 6)]
    clean = [scene.mask(c) for c in lift_cameras]
    held_truths = [scene.mask(c) for c in held]
    out = []
    with tempfile.TemporaryDirectory() as root:
        lifted = type(scene)(scene.gaussians, scene.labels, scene.centres, scene.radii, lift_cameras)
        maps = {"clean": clean, "noisy": noisy_masks(clean, seed=7)}
        position = {c.image_name: k for k, c in enumerate(lift_cameras)}
        write_inputs(root, lifted, {kind: (lambda c, m=maps[kind]: m[position[c.image_name]]) for kind in kinds})
        for kind in kinds:
            out.append(compare(f"synthetic ({kind})", os.path.join(root, "scene.ply"),
                               os.path.join(root, "cameras.json"), os.path.join(root, kind), maps[kind],
                               [c.image_name for c in lift_cameras], scene.labels, held, held_truths, backend))
    return out


def kmeans_regions(points, count, seed=0, iterations=25):
    """int32 [M]: each point's region among ``count`` k-means regions (numpy, seeded)."""
    rng = np.random.default_rng(seed)
    centres = points[rng.choice(len(points), count, replace=False)]
    for _ in range(iterations):
        nearest = np.argmin(((points[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
        centres = np.stack([points[nearest == k].mean(axis=0) if np.any(nearest == k) else centres[k]
                            for k in range(count)])
    return np.argmin(((points[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1).astype(np.int32)


def real_runs(backend, kinds, path, views=24, regions=6, width=256, height=192):
    """A real scan (e.g. the public PlayCanvas biker): it comes with no cameras and no masks, so the objects are
    ``regions`` k-means regions of its opaque splats (every splat with opacity >= 0.05 takes its nearest region's
    id, the fainter ones are background), the cameras a rig of 2 x ``views`` around it (every second one lifts,
    the others are held out), and the consistent masks those labels rendered at the lifting views (subset rule,
    our rasterizer). The SAM-style folders are made from those masks as for the other scenes."""
    from blender_gsseg.core.files.inria_cameras import write_cameras_json
    from blender_gsseg.core.scene.view_rig import view_rig

    gaussians = read_gaussians(path)
    opaque = gaussians.opacities >= 0.05
    means = gaussians.means.astype(np.float64)
    truth = np.zeros(len(gaussians), np.int32)
    truth[opaque] = kmeans_regions(means[opaque], regions) + 1
    centre = np.median(means[opaque], axis=0)
    radius = float(np.percentile(np.linalg.norm(means[opaque] - centre, axis=1), 95))
    # INRIA/COLMAP scans are y-down; the rig only needs an up that is not the scan's own axis of symmetry
    cameras = view_rig(centre, radius, 2 * views, (5.0, 60.0), width, height, obstacles=gaussians,
                       up=(0.0, -1.0, 0.0))
    lift_cameras, held = cameras[0::2], cameras[1::2]
    maps = {"clean": [render_labels(gaussians, truth, c, "subset", backend=backend) for c in lift_cameras]}
    maps["noisy"] = noisy_masks(maps["clean"], seed=7)
    held_truths = [render_labels(gaussians, truth, c, "subset", backend=backend) for c in held]
    name = os.path.basename(path).split(".")[0]
    out = []
    with tempfile.TemporaryDirectory() as root:
        write_cameras_json(os.path.join(root, "cameras.json"), lift_cameras)
        for kind in kinds:
            os.makedirs(os.path.join(root, kind))
            for camera, label_map in zip(lift_cameras, maps[kind], strict=True):
                Image.fromarray(np.clip(label_map, 0, 255).astype(np.uint8)).save(
                    os.path.join(root, kind, camera.image_name))
            out.append(compare(f"{name} ({kind})", path, os.path.join(root, "cameras.json"),
                               os.path.join(root, kind), maps[kind],
                               [os.path.splitext(c.image_name)[0] for c in lift_cameras], truth,
                               held, held_truths, backend))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", nargs="*", default=["demo", "synthetic"], choices=["demo", "synthetic"])
    parser.add_argument("--kinds", nargs="+", default=["clean", "noisy"], choices=["clean", "noisy"])
    parser.add_argument("--gaussians", type=int, default=60_000, help="synthetic scene size (about)")
    parser.add_argument("--views", type=int, default=24, help="synthetic lifting views")
    parser.add_argument("--spheres", type=int, default=5, help="synthetic objects (masks per view: about 1.3x)")
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--real", nargs="*", default=[], metavar="SPLAT",
                        help="real scans to add (e.g. the public PlayCanvas biker.compressed.ply): k-means regions "
                             "as objects, a rig of cameras around them")
    parser.add_argument("--large", action="store_true",
                        help="the issue's size: 1M Gaussians x 200 views (hours on 2 CPU cores)")
    args = parser.parse_args(argv)
    if args.large:
        args.gaussians, args.views, args.spheres, args.scenes = 1_000_000, 200, 30, ["synthetic"]
    backend = get_backend(args.backend)
    results = []
    if "demo" in args.scenes:
        results += demo_runs(backend, args.kinds)
    if "synthetic" in args.scenes:
        results += synthetic_runs(backend, args.kinds, args.gaussians, args.views, args.spheres)
    for path in args.real:
        results += real_runs(backend, args.kinds, path)
    return results


if __name__ == "__main__":
    main()
