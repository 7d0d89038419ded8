"""Vectorised CPU rasterization: per-pixel front-to-back contributions w_i(p) = alpha_i(p) * T_i(p).

The INRIA kernel walks each pixel's depth-sorted list of Gaussians sequentially. Here the same walk is done
for all tiles at once with numpy, a few pairs of each tile at a time:

1. every visible Gaussian is duplicated once per tile it touches, and the (tile, Gaussian) pairs are ordered by
   tile, then depth (stable: equal depths keep Gaussian order, as on the GPU);
2. a step takes the next ``LEVEL_PAIRS`` pairs of every tile and evaluates alpha on the pixels still walking
   within each pair's reach (rows of its tile, then the span of each row where alpha can reach 1/255: a
   conservative bound, so nothing the kernel counts is missed); the entries are regrouped by pixel with a
   stable sort, each group in depth order;
3. the transmittance before each entry is the pixel's transmittance so far times an exclusive segmented
   product, done as a cumulative sum of log(1 - alpha) in float64; the INRIA stop rule ("stop before T would
   fall below 1e-4") keeps an entry iff its inclusive product is >= 1e-4, and a pixel that stops takes no part
   in later steps.

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
    # stable, so each tile keeps depth order; 16-bit keys take numpy's radix sort
    keys = tiles.astype(np.uint16) if grid_x * projected.tile_grid[1] <= 1 << 16 else tiles
    order = np.argsort(keys, kind="stable")
    return ids[owner[order]], tiles[order]


def min_powers(opacities: np.ndarray) -> np.ndarray:  # float32 [M]
    """The least power at which alpha = opacity * exp(power) can reach 1/255: ln(1 / (255 opacity)), less 1e-3
    of float32 rounding room (exact: a pair below it is skipped without its exp)."""
    with np.errstate(divide="ignore"):
        return (np.log(1.0 / (255.0 * opacities.astype(np.float64))) - 1e-3).astype(np.float32)


def span_coefficients(conics: np.ndarray, lowest: np.ndarray) -> tuple[np.ndarray, ...]:
    """Where each Gaussian's power reaches ``lowest`` (the ellipse a dx² + 2 b dx dy + c dy² <= -2 lowest), per
    row: on the row with dy = mean_y - y the span is mean_x + slope dy -/+ sqrt(curve dy² + reach), empty where
    the root is negative; the ellipse's rows lie within mean_y -/+ half_height. Returns float64 (slope, curve,
    reach, half_height) and ``definite``, whether the conic is positive definite: the others are tested on the
    whole tile, as the kernel does (half_height inf, no span); a Gaussian that can never reach 1/255 gets
    half_height -1."""
    a, b, c = (conics[:, k].astype(np.float64) for k in range(3))
    radius2 = -2.0 * lowest.astype(np.float64)
    det = a * c - b * b
    definite = (a > 0) & (det > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = b / a
        curve = -det / (a * a)
        reach = radius2 / a
        half_height = np.where(definite, np.sqrt(np.maximum(radius2, 0.0) * a / det) + SPAN_MARGIN, np.inf)
    half_height[definite & (radius2 < 0)] = -1.0
    return slope, curve, reach, half_height, definite


# A tile's pairs walked per step: pixels whose transmittance ran out skip the later steps (the kernel's early
# stop), at the cost of one round of numpy calls per step; the deep levels few tiles reach are merged until a
# step has MIN_STEP_PAIRS pairs.
LEVEL_PAIRS = 32
MIN_STEP_PAIRS = 4096
SPAN_MARGIN = 0.01  # pixels added on both sides of a row's span, for float rounding


def _bit_tables():
    """For every 16-bit value v: its number of set bits, and at [16 v + k] the position of its k-th set bit."""
    values = np.arange(1 << P.TILE_SIZE, dtype=np.uint32)
    set_bits = ((values[:, None] >> np.arange(P.TILE_SIZE, dtype=np.uint32)) & 1).astype(bool)
    count = set_bits.sum(axis=1).astype(np.int32)
    positions = np.zeros((1 << P.TILE_SIZE, P.TILE_SIZE), dtype=np.uint8)
    rows, cols = np.nonzero(set_bits)
    positions[rows, np.arange(len(rows)) - np.repeat(np.cumsum(count) - count, count)] = cols
    return count, positions.ravel()


_BIT_COUNT, _BIT_POSITIONS = _bit_tables()  # 1.25 MB, built in a few ms at import


class _Pairs:
    """Per-(tile, Gaussian) pair copies of what the walk reads, as 1D arrays in (tile, depth) order."""

    def __init__(self, projected, pair_ids, pair_tiles):
        grid_x = projected.tile_grid[0]
        self.gid = pair_ids.astype(np.int32)
        self.tile = pair_tiles
        self.tile_column = (pair_tiles % grid_x).astype(np.int64)
        self.x0 = (self.tile_column * P.TILE_SIZE).astype(np.int32)
        self.x1 = np.minimum(self.x0 + P.TILE_SIZE, projected.width).astype(np.int32)
        self.mean_x, self.mean_y = projected.means2d[pair_ids, 0], projected.means2d[pair_ids, 1]
        self.a, self.b, self.c = (projected.conics[pair_ids, k] for k in range(3))
        self.opacity = projected.opacities[pair_ids]
        self.lowest = min_powers(self.opacity)
        self.slope, self.curve, self.reach, half_height, self.definite = span_coefficients(
            projected.conics[pair_ids], self.lowest)
        self.mean_x64 = self.mean_x.astype(np.float64)
        # the rows of its tile each pair can reach
        mean_y64 = self.mean_y.astype(np.float64)
        tile_y0 = (pair_tiles // grid_x) * P.TILE_SIZE
        with np.errstate(invalid="ignore"):
            y0 = np.maximum(tile_y0, np.ceil(np.nan_to_num(mean_y64 - half_height, nan=1e9, neginf=-1e9,
                                                           posinf=1e9)))
            y1 = np.minimum(np.minimum(tile_y0 + P.TILE_SIZE, projected.height),
                            np.floor(np.nan_to_num(mean_y64 + half_height, nan=-1e9, neginf=-1e9, posinf=1e9)) + 1)
        self.rows = np.maximum(y1 - y0, 0).astype(np.int32)
        self.y0 = y0.astype(np.int32)

    def steps(self):
        """Index arrays of the walk's steps, each in (tile, depth) order."""
        tile_first = np.flatnonzero(np.r_[True, self.tile[1:] != self.tile[:-1]])
        tile_size = np.diff(np.r_[tile_first, len(self.tile)])
        level = (np.arange(len(self.tile)) - np.repeat(tile_first, tile_size)) // LEVEL_PAIRS
        order = np.argsort(level, kind="stable")
        bounds = [0]
        for end in np.cumsum(np.bincount(level)):
            if end - bounds[-1] >= MIN_STEP_PAIRS or end == len(self.tile):
                bounds.append(int(end))
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            yield np.sort(order[lo:hi])  # several levels: back to (tile, depth) order


