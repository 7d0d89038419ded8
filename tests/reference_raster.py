"""A slow, obvious per-pixel rasterizer written straight from the INRIA forward kernel, for tests only.

It shares nothing with the fast path but the projected 2D Gaussians it is given (projection has its own
oracle: gsplat). Every pixel walks its tile's depth-sorted list one Gaussian at a time.
"""

import numpy as np

TILE = 16


def reference_weights(projected, include=None):
    """Dense weights [N, H, W] (float64) and the final transmittance [H, W]."""
    n = len(projected.radii)
    width, height = projected.width, projected.height
    weights = np.zeros((n, height, width))
    t_final = np.ones((height, width))
    visible = projected.radii > 0
    if include is not None:
        visible &= include
    grid_x = (width + TILE - 1) // TILE
    for py in range(height):
        for px in range(width):
            tx, ty = px // TILE, py // TILE
            # the Gaussians whose tile rectangle holds this pixel's tile, front to back, ties by index
            cands = [i for i in range(n) if visible[i]
                     and projected.tile_min[i, 0] <= tx < projected.tile_max[i, 0]
                     and projected.tile_min[i, 1] <= ty < projected.tile_max[i, 1]]
            cands.sort(key=lambda i: (float(projected.depths[i]), i))
            transmittance = 1.0
            for i in cands:
                a, b, c = (float(v) for v in projected.conics[i])
                dx = float(projected.means2d[i, 0]) - px
                dy = float(projected.means2d[i, 1]) - py
                power = -0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy
                if power > 0:
                    continue
                alpha = min(0.99, float(projected.opacities[i]) * np.exp(power))
                if alpha < 1.0 / 255.0:
                    continue
                test_t = transmittance * (1 - alpha)
                if test_t < 1e-4:
                    break
                weights[i, py, px] += alpha * transmittance
                transmittance = test_t
            t_final[py, px] = transmittance
    del grid_x
    return weights, t_final
