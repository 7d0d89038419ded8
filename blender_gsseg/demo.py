"""``gsseg demo``: the whole job on the bundled scene, with figures and a contact sheet.

The scene (``blender_gsseg/data/demo``) was made by ``bench/make_scene.py`` under Blender: seven objects
(primitives, Suzanne, a thin pole) on a ground plane, covered by Gaussians sampled on the meshes plus what a
trained splat also has (large faint Gaussians, floaters); Cycles object-index masks of 12 lifting views with
SAM-like noise (moved boundaries, blobs, missed parts, label swaps) and the exact Cycles masks of 6 held-out
views; the ground-truth label of every Gaussian.

segment (noisy masks of the lifting views) -> render-masks (held-out views) -> eval against the Cycles masks
(and against the ceiling: the ground-truth labels rendered the same way) -> remove one object -> contact sheet.
Runs in well under a minute on a laptop CPU, without bpy and without a GPU.
"""

import json
import os
import time

import numpy as np
from PIL import Image, ImageDraw

from .core.raster.backends import get_backend
from .core.files.camera_files import load_cameras
from .core.files.commit import Commit, output_file
from .core.files.ply import write_gaussians
from .core.files.splats import read_gaussians
from .core.metrics import segmentation_metrics
from .core.files.labels import label_colour
from .core.pipeline import segment_scene, selection, write_labeled
from .core.raster.render import render_colour, render_labels
from .core.lift.solver import Shares
from .core.scene.up_axis import cameras_up, nearest_axis, with_up_comment

DEMO_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "demo")
SCENE_FILE = "scene_trained.ply"
TRUTH_FILE = "gt_labels_trained.npy"
LIFT_CAMERAS = "cameras.json"
HELDOUT_CAMERAS = "cameras_heldout.json"
MASKS = "masks_noisy"  # what the demo lifts: SAM-like masks
TRUTH_MASKS = "truth"
REMOVED_LABEL = 3  # Suzanne
# 'gsseg remove --gamma G' takes every member of the instance at bias G (share above (1 + G) / 2): with -0.8 the
# halo of faint and silhouette Gaussians whose weight the object shares with the background goes too.
REMOVAL_GAMMA = -0.8
CONTACT_INPUT_VIEW = 0  # the lifting view shown; the held-out view shown is the one where the removed object
# covers the most pixels
BACKGROUND = (1.0, 1.0, 1.0)


def demo_paths(folder=DEMO_DATA):
    """The bundled inputs: scene, cameras (lifting and held-out), masks, truth masks, per-Gaussian truth."""
    return {"scene": os.path.join(folder, SCENE_FILE), "cameras": os.path.join(folder, LIFT_CAMERAS),
            "heldout_cameras": os.path.join(folder, HELDOUT_CAMERAS), "masks": os.path.join(folder, MASKS),
            "truth": os.path.join(folder, TRUTH_MASKS), "labels": os.path.join(folder, TRUTH_FILE),
            "info": os.path.join(folder, "scene_info.json")}


def _save_png(path, array, folder):
    with output_file(path, "wb", folder) as handle:
        Image.fromarray(array).save(handle, format="PNG")


def _to_rgb8(rgb):
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def _labels_rgb8(label_image):
    out = np.zeros(label_image.shape + (3,), dtype=np.uint8)
    for label in np.unique(label_image):
        out[label_image == label] = label_colour(int(label)) if label > 0 else (40, 40, 40)
    return out


def _read_labels(path):
    return np.asarray(Image.open(path), dtype=np.int32)


def _captioned(tile, caption, scale=2):
    """The tile enlarged ``scale`` x (nearest) with a caption band above it."""
    tile = np.repeat(np.repeat(tile, scale, axis=0), scale, axis=1)
    band = Image.new("RGB", (tile.shape[1], 16), (255, 255, 255))
    ImageDraw.Draw(band).text((4, 2), caption, fill=(0, 0, 0))
    return np.concatenate([np.asarray(band), tile], axis=0)


