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

from __future__ import annotations

import collections.abc

import numpy as np

from . import projection as P

# (pair, pixel) entries evaluated at once; bounds the temporary memory (about 100 bytes each).
DEFAULT_CHUNK_ENTRIES = 1 << 22
_LOG_MIN_T = float(np.log(P.MIN_TRANSMITTANCE))


def sorted_tile_pairs(
    projected: P.Projected,
    include: np.ndarray | None = None,  # [N] bool
) -> tuple[np.ndarray, np.ndarray]:  # gaussian ids [M] int64, tile ids [M] int64
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


def iter_contributions(
    projected: P.Projected,
    include: np.ndarray | None = None,  # [N] bool
    pixel_mask: np.ndarray | None = None,  # [H, W] bool
    chunk_entries: int = DEFAULT_CHUNK_ENTRIES,
    with_falloff: bool = False,
) -> collections.abc.Iterator[tuple[np.ndarray, ...]]:  # int32 [M], int64 [M], float32 [M] (, float32 [M])
    """Yield ``(gaussian_ids, pixel_ids, weights)`` chunks; pixel ids index the flattened H x W image. Each
    pixel's entries are consecutive, front to back (a pixel's walk never spans two chunks).

    ``include``: optional boolean [N], the Gaussians to render (the others are absent, not just unlabelled).
    ``pixel_mask``: optional boolean [H, W]; pixels outside it are not evaluated at all (each pixel's walk is
    independent, so skipping some pixels changes nothing for the others).

    Only pixels inside each Gaussian's alpha box (see :func:`_alpha_boxes`) within each of its tiles are
    evaluated; the box is conservative, so the result is the same as testing every pixel of the tile.

    ``with_falloff``: each chunk also carries G_i(p) = exp(power), the Gaussian's value before its opacity
    (alpha = min(0.99, opacity * G)), for renders that change the opacity (:mod:`.seg_opacity`).
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
    box_w = np.maximum(x1 - x0, 0).astype(np.int32)
    box_h = np.maximum(y1 - y0, 0).astype(np.int32)
    x0, y0 = x0.astype(np.int32), y0.astype(np.int32)
    counts = box_w.astype(np.int64) * box_h

    # Chunks end on tile boundaries, since one pixel's walk must stay within one chunk.
    tile_starts = np.flatnonzero(np.r_[True, pair_tiles[1:] != pair_tiles[:-1]])
    entries_before = np.r_[0, np.cumsum(counts)]
    bounds = [0]
    for start in tile_starts[1:]:
        if entries_before[start] - entries_before[bounds[-1]] >= chunk_entries:
            bounds.append(int(start))
    bounds.append(len(pair_ids))

    # Per-pair copies of what the per-pixel test reads, so the gathers below read 1D arrays.
    pair_gid = pair_ids.astype(np.int32)
    pair_mx, pair_my = projected.means2d[pair_ids, 0], projected.means2d[pair_ids, 1]
    pair_a, pair_b, pair_c = (projected.conics[pair_ids, k] for k in range(3))
    pair_opacity = projected.opacities[pair_ids]
    mask_flat = None if pixel_mask is None else np.asarray(pixel_mask, dtype=bool).ravel()
    f32 = np.float32
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        total = int(entries_before[hi] - entries_before[lo])
        if total == 0:
            continue
        # Enumerate each pair's box row by row (no integer division): rows first, then pixels along rows.
        heights = box_h[lo:hi]
        row_owner = np.repeat(np.arange(lo, hi, dtype=np.int32), heights)
        row_first = np.cumsum(heights) - heights
        row_y = y0[row_owner] + (np.arange(len(row_owner), dtype=np.int32) - row_first[row_owner - lo])
        row_w = box_w[row_owner]
        entry_row = np.repeat(np.arange(len(row_owner), dtype=np.int32), row_w)
        row_start = (np.cumsum(row_w, dtype=np.int64) - row_w).astype(np.int64)
        owner = row_owner[entry_row]
        pix_x = x0[owner] + (np.arange(total, dtype=np.int64) - row_start[entry_row]).astype(np.int32)
        pix_y = row_y[entry_row]
        del entry_row, row_start
        pixel = pix_y * np.int32(width) + pix_x
        if mask_flat is not None:
            wanted = np.flatnonzero(mask_flat[pixel])
            owner, pix_x, pix_y, pixel = owner[wanted], pix_x[wanted], pix_y[wanted], pixel[wanted]
        # d = mean - pixel centre (integer), in float32 as on the GPU
        dx = pair_mx[owner] - pix_x.astype(f32)
        dy = pair_my[owner] - pix_y.astype(f32)
        power = f32(-0.5) * (pair_a[owner] * dx * dx + pair_c[owner] * dy * dy) - pair_b[owner] * dx * dy
        del dx, dy
        falloff = np.exp(np.minimum(power, f32(0)))
        alpha = np.minimum(f32(P.MAX_ALPHA), pair_opacity[owner] * falloff)
        counted = np.flatnonzero((power <= 0) & (alpha >= f32(P.MIN_ALPHA)))
        del power
        if len(counted) == 0:
            continue
        # Regroup by pixel: a stable (radix) sort on the pixel-in-tile index keeps tile-then-depth order
        # inside each group, so each run of one pixel id is that pixel's front-to-back walk.
        in_tile = ((pix_y[counted] & (P.TILE_SIZE - 1)) * P.TILE_SIZE
                   + (pix_x[counted] & (P.TILE_SIZE - 1))).astype(np.uint8)
        order = counted[np.argsort(in_tile, kind="stable")]
        gid, pixel, alpha = pair_gid[owner[order]], pixel[order], alpha[order]
        log_keep = np.log1p(-alpha.astype(np.float64))
        running = np.cumsum(log_keep)
        before = running - log_keep  # sum over all earlier entries of the chunk
        new_walk = np.r_[True, pixel[1:] != pixel[:-1]]
        walk_base = before[new_walk][np.cumsum(new_walk) - 1]
        log_t = before - walk_base  # log T before this entry, within its pixel's walk
        keep = (log_t + log_keep) >= _LOG_MIN_T
        weight = alpha[keep] * np.exp(log_t[keep]).astype(f32)
        if with_falloff:
            yield gid[keep], pixel[keep], weight, falloff[order][keep]
        else:
            yield gid[keep], pixel[keep], weight


def render_sums(
    projected: P.Projected,
    values: np.ndarray | None = None,  # [N, K]
    include: np.ndarray | None = None,  # [N] bool
) -> tuple[np.ndarray, np.ndarray]:  # alpha float64 [H, W], sums float64 [H, W, K]
    """Accumulated alpha float64 [H, W] and the sum of w * values float64 [H, W, K] (``values``: [N, K] per
    Gaussian), drawing only the Gaussians where ``include`` (bool [N]) is true."""
    n_pixels = projected.width * projected.height
    alpha = np.zeros(n_pixels)
    sums = np.zeros((values.shape[1] if values is not None else 0, n_pixels))
    for gid, pixel, weight in iter_contributions(projected, include=include):
        alpha += np.bincount(pixel, weights=weight, minlength=n_pixels)
        for k in range(len(sums)):
            sums[k] += np.bincount(pixel, weights=weight * values[gid, k], minlength=n_pixels)
    shape = (projected.height, projected.width)
    return alpha.reshape(shape), sums.T.reshape(shape + (len(sums),))


def group_weights(
    projected: P.Projected,
    groups: np.ndarray,  # [N] int, -1 in the alpha only
    n_groups: int,
    contributions: collections.abc.Iterable | None = None,  # iter_contributions(projected), e.g. kept in a list
) -> tuple[np.ndarray, np.ndarray]:  # sums float64 [n_groups, H, W], alpha float64 [H, W]
    """(summed weights float64 [n_groups, H, W], alpha float64 [H, W]) over the whole scene: sums[g, p] = sum
    of w_i(p) over the Gaussians with ``groups[i] == g`` (int [N]; -1 counts in the alpha only). The walk is
    done here unless its ``contributions`` are given (the same view summed for several groupings)."""
    n_pixels = projected.width * projected.height
    groups = np.asarray(groups, dtype=np.int64)
    sums = np.zeros(n_groups * n_pixels)
    alpha = np.zeros(n_pixels)
    if contributions is None:
        contributions = iter_contributions(projected)
    for gid, pixel, weight in contributions:
        alpha += np.bincount(pixel, weights=weight, minlength=n_pixels)
        group = groups[gid]
        known = group >= 0
        if n_groups:
            sums += np.bincount(group[known] * n_pixels + pixel[known], weights=weight[known],
                                minlength=n_groups * n_pixels)
    shape = (projected.height, projected.width)
    return sums.reshape((n_groups,) + shape), alpha.reshape(shape)
