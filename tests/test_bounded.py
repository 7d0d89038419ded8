"""The bounded accumulation (many labels) against the dense one: same primary labels, same memberships above
gamma -0.88, the sidecar's bounded form, and the automatic switch under a memory budget."""

import numpy as np
import pytest

from blender_gsseg.core.lift.accumulate import (BoundedAccumulation, TOP_K, accumulate_weights, estimate_bounded_memory,
                                           estimate_memory)
from blender_gsseg.core.lift.sidecar import load_accumulation, save_accumulation
from blender_gsseg.core.raster.backends import CpuBackend
from blender_gsseg.core.errors import BadInputError, MemoryBudgetError
from blender_gsseg.core.lift.solver import Shares
from scenes import front_camera, random_scene, rotated_camera


def label_maps(cameras, n_labels, seed, block=3):
    rng = np.random.default_rng(seed)
    maps = []
    for camera in cameras:
        coarse = rng.integers(0, n_labels, (camera.height // block + 1, camera.width // block + 1))
        maps.append(np.kron(coarse, np.ones((block, block), int))[:camera.height, :camera.width].astype(np.int32))
    return maps


@pytest.mark.parametrize("n_labels,seed", [(5, 0), (40, 1), (300, 2)])
def test_bounded_matches_dense(n_labels, seed):
    scene = random_scene(seed, n=250)
    cameras = [front_camera(60, 45), rotated_camera(seed, 60, 45)]
    maps = label_maps(cameras, n_labels, seed, block=2 if n_labels > 100 else 4)
    label_ids = np.arange(n_labels, dtype=np.int32) * 3  # ids are not renumbered
    backend = CpuBackend(use_numba=False)
    dense = accumulate_weights(scene, cameras, maps, label_ids, backend=backend, mode="dense")
    bounded = accumulate_weights(scene, cameras, maps, label_ids, backend=backend, mode="bounded")
    assert isinstance(bounded, BoundedAccumulation)
    assert bounded.top_labels.shape == (TOP_K, len(scene))
    np.testing.assert_allclose(bounded.total, dense.weights.sum(axis=0), rtol=1e-5, atol=1e-7)

    dense_shares, bounded_shares = Shares.from_accumulation(dense), Shares.from_accumulation(bounded)
    for gamma in (-1.0, -0.9, -0.5, 0.0, 0.3, 0.95):
        np.testing.assert_array_equal(dense_shares.solve(gamma)[0], bounded_shares.solve(gamma)[0])
    present = label_ids[1:][dense.weights[1:].sum(axis=1) > 0]
    for gamma in (-0.87, -0.5, 0.0, 0.4):
        for label in present[:: max(1, len(present) // 12)]:
            np.testing.assert_array_equal(dense_shares.members(label, gamma), bounded_shares.members(label, gamma))
    if n_labels > 1 + TOP_K:
        with pytest.raises(BadInputError, match="dense"):
            bounded_shares.members(int(present[0]), -0.9)


def test_bounded_sidecar_round_trip(tmp_path):
    scene = random_scene(3, n=120)
    camera = front_camera(40, 30)
    maps = label_maps([camera], 50, 3)
    bounded = accumulate_weights(scene, [camera], maps, np.arange(50), backend=CpuBackend(use_numba=False),
                                 mode="bounded")
    save_accumulation(tmp_path / "s.gsseg.npz", bounded)
    with np.load(tmp_path / "s.gsseg.npz") as data:
        assert int(data["format_version"]) == 3 and str(data["form"]) == "bounded"
        assert sorted(data.files) == sorted(["format_version", "run_id", "kind", "form", "n_gaussians", "label_ids",
                                             "total", "share_bg", "top_labels", "top_shares"])
    again = load_accumulation(tmp_path / "s.gsseg.npz", len(scene))
    np.testing.assert_array_equal(Shares.from_accumulation(again).solve(0.1)[0],
                                  Shares.from_accumulation(bounded).solve(0.1)[0])
    with pytest.raises(BadInputError, match="121"):
        load_accumulation(tmp_path / "s.gsseg.npz", 121)


def test_memory_budget_switches_to_bounded_then_refuses():
    scene = random_scene(4, n=200)
    camera = front_camera(40, 30)
    maps = label_maps([camera], 300, 4, block=2)
    dense_need = estimate_memory(len(scene), 300, camera.width * camera.height)
    bounded_need = estimate_bounded_memory(len(scene), 300, camera.width * camera.height)
    assert bounded_need < dense_need
    backend = CpuBackend(use_numba=False)
    result = accumulate_weights(scene, [camera], maps, np.arange(300), backend=backend,
                                memory_budget=dense_need - 1)
    assert isinstance(result, BoundedAccumulation)
    assert not isinstance(accumulate_weights(scene, [camera], maps, np.arange(300), backend=backend,
                                             memory_budget=dense_need), BoundedAccumulation)
    with pytest.raises(MemoryBudgetError):
        accumulate_weights(scene, [camera], maps, np.arange(300), backend=backend, memory_budget=bounded_need - 1)
