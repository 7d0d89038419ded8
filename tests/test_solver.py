"""The closed-form solve: its definitions on hand-made accumulations, and optimality on rendered scenes."""

import numpy as np
import pytest

from blender_gsseg.core.raster import projection
from blender_gsseg.core.lift.accumulate import Accumulation, accumulate_weights
from blender_gsseg.core.errors import BadInputError
from blender_gsseg.core.lift.solver import Shares, solve_labels
from reference_raster import reference_weights
from scenes import front_camera, random_scene, rotated_camera


def acc(label_ids, columns):
    return Accumulation(np.array(label_ids, dtype=np.int32), np.array(columns, dtype=np.float32).T.copy())


def test_primary_label_definitions():
    a = acc([0, 3, 7], [[1, 0, 0], [0, 2, 2], [0, 0, 0], [3, 1, 0], [1, 1, 2]])
    labels, confidence = solve_labels(a)
    # column 1 ties between 3 and 7 -> smaller id; column 2 saw nothing -> unseen.
    assert labels.tolist() == [0, 3, -1, 0, 7]
    np.testing.assert_allclose(confidence, [1, 0, 0, 0.5, 0.25], atol=1e-6)
    # gamma is added to the background share only
    labels, _ = solve_labels(a, gamma=-0.3)
    assert labels.tolist() == [0, 3, -1, 0, 7]
    labels, _ = solve_labels(a, gamma=0.3)
    assert labels.tolist() == [0, 3, -1, 0, 0]
    labels, _ = solve_labels(a, gamma=-0.6)
    assert labels.tolist() == [0, 3, -1, 3, 7]


def test_membership_rule_and_binary_mode():
    a = acc([0, 1, 2], [[0.2, 0.7, 0.1], [0.5, 0.45, 0.05], [0, 0, 0], [0.1, 0.45, 0.45]])
    shares = Shares.from_accumulation(a)
    # member of t at gamma iff s_t > (1 + gamma) / 2
    assert shares.members(1, 0.0).tolist() == [True, False, False, False]
    assert shares.members(1, -0.2).tolist() == [True, True, False, True]
    assert shares.members(2, -0.2).tolist() == [False, False, False, True]
    assert shares.members(1, 0.5).tolist() == [False, False, False, False]
    labels, _ = solve_labels(a, target=1)
    assert labels.tolist() == [1, 0, -1, 0]
    labels, _ = solve_labels(a, target=1, gamma=-0.2)
    assert labels.tolist() == [1, 1, -1, 1]
    with pytest.raises(BadInputError):
        solve_labels(a, target=5)
    with pytest.raises(BadInputError):
        solve_labels(a, gamma=1.5)


def _dense_for(scene, camera):
    covs = projection.covariances_3d(scene.scales, scene.rotations)
    projected = projection.project_gaussians(scene.means, covs, scene.opacities, camera)
    return reference_weights(projected)[0]


def test_binary_labels_minimise_rendered_l1_error():
    """FlashSplat's objective: sum over views and pixels |sum_i w_i(p) P_i - M(p)|. No single flip helps."""
    scene = random_scene(11, n=90)
    cameras = [front_camera(40, 30), rotated_camera(3, 40, 30)]
    rng = np.random.default_rng(1)
    masks, dense = [], []
    for camera in cameras:
        dense.append(_dense_for(scene, camera))
        # a blocky mask with two instances (1 and 2) over background
        coarse = rng.integers(0, 3, (camera.height // 10 + 1, camera.width // 10 + 1))
        masks.append(np.kron(coarse, np.ones((10, 10), dtype=int))[:camera.height, :camera.width])
    label_ids = np.array([0, 1, 2])
    accumulation = accumulate_weights(scene, cameras, masks, label_ids, backend="cpu")
    shares = Shares.from_accumulation(accumulation)

    def objective(target, picked):
        total = 0.0
        for weights, mask in zip(dense, masks, strict=True):
            rendered = np.tensordot(picked.astype(float), weights, axes=1)
            total += np.abs(rendered - (mask == target)).sum()
        return total

    for target in (1, 2):
        picked = shares.members(target, 0.0)
        best = objective(target, picked)
        assert picked.any() and not picked.all()
        for i in range(len(scene)):
            flipped = picked.copy()
            flipped[i] = not flipped[i]
            assert objective(target, flipped) >= best - 1e-9


def test_gamma_moves_foreground_count_monotonically():
    scene = random_scene(12, n=300)
    camera = front_camera()
    rng = np.random.default_rng(2)
    mask = rng.integers(0, 4, (camera.height, camera.width)).astype(np.int32)
    shares = Shares.from_accumulation(accumulate_weights(scene, [camera], [mask], [0, 1, 2, 3], backend="cpu"))
    counts = [int((shares.solve(g)[0] > 0).sum()) for g in np.linspace(-1, 1, 21)]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] > counts[-1]
    members = [int(shares.members(2, g).sum()) for g in np.linspace(-1, 1, 21)]
    assert members == sorted(members, reverse=True)
