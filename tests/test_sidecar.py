"""The sidecar schema (.gsseg.npz): format_version 3 is written (run_id, kind, form, total, optional
original_index); every reader accepts versions 1 to 3; damaged sidecars are refused with one line."""

import numpy as np
import pytest

from blender_gsseg.core.lift.accumulate import Accumulation, BoundedAccumulation, accumulate_weights
from blender_gsseg.core.lift.sidecar import load_accumulation, save_accumulation
from blender_gsseg.core.errors import BadInputError
from blender_gsseg.core.lift.solver import Shares
from scenes import front_camera, random_scene


@pytest.fixture(scope="module")
def dense():
    scene = random_scene(7, n=150)
    camera = front_camera(40, 30)
    rng = np.random.default_rng(0)
    index_map = rng.integers(-1, 4, (30, 40)).astype(np.int16)
    return accumulate_weights(scene, [camera], [index_map], np.array([0, 2, 5, 9]), backend="cpu")


def test_version_1_and_2_files_are_read(dense, tmp_path):
    np.savez(tmp_path / "v1.npz", format_version=np.int32(1), n_gaussians=np.int64(dense.n_gaussians),
             label_ids=dense.label_ids, weights=dense.weights)
    v1 = load_accumulation(tmp_path / "v1.npz", dense.n_gaussians)
    assert isinstance(v1, Accumulation) and np.array_equal(v1.weights, dense.weights) and v1.run_id == ""
    shares = Shares.from_accumulation(dense)
    np.savez(tmp_path / "v2.npz", format_version=np.int32(2), n_gaussians=np.int64(dense.n_gaussians),
             label_ids=dense.label_ids, total=dense.total_weight().astype(np.float32),
             share_bg=shares.background, top_labels=np.broadcast_to(shares.label_ids[1:, None],
                                                                    shares.foreground.shape).astype(np.int32),
             top_shares=shares.foreground)
    v2 = load_accumulation(tmp_path / "v2.npz", dense.n_gaussians)
    assert isinstance(v2, BoundedAccumulation)
    assert np.array_equal(Shares.from_accumulation(v2).solve(0.2)[0], shares.solve(0.2)[0])


def test_version_3_round_trips_run_kind_and_original_index(dense, tmp_path):
    bound = Accumulation(dense.label_ids, dense.weights, run_id="0123456789abcdef")
    save_accumulation(tmp_path / "a.npz", bound)
    back = load_accumulation(tmp_path / "a.npz")
    assert back.run_id == "0123456789abcdef" and back.kind == "accumulation" and back.original_index is None
    with np.load(tmp_path / "a.npz") as data:
        np.testing.assert_allclose(data["total"], dense.total_weight(), rtol=1e-6)
    keep = np.arange(dense.n_gaussians) % 3 != 0
    part = bound.subset(keep).subset(np.arange(keep.sum()) % 2 == 0)
    assert np.array_equal(part.original_index, np.flatnonzero(keep)[::2])
    save_accumulation(tmp_path / "p.npz", part)
    again = load_accumulation(tmp_path / "p.npz")
    assert np.array_equal(again.original_index, part.original_index)
    assert np.array_equal(again.weights, part.weights)
    # kind 'shares': a refined result without raw weights keeps its shares and its total weight
    refined = Accumulation(dense.label_ids, dense.weights, kind="shares")
    save_accumulation(tmp_path / "s.npz", refined)
    with np.load(tmp_path / "s.npz") as data:
        assert "weights" not in data.files and str(data["kind"]) == "shares"
    shares = load_accumulation(tmp_path / "s.npz")
    np.testing.assert_allclose(shares.weights, dense.weights, rtol=1e-5, atol=1e-7)
    assert np.array_equal(Shares.from_accumulation(shares).solve(0.1)[0], Shares.from_accumulation(dense).solve(0.1)[0])


@pytest.mark.parametrize("damage, message", [
    (lambda w, ids: (np.where(w > 0, np.nan, w), ids), "NaN"),
    (lambda w, ids: (-w, ids), "negative"),
    (lambda w, ids: (w, np.array([0, 2, 2, 9], np.int32)), "twice"),
    # issue 29: reversed ids relabelled 4,098 of 4,105 Gaussians, a -1 id 36 of them, exit 0
    (lambda w, ids: (w[::-1], ids[::-1]), r"ascending and not negative \(\[9, 5, 2, 0\]"),
    (lambda w, ids: (w, np.array([-1, 2, 5, 9], np.int32)), "ascending and not negative"),
])
def test_damaged_sidecars_are_refused(dense, tmp_path, damage, message):
    weights, ids = damage(dense.weights.copy(), dense.label_ids.copy())
    np.savez(tmp_path / "bad.npz", format_version=np.int32(1), n_gaussians=np.int64(dense.n_gaussians),
             label_ids=ids, weights=weights)
    with pytest.raises(BadInputError, match=message):
        load_accumulation(tmp_path / "bad.npz")


def test_more_damage_is_refused(dense, tmp_path):
    from blender_gsseg.core.lift.accumulate import BoundedAccumulation

    np.savez(tmp_path / "none.npz", format_version=np.int32(1), n_gaussians=np.int64(dense.n_gaussians),
             label_ids=np.zeros(0, np.int32), weights=np.zeros((0, dense.n_gaussians), np.float32))
    with pytest.raises(BadInputError, match="non-empty"):
        load_accumulation(tmp_path / "none.npz")
    n = dense.n_gaussians
    bad = BoundedAccumulation(np.array([0, 1], np.int32), np.ones(n, np.float32), np.full(n, 0.5, np.float32),
                              np.full((16, n), 7, np.int32), np.full((16, n), 0.01, np.float32))
    save_accumulation(tmp_path / "bounded.npz", bad)
    with pytest.raises(BadInputError, match="do not add up"):
        load_accumulation(tmp_path / "bounded.npz")
