"""Vectorised CPU rasterization: per-pixel front-to-back contributions w_i(p) = alpha_i(p) * T_i(p).

The INRIA kernel walks each pixel's depth-sorted list of Gaussians sequentially. Here the same walk is done
for whole groups of tiles at once with numpy:

1. every visible Gaussian is duplicated once per tile it touches, and the (tile, Gaussian) pairs are ordered by
   tile, then depth (stable: equal depths keep Gaussian order, as on the GPU);
2. for a chunk of tiles, alpha is evaluated on a [256, pairs] grid (pixel-in-tile major), so the non-skipped
   entries, read in row-major order, come grouped by pixel and then by tile, each group in depth order;
3. the transmittance before each entry is an exclusive segmented product, done as a cumulative sum of
   log(1 - alpha) in float64; the INRIA stop rule ("stop before T would fall below 1e-4") keeps an entry iff
   its inclusive product is >= 1e-4, since T only decreases along the walk.

The result is a stream of (gaussian id, pixel id, weight) triples that the accumulator, the colour render and
the mask render each reduce in their own way with ``np.bincount``.
"""

import numpy as np

from . import projection as P

TILE_PIXELS = P.TILE_SIZE * P.TILE_SIZE
# Entries of the [256, pairs] grid evaluated at once; bounds the temporary memory (about 40 bytes each).
DEFAULT_CHUNK_ENTRIES = 1 << 22
_LOG_MIN_T = float(np.log(P.MIN_TRANSMITTANCE))
_IN_TILE_X = (np.arange(TILE_PIXELS) % P.TILE_SIZE).astype(np.float32)
_IN_TILE_Y = (np.arange(TILE_PIXELS) // P.TILE_SIZE).astype(np.float32)


def sorted_tile_pairs(projected, include=None):
    """(gaussian ids, tile ids) for every tile each Gaussian touches, ordered by tile then depth."""
    visible = projected.visible if include is None else projected.visible & include
    ids = np.flatnonzero(visible)
    ids = ids[np.argsort(projected.depths[ids], kind="stable")]
    tmin, tmax = projected.tile_min[ids], projected.tile_max[ids]
    span_x = (tmax[:, 0] - tmin[:, 0]).astype(np.int64)
    counts = span_x * (tmax[:, 1] - tmin[:, 1])
    owner = np.repeat(np.arange(len(ids)), counts)
    starts = np.cumsum(counts) - counts
    local = np.arange(int(counts.sum()), dtype=np.int64) - starts[owner]
    grid_x = projected.tile_grid[0]
    tile_x = tmin[owner, 0] + local % span_x[owner]
    tile_y = tmin[owner, 1] + local // span_x[owner]
    tiles = tile_y * grid_x + tile_x
    order = np.argsort(tiles, kind="stable")
    return ids[owner[order]], tiles[order]


def iter_contributions(projected, include=None, pixel_mask=None, chunk_entries=DEFAULT_CHUNK_ENTRIES):
    """Yield ``(gaussian_ids, pixel_ids, weights)`` chunks; pixel ids index the flattened H x W image.

    ``include``: optional boolean [N], the Gaussians to render (the others are absent, not just unlabelled).
    ``pixel_mask``: optional boolean [H, W]; pixels outside it are not evaluated at all (each pixel's walk is
    independent, so skipping some pixels changes nothing for the others).
    """
    width, height = projected.width, projected.height
    grid_x, grid_y = projected.tile_grid
    pair_ids, pair_tiles = sorted_tile_pairs(projected, include)
    if len(pair_ids) == 0:
        return
    padded = np.zeros((grid_y * P.TILE_SIZE, grid_x * P.TILE_SIZE), dtype=bool)
    padded[:height, :width] = True if pixel_mask is None else pixel_mask
    if pixel_mask is not None:
        # Drop tiles with no pixel to evaluate before doing any work on them.
        tile_any = padded.reshape(grid_y, P.TILE_SIZE, grid_x, P.TILE_SIZE).any(axis=(1, 3)).ravel()
        keep = tile_any[pair_tiles]
        pair_ids, pair_tiles = pair_ids[keep], pair_tiles[keep]
    padded_flat = padded.ravel()

    tile_starts = np.flatnonzero(np.r_[True, pair_tiles[1:] != pair_tiles[:-1]])
    rows_per_chunk = max(1, chunk_entries // TILE_PIXELS)
    bounds = [0]
    for start in tile_starts[1:]:
        if start - bounds[-1] >= rows_per_chunk:
            bounds.append(int(start))
    bounds.append(len(pair_ids))

    means2d, conics, opacities = projected.means2d, projected.conics, projected.opacities
    f32 = np.float32
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        gid = pair_ids[lo:hi]
        tile = pair_tiles[lo:hi]
        origin_x = (tile % grid_x * P.TILE_SIZE).astype(f32)
        origin_y = (tile // grid_x * P.TILE_SIZE).astype(f32)
        # d = mean - pixel, [256 pixels in tile, pairs]
        dx = (means2d[gid, 0] - origin_x)[None, :] - _IN_TILE_X[:, None]
        dy = (means2d[gid, 1] - origin_y)[None, :] - _IN_TILE_Y[:, None]
        conic = conics[gid]
        power = f32(-0.5) * (conic[:, 0] * dx * dx + conic[:, 2] * dy * dy) - conic[:, 1] * dx * dy
        del dx, dy
        alpha = np.minimum(f32(P.MAX_ALPHA), opacities[gid] * np.exp(np.minimum(power, f32(0))))
        alpha_ok = (power <= 0) & (alpha >= f32(P.MIN_ALPHA))
        del power
        flat = np.flatnonzero(alpha_ok)
        del alpha_ok
        if len(flat) == 0:
            continue
        n_rows = hi - lo
        in_tile = flat // n_rows
        row = flat - in_tile * n_rows
        row_tile = tile[row]
        pix_x = row_tile % grid_x * P.TILE_SIZE + in_tile % P.TILE_SIZE
        pix_y = row_tile // grid_x * P.TILE_SIZE + in_tile // P.TILE_SIZE
        padded_pixel = pix_y * (grid_x * P.TILE_SIZE) + pix_x
        inside = padded_flat[padded_pixel]
        flat, row, row_tile, in_tile = flat[inside], row[inside], row_tile[inside], in_tile[inside]
        pix_x, pix_y = pix_x[inside], pix_y[inside]
        if len(flat) == 0:
            continue
        a = alpha.ravel()[flat]
        del alpha
        log_keep = np.log1p(-a.astype(np.float64))
        running = np.cumsum(log_keep)
        before = running - log_keep  # sum over all earlier entries of the chunk
        new_segment = np.r_[True, (row_tile[1:] != row_tile[:-1]) | (in_tile[1:] != in_tile[:-1])]
        segment_base = before[new_segment][np.cumsum(new_segment) - 1]
        log_t = before - segment_base  # log T before this entry, within its pixel's walk
        keep = (log_t + log_keep) >= _LOG_MIN_T
        weights = a[keep] * np.exp(log_t[keep]).astype(np.float32)
        yield gid[row[keep]], pix_y[keep] * width + pix_x[keep], weights
