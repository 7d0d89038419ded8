"""Seeded noise models that make exact label maps look like SAM / video-tracker output, for benchmarks.

Four kinds of error, each drawn independently per view from ``numpy.random.default_rng([seed, view])``:

* **boundary**: each object's region is eroded or dilated by 1..``boundary_px`` pixels (a disc), as SAM's
  masks are a few pixels too tight or too loose; a dilated object paints over its neighbours, an eroded one
  leaves background behind;
* **blobs**: spurious elliptic blobs, each painted with a label present in the view (a hole of background in
  an object, or a piece of an object where there is none);
* **missed part**: an object loses the part of its region beyond a random straight cut (``miss_fraction`` of
  its pixels), as when SAM misses a handle or a leg;
* **label swap**: the ids of two objects present in the view are exchanged over the whole view, as when a
  tracker mixes up two instances.

Everything is numpy only; a 256 x 192 view takes about a millisecond per object.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class MaskNoise:
    """Parameters of :func:`noisy_mask`. The defaults imitate SAM on small renders (a few pixels at 256 px)."""

    boundary_prob: float = 0.8  # chance that one object's boundary is moved in one view
    boundary_px: int = 3  # the most pixels it moves by (erosion or dilation, equally likely)
    blob_rate: float = 0.6  # expected spurious blobs per view (Poisson)
    blob_radius: tuple = (3.0, 12.0)  # semi-axes range in pixels
    miss_prob: float = 0.1  # chance that one object loses a part in one view
    miss_fraction: tuple = (0.15, 0.4)  # the share of its pixels it loses
    swap_prob: float = 0.05  # chance that a view swaps the ids of two objects

    @classmethod
    def none(cls):
        return cls(boundary_prob=0.0, blob_rate=0.0, miss_prob=0.0, swap_prob=0.0)


def disc_offsets(radius):
    """(dy, dx) integer offsets within a disc of ``radius`` pixels."""
    r = int(radius)
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    inside = dy * dy + dx * dx <= radius * radius + 1e-9
    return np.stack([dy[inside], dx[inside]], axis=1)


def dilate(mask, radius):
    """Binary dilation of ``mask`` [H, W] by a disc of ``radius`` pixels (pixels outside the image ignored)."""
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0:
        return mask.copy()
    height, width = mask.shape
    out = np.zeros_like(mask)
    for dy, dx in disc_offsets(radius):
        ys, yd = (slice(0, height - dy), slice(dy, height)) if dy >= 0 else (slice(-dy, height), slice(0, height + dy))
        xs, xd = (slice(0, width - dx), slice(dx, width)) if dx >= 0 else (slice(-dx, width), slice(0, width + dx))
        out[yd, xd] |= mask[ys, xs]
    return out


def erode(mask, radius):
    """Binary erosion by a disc (the image border counts as outside the mask)."""
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0:
        return mask.copy()
    padded = np.pad(~mask, 1, constant_values=True)
    return ~dilate(padded, radius)[1:-1, 1:-1]


def noisy_mask(label_map, rng, noise=MaskNoise()):
    """A noisy copy of ``label_map`` (int [H, W], 0 = background) drawn with the Generator ``rng``."""
    labels = np.array(label_map, dtype=np.int32, copy=True)
    height, width = labels.shape
    objects = [int(v) for v in np.unique(labels) if v > 0]

    # 1. boundaries: each object grows or shrinks; objects are visited in random order so no id always wins.
    for label in rng.permutation(objects) if objects else []:
        if rng.random() >= noise.boundary_prob or noise.boundary_px < 1:
            continue
        radius = int(rng.integers(1, noise.boundary_px + 1))
        region = labels == label
        if rng.random() < 0.5:
            labels[dilate(region, radius) & ~region] = label
        else:
            labels[region & ~erode(region, radius)] = 0

    # 2. missed parts: the pixels of an object beyond a random straight cut become background.
    for label in objects:
        if rng.random() >= noise.miss_prob:
            continue
        ys, xs = np.nonzero(labels == label)
        if len(ys) < 20:
            continue
        angle = rng.uniform(0, 2 * np.pi)
        projection = xs * np.cos(angle) + ys * np.sin(angle)
        fraction = rng.uniform(*noise.miss_fraction)
        cut = np.quantile(projection, 1.0 - fraction)
        lost = projection > cut
        labels[ys[lost], xs[lost]] = 0

    # 3. spurious blobs with a label present in the view.
    present = [0] + objects
    for _ in range(rng.poisson(noise.blob_rate)):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(*noise.blob_radius, size=2)
        theta = rng.uniform(0, np.pi)
        y0, y1 = int(max(0, cy - max(ry, rx) - 1)), int(min(height, cy + max(ry, rx) + 2))
        x0, x1 = int(max(0, cx - max(ry, rx) - 1)), int(min(width, cx + max(ry, rx) + 2))
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1] + 0.5
        u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
        v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
        inside = (u / rx) ** 2 + (v / ry) ** 2 <= 1.0
        under = labels[y0:y1, x0:x1]
        # Paint a label other than the one mostly under the blob, so the blob is always an error.
        majority = np.bincount(under[inside].ravel() if inside.any() else [0]).argmax()
        choices = [p for p in present if p != majority] or [0]
        under[inside] = choices[int(rng.integers(len(choices)))]

    # 4. whole-view swap of two object ids.
    if len(objects) >= 2 and rng.random() < noise.swap_prob:
        a, b = rng.choice(objects, size=2, replace=False)
        where_a, where_b = labels == a, labels == b
        labels[where_a], labels[where_b] = b, a
    return labels


def noisy_masks(label_maps, seed=0, noise=MaskNoise()):
    """Noisy copies of a list of label maps; view ``k`` uses ``default_rng([seed, k])`` (reproducible and
    independent of the other views)."""
    return [noisy_mask(m, np.random.default_rng([int(seed), k]), noise) for k, m in enumerate(label_maps)]
