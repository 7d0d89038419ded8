"""Vectorised CPU rasterization: per-pixel front-to-back contributions w_i(p) = alpha_i(p) * T_i(p).

The INRIA kernel walks each pixel's depth-sorted list of Gaussians sequentially. Here the same walk is done
for whole groups of tiles at once with numpy:

1. every visible Gaussian is duplicated once per tile it touches, and the (tile, Gaussian) pairs are ordered by
   tile, then depth (stable: equal depths keep Gaussian order, as on the GPU);
2. for a chunk of tiles, alpha is evaluated for every pair on the pixels of its tile where alpha can reach
   1/255 (a conservative box, so nothing the kernel counts is missed), and the non-skipped entries are
   regrouped by pixel with a stable sort, each group in depth order;
3. the transmittance before each entry is an exclusive segmented product, done as a cumulative sum of
   log(1 - alpha) in float64; the INRIA stop rule ("stop before T would fall below 1e-4") keeps an entry iff
   its inclusive product is >= 1e-4, since T only decreases along the walk.

The result is a stream of (gaussian id, pixel id, weight) triples that the accumulator, the colour render and
the mask render each reduce in their own way with ``np.bincount``.
"""

import numpy as np

from . import projection as P

# (pair, pixel) entries evaluated at once; bounds the temporary memory (about 100 bytes each).
DEFAULT_CHUNK_ENTRIES = 1 << 22
_LOG_MIN_T = float(np.log(P.MIN_TRANSMITTANCE))


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


def _alpha_boxes(projected, ids):
    """Half extents (x, y) of the region where alpha can reach 1/255 for Gaussians ``ids``.

    alpha >= 1/255 needs opacity * exp(power) >= 1/255, i.e. d^T Q d <= r^2 with r^2 = 2 ln(255 * opacity) and Q
    the conic; the extent of that ellipse along x is r * sqrt((Q^-1)_xx). A small relative and absolute margin
    covers float32 rounding, so no pixel that the INRIA kernel would count is ever skipped. Non-positive-definite
    conics (numerically degenerate) get an infinite box, i.e. the whole tile, as in the kernel.
    """
    conic = projected.conics[ids].astype(np.float64)
    a, b, c = conic[:, 0], conic[:, 1], conic[:, 2]
    det = a * c - b * b
    r2 = 2.0 * np.log(np.maximum(projected.opacities[ids].astype(np.float64) * 255.0, 1e-30))
    with np.errstate(divide="ignore", invalid="ignore"):
        half_x = np.sqrt(r2 * c / det) * 1.001 + 0.01
        half_y = np.sqrt(r2 * a / det) * 1.001 + 0.01
    degenerate = ~((det > 0) & (a > 0) & (c > 0))
    half_x[degenerate] = np.inf
    half_y[degenerate] = np.inf
    hopeless = r2 < 0  # opacity below 1/255: never visible
    half_x[hopeless & ~degenerate] = -1.0
    half_y[hopeless & ~degenerate] = -1.0
    return half_x, half_y


