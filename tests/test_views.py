"""build_views, the one step from cameras and masks to the lifting views: selection, working size, masks read per
view when a backend uses them (never all at once), in-memory label maps, and the accumulation over the views
equal to the one over eagerly decoded maps."""

import numpy as np
import pytest
from PIL import Image

from blender_gsseg.core.lift.accumulate import accumulate_weights
from blender_gsseg.core.errors import BadInputError
from blender_gsseg.core.files import masks as mask_files
from blender_gsseg.core.lift.views import build_views
from scenes import random_scene, rotated_camera


def cameras(count=6, width=64, height=48):
    return [rotated_camera(seed, width, height) for seed in range(count)]


def write_masks(folder, cams, seed=0):
    """One label mask per camera (ids 0..3, blocks so that nearest-neighbour scaling keeps them); returns them."""
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    written = {}
    for camera in cams:
        blocks = rng.integers(0, 4, (camera.height // 8, camera.width // 8)).astype(np.uint8)
        label_map = np.kron(blocks, np.ones((8, 8), np.uint8))
        Image.fromarray(label_map).save(folder / f"{camera.image_name}.png")
        written[camera.image_name] = label_map
    return written


def test_selection_scale_and_maps(tmp_path):
    cams = cameras()
    written = write_masks(tmp_path / "masks", cams)
    views = build_views(cams, tmp_path / "masks", scale=0.5, every=2)
    chosen = sorted(cams, key=lambda c: c.image_name)[::2]
    assert [c.image_name for c in views.cameras] == [c.image_name for c in chosen]
    assert all((c.width, c.height) == (32, 24) for c in views.cameras)
    assert views.label_ids.tolist() == sorted({int(v) for m in written.values() for v in np.unique(m)} | {0})
    for camera, label_map in zip(views.cameras, views.label_maps, strict=True):
        assert label_map.shape == (24, 32) and label_map.dtype == np.int32
        np.testing.assert_array_equal(label_map, written[camera.image_name][::2, ::2])
    assert views.source == str(tmp_path / "masks") and views.without_mask == []


def test_masks_are_decoded_per_view_when_used(tmp_path, monkeypatch):
    cams = cameras(8)
    write_masks(tmp_path / "masks", cams)
    decoded = []
    real_decode = mask_files._decode
    monkeypatch.setattr(mask_files, "_decode", lambda path, *rest: decoded.append(path) or real_decode(path, *rest))
    views = build_views(cams, tmp_path / "masks")
    assert len(decoded) == 8  # one scan to learn the labels; no map is kept
    decoded.clear()
    alive = []

    class CountingBackend:
        """Holds each view's map only while it is used, as the real backends do."""
        name = "counting"

        def accumulate(self, gaussians, views_, n_labels, progress=None, cancel=None):
            for _camera, index_map in views_:
                alive.append(len(decoded))
            return np.zeros((n_labels, len(gaussians)), np.float32)

    views.accumulate(random_scene(0, n=20), backend=CountingBackend(), mode="dense")
    assert alive == list(range(1, 9))  # view k decoded just before its turn, not before
    decoded.clear()
    assert views.label_maps[3] is views.label_maps[3] and len(decoded) == 1  # the last map read is kept


def test_lazy_views_accumulate_like_eager_maps(tmp_path):
    cams = cameras(4)
    write_masks(tmp_path / "masks", cams, seed=3)
    gaussians = random_scene(1, n=200)
    views = build_views(cams, tmp_path / "masks", scale=0.5)
    lazy = views.accumulate(gaussians, backend="cpu")
    maps = [np.asarray(m) for m in views.index_maps()]
    eager = accumulate_weights(gaussians, views.cameras, maps, views.label_ids, backend="cpu")
    assert np.array_equal(lazy.weights, eager.weights)
    bounded = views.accumulate(gaussians, backend="cpu", mode="bounded")
    np.testing.assert_allclose(bounded.total_weight(), eager.total_weight(), rtol=1e-5)


def test_label_maps_in_memory_and_bad_inputs(tmp_path):
    cams = cameras(2, 16, 8)
    maps = [np.zeros((8, 16), np.int32), np.full((8, 16), 5, np.int32)]
    maps[0][:, :4] = -1
    views = build_views(cams, maps)
    assert views.label_ids.tolist() == [0, 5] and views.source is None
    assert [c.image_name for c in views.cameras] == [c.image_name for c in cams]
    with pytest.raises(BadInputError, match="only background"):
        build_views(cams, [np.zeros((8, 16), np.int32)] * 2)
    with pytest.raises(BadInputError, match=r"--scale 0\.001: camera .* would be 0x0 pixels"):
        build_views(cams, maps, scale=0.001)
    with pytest.raises(BadInputError, match="--every 0"):
        build_views(cams, maps, every=0)
    with pytest.raises(ValueError, match="3 label maps for 2 cameras"):
        build_views(cams, maps + maps[:1])
    # maps at the cameras' own resolution are taken to the working one by nearest neighbour, as mask files are
    half = build_views(cams, maps, scale=0.5)
    assert [m.shape for m in half.label_maps] == [(4, 8), (4, 8)]
    assert (half.label_maps[0][:, :2] == -1).all() and (half.label_maps[0][:, 2:] == 0).all()
