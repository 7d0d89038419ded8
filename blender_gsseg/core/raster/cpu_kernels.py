"""Optional compiled CPU path (numba): the INRIA per-pixel walk as a plain loop, parallel over tiles.

numba is an optional extra (``pip install blender-gsseg[fast]``); without it the numpy path in rasterize.py
does the same job more slowly. Both follow the same rules and are tested against the same dense reference.
"""

import numpy as np


try:  # numba is optional; it refuses to load beside a NumPy it does not support
    import numba
    WHY_UNAVAILABLE = None
except Exception as error:  # ImportError, or llvmlite's library failing to load
    numba = None
    WHY_UNAVAILABLE = str(error).splitlines()[0] if str(error) else type(error).__name__


def available():
    return numba is not None


if numba is not None:

    @numba.njit(parallel=True, fastmath=False, cache=True)
    def _accumulate_tiles(pair_ids, tile_starts, tile_ids, grid_x, width, height, mean_x, mean_y, conic_a,
                          conic_b, conic_c, opacity, min_power, index_map, out):
        """out[thread group, label, gaussian] += w for every pixel of every tile (one group per thread).

        Same rules, order and float32 arithmetic as the INRIA kernel per pixel; three things make it cheaper. A
        pair whose power lies below ``min_power`` (a little under ln(1 / (255 opacity))) cannot reach alpha
        1/255, so it is skipped without its exp. A tile's pixels are walked one label at a time and a row's 16
        pixels walk the pairs together (each pixel keeps its own transmittance and stops on its own), so a pair's
        data is read once per row. And each pair's weights are summed in a per-tile buffer and written to ``out``
        once per (label, pair) rather than once per pixel."""
        n_groups = out.shape[0]
        n_tiles = len(tile_ids)
        longest = 0
        for t in range(n_tiles):
            longest = max(longest, tile_starts[t + 1] - tile_starts[t])
        for group in numba.prange(n_groups):
            tile_sums = np.zeros(longest, dtype=np.float64)
            labels_here = np.empty(256, dtype=np.int32)
            transmittance = np.empty(16, dtype=np.float32)
            done = np.empty(16, dtype=np.bool_)
            pxs = np.empty(16, dtype=np.float32)
            for t in range(group, n_tiles, n_groups):
                tile = tile_ids[t]
                start, end = tile_starts[t], tile_starts[t + 1]
                x0 = (tile % grid_x) * 16
                y0 = (tile // grid_x) * 16
                x1 = min(x0 + 16, width)
                y1 = min(y0 + 16, height)
                for i in range(16):
                    pxs[i] = np.float32(x0 + i)
                n_labels_here = 0
                for py in range(y0, y1):
                    for px in range(x0, x1):
                        label = index_map[py, px]
                        if label < 0:
                            continue
                        seen = False
                        for k in range(n_labels_here):
                            if labels_here[k] == label:
                                seen = True
                                break
                        if not seen:
                            labels_here[n_labels_here] = label
                            n_labels_here += 1
                for k in range(n_labels_here):
                    label = labels_here[k]
                    for py in range(y0, y1):
                        # the row's 16 pixels walk the pairs together (the loop over them can use SIMD);
                        # a pixel of another label, or past the image, or whose T ran out is done
                        alive = 0
                        for i in range(16):
                            px = x0 + i
                            done[i] = not (px < x1 and index_map[py, px] == label)
                            transmittance[i] = np.float32(1.0)
                            if not done[i]:
                                alive += 1
                        if alive == 0:
                            continue
                        pyf = np.float32(py)
                        for j in range(start, end):
                            dy = mean_y[j] - pyf
                            cdy2 = conic_c[j] * dy * dy
                            b = conic_b[j]
                            a = conic_a[j]
                            mx = mean_x[j]
                            lowest = min_power[j]
                            o = opacity[j]
                            # the row's span where power can reach ``lowest``: a dx² + 2 b dy dx + c dy² <= r²
                            # (float64, widened by 0.01 px; the exact test still runs inside)
                            first, last = 0, 16
                            ad, bd, cd, dyd = np.float64(a), np.float64(b), np.float64(conic_c[j]), np.float64(dy)
                            if ad > 0.0 and ad * cd - bd * bd > 0.0:
                                disc = (bd * dyd) ** 2 - ad * (cd * dyd * dyd + 2.0 * np.float64(lowest))
                                if not disc >= 0.0:
                                    continue  # the pair reaches no pixel of this row
                                root = np.sqrt(disc)
                                left = np.float64(mx) - (root - bd * dyd) / ad - x0 - 0.01
                                right = np.float64(mx) + (root + bd * dyd) / ad - x0 + 0.01
                                first = max(0, int(np.ceil(left)))
                                last = min(16, int(np.floor(right)) + 1)
                            added = 0.0
                            for i in range(first, last):
                                dx = mx - pxs[i]
                                power = np.float32(-0.5) * (a * dx * dx + cdy2) - b * dx * dy  # as the kernel
                                if done[i] or power > np.float32(0.0) or power < lowest:
                                    continue
                                alpha = min(np.float32(0.99), o * np.exp(power))
                                if alpha < np.float32(1.0 / 255.0):
                                    continue
                                test_t = transmittance[i] * (np.float32(1.0) - alpha)
                                if test_t < np.float32(1e-4):
                                    done[i] = True
                                    alive -= 1
                                    continue
                                added += alpha * transmittance[i]
                                transmittance[i] = test_t
                            tile_sums[j - start] += added
                            if alive == 0:
                                break
                    for j in range(start, end):
                        if tile_sums[j - start] != 0.0:
                            out[group, label, pair_ids[j]] += tile_sums[j - start]
                            tile_sums[j - start] = 0.0


def accumulate_view(projected, index_map, n_labels, out, pair_ids, pair_tiles):
    """Add one view's weights into ``out`` [groups, L, N] (float64, one slab per thread group, so threads
    never write to the same entry)."""
    starts = np.flatnonzero(np.r_[True, pair_tiles[1:] != pair_tiles[:-1]])
    tile_ids = pair_tiles[starts].astype(np.int64)
    tile_starts = np.r_[starts, len(pair_tiles)].astype(np.int64)
    # Per-pair copies of the 2D Gaussians, one array per field: the walk reads memory in order.
    from .rasterize import min_powers

    opacity = projected.opacities[pair_ids]
    min_power = min_powers(opacity)  # alpha >= 1/255 needs power >= ln(1 / (255 opacity)), less float32 room
    means, conics = projected.means2d[pair_ids], projected.conics[pair_ids]
    _accumulate_tiles(pair_ids.astype(np.int64), tile_starts, tile_ids, projected.tile_grid[0],
                      projected.width, projected.height, np.ascontiguousarray(means[:, 0]),
                      np.ascontiguousarray(means[:, 1]), np.ascontiguousarray(conics[:, 0]),
                      np.ascontiguousarray(conics[:, 1]), np.ascontiguousarray(conics[:, 2]), opacity, min_power,
                      np.ascontiguousarray(index_map, dtype=np.int32), out)


# Each thread group sums into its own float64 [L, N] slab: cap them so many-core machines do not multiply
# the accumulation's memory (more threads than groups simply idle during the walk).
MAX_GROUPS = 4


def group_count():
    return min(numba.get_num_threads(), MAX_GROUPS) if numba is not None else 1


