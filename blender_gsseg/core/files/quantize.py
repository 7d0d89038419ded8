"""The lossy formats' shared steps: the float64 sigmoid and the 8-bit colour and alpha they quantise through and
decode from (as splat-transform computes them), [0, 1] to n-bit steps, and the Morton order that puts neighbours
in one chunk; and their codebooks: one 1D codebook shared by several columns (within a hair of the least squared
error for its size), and a k-means palette of vectors (SOG's SH coefficients)."""

from __future__ import annotations

import warnings

import numpy as np

from ..gaussians import SH_C0

# The ends of an 8-bit alpha: splat-transform's .splat rule clamps it to [1e-6, 1 - 1e-6] before the logit.
_EPSILON = 1e-6
# Its logits at alpha 255 and 0, computed the same way (float64, then float32).
_LOGIT_HIGH = np.float32(np.log((1.0 - _EPSILON) / (1.0 - (1.0 - _EPSILON))))
_LOGIT_LOW = np.float32(np.log(_EPSILON / (1.0 - _EPSILON)))


def sigmoid64(logits: np.ndarray) -> np.ndarray:  # [N] -> float64 [N]
    """Opacity from its logit in float64, as splat-transform computes it before quantising."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def logit_from_alpha8(alpha: np.ndarray) -> np.ndarray:  # uint8 [N] -> float64 [N]
    """The opacity logit of an 8-bit alpha after the sigmoid, as splat-transform decodes .splat, .ksplat and .sog
    (alpha clamped to [1e-6, 1 - 1e-6])."""
    value = np.clip(np.asarray(alpha, dtype=np.float64) / 255.0, _EPSILON, 1.0 - _EPSILON)
    return np.log(value / (1.0 - value))


def decode_rgba8(out: np.ndarray, rgba: np.ndarray) -> None:  # out: structured [N]; rgba: uint8 [N, 4]
    """``f_dc_*`` and ``opacity`` of ``out`` from 8-bit base colour and alpha, as splat-transform decodes .splat and
    .ksplat."""
    for index in range(3):
        out[f"f_dc_{index}"] = (rgba[:, index].astype(np.float64) / 255.0 - 0.5) / SH_C0
    out["opacity"] = logit_from_alpha8(rgba[:, 3])


def finite_saturated_logits(alpha, values):  # uint8 [N], float [N] -> float32 [N]
    """Opacity logits of 8-bit alphas: ``values`` (the format's own decoding) for alpha 1..254, and at 0 and 255
    splat-transform's finite .splat ends, where the format's formula gives -inf / +inf."""
    out = np.asarray(values, dtype=np.float32).copy()
    out[alpha == 255] = _LOGIT_HIGH
    out[alpha == 0] = _LOGIT_LOW
    return out


def morton_order(positions: np.ndarray) -> np.ndarray:  # [N, 3] -> int64 [N]
    """The splats in Morton (Z-order) order of their positions quantised to 10 bits per axis over the scene's
    bounds, and a run of more than 256 splats in one cell ordered again over its own bounds: neighbours share a
    chunk, so the chunks' ranges are tight (what splat-transform does, cell for cell)."""
    positions = np.asarray(positions, dtype=np.float64)
    order = np.arange(len(positions))
    pending = [(0, len(order))]
    while pending:
        start, end = pending.pop()
        members = order[start:end]
        code = _morton_code(positions[members])
        if code is None:
            continue
        ranked = np.argsort(code, kind="stable")
        order[start:end] = members[ranked]
        code = code[ranked]
        bounds = np.concatenate(([0], np.flatnonzero(code[1:] != code[:-1]) + 1, [len(code)]))
        crowded = np.flatnonzero(np.diff(bounds) > 256)
        pending += [(start + int(bounds[k]), start + int(bounds[k + 1])) for k in crowded]
    return order


def _morton_code(positions):  # [M, 3] float64 -> int64 [M], or None when the points have no finite extent
    """Cells as splat-transform computes them: bounds over the non-NaN values, a NaN coordinate in cell 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN axis
        low, high = np.nanmin(positions, axis=0), np.nanmax(positions, axis=0)
    span = high - low
    if not np.all(np.isfinite(span)) or not np.any(span):
        return None
    scale = np.where(span > 0, 1024.0 / np.where(span > 0, span, 1.0), 0.0)
    cells = np.nan_to_num(np.minimum(1023, (positions - low) * scale), nan=0.0).astype(np.int64)
    code = np.zeros(len(positions), dtype=np.int64)
    for bit in range(10):
        for axis in range(3):
            code |= ((cells[:, axis] >> bit) & 1) << (3 * bit + axis)
    return code


def unorm(value, bits):  # float [0, 1] -> uint32 steps
    """[0, 1] -> the nearest of 2^bits levels."""
    top = (1 << bits) - 1
    return np.clip(np.floor(np.asarray(value, dtype=np.float64) * top + 0.5), 0, top).astype(np.uint32)


# --------------------------------------------------------------------------------------------------------------
# Codebooks

# Infinite values (log-scale -inf for flat splats) get a finite end entry this far outside the finite range, as
# splat-transform does: JSON-safe, and exp(-20) is flat enough.
INFINITY_MARGIN = 20.0


def codebook_1d(
    values: np.ndarray,  # [N] any float; ±inf and NaN allowed
    size: int = 256,
    iterations: int = 100,
) -> tuple[np.ndarray, np.ndarray]:  # codebook float32 [size] ascending, each value's entry int64 [N]
    """The ``size`` levels that (nearly) minimise the squared error of ``values`` (:func:`_lloyd_max`), and each
    value's nearest level."""
    values = np.asarray(values, dtype=np.float64).ravel()
    finite = np.sort(values[np.isfinite(values)])
    low_slot, high_slot = bool(np.any(values == -np.inf)), bool(np.any(values == np.inf))
    slots = size - low_slot - high_slot
    levels = _lloyd_max(finite, slots, iterations) if len(finite) and slots > 0 else np.zeros(0)
    edge_low = finite[0] if len(finite) else 0.0
    edge_high = finite[-1] if len(finite) else 0.0
    padded = np.full(slots, levels[-1] if len(levels) else edge_low)
    padded[:len(levels)] = levels
    book = np.concatenate(([edge_low - INFINITY_MARGIN] * low_slot, padded, [edge_high + INFINITY_MARGIN] * high_slot))
    book = book.astype(np.float32)
    return book, nearest_level(book, values)


def nearest_level(book: np.ndarray, values: np.ndarray) -> np.ndarray:  # [K] ascending, [N] -> int64 [N]
    """Each value's nearest entry of an ascending codebook (NaN -> 0)."""
    book = book.astype(np.float64)
    index = np.searchsorted((book[:-1] + book[1:]) / 2.0, np.nan_to_num(values, nan=book[0]), side="left")
    return np.clip(index, 0, len(book) - 1)


def _lloyd_max(data, count, iterations, bins=1024):  # sorted finite [M], levels wanted -> ascending levels
    """Least-squares levels: the exact optimum over a histogram (dynamic programming over its bins, placed half
    uniformly and half at quantiles so that both a dense centre and sparse tails are resolved), then Lloyd steps
    on the values themselves. Lloyd alone stalls far from the optimum (at 2x its error on normal data) because a
    discrete sample has a fixed point wherever each level is the mean of its values."""
    starts = np.concatenate(([True], data[1:] != data[:-1]))
    if np.count_nonzero(starts) <= count:
        return data[starts]
    centre = data[len(data) // 2]
    data = data - centre  # the squared sums below lose less to cancellation around zero
    prefix = np.concatenate(([0.0], np.cumsum(data)))
    squares = np.concatenate(([0.0], np.cumsum(data * data)))
    edges = np.unique(np.concatenate((np.linspace(data[0], data[-1], bins // 2 + 1),
                                      data[np.linspace(0, len(data) - 1, bins // 2 + 1).astype(np.int64)])))
    # bins [edge k, edge k+1), the last one closed: runs of the sorted values, their moments from prefix sums
    cuts = np.concatenate(([0], np.searchsorted(data, edges[1:-1], side="left"), [len(data)]))
    weight = np.diff(cuts).astype(np.float64)
    first, second = np.diff(prefix[cuts]), np.diff(squares[cuts])
    full = weight > 0
    weight, first, second = weight[full], first[full], second[full]
    if len(weight) <= count:
        levels = first / weight
    else:
        levels = _histogram_optimum(weight, first, second, count)
    for _ in range(iterations):
        cuts = np.concatenate(([0], np.searchsorted(data, (levels[:-1] + levels[1:]) / 2.0), [len(data)]))
        counts = np.diff(cuts)
        sums = prefix[cuts[1:]] - prefix[cuts[:-1]]
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), levels)
        if np.array_equal(updated, levels):
            break
        levels = updated
    return np.unique(levels) + centre


def _histogram_optimum(weight, first, second, count):  # per bin count, Σx, Σx² [H] -> count levels
    """The partition of H ordered bins into ``count`` runs with the least total squared error about each run's
    mean (O(count · H²), vectorised over H²), and the runs' means."""
    bins = len(weight)
    w, s, q = (np.concatenate(([0.0], np.cumsum(v))) for v in (weight, first, second))
    start, end = np.arange(bins)[:, None], np.arange(bins)[None, :]  # a run of bins start..end
    with np.errstate(divide="ignore", invalid="ignore"):
        run_weight = w[end + 1] - w[start]
        run_sum = s[end + 1] - s[start]
        cost = np.where(end >= start, q[end + 1] - q[start] - run_sum * run_sum / run_weight, np.inf)
    after = np.vstack((cost[1:], np.full((1, bins), np.inf)))  # after[i, j]: the run i+1..j
    best = cost[0].copy()  # best[j]: bins 0..j in one run
    previous_end = np.empty((count - 1, bins), dtype=np.int64)
    for runs in range(1, count):
        total = best[:, None] + after
        previous_end[runs - 1] = np.argmin(total, axis=0)
        best = total[previous_end[runs - 1], np.arange(bins)]
    levels, last = np.empty(count), bins - 1
    for runs in range(count - 1, -1, -1):
        first_bin = previous_end[runs - 1][last] + 1 if runs else 0
        levels[runs] = (s[last + 1] - s[first_bin]) / (w[last + 1] - w[first_bin])
        last = first_bin - 1
    return levels


def kmeans_palette(
    points: np.ndarray,  # [N, D] float
    size: int,
    iterations: int = 10,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:  # centroids float32 [min(size, N), D], each point's centroid int64 [N]
    """A palette of ``size`` vectors by two-level k-means: ``sqrt(size)`` coarse clusters, then each cluster's
    share of the palette fitted to its own points (Lloyd, ``iterations`` steps). A flat k-means of 65536 entries
    in 45 dimensions over a million points costs 3·10¹² multiply-adds a step; this costs sqrt(size) times less, the
    price being points near a coarse boundary that could have found a slightly closer entry across it.
    Deterministic for a given ``seed``."""
    points = np.ascontiguousarray(points, dtype=np.float32)
    count = len(points)
    if count <= size:
        return points.copy(), np.arange(count, dtype=np.int64)
    rng = np.random.default_rng(seed)
    coarse_count = max(1, int(np.ceil(np.sqrt(size))))
    sample = points[rng.choice(count, size=min(count, 256 * coarse_count), replace=False)]
    coarse, _ = _lloyd(sample, coarse_count, iterations, rng)
    coarse_label = _assign(points, coarse)
    members = np.argsort(coarse_label, kind="stable")
    sizes = np.bincount(coarse_label, minlength=len(coarse))
    shares = _shares(sizes, size)
    centroids = np.empty((size, points.shape[1]), dtype=np.float32)
    labels = np.empty(count, dtype=np.int64)
    start = placed = 0
    for cluster_size, share in zip(sizes, shares, strict=True):
        group = members[start:start + cluster_size]
        start += cluster_size
        if share == 0:
            continue
        fine, fine_label = _lloyd(points[group], share, iterations, rng)
        centroids[placed:placed + share] = fine
        labels[group] = placed + fine_label
        placed += share
    return centroids[:placed], labels


def _shares(sizes, size):  # points per coarse cluster, palette size -> entries per cluster (sum = size)
    exact = sizes * (size / sizes.sum())
    shares = np.minimum(np.floor(exact).astype(np.int64), sizes)
    shares[(sizes > 0) & (shares == 0)] = 1
    while shares.sum() > size:  # more non-empty clusters than entries (tiny palettes): drop the smallest
        shares[np.flatnonzero(shares > 0)[np.argmin(sizes[shares > 0])]] -= 1
    spare = size - shares.sum()
    while spare > 0:  # largest remainders first, never more entries than points
        room = np.flatnonzero(shares < sizes)
        take = room[np.argsort(-(exact[room] - shares[room]), kind="stable")][:spare]
        shares[take] += 1
        spare -= len(take)
    return shares


def _lloyd(points, count, iterations, rng):  # [M, D], k -> centroids [k, D], labels [M]
    if len(points) <= count:
        return points.copy(), np.arange(len(points), dtype=np.int64)
    centroids = points[rng.choice(len(points), size=count, replace=False)].copy()
    for _ in range(iterations):
        labels = _assign(points, centroids)
        counts = np.bincount(labels, minlength=count)
        sums = np.zeros((count, points.shape[1]), dtype=np.float64)
        _sum_rows(sums, labels, points)
        empty = counts == 0
        centroids[~empty] = (sums[~empty] / counts[~empty, None]).astype(np.float32)
        if empty.any():  # re-seed an empty entry at a random point, as splat-transform does
            centroids[empty] = points[rng.choice(len(points), size=int(empty.sum()), replace=False)]
    return centroids, _assign(points, centroids)


def _sum_rows(sums, labels, points):  # sums[labels[i]] += points[i], by sorting instead of a scattered add
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_labels[1:] != sorted_labels[:-1])))
    sums[sorted_labels[starts]] = np.add.reduceat(points[order].astype(np.float64), starts, axis=0)


def _assign(points, centroids, rows=8192):  # [M, D], [K, D] -> nearest centroid int64 [M]
    """Nearest centroid by |c|² - 2 x·c (the |x|² term is the same for every centroid), in row blocks."""
    norms = np.einsum("kd,kd->k", centroids, centroids)
    out = np.empty(len(points), dtype=np.int64)
    for start in range(0, len(points), rows):
        block = points[start:start + rows]
        out[start:start + rows] = np.argmin(norms[None, :] - 2.0 * (block @ centroids.T), axis=1)
    return out