def iter_contributions(
    projected: P.Projected,
    include: np.ndarray | None = None,  # [N] bool
    pixel_mask: np.ndarray | None = None,  # [H, W] bool
    chunk_entries: int = DEFAULT_CHUNK_ENTRIES,
    with_falloff: bool = False,
) -> collections.abc.Iterator[tuple[np.ndarray, ...]]:  # int32 [M], int64 [M], float32 [M] (, float32 [M])
    """Yield ``(gaussian_ids, pixel_ids, weights)`` chunks; pixel ids index the flattened H x W image. A pixel's
    entries come front to back across the chunks (a stable sort by pixel id groups each pixel's walk).

    ``include``: optional boolean [N], the Gaussians to render (the others are absent, not just unlabelled).
    ``pixel_mask``: optional boolean [H, W]; pixels outside it are not evaluated at all (each pixel's walk is
    independent, so skipping some pixels changes nothing for the others).

    The walk takes each tile's depth-sorted pairs ``LEVEL_PAIRS`` at a time, all tiles at once, keeping each
    pixel's transmittance between steps; a pixel whose walk stopped (INRIA: before T would fall below 1e-4)
    takes no part in later steps. A pair is evaluated only on the rows of its tile and, on each row, the span
    where its power can reach 1/255 (:func:`span_coefficients`, float64, widened by ``SPAN_MARGIN``); the
    kernel's exact per-pixel test runs inside, so the result is that of testing every pixel of the tile.

    ``with_falloff``: each chunk also carries G_i(p) = exp(power), the Gaussian's value before its opacity
    (alpha = min(0.99, opacity * G)), for renders that change the opacity (:mod:`..refine.seg_opacity`).
    """
    width, height = projected.width, projected.height
    grid_x, grid_y = projected.tile_grid
    pair_ids, pair_tiles = sorted_tile_pairs(projected, include)
    if len(pair_ids) == 0:
        return
    pairs = _Pairs(projected, pair_ids, pair_tiles)
    # Each tile row's pixels still walking, as 16 bits (bit i: pixel x0 + i), cleared as pixels stop.
    padded = np.zeros((grid_y * P.TILE_SIZE, grid_x * P.TILE_SIZE), dtype=bool)
    padded[:height, :width] = True if pixel_mask is None else np.asarray(pixel_mask, dtype=bool)
    row_bits = np.packbits(padded.reshape(-1, P.TILE_SIZE), axis=1, bitorder="little").view("<u2").ravel().copy()
    del padded
    log_t = np.zeros(width * height)  # log of each pixel's transmittance so far
    for step in pairs.steps():
        tile_alive = (row_bits.reshape(grid_y, P.TILE_SIZE, grid_x) != 0).any(axis=1).ravel()
        if not tile_alive.any():
            return
        step = step[tile_alive[pairs.tile[step]] & (pairs.rows[step] > 0)]
        # chunks bounded by their box entries (an upper bound on the spans)
        entries_before = np.cumsum(pairs.rows[step].astype(np.int64) * P.TILE_SIZE)
        cuts = np.searchsorted(entries_before, np.arange(chunk_entries, entries_before[-1], chunk_entries),
                               side="right") if len(step) else []
        for chunk in np.split(step, cuts):
            if len(chunk):
                yield from _walk_chunk(pairs, chunk, row_bits, grid_x, width, log_t, with_falloff)


