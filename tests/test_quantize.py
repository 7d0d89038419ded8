"""The lossy formats' shared steps (core/files/quantize.py): the codebooks against plain references (the exact
least-squares partition of sorted values, dynamic programming over every split, O(k n^2), and a flat Lloyd
k-means), and the Morton order against splat-transform's placement of a NaN position."""

import numpy as np
import pytest

from blender_gsseg.core.files.quantize import INFINITY_MARGIN, codebook_1d, kmeans_palette, morton_order


def optimal_squared_error(values, levels):
    """The least total squared error of ``values`` quantised to ``levels`` levels: every partition of the sorted
    values into contiguous runs, each at its mean (the optimum is always such a partition)."""
    data = np.sort(values)
    n = len(data)
    prefix = np.concatenate(([0.0], np.cumsum(data)))
    squares = np.concatenate(([0.0], np.cumsum(data * data)))

    def cost(i, j):  # run data[i:j]
        total = prefix[j] - prefix[i]
        return squares[j] - squares[i] - total * total / (j - i)

    best = [cost(0, j) if j else 0.0 for j in range(n + 1)]
    for _ in range(1, levels):
        best = [min([best[j]] + [best[i] + cost(i, j) for i in range(1, j)]) if j else 0.0 for j in range(n + 1)]
    return best[n]


@pytest.mark.parametrize("kind", ["normal", "heavy", "skewed"])
def test_codebook_is_within_a_few_percent_of_the_least_squares_optimum(kind):
    rng = np.random.default_rng(5)
    values = {"normal": rng.normal(size=160), "heavy": rng.standard_t(2, size=160),
              "skewed": np.log(rng.gamma(0.5, size=160))}[kind]
    book, entry = codebook_1d(values, size=12)
    ours = float(np.sum((book[entry].astype(np.float64) - values) ** 2))
    assert ours <= 1.01 * optimal_squared_error(values, 12)
    # every value goes to its nearest entry
    nearest = np.min(np.abs(values[:, None] - book[None, :].astype(np.float64)), axis=1)
    np.testing.assert_allclose(np.abs(book[entry] - values), nearest, rtol=0, atol=1e-12)


def test_codebook_keeps_few_distinct_values_exactly_and_gives_infinities_their_own_ends():
    values = np.array([3.0, -1.0, 3.0, 0.5, -np.inf, 0.5, np.inf, np.nan])
    book, entry = codebook_1d(values, size=8)
    assert book[0] == np.float32(-1.0 - INFINITY_MARGIN) and book[-1] == np.float32(3.0 + INFINITY_MARGIN)
    assert list(np.diff(book) >= 0) == [True] * 7
    np.testing.assert_array_equal(book[entry[:4]], [3.0, -1.0, 3.0, 0.5])
    assert entry[4] == 0 and entry[6] == 7 and 0 <= entry[7] < 8


def flat_lloyd(points, size, iterations, seed):
    rng = np.random.default_rng(seed)
    centroids = points[rng.choice(len(points), size=size, replace=False)].astype(np.float64)
    for _ in range(iterations):
        label = np.argmin(((points[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
        for k in range(size):
            if (label == k).any():
                centroids[k] = points[label == k].mean(axis=0)
    label = np.argmin(((points[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
    return float(((points - centroids[label]) ** 2).sum())


def test_palette_error_is_close_to_a_flat_kmeans_and_every_entry_is_used_sensibly():
    rng = np.random.default_rng(6)
    blobs = rng.normal(size=(12, 9)) * 3.0
    points = (blobs[rng.integers(0, 12, 3000)] + rng.normal(size=(3000, 9)) * 0.3).astype(np.float32)
    centroids, label = kmeans_palette(points, 64, iterations=10)
    assert centroids.shape == (64, 9) and label.shape == (3000,) and 0 <= label.min() and label.max() < 64
    ours = float(((points - centroids[label]) ** 2).sum())
    assert ours <= 1.15 * flat_lloyd(points.astype(np.float64), 64, 10, seed=1)
    # the second level is fitted to its points: each point's entry is the nearest of its coarse cluster's, so no
    # point is far from every entry
    assert np.sqrt(((points - centroids[label]) ** 2).sum(axis=1)).max() < 3.0
    again, label_again = kmeans_palette(points, 64, iterations=10)
    np.testing.assert_array_equal(again, centroids)  # deterministic for a seed
    np.testing.assert_array_equal(label_again, label)


def test_palette_of_fewer_points_than_entries_is_the_points():
    points = np.arange(12, dtype=np.float32).reshape(4, 3)
    centroids, label = kmeans_palette(points, 16)
    np.testing.assert_array_equal(centroids, points)
    np.testing.assert_array_equal(label, np.arange(4))


def test_morton_order_places_a_nan_position_as_splat_transform_does():
    """Bounds over the other splats, the NaN coordinate in cell 0 (JavaScript's NaN >>> 0): the others keep
    their order, the NaN splat sorts with cell 0 (first here)."""
    positions = np.random.default_rng(8).normal(size=(500, 3))
    with_nan = np.vstack(([np.nan, np.nan, np.nan], positions))
    order = morton_order(with_nan)
    assert order[0] == 0
    np.testing.assert_array_equal(order[1:], morton_order(positions) + 1)
