"""Codebooks for the lossy formats: one 1D codebook shared by several columns (within a hair of the least squared
error for its size), and a k-means palette of vectors (SOG's SH coefficients)."""

from __future__ import annotations

import numpy as np

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
