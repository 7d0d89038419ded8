"""Rendering with the same rasterization rules: colour (SH degree 0) and novel-view label masks.

Each function takes ``backend``: None or "cpu" renders here with numpy; "cuda", "auto" or a backend object from
:func:`.accumulate.get_backend` renders on the GPU when that backend is the CUDA one (same rules, float32 sums).
"""

import numpy as np

from . import projection
from .rasterize import iter_contributions

MASK_ALPHA_THRESHOLD = 0.5  # a label covers a pixel where its Gaussians alone reach this accumulated alpha


def device_renderer(backend):
    """The backend that renders on a device (the CUDA backend), or None to render here with numpy."""
    if backend is None or backend == "cpu":
        return None
    from .accumulate import get_backend

    backend = get_backend(backend)
    return backend if hasattr(backend, "render_alpha_depth") else None


def project_scene(gaussians, camera, covariances=None):
    if covariances is None:
        covariances = projection.covariances_3d(gaussians.scales, gaussians.rotations)
    return projection.project_gaussians(gaussians.means, covariances, gaussians.opacities, camera)


def render_sums(projected, values=None, include=None):
    """Accumulated alpha [H, W] and sum of w * values [H, W, K] (values: [N, K] per Gaussian)."""
    n_pixels = projected.width * projected.height
    alpha = np.zeros(n_pixels)
    sums = np.zeros((values.shape[1] if values is not None else 0, n_pixels))
    for gid, pixel, weight in iter_contributions(projected, include=include):
        alpha += np.bincount(pixel, weights=weight, minlength=n_pixels)
        for k in range(len(sums)):
            sums[k] += np.bincount(pixel, weights=weight * values[gid, k], minlength=n_pixels)
    shape = (projected.height, projected.width)
    return alpha.reshape(shape), sums.T.reshape(shape + (len(sums),))


def render_colour(gaussians, camera, background=(0.0, 0.0, 0.0), covariances=None, backend=None):
    """RGB [H, W, 3] float32 in [0, 1] from SH degree 0 over ``background``, and alpha [H, W]."""
    device = device_renderer(backend)
    if device is not None:
        return device.render_colour(gaussians, camera, background)
    projected = project_scene(gaussians, camera, covariances)
    alpha, rgb = render_sums(projected, gaussians.base_colors)
    rgb = rgb + (1.0 - alpha)[..., None] * np.asarray(background, dtype=np.float64)
    return np.clip(rgb, 0, 1).astype(np.float32), alpha.astype(np.float32)


def render_label_mask(gaussians, labels, camera, covariances=None, backend=None):
    """Label image [H, W] int32 for ``camera`` (FlashSplat's novel-view rule).

    Each foreground label's Gaussians are rendered alone (transmittance among that subset); a pixel takes a
    label whose accumulated alpha reaches 0.5, the nearest one (alpha-weighted mean depth) when several do;
    else 0.
    """
    device = device_renderer(backend)
    if device is not None:
        def alpha_and_depth(include):
            return device.render_alpha_depth(gaussians, camera, include)
    else:
        projected = project_scene(gaussians, camera, covariances)
        depths = projected.depths.astype(np.float64)[:, None]

        def alpha_and_depth(include):
            alpha, depth_sum = render_sums(projected, depths, include=include)
            return alpha, depth_sum[..., 0]
    shape = (camera.height, camera.width)
    result = np.zeros(shape, dtype=np.int32)
    nearest = np.full(shape, np.inf)
    for label in np.unique(labels[labels > 0]):
        alpha, depth_sum = alpha_and_depth(labels == label)
        covered = alpha >= MASK_ALPHA_THRESHOLD
        mean_depth = np.where(covered, depth_sum / np.maximum(alpha, 1e-12), np.inf)
        closer = covered & (mean_depth < nearest)
        result[closer] = label
        nearest[closer] = mean_depth[closer]
    return result
