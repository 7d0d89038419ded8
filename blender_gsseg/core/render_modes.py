"""Novel-view label masks: FlashSplat's per-label subset rule and a whole-scene argmax rule.

* ``subset`` (FlashSplat, :func:`blender_gsseg.core.render.render_label_mask`): each foreground label's
  Gaussians are rendered alone; a pixel takes a label whose own alpha reaches 0.5, the nearest when several do.
  Background Gaussians never occlude, and faint Gaussians (opacity well below 0.5) vanish unless many overlap.
* ``argmax``: the whole scene is rendered once, as a viewer shows it; a pixel whose total alpha reaches 0.5
  takes the label with the largest summed weight ``sum_i w_i(p) [label_i = e]`` (background included, ties
  to the smaller id), else 0. Unseen Gaussians (label -1) occlude and count toward the alpha, but take no part
  in the vote: they have no label to give.
"""

import numpy as np

from .rasterize import iter_contributions
from .render import MASK_ALPHA_THRESHOLD, device_renderer, project_scene, render_label_mask

RENDER_MODES = ("subset", "argmax")


def label_groups(labels):
    """(label ids [K] ascending, group index [N] into them; -1 for Gaussians labelled -1)."""
    labels = np.asarray(labels)
    ids = np.unique(labels[labels >= 0])
    group = np.full(len(labels), -1, dtype=np.int64)
    group[labels >= 0] = np.searchsorted(ids, labels[labels >= 0])
    return ids, group


def render_label_weights(projected, labels):
    """(label ids [K] ascending, summed weights [K, H, W] per label, total alpha [H, W]) over the whole scene.

    ``labels`` int [N]; Gaussians labelled -1 count in the alpha only.
    """
    n_pixels = projected.width * projected.height
    ids, group = label_groups(labels)
    sums = np.zeros(len(ids) * n_pixels)
    alpha = np.zeros(n_pixels)
    for gid, pixel, weight in iter_contributions(projected):
        alpha += np.bincount(pixel, weights=weight, minlength=n_pixels)
        g = group[gid]
        known = g >= 0
        if len(ids):
            sums += np.bincount(g[known] * n_pixels + pixel[known], weights=weight[known],
                                minlength=len(ids) * n_pixels)
    shape = (projected.height, projected.width)
    return ids.astype(np.int32), sums.reshape((len(ids),) + shape), alpha.reshape(shape)


def label_argmax(ids, sums, alpha, threshold=MASK_ALPHA_THRESHOLD):
    """The argmax rule over per-label weight images: label [H, W] int32."""
    if len(ids) == 0:
        return np.zeros(alpha.shape, dtype=np.int32)
    best = np.argmax(sums, axis=0)  # first maximum: ties go to the smaller id
    result = ids[best].astype(np.int32)
    result[(alpha < threshold) | (sums.max(axis=0) <= 0)] = 0
    return result


def render_label_mask_argmax(gaussians, labels, camera, covariances=None, threshold=MASK_ALPHA_THRESHOLD,
                             backend=None):
    """Label image [H, W] int32 for ``camera`` by the whole-scene argmax rule (see the module docstring)."""
    device = device_renderer(backend)
    if device is not None:
        ids, group = label_groups(labels)
        sums, alpha = device.render_label_weights(gaussians, camera, group, len(ids))
        return label_argmax(ids.astype(np.int32), sums, alpha, threshold=threshold)
    projected = project_scene(gaussians, camera, covariances)
    return label_argmax(*render_label_weights(projected, labels), threshold=threshold)


def render_labels(gaussians, labels, camera, mode="subset", covariances=None, backend=None):
    """Label image for ``camera`` by ``mode`` ('subset': FlashSplat's rule, the default; 'argmax'); ``backend``
    as in :mod:`.render`."""
    if mode == "subset":
        return render_label_mask(gaussians, labels, camera, covariances, backend=backend)
    if mode == "argmax":
        return render_label_mask_argmax(gaussians, labels, camera, covariances, backend=backend)
    raise ValueError(f"unknown render mode {mode!r} (choose {', '.join(RENDER_MODES)})")
