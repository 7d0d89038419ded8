"""Segmentation from box proxies alone (no cameras, no masks) on the demo scene: recall, precision and residue
per object, for ``core.proxy_segment.proxy_labels`` and the naive baseline (centre inside the smallest box).

    python bench/proxies.py [--scene blender_gsseg/data/demo] [--out bench/results]

Proxies as issue 14 defines them: per object, the axis-aligned bounding box of its Gaussians (ground truth)
scaled x1.15 per axis about its centre. Residue: held-out views rendered after removing what each method
selected for the object, against the render after removing exactly the object's Gaussians (PSNR; higher is a
cleaner removal). Goal: recall >= 0.97 and precision >= the baseline's for every object.

With halo: the removal as Delete Instance *With Halo* makes it after Segment from Proxies (the proxies' scores as
an accumulation, ``proxy_weights``): the object's label and every Gaussian whose score for it exceeds
(1 + gamma) / 2, at ``--halo-gamma``; "left" is the fraction of the object's Gaussians that stay.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from blender_gsseg.core.files.camera_files import load_cameras  # noqa: E402
from blender_gsseg.core.files.splats import read_gaussians  # noqa: E402
from blender_gsseg.core.metrics import psnr  # noqa: E402
from blender_gsseg.core.lift.accumulate import Accumulation  # noqa: E402
from blender_gsseg.core.lift.solver import Shares  # noqa: E402
from blender_gsseg.core.scene.proxy_segment import Proxy, baseline_labels, labels_at_zero, proxy_weights  # noqa: E402
from blender_gsseg.core.raster.render import render_colour  # noqa: E402

LOOSENESS = 1.15
GOAL_RECALL = 0.97


def box_triangles(low, high):
    """[12, 3, 3] the triangles of an axis-aligned box, outward-facing."""
    corners = np.array([[high[0] if i & 1 else low[0], high[1] if i & 2 else low[1], high[2] if i & 4 else low[2]]
                        for i in range(8)])
    quads = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    return np.array([corners[[q[0], q[1], q[2]]] for q in quads] + [corners[[q[0], q[2], q[3]]] for q in quads])


def box_proxies(gaussians, truth, looseness=LOOSENESS):
    proxies = []
    for label in sorted(set(truth.tolist()) - {0, -1}):
        means = gaussians.means[truth == label].astype(np.float64)
        low, high = means.min(axis=0), means.max(axis=0)
        centre, half = (low + high) / 2, looseness * (high - low) / 2
        proxies.append(Proxy(label, box_triangles(centre - half, centre + half), f"object {label}"))
    return proxies


def scores(labels, truth, label):
    chosen, actual = labels == label, truth == label
    hits = int(np.count_nonzero(chosen & actual))
    return {"recall": hits / max(int(actual.sum()), 1), "precision": hits / max(int(chosen.sum()), 1),
            "chosen": int(chosen.sum()), "actual": int(actual.sum())}


def residue(gaussians, truth, labels, label, cameras, background=(0.3, 0.3, 0.3), removed=None):
    """Mean PSNR over ``cameras`` of the scene without what ``labels`` gives ``label`` (or without ``removed``,
    bool [N]) against the scene without exactly the object's Gaussians."""
    removed = labels == label if removed is None else removed
    values = []
    for camera in cameras:
        exact, _ = render_colour(gaussians.subset(truth != label), camera, background=background)
        removed_render, _ = render_colour(gaussians.subset(~removed), camera, background=background)
        values.append(psnr(removed_render, exact))
    return float(np.mean([min(v, 99.0) for v in values]))


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", default=os.path.join(REPO, "blender_gsseg", "data", "demo"))
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    parser.add_argument("--views", type=int, default=2, help="held-out views for the residue")
    parser.add_argument("--halo-gamma", type=float, default=-0.4, help="gamma of the removal with halo")
    args = parser.parse_args(argv)
    gaussians = read_gaussians(os.path.join(args.scene, "scene_trained.ply"))
    truth = np.load(os.path.join(args.scene, "gt_labels_trained.npy"))
    cameras = load_cameras(os.path.join(args.scene, "cameras_heldout.json"))[:args.views]
    proxies = box_proxies(gaussians, truth)
    start = time.perf_counter()
    label_ids, weights = proxy_weights(gaussians, proxies)
    ours = labels_at_zero(label_ids, weights)
    seconds = time.perf_counter() - start
    shares = Shares.from_accumulation(Accumulation(label_ids, weights))
    naive = baseline_labels(gaussians, proxies)
    rows, report = [], {"seconds": seconds, "count": len(gaussians), "halo_gamma": args.halo_gamma, "objects": {}}
    for proxy in proxies:
        label = proxy.label
        entry = {"ours": scores(ours, truth, label), "baseline": scores(naive, truth, label)}
        entry["ours"]["residue_db"] = residue(gaussians, truth, ours, label, cameras)
        entry["baseline"]["residue_db"] = residue(gaussians, truth, naive, label, cameras)
        halo = (ours == label) | shares.members(label, args.halo_gamma)
        entry["halo"] = {"removed": int(halo.sum()),
                         "left": float(np.count_nonzero((truth == label) & ~halo) / max(int((truth == label).sum()), 1)),
                         "left_without_halo": float(np.count_nonzero((truth == label) & (ours != label))
                                                    / max(int((truth == label).sum()), 1)),
                         "residue_db": residue(gaussians, truth, ours, label, cameras, removed=halo)}
        report["objects"][label] = entry
        o, b, h = entry["ours"], entry["baseline"], entry["halo"]
        met = o["recall"] >= GOAL_RECALL and o["precision"] >= b["precision"]
        rows.append(f"| {label} | {o['recall']:.3f} | {o['precision']:.3f} | {o['residue_db']:.1f} | "
                    f"{b['recall']:.3f} | {b['precision']:.3f} | {b['residue_db']:.1f} | {h['left']:.4f} | "
                    f"{h['residue_db']:.1f} | {'yes' if met else 'no'} |")
        print(rows[-1], flush=True)
    with open(os.path.join(args.out, "proxies.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    with open(os.path.join(args.out, "proxies.md"), "w", encoding="utf-8") as handle:
        handle.write("# Segmentation from box proxies (no cameras, no masks)\n\n"
                     f"`python bench/proxies.py`: the demo scene ({len(gaussians):,} Gaussians), one box per object "
                     f"(its Gaussians' bounding box x{LOOSENESS}), {seconds:.2f} s. Residue: PSNR of {len(cameras)} "
                     "held-out renders after the removal against removing exactly the object. With halo: Delete "
                     f"Instance *With Halo* at gamma {args.halo_gamma} after Segment from Proxies (the object's "
                     "label and every Gaussian whose score for it exceeds (1 + gamma) / 2); left: the fraction of "
                     "the object's Gaussians that stay.\n\n"
                     "| object | recall | precision | residue (dB) | baseline recall | baseline precision | "
                     "baseline residue (dB) | left with halo | residue with halo (dB) | goal met |\n"
                     "|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