def contact_sheet(tiles, columns=2):
    """Tiles (H x W x 3 uint8, equal sizes) in rows of ``columns``, with a 4 px white gutter."""
    height, width = tiles[0].shape[:2]
    rows = (len(tiles) + columns - 1) // columns
    sheet = np.full((rows * (height + 4) + 4, columns * (width + 4) + 4, 3), 255, dtype=np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        top, left = 4 + r * (height + 4), 4 + c * (width + 4)
        sheet[top:top + height, left:left + width] = tile
    return sheet


def run_demo(output="gsseg-demo", backend="auto", progress=None, mode="subset"):
    """Run the demo into ``output``; returns a summary dict of the figures."""
    with Commit() as commit:  # the folder is written whole, or not at all; it replaces a demo folder
        folder = commit.folder(output, kind="demo", overwrite=True)
        summary = _run_demo(folder, backend, progress, mode)
    summary["output"] = output
    summary["contact_sheet"] = os.path.join(output, "contact_sheet.png")
    return summary


def _run_demo(folder, backend, progress, mode):
    start = time.perf_counter()
    output = folder.path
    paths = demo_paths()
    with open(paths["info"]) as handle:
        names = {o["label"]: o["name"] for o in json.load(handle)["objects"]}
    lift = load_cameras(paths["cameras"])
    held = load_cameras(paths["heldout_cameras"])
    truth_labels = np.load(paths["labels"])

    backend = get_backend(backend)
    result = segment_scene(paths["scene"], lift, paths["masks"], backend=backend, progress=progress)
    # the outputs go without their cameras: their header says which way is up (Z: the cameras' up), so that an
    # import's Auto axes leave the scene standing (core.scene.up_axis)
    up = cameras_up(lift)
    if up is not None:
        result.gaussians = with_up_comment(result.gaussians, nearest_axis(up))
    labeled_path = os.path.join(output, "scene_labeled.ply")
    write_labeled(labeled_path, result.gaussians, result.accumulation, commit=folder)

    render_start = time.perf_counter()
    predictions = [render_labels(result.gaussians, result.labels, camera, mode, backend=backend)
                   for camera in held]
    truths = [_read_labels(os.path.join(paths["truth"], camera.image_name + ".png")) for camera in held]
    for camera, prediction in zip(held, predictions, strict=True):
        _save_png(os.path.join(output, "rendered_masks", camera.image_name + ".png"), prediction.astype(np.uint8),
                  folder)
    metrics = segmentation_metrics(predictions, truths)
    ceiling = segmentation_metrics([render_labels(result.gaussians, truth_labels, camera, mode, backend=backend)
                                    for camera in held], truths)
    render_s = time.perf_counter() - render_start

    shares = Shares.from_accumulation(result.accumulation)
    by_label = selection(result.gaussians, [REMOVED_LABEL])
    picked = selection(result.gaussians, [REMOVED_LABEL], shares=shares, gamma=REMOVAL_GAMMA)
    removed = result.gaussians.subset(~picked)
    removed_path = os.path.join(output, f"scene_without_label_{REMOVED_LABEL}.ply")
    write_gaussians(removed_path, removed, commit=folder)

    # Contact sheet: an input view and its (noisy) mask | the lifted labels at a held-out view and the Cycles
    # mask there | that view before and after removing one object.
    shown = int(np.argmax([np.count_nonzero(t == REMOVED_LABEL) for t in truths]))
    view_in, view_out = lift[CONTACT_INPUT_VIEW], held[shown]
    given = _read_labels(os.path.join(paths["masks"], view_in.image_name + ".png"))
    input_rgb, _ = render_colour(result.gaussians, view_in, background=BACKGROUND, backend=backend)
    before_rgb, _ = render_colour(result.gaussians, view_out, background=BACKGROUND, backend=backend)
    after_rgb, _ = render_colour(removed, view_out, background=BACKGROUND, backend=backend)
    removed_name = names.get(REMOVED_LABEL, f"label {REMOVED_LABEL}")
    tiles = [
        _captioned(_to_rgb8(input_rgb), f"input view {view_in.image_name}"),
        _captioned(_labels_rgb8(given), "its mask (SAM-like noise)"),
        _captioned(_labels_rgb8(predictions[shown]), f"lifted labels, held-out {view_out.image_name}"),
        _captioned(_labels_rgb8(truths[shown]), "Cycles mask (truth)"),
        _captioned(_to_rgb8(before_rgb), "held-out view"),
        _captioned(_to_rgb8(after_rgb),
                   f"after 'gsseg remove --labels {REMOVED_LABEL} --gamma {REMOVAL_GAMMA}' ({removed_name})"),
    ]
    sheet_path = os.path.join(output, "contact_sheet.png")
    _save_png(sheet_path, contact_sheet(tiles), folder)

    seen = result.labels >= 0
    correct = result.labels == truth_labels
    weight = result.accumulation.total_weight()
    return {
        "output": output,
        "scene": "bundled: 7 objects on a ground plane, trained-like splat (faint Gaussians, floaters)",
        "n_gaussians": len(result.gaussians),
        "lifting_views": len(result.report["views_used"]),
        "heldout_views": len(held),
        "masks": "Cycles object-index masks with SAM-like noise",
        "backend": result.report["backend"],
        "accumulate_seconds": round(result.report["timings"]["accumulate_s"], 3),
        "render_mode": mode,
        "heldout_miou": round(metrics["miou"], 4),
        "heldout_miou_with_background": round(metrics["miou_with_background"], 4),
        "heldout_macc": round(metrics["macc"], 4),
        "heldout_miou_ceiling": round(ceiling["miou"], 4),
        "heldout_miou_vs_ceiling": round(metrics["miou"] / ceiling["miou"], 4),
        "gaussian_label_accuracy": round(float(np.mean(correct[seen])), 4),
        "gaussian_label_accuracy_weighted": round(float(np.sum(weight[correct]) / np.sum(weight)), 4),
        "unseen": result.report["unseen"],
        "removed_label": REMOVED_LABEL,
        "removed_name": removed_name,
        "removal_gamma": REMOVAL_GAMMA,
        "gaussians_after_removal": len(removed),
        # against the ground truth: share of the object's Gaussians removed, and share of the removed ones
        # that were the object's; by primary label (gamma 0) and by membership at REMOVAL_GAMMA
        "removal_recall_by_label": round(float(np.mean(by_label[truth_labels == REMOVED_LABEL])), 4),
        "removal_recall": round(float(np.mean(picked[truth_labels == REMOVED_LABEL])), 4),
        "removal_precision": round(float(np.mean(truth_labels[picked] == REMOVED_LABEL)), 4),
        "render_seconds": round(render_s, 3),
        "contact_sheet": sheet_path,
        "seconds": round(time.perf_counter() - start, 2),
    }


def load_demo_scene(folder=DEMO_DATA):
    """(Gaussians, ground-truth labels, lifting cameras, held-out cameras) of the bundled scene."""
    paths = demo_paths(folder)
    return (read_gaussians(paths["scene"]), np.load(paths["labels"]), load_cameras(paths["cameras"]),
            load_cameras(paths["heldout_cameras"]))
