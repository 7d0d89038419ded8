"""Turn consistent label maps into SAM-style mask folders, for tests and benchmarks of per-view ids.

For each view (seeded by ``numpy.random.default_rng([seed, view])``), from its label map (0 = ground /
background, k > 0 = object k):

* **the ground** (label 0) is a mask only with probability ``ground_prob``; otherwise its pixels are in no mask;
* **merges**: each pair of objects whose regions touch in the view (4-neighbours) is given as one mask, the
  union, with probability ``merge_prob`` (an object is merged at most once per view);
* **parts**: an object (not merged) is cut in two along a random straight line through its centroid with
  probability ``part_prob``; its two parts are masks, and the whole is given too with probability
  ``whole_prob`` (overlapping masks, as SAM's granularities are);
* **boundary noise**: each mask is dilated or eroded by one pixel with probability ``jitter_prob``;
* masks under ``min_area`` pixels are left out (SAM's ``min_mask_region_area``);
* **ids**: the masks of a view are shuffled and written as ``0.png, 1.png, ...`` (binary 0/255) with a
  ``metadata.csv`` in SAM's columns (predicted_iou in [0.88, 1], stability_score in [0.95, 1]).

:func:`permuted_label_maps` is the simpler transform of the exactness test: ids > 0 permuted per view.
"""

import csv
import dataclasses
import os

import numpy as np

from .mask_noise import dilate, erode

METADATA_COLUMNS = ["id", "area", "bbox_x0", "bbox_y0", "bbox_w", "bbox_h", "point_input_x", "point_input_y",
                    "predicted_iou", "stability_score", "crop_box_x0", "crop_box_y0", "crop_box_w", "crop_box_h"]


@dataclasses.dataclass(frozen=True)
class SamStyle:
    ground_prob: float = 0.5
    merge_prob: float = 0.15
    part_prob: float = 0.3
    whole_prob: float = 0.6
    jitter_prob: float = 0.3
    min_area: int = 20

    @classmethod
    def clean(cls):
        """One mask per object and the ground, no merges, parts or jitter: only the ids change."""
        return cls(ground_prob=1.0, merge_prob=0.0, part_prob=0.0, jitter_prob=0.0)


def _touching(a, b):
    """Whether boolean regions ``a`` and ``b`` share a 4-neighbour boundary."""
    grown = a.copy()
    grown[1:] |= a[:-1]
    grown[:-1] |= a[1:]
    grown[:, 1:] |= a[:, :-1]
    grown[:, :-1] |= a[:, 1:]
    return bool(np.any(grown & b))


def sam_masks_of(label_map, rng, style=SamStyle()):
    """The binary masks (bool [H, W] each, in random order) SAM might give for one consistent ``label_map``."""
    label_map = np.asarray(label_map)
    objects = [int(k) for k in np.unique(label_map) if k > 0]
    regions = {k: label_map == k for k in objects}
    masks = []
    if rng.random() < style.ground_prob and np.any(label_map == 0):
        masks.append(label_map == 0)
    merged = set()
    for a_index, a in enumerate(objects):
        for b in objects[a_index + 1:]:
            if a in merged or b in merged:
                continue
            if rng.random() < style.merge_prob and _touching(regions[a], regions[b]):
                masks.append(regions[a] | regions[b])
                merged |= {a, b}
    for k in objects:
        if k in merged:
            continue
        region = regions[k]
        if rng.random() < style.part_prob:
            rows, cols = np.nonzero(region)
            angle = rng.uniform(0, np.pi)
            side = (rows - rows.mean()) * np.cos(angle) + (cols - cols.mean()) * np.sin(angle) > 0
            for half in (side, ~side):
                part = np.zeros_like(region)
                part[rows[half], cols[half]] = True
                masks.append(part)
            if rng.random() < style.whole_prob:
                masks.append(region)
        else:
            masks.append(region)
    out = []
    for mask in masks:
        if rng.random() < style.jitter_prob:
            mask = dilate(mask, 1) if rng.random() < 0.5 else erode(mask, 1)
        if np.count_nonzero(mask) >= style.min_area:
            out.append(mask)
    order = rng.permutation(len(out))
    return [out[k] for k in order]


def write_sam_folder(folder, masks, rng):
    """``folder/0.png, 1.png, ...`` (binary 0/255) and ``metadata.csv`` for the masks, in their order."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    rows = []
    for k, mask in enumerate(masks):
        Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(os.path.join(folder, f"{k}.png"))
        rows_, cols = np.nonzero(mask)
        pick = rng.integers(len(rows_))
        rows.append([k, len(rows_), int(cols.min()), int(rows_.min()), int(cols.max() - cols.min() + 1),
                     int(rows_.max() - rows_.min() + 1), float(cols[pick]), float(rows_[pick]),
                     round(float(rng.uniform(0.88, 1.0)), 4), round(float(rng.uniform(0.95, 1.0)), 4),
                     0, 0, mask.shape[1], mask.shape[0]])
    with open(os.path.join(folder, "metadata.csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(METADATA_COLUMNS)
        writer.writerows(rows)


def write_sam_folders(root, names, label_maps, seed=0, style=SamStyle()):
    """One SAM folder ``root/<name>/`` per view; returns the number of masks written per view."""
    written = []
    for view, (name, label_map) in enumerate(zip(names, label_maps)):
        rng = np.random.default_rng([seed, view])
        masks = sam_masks_of(label_map, rng, style)
        write_sam_folder(os.path.join(root, name), masks, rng)
        written.append(len(masks))
    return written


def permuted_label_maps(label_maps, seed=0):
    """The label maps with their ids > 0 permuted per view (0 and -1 kept), each view its own permutation of
    fresh ids 1..M (M the largest id of all maps)."""
    top = max(int(np.max(m)) for m in label_maps)
    out = []
    for view, label_map in enumerate(label_maps):
        rng = np.random.default_rng([seed, view])
        lookup = np.r_[-1, 0, 1 + rng.permutation(top)]  # index value + 1
        out.append(lookup[np.asarray(label_map) + 1].astype(np.int32))
    return out