def iter_contributions(projected, include=None, pixel_mask=None, chunk_entries=DEFAULT_CHUNK_ENTRIES):
    """Yield ``(gaussian_ids, pixel_ids, weights)`` chunks; pixel ids index the flattened H x W image.

    ``include``: optional boolean [N], the Gaussians to render (the others are absent, not just unlabelled).
    ``pixel_mask``: optional boolean [H, W]; pixels outside it are not evaluated at all (each pixel's walk is
    independent, so skipping some pixels changes nothing for the others).

    Only pixels inside each Gaussian's alpha box (see :func:`_alpha_boxes`) within each of its tiles are
    evaluated; the box is conservative, so the result is the same as testing every pixel of the tile.
    """
    width, height = projected.width, projected.height
    grid_x, _ = projected.tile_grid
    pair_ids, pair_tiles = sorted_tile_pairs(projected, include)
    if len(pair_ids) == 0:
        return
    half_x, half_y = _alpha_boxes(projected, pair_ids)
    mean_x = projected.means2d[pair_ids, 0].astype(np.float64)
    mean_y = projected.means2d[pair_ids, 1].astype(np.float64)
    tile_x0 = (pair_tiles % grid_x) * P.TILE_SIZE
    tile_y0 = (pair_tiles // grid_x) * P.TILE_SIZE
    with np.errstate(invalid="ignore"):
        x0 = np.maximum(tile_x0, np.ceil(np.nan_to_num(mean_x - half_x, nan=0, neginf=-1e9, posinf=1e9)))
        x1 = np.minimum(np.minimum(tile_x0 + P.TILE_SIZE, width),
                        np.floor(np.nan_to_num(mean_x + half_x, nan=1e9, neginf=-1e9, posinf=1e9)) + 1)
        y0 = np.maximum(tile_y0, np.ceil(np.nan_to_num(mean_y - half_y, nan=0, neginf=-1e9, posinf=1e9)))
        y1 = np.minimum(np.minimum(tile_y0 + P.TILE_SIZE, height),
                        np.floor(np.nan_to_num(mean_y + half_y, nan=1e9, neginf=-1e9, posinf=1e9)) + 1)
    box_w = np.maximum(x1 - x0, 0).astype(np.int64)
    box_h = np.maximum(y1 - y0, 0).astype(np.int64)
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    counts = box_w * box_h

    # Chunks end on tile boundaries, since one pixel's walk must stay within one chunk.
    tile_starts = np.flatnonzero(np.r_[True, pair_tiles[1:] != pair_tiles[:-1]])
    entries_before = np.r_[0, np.cumsum(counts)]
    bounds = [0]
    for start in tile_starts[1:]:
        if entries_before[start] - entries_before[bounds[-1]] >= chunk_entries:
            bounds.append(int(start))
    bounds.append(len(pair_ids))

    means2d, conics, opacities = projected.means2d, projected.conics, projected.opacities
    mask_flat = None if pixel_mask is None else np.asarray(pixel_mask, dtype=bool).ravel()
    f32 = np.float32
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        chunk_counts = counts[lo:hi]
        total = int(chunk_counts.sum())
        if total == 0:
            continue
        owner = np.repeat(np.arange(lo, hi), chunk_counts)
        local = np.arange(total, dtype=np.int64) - (entries_before[lo:hi] - entries_before[lo])[owner - lo]
        span = box_w[owner]
        pix_x = x0[owner] + local % span
        pix_y = y0[owner] + local // span
        del local, span
        pixel = pix_y * width + pix_x
        if mask_flat is not None:
            wanted = mask_flat[pixel]
            owner, pix_x, pix_y, pixel = owner[wanted], pix_x[wanted], pix_y[wanted], pixel[wanted]
        gid = pair_ids[owner]
        # d = mean - pixel centre (integer), in float32 as on the GPU
        dx = means2d[gid, 0] - pix_x.astype(f32)
        dy = means2d[gid, 1] - pix_y.astype(f32)
        conic = conics[gid]
        power = f32(-0.5) * (conic[:, 0] * dx * dx + conic[:, 2] * dy * dy) - conic[:, 1] * dx * dy
        del dx, dy, conic
        alpha = np.minimum(f32(P.MAX_ALPHA), opacities[gid] * np.exp(np.minimum(power, f32(0))))
        counted = np.flatnonzero((power <= 0) & (alpha >= f32(P.MIN_ALPHA)))
        del power
        if len(counted) == 0:
            continue
        owner, gid, pixel, alpha = owner[counted], gid[counted], pixel[counted], alpha[counted]
        # Regroup by pixel: a stable (radix) sort on the pixel-in-tile index keeps tile-then-depth order
        # inside each group, so each (pixel-in-tile, tile) run is one pixel's front-to-back walk.
        in_tile = ((pix_y[counted] % P.TILE_SIZE) * P.TILE_SIZE + pix_x[counted] % P.TILE_SIZE).astype(np.uint8)
        order = np.argsort(in_tile, kind="stable")
        owner, gid, pixel, alpha, in_tile = owner[order], gid[order], pixel[order], alpha[order], in_tile[order]
        row_tile = pair_tiles[owner]
        log_keep = np.log1p(-alpha.astype(np.float64))
        running = np.cumsum(log_keep)
        before = running - log_keep  # sum over all earlier entries of the chunk
        new_walk = np.r_[True, (row_tile[1:] != row_tile[:-1]) | (in_tile[1:] != in_tile[:-1])]
        walk_base = before[new_walk][np.cumsum(new_walk) - 1]
        log_t = before - walk_base  # log T before this entry, within its pixel's walk
        keep = (log_t + log_keep) >= _LOG_MIN_T
        yield gid[keep], pixel[keep], alpha[keep] * np.exp(log_t[keep]).astype(f32)