def _walk_chunk(pairs, chunk, row_bits, grid_x, width, log_t, with_falloff):
    """One chunk of a step of :func:`iter_contributions`: evaluates the pairs ``chunk`` (indices into ``pairs``)
    on the live pixels of their rows' spans, yields the kept entries, and updates ``row_bits`` and ``log_t``."""
    f32 = np.float32
    # the (pair, row) rows of the chunk that still have a live pixel
    heights = pairs.rows[chunk]
    row_pair = np.repeat(chunk, heights)
    row_y = np.arange(len(row_pair), dtype=np.int32) + np.repeat(pairs.y0[chunk] - (np.cumsum(heights) - heights),
                                                                 heights).astype(np.int32)
    bits = row_bits[row_y * np.int64(grid_x) + pairs.tile_column[row_pair]]
    live = np.flatnonzero(bits)
    row_pair, row_y, bits = row_pair[live], row_y[live], bits[live]
    # each row's span, as bits of its tile row, less the pixels whose walk has stopped
    row_dy = pairs.mean_y[row_pair] - row_y.astype(f32)  # float32, as the kernel
    dy64 = row_dy.astype(np.float64)
    x0 = pairs.x0[row_pair]
    with np.errstate(invalid="ignore"):
        half = np.sqrt(pairs.curve[row_pair] * dy64 * dy64 + pairs.reach[row_pair]) + SPAN_MARGIN
        half[~pairs.definite[row_pair]] = 1e9  # the whole tile row
        centre = pairs.mean_x64[row_pair] + pairs.slope[row_pair] * dy64 - x0
        first = np.clip(np.ceil(centre - half), 0, P.TILE_SIZE).astype(np.int32)
        last = np.clip(np.floor(centre + half) + 1, 0, P.TILE_SIZE).astype(np.int32)  # NaN half: out of reach
    last = np.maximum(last, first)
    bits &= ((np.int32(1) << last) - (np.int32(1) << first)).astype(np.uint16)
    counts = _BIT_COUNT[bits]
    reach = np.flatnonzero(counts)
    if len(reach) == 0:
        return
    row_pair, row_y, row_dy, bits, counts = (v[reach] for v in (row_pair, row_y, row_dy, bits, counts))
    # the live pixels of the spans (the k-th set bit of each row's bits); entries come row by row, so what
    # they read of their row is expanded with np.repeat rather than gathered
    def per_entry(row_values):
        return np.repeat(row_values, counts)

    local = np.arange(int(counts.sum()), dtype=np.int32) - per_entry(np.cumsum(counts, dtype=np.int32) - counts)
    pix_x = per_entry(x0[reach]) + _BIT_POSITIONS[per_entry(bits.astype(np.int32) * P.TILE_SIZE) + local]
    pixel = per_entry(row_y * np.int32(width)) + pix_x
    # the kernel's test, float32: power <= 0, alpha = min(0.99, opacity exp(power)) >= 1/255
    dx = per_entry(pairs.mean_x[row_pair]) - pix_x.astype(f32)
    power = f32(-0.5) * (per_entry(pairs.a[row_pair]) * dx * dx + per_entry(pairs.c[row_pair] * row_dy * row_dy)) \
        - per_entry(pairs.b[row_pair]) * dx * per_entry(row_dy)
    near = np.flatnonzero((power <= 0) & (power >= per_entry(pairs.lowest[row_pair])))
    falloff = np.exp(power[near])
    alpha = np.minimum(f32(P.MAX_ALPHA), per_entry(pairs.opacity[row_pair])[near] * falloff)
    counted = np.flatnonzero(alpha >= f32(P.MIN_ALPHA))
    if len(counted) == 0:
        return
    near = near[counted]
    # Regroup by pixel: a stable (radix) sort on the pixel-in-tile index keeps tile-then-depth order inside
    # each group, so each run of one pixel id is that pixel's part of the walk, front to back.
    in_tile = (per_entry(((row_y & (P.TILE_SIZE - 1)) * P.TILE_SIZE).astype(np.uint8))[near]
               + (pix_x[near] & (P.TILE_SIZE - 1)).astype(np.uint8))
    order = np.argsort(in_tile, kind="stable")
    entries = near[order]
    alpha = alpha[counted[order]]
    gid, pixel = per_entry(pairs.gid[row_pair])[entries], pixel[entries]
    # log T before each entry: the pixel's T so far, then an exclusive segmented sum of log(1 - alpha)
    log_keep = np.log1p(-alpha.astype(np.float64))
    before = np.cumsum(log_keep) - log_keep
    run_start = np.flatnonzero(np.r_[True, pixel[1:] != pixel[:-1]])
    run_length = np.diff(np.r_[run_start, len(pixel)])
    run_pixel = pixel[run_start]
    t_before = before + np.repeat(log_t[run_pixel] - before[run_start], run_length)
    t_after = t_before + log_keep
    keep = t_after >= _LOG_MIN_T
    # The kept entries are a prefix of each run: the last one gives the pixel's new T; a run cut short
    # ends its pixel's walk.
    run_kept = np.add.reduceat(keep, run_start)
    some = run_kept > 0
    log_t[run_pixel[some]] = t_after[(run_start + run_kept - 1)[some]]
    stopped = run_pixel[run_kept < run_length]
    stopped_x = stopped % width
    np.bitwise_and.at(row_bits, stopped // width * grid_x + stopped_x // P.TILE_SIZE,
                      ~(np.uint16(1) << (stopped_x % P.TILE_SIZE).astype(np.uint16)))
    weight = alpha[keep] * np.exp(t_before[keep]).astype(f32)
    if with_falloff:
        yield gid[keep], pixel[keep].astype(np.int64), weight, falloff[counted[order]][keep]
    else:
        yield gid[keep], pixel[keep].astype(np.int64), weight


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
