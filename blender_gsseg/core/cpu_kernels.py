"""Optional compiled CPU path (numba): the INRIA per-pixel walk as a plain loop, parallel over tiles.

numba is an optional extra (``pip install blender-gsseg[fast]``); without it the numpy path in rasterize.py
does the same job more slowly. Both follow the same rules and are tested against the same dense reference.
"""

import numpy as np


try:  # numba is optional
    import numba
except ImportError:  # pragma: no cover - exercised where numba is missing
    numba = None


def available():
    return numba is not None


if numba is not None:

    @numba.njit(parallel=True, fastmath=False, cache=True)
    def _accumulate_tiles(pair_ids, tile_starts, tile_ids, grid_x, width, height, pair_means, pair_conics,
                          pair_opacities, index_map, out):
        """out[thread group, label, gaussian] += w for every pixel of every tile (one group per thread)."""
        n_groups = out.shape[0]
        n_tiles = len(tile_ids)
        for group in numba.prange(n_groups):
            for t in range(group, n_tiles, n_groups):
                tile = tile_ids[t]
                start, end = tile_starts[t], tile_starts[t + 1]
                x0 = (tile % grid_x) * 16
                y0 = (tile // grid_x) * 16
                for k in range(256):
                    px = x0 + (k % 16)
                    py = y0 + (k // 16)
                    if px >= width or py >= height:
                        continue
                    label = index_map[py, px]
                    if label < 0:
                        continue
                    pxf = np.float32(px)
                    pyf = np.float32(py)
                    transmittance = np.float32(1.0)
                    for j in range(start, end):
                        dx = pair_means[j, 0] - pxf
                        dy = pair_means[j, 1] - pyf
                        power = (np.float32(-0.5) * (pair_conics[j, 0] * dx * dx + pair_conics[j, 2] * dy * dy)
                                 - pair_conics[j, 1] * dx * dy)
                        if power > np.float32(0.0):
                            continue
                        alpha = min(np.float32(0.99), pair_opacities[j] * np.exp(power))
                        if alpha < np.float32(1.0 / 255.0):
                            continue
                        test_t = transmittance * (np.float32(1.0) - alpha)
                        if test_t < np.float32(1e-4):
                            break
                        out[group, label, pair_ids[j]] += alpha * transmittance
                        transmittance = test_t


def accumulate_view(projected, index_map, n_labels, out, pair_ids, pair_tiles):
    """Add one view's weights into ``out`` [groups, L, N] (float64, one slab per thread group, so threads
    never write to the same entry)."""
    starts = np.flatnonzero(np.r_[True, pair_tiles[1:] != pair_tiles[:-1]])
    tile_ids = pair_tiles[starts].astype(np.int64)
    tile_starts = np.r_[starts, len(pair_tiles)].astype(np.int64)
    # Per-pair copies of the 2D Gaussians: the walk then reads memory in order instead of jumping around.
    _accumulate_tiles(pair_ids.astype(np.int64), tile_starts, tile_ids, projected.tile_grid[0],
                      projected.width, projected.height, projected.means2d[pair_ids], projected.conics[pair_ids],
                      projected.opacities[pair_ids], np.ascontiguousarray(index_map, dtype=np.int32), out)


# Each thread group sums into its own float64 [L, N] slab: cap them so many-core machines do not multiply
# the accumulation's memory (more threads than groups simply idle during the walk).
MAX_GROUPS = 4


def group_count():
    return min(numba.get_num_threads(), MAX_GROUPS) if numba is not None else 1


