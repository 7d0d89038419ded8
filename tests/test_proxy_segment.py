"""Labels from proxies alone (core.scene.proxy_segment): the neighbour search against brute force, and the rules on a
scene built for them (overlapping boxes, a floor inside a box, a halo, a floater)."""

import numpy as np

from blender_gsseg.core.scene.proxy_segment import (Proxy, baseline_labels, labels_at_zero, nearest_neighbours,
                                                    proxy_labels, proxy_weights)
from scenes import gaussians_from_arrays


def box(label, low, high):
    low, high = np.asarray(low, float), np.asarray(high, float)
    corners = np.array([[high[0] if i & 1 else low[0], high[1] if i & 2 else low[1], high[2] if i & 4 else low[2]]
                        for i in range(8)])
    quads = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    return Proxy(label, np.array([corners[[q[0], q[1], q[2]]] for q in quads]
                                 + [corners[[q[0], q[2], q[3]]] for q in quads]))


def test_nearest_neighbours_match_brute_force():
    rng = np.random.default_rng(0)
    surface = rng.normal(size=(3000, 3))
    # a surface (as a splat's Gaussians lie) with some points in the air around it
    points = np.concatenate([surface / np.linalg.norm(surface, axis=1, keepdims=True), rng.uniform(-1, 1, (500, 3))])
    found = nearest_neighbours(points, 6)
    squared = (points ** 2).sum(axis=1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None] - 2 * points @ points.T, 0))  # every pair
    np.fill_diagonal(distances, np.inf)
    truth = np.sort(distances, axis=1)[:, :6]
    got = np.take_along_axis(distances, np.where(found >= 0, found, 0), axis=1)
    complete = (found >= 0).all(axis=1)
    exact = complete & np.isclose(np.sort(got, axis=1), truth).all(axis=1)
    # the search looks in the 27 grid cells around a point: exact wherever the neighbours are that close, which
    # is nearly everywhere on a surface; a point alone in the air may get farther ones, or fewer
    assert exact[:3000].mean() > 0.99 and exact.mean() > 0.9
    assert all(len(set(row[row >= 0])) == (row >= 0).sum() and i not in row for i, row in enumerate(found))


def overlap_scene():
    rng = np.random.default_rng(1)
    floor = np.c_[rng.uniform(-2, 2, (4000, 2)), np.zeros(4000)]  # grey floor at z = 0
    block = np.c_[rng.uniform(-0.5, 0.5, (1500, 2)), rng.uniform(0.0, 0.4, 1500)]  # red block on it
    ball = rng.normal(size=(1500, 3))
    ball = 0.3 * ball / np.linalg.norm(ball, axis=1, keepdims=True) + [0.0, 0.0, 0.7]  # green ball on the block
    halo = 0.36 * rng.normal(size=(150, 3)) / 1.0
    halo = 0.36 * halo / np.linalg.norm(halo, axis=1, keepdims=True) + [0.0, 0.0, 0.7]  # faint green, past the surface
    floater = np.array([[0.0, 0.0, 1.5]])  # faint, above the ball's box
    means = np.concatenate([floor, block, ball, halo, floater])
    colours = np.concatenate([np.tile([0.5, 0.5, 0.5], (4000, 1)), np.tile([0.8, 0.2, 0.1], (1500, 1)),
                              np.tile([0.2, 0.7, 0.2], (1650, 1)), [[0.2, 0.7, 0.2]]])
    truth = np.concatenate([np.zeros(4000), np.ones(1500), np.full(1650, 2), [0]]).astype(int)
    n = len(means)
    scales = np.full((n, 3), np.log(0.02))
    scales[5650:] = np.log(0.05)
    opacity = np.full(n, 3.0)
    opacity[5650:] = -1.5
    gaussians = gaussians_from_arrays(means, scales, np.tile([1.0, 0, 0, 0], (n, 1)), opacity, colours)
    # loose boxes: the block's reaches into the floor, the ball's down into the block, both overlap
    proxies = [box(1, [-0.6, -0.6, -0.05], [0.6, 0.6, 0.45]), box(2, [-0.35, -0.35, 0.3], [0.35, 0.35, 1.08])]
    return gaussians, proxies, truth, floor


def test_overlaps_floor_halo_and_floaters():
    gaussians, proxies, truth, floor = overlap_scene()
    labels = proxy_labels(gaussians, proxies)
    naive = baseline_labels(gaussians, proxies)
    for label in (1, 2):
        recall = (labels[truth == label] == label).mean()
        precision = (truth[labels == label] == label).mean()
        naive_precision = (truth[naive == label] == label).mean()
        assert recall >= 0.97 and precision >= naive_precision and precision > 0.97, (label, recall, precision)
    assert (labels[5500:5650] == 2).mean() > 0.97  # the halo goes with the ball, though outside its box
    assert labels[-1] == 0  # the floater spills into no box: never taken
    far = np.linalg.norm(floor, axis=1) > 1.2
    assert (labels[:4000][far] == 0).all()


def test_proxy_weights_are_an_accumulation_the_solver_reads_as_the_proxy_labels():
    """The proxies' segmentation as an accumulation (issue 28, item 2): each Gaussian's weights sum to 1, all on
    one label for a seed or a Gaussian that touches no proxy; the solver gives the proxy labels at gamma 0, fewer
    points of the objects at gamma > 0 and more at gamma < 0; two proxies of one label add their scores."""
    from blender_gsseg.core.lift.accumulate import Accumulation
    from blender_gsseg.core.lift.solver import Shares

    gaussians, proxies, truth, _ = overlap_scene()
    label_ids, weights = proxy_weights(gaussians, list(reversed(proxies)))  # any order: rows ascend by label
    assert label_ids.tolist() == [0, 1, 2] and weights.dtype == np.float32 and weights.shape == (3, len(gaussians))
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, atol=1e-6)
    certain = weights.max(axis=0) == 1.0
    assert 0.5 < certain.mean() < 1.0
    shares = Shares.from_accumulation(Accumulation(label_ids, weights))
    labels = proxy_labels(gaussians, proxies)
    assert (shares.solve(0.0)[0] == labels).all()
    counts = [(shares.solve(gamma)[0] > 0).sum() for gamma in (-0.6, -0.3, 0.0, 0.3, 0.6)]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]
    for gamma in (-0.9, 0.9):  # the certain Gaussians keep their label at any gamma
        assert (shares.solve(gamma)[0][certain] == labels[certain]).all()
    # the ball's box split in two halves of one label: one instance, as the whole box makes it (nearly)
    low, high = np.array([-0.35, -0.35, 0.3]), np.array([0.35, 0.35, 1.08])
    halves = [box(2, low, [high[0], high[1], 0.7]), box(2, [low[0], low[1], 0.7], high)]
    label_ids, weights = proxy_weights(gaussians, [proxies[0]] + halves)
    assert label_ids.tolist() == [0, 1, 2]
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, atol=1e-6)
    split = labels_at_zero(label_ids, weights)
    assert (split[truth == 2] == 2).mean() > 0.9
