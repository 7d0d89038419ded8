"""``gsseg demo``: the whole job on a small synthetic scene, with figures and a contact sheet.

segment (lifting views) -> render-masks (held-out views) -> eval against exact ray-cast masks -> remove one
object -> contact sheet PNG. Runs in well under a minute on a laptop CPU, without bpy and without a GPU.
"""

import os
import time

import numpy as np
from PIL import Image

from .core.cameras import write_cameras_json
from .core.fileio import atomic_path
from .core.gaussians import write_gaussians
from .core.metrics import segmentation_metrics
from .core.pipeline import label_colour, segment_scene, selection, write_labeled
from .core.render import render_colour, render_label_mask
from .core.synthetic import make_scene

REMOVED_LABEL = 1


def _save_png(path, array):
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def _to_rgb8(rgb):
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def _labels_rgb8(label_image):
    out = np.zeros(label_image.shape + (3,), dtype=np.uint8)
    for label in np.unique(label_image):
        out[label_image == label] = label_colour(int(label)) if label > 0 else (40, 40, 40)
    return out


def write_demo_inputs(folder, scene):
    """The files a user would bring: scene.ply, cameras for lifting and held-out views, masks, truth."""
    lift, held = scene.cameras[0::2], scene.cameras[1::2]
    paths = {"scene": os.path.join(folder, "scene.ply"), "cameras": os.path.join(folder, "cameras_lift.json"),
             "heldout_cameras": os.path.join(folder, "cameras_heldout.json"),
             "masks": os.path.join(folder, "masks"), "truth": os.path.join(folder, "truth")}
    write_gaussians(paths["scene"], scene.gaussians)
    write_cameras_json(paths["cameras"], lift)
    write_cameras_json(paths["heldout_cameras"], held)
    for key, cameras in (("masks", lift), ("truth", held)):
        os.makedirs(paths[key], exist_ok=True)
        for camera in cameras:
            _save_png(os.path.join(paths[key], camera.image_name + ".png"), scene.mask(camera).astype(np.uint8))
    return paths, lift, held


def run_demo(output="gsseg-demo", backend="auto", progress=None):
    """Run the demo into ``output``; returns a summary dict of the figures."""
    start = time.perf_counter()
    os.makedirs(output, exist_ok=True)
    scene = make_scene(n_spheres=3, n_cameras=24, width=240, height=180)
    paths, lift, held = write_demo_inputs(os.path.join(output, "inputs"), scene)

    result = segment_scene(paths["scene"], paths["cameras"], paths["masks"], backend=backend, progress=progress)
    labeled_path = os.path.join(output, "scene_labeled.ply")
    write_labeled(labeled_path, result.gaussians, result.accumulation)

    predictions = [render_label_mask(result.gaussians, result.labels, camera) for camera in held]
    truths = [scene.mask(camera) for camera in held]
    os.makedirs(os.path.join(output, "rendered_masks"), exist_ok=True)
    for camera, prediction in zip(held, predictions):
        _save_png(os.path.join(output, "rendered_masks", camera.image_name + ".png"), prediction.astype(np.uint8))
    metrics = segmentation_metrics(predictions, truths)

    removed = result.gaussians.subset(~selection(result.gaussians, [REMOVED_LABEL]))
    removed_path = os.path.join(output, f"scene_without_label_{REMOVED_LABEL}.ply")
    write_gaussians(removed_path, removed)

    # Contact sheet: an input view and its mask | lifted labels at a held-out view and its truth |
    # the held-out view before and after removing one object.
    view_in, view_out = lift[0], held[0]
    input_rgb, _ = render_colour(result.gaussians, view_in)
    before_rgb, _ = render_colour(result.gaussians, view_out)
    after_rgb, _ = render_colour(removed, view_out)
    rows = [
        np.concatenate([_to_rgb8(input_rgb), _labels_rgb8(scene.mask(view_in))], axis=1),
        np.concatenate([_labels_rgb8(predictions[0]), _labels_rgb8(truths[0])], axis=1),
        np.concatenate([_to_rgb8(before_rgb), _to_rgb8(after_rgb)], axis=1),
    ]
    sheet_path = os.path.join(output, "contact_sheet.png")
    _save_png(sheet_path, np.concatenate(rows, axis=0))

    seen_truth = scene.labels[result.labels >= 0]
    return {
        "output": output,
        "n_gaussians": len(scene.gaussians),
        "lifting_views": len(lift),
        "heldout_views": len(held),
        "backend": result.report["backend"],
        "accumulate_seconds": round(result.report["timings"]["accumulate_s"], 3),
        "heldout_miou": round(metrics["miou"], 4),
        "heldout_miou_with_background": round(metrics["miou_with_background"], 4),
        "heldout_macc": round(metrics["macc"], 4),
        "gaussian_label_accuracy": round(float(np.mean(result.labels[result.labels >= 0] == seen_truth)), 4),
        "unseen": result.report["unseen"],
        "removed_label": REMOVED_LABEL,
        "gaussians_after_removal": len(removed),
        "contact_sheet": sheet_path,
        "seconds": round(time.perf_counter() - start, 2),
    }
