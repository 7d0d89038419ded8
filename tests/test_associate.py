"""Per-view mask ids (issue 31): SAM-layout folders, association into 3D instances, the CLI's --ids and
--write-masks, and the edge cases. Small scenes: each test runs in seconds."""

import csv
import json
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from blender_gsseg.cli import main
from blender_gsseg.core.errors import BadInputError
from blender_gsseg.core.files.inria_cameras import write_cameras_json
from blender_gsseg.core.files.sam_masks import IGNORED_IN_FILES, is_sam_layout, load_sam_masks
from blender_gsseg.core.files.ply import write_gaussians
from blender_gsseg.core.files.splats import read_gaussians
from blender_gsseg.core.lift import associate
from blender_gsseg.core.metrics import matched_accuracy
from blender_gsseg.core.pipeline import segment_scene
from synthetic.sam_folders import SamStyle, permuted_label_maps, write_sam_folders
from synthetic.scene import make_scene


@pytest.fixture(scope="module")
def scene():
    return make_scene(n_spheres=4, points_per_unit_area=220, n_cameras=10, width=96, height=72, seed=2)


@pytest.fixture(scope="module")
def truth_maps(scene):
    return [scene.mask(camera) for camera in scene.cameras]


def _renaming(a, b):
    """Whether label arrays ``a`` and ``b`` are equal up to a one-to-one renaming of ids (-1 kept)."""
    if not np.array_equal(a < 0, b < 0):
        return False
    pairs = np.unique(np.stack([a[a >= 0], b[b >= 0]]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def test_permuted_ids_give_the_consistent_labels(scene, truth_maps):
    """Exactness: clean masks whose ids are permuted in every view (0 background kept) lift to the same labels,
    up to renaming, as the consistent ids."""
    consistent = segment_scene(scene.gaussians, scene.cameras, [truth_maps], backend="cpu")
    permuted = permuted_label_maps(truth_maps, seed=5)
    assert not all(np.array_equal(a, b) for a, b in zip(permuted, truth_maps))
    per_view = segment_scene(scene.gaussians, scene.cameras, [permuted], backend="cpu", ids="per-view")
    assert _renaming(consistent.labels, per_view.labels)
    report = per_view.report["association"]
    assert report["n_instances"] == len(np.unique(truth_maps[0][truth_maps[0] > 0])) or \
        report["n_instances"] == int(max(m.max() for m in truth_maps))
    assert report["masks_merges"] == report["masks_unmatched"] == 0
    assert [i["name"] for i in report["instances"]][:2] == ["instance_1", "instance_2"]
    sizes = [i["gaussians"] for i in report["instances"]]
    assert sizes == sorted(sizes, reverse=True)  # ids by size


def test_sam_folders_reach_the_consistent_lift(scene, truth_maps, tmp_path):
    """SAM-style folders (random ids, merges, parts with and without the whole, the ground a mask in half the
    views, boundary jitter) against the consistent-id lift of the same views."""
    write_cameras_json(tmp_path / "cameras.json", scene.cameras)
    write_sam_folders(tmp_path / "sam", [c.image_name for c in scene.cameras], truth_maps, seed=3,
                      style=SamStyle())
    consistent = segment_scene(scene.gaussians, scene.cameras, [truth_maps], backend="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        associated = segment_scene(scene.gaussians, str(tmp_path / "cameras.json"), str(tmp_path / "sam"),
                                   backend="cpu")
    reference = matched_accuracy(consistent.labels, scene.labels)
    got = matched_accuracy(associated.labels, scene.labels)
    assert got >= 0.97 * reference, (got, reference, associated.report["association"])
    truth_count = len(np.unique(scene.labels))  # the spheres and the ground (a mask in some views)
    assert abs(associated.report["association"]["n_instances"] - truth_count) <= 1
    assert associated.report["ids"] == "per-view"


def _write_mask(path, inside):
    Image.fromarray(np.where(inside, 255, 0).astype(np.uint8)).save(path)


def _camera(name, width=12, height=8):
    from blender_gsseg.core.cameras import Camera

    return Camera(np.eye(4), 10.0, 10.0, width / 2, height / 2, width, height, name)


def test_sam_reader_largest_mask_wins_and_unmasked_is_ignored(tmp_path):
    folder = tmp_path / "masks" / "img_0"
    folder.mkdir(parents=True)
    whole = np.zeros((8, 12), bool)
    whole[1:7, 1:9] = True
    part = np.zeros((8, 12), bool)
    part[1:4, 1:5] = True
    other = np.zeros((8, 12), bool)
    other[2:5, 10:12] = True
    _write_mask(folder / "0.png", part)
    _write_mask(folder / "3.png", whole)
    _write_mask(folder / "7.png", other)
    _write_mask(folder / "9.png", np.ones((8, 12), bool))  # the whole image: dropped
    _write_mask(folder / "11.png", other)  # low quality in metadata: dropped
    with open(folder / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "area", "predicted_iou", "stability_score"])
        writer.writerows([[0, 12, 0.95, 0.97], [3, 48, 0.9, 0.96], [11, 6, 0.2, 0.99]])
    cameras = [_camera("images/img_0.jpg"), _camera("img_1.jpg")]
    assert is_sam_layout(tmp_path / "masks", cameras)
    with pytest.warns(UserWarning) as caught:
        mask_set = load_sam_masks(tmp_path / "masks", cameras)
    text = " ".join(str(w.message) for w in caught)
    assert "covers the whole image" in text and "below 0.5" in text and "img_1.jpg" in text
    label_map = mask_set.label_maps[0]
    expected = np.full((8, 12), -1)
    expected[other] = 8
    expected[whole] = 4  # the whole (id 3) over its part (id 0)
    np.testing.assert_array_equal(label_map, expected)
    assert mask_set.camera_indices == [0] and mask_set.kinds == ["sam"]


def test_mixed_layouts_are_refused(tmp_path):
    (tmp_path / "m" / "img_0").mkdir(parents=True)
    _write_mask(tmp_path / "m" / "img_0" / "0.png", np.ones((8, 12), bool))
    (tmp_path / "m" / "img_0" / "metadata.csv").write_text("id,area\n0,96\n")
    _write_mask(tmp_path / "m" / "img_1.png", np.ones((8, 12), bool))
    with pytest.raises(BadInputError, match="mixes mask layouts"):
        is_sam_layout(tmp_path / "m", [_camera("img_0.jpg"), _camera("img_1.jpg")])
    # plain masks with integer names in a subfolder, no metadata, no folder named like a camera: plain layout
    (tmp_path / "p" / "masks").mkdir(parents=True)
    _write_mask(tmp_path / "p" / "masks" / "0001.png", np.ones((8, 12), bool))
    assert not is_sam_layout(tmp_path / "p", [_camera("0001.jpg")])


def test_many_masks_in_one_view_are_chunked(scene, truth_maps):
    """A view with more masks than one backend call holds (here hundreds against 64 slots) is done in chunks; the
    per-view weights equal one call's."""
    camera = scene.cameras[0]
    label_map = np.arange(camera.width * camera.height).reshape(camera.height, camera.width) % 1000 + 1
    label_map[truth_maps[0] == 0] = 0
    chunked = associate.per_view_weights(scene.gaussians, [camera], [label_map], backend="cpu")[0]
    saved = associate.MAX_LABELS_PER_CALL
    associate.MAX_LABELS_PER_CALL = 2000
    try:
        whole = associate.per_view_weights(scene.gaussians, [camera], [label_map], backend="cpu")[0]
    finally:
        associate.MAX_LABELS_PER_CALL = saved
    assert len(chunked.ids) == len(whole.ids) > 3 * associate.MAX_LABELS_PER_CALL  # several chunks

    def table(entries):
        keep = entries.segment >= 0
        return {(int(g), int(s)): float(w) for g, s, w in zip(entries.gaussians[keep], entries.segment[keep],
                                                               entries.weight[keep])}

    a, b = table(chunked), table(whole)
    common = set(a) & set(b)
    assert len(common) >= 0.999 * max(len(a), len(b))  # (float32 sums may move an entry across the 1% share)
    assert all(abs(a[key] - b[key]) <= 1e-5 * max(1.0, abs(b[key])) for key in common)


@pytest.fixture(scope="module")
def workspace(scene, truth_maps, tmp_path_factory):
    root = tmp_path_factory.mktemp("sam_cli")
    write_gaussians(str(root / "scene.ply"), scene.gaussians)
    write_cameras_json(str(root / "cameras.json"), scene.cameras)
    write_sam_folders(str(root / "sam"), [c.image_name for c in scene.cameras], truth_maps, seed=4,
                      style=SamStyle(jitter_prob=0.0))
    plain = root / "plain"
    plain.mkdir()
    for camera, label_map in zip(scene.cameras, permuted_label_maps(truth_maps, seed=9)):
        Image.fromarray(label_map.astype(np.uint8)).save(plain / f"{camera.image_name}.png")
    return root


def run(*args):
    return main([str(a) for a in args])


def test_cli_sam_folder_writes_masks_and_report(workspace, capsys):
    out = workspace / "out"
    rc = run("segment", workspace / "scene.ply", "--cameras", workspace / "cameras.json", "--masks",
             workspace / "sam", "-o", out / "a.ply", "--write-masks", out / "masks", "--report", out / "r.json",
             "--backend", "cpu")
    assert rc == 0
    report = json.loads((out / "r.json").read_text())
    association = report["association"]
    assert report["ids"] == "per-view" and association["n_instances"] >= 4
    for key in ("instances", "masks", "masks_matched", "masks_unmatched", "merges", "splits"):
        assert key in association
    assert all(i["views"] == len(i["seen_in"]) >= 1 for i in association["instances"])
    for entry in association["merges"] + association["splits"]:  # mask ids as the folder names them
        for mask in [entry["mask"]] if "mask" in entry else entry["masks"]:
            assert os.path.isfile(workspace / "sam" / entry["view"] / f"{mask}.png")
    written = sorted(os.listdir(out / "masks"))
    assert len([name for name in written if name.endswith(".png")]) == 10
    # the written consistent maps, lifted as consistent ids, give the same labels
    rc = run("segment", workspace / "scene.ply", "--cameras", workspace / "cameras.json", "--masks",
             out / "masks", "-o", out / "b.ply", "--ignore-label", IGNORED_IN_FILES, "--backend", "cpu")
    assert rc == 0
    a = np.asarray(read_gaussians(str(out / "a.ply")).vertex["gsseg_label"])
    b = np.asarray(read_gaussians(str(out / "b.ply")).vertex["gsseg_label"])
    np.testing.assert_array_equal(a, b)
    comments = read_gaussians(str(out / "a.ply")).comments
    assert any("name=instance_1 " in line for line in comments)


def test_cli_ids_per_view_on_label_maps(workspace, capsys):
    rc = run("segment", workspace / "scene.ply", "--cameras", workspace / "cameras.json", "--masks",
             workspace / "plain", "-o", workspace / "pv.ply", "--ids", "per-view", "--backend", "cpu")
    assert rc == 0
    assert os.path.isfile(workspace / "pv.gsseg.npz")


def test_cli_write_masks_needs_per_view_ids(workspace, capsys):
    out = workspace / "refused"
    rc = run("segment", workspace / "scene.ply", "--cameras", workspace / "cameras.json", "--masks",
             workspace / "plain", "-o", out / "c.ply", "--write-masks", out / "masks", "--backend", "cpu")
    assert rc == 2
    assert "--write-masks" in capsys.readouterr().err
    assert not os.path.exists(out / "c.ply") and not os.path.exists(out / "masks")


def test_edge_cases_one_view_empty_view_and_missing_folder(scene, truth_maps, tmp_path):
    names = [c.image_name for c in scene.cameras[:3]]
    write_sam_folders(tmp_path / "sam", names[:2], truth_maps[:2], seed=1, style=SamStyle.clean())
    (tmp_path / "sam" / names[1]).mkdir(exist_ok=True)
    for name in os.listdir(tmp_path / "sam" / names[1]):
        if name.endswith(".png"):
            os.remove(tmp_path / "sam" / names[1] / name)  # a view with no masks (metadata.csv only)
    with pytest.warns(UserWarning) as caught:
        result = segment_scene(scene.gaussians, scene.cameras[:3], str(tmp_path / "sam"), backend="cpu")
    text = " ".join(str(w.message) for w in caught)
    assert "no SAM mask folder" in text and "hold no usable mask" in text
    assert "single view" not in text
    assert result.report["association"]["n_instances"] >= 3
    # one view only: a warning, every mask an instance
    with pytest.warns(UserWarning, match="single view"):
        one = segment_scene(scene.gaussians, scene.cameras[:1], str(tmp_path / "sam"), backend="cpu")
    assert one.report["association"]["n_instances"] == len(os.listdir(tmp_path / "sam" / names[0])) - 1


def test_masks_of_the_wrong_size_are_resized_with_a_warning(scene, truth_maps, tmp_path):
    camera = scene.cameras[0]
    folder = tmp_path / "sam" / camera.image_name
    folder.mkdir(parents=True)
    big = np.kron(truth_maps[0] == 1, np.ones((2, 2), bool))
    _write_mask(folder / "0.png", big)
    (folder / "metadata.csv").write_text("id,area\n0,1\n")
    with pytest.warns(UserWarning, match="differ in size"):
        mask_set = load_sam_masks(tmp_path / "sam", [camera])
    np.testing.assert_array_equal(mask_set.label_maps[0] == 1, truth_maps[0] == 1)


def test_lift_views_associates_per_view_ids_and_gamma_auto_works(scene, truth_maps, tmp_path):
    """lift_views, the one lift entry (the Blender add-on's job too), associates a SAM folder's views before
    lifting them; γ's cross-validation folds then run on the consistent ids."""
    from blender_gsseg.core.lift.run import lift_views
    from blender_gsseg.core.lift.views import build_views

    cameras, maps = scene.cameras[::2], truth_maps[::2]
    write_sam_folders(tmp_path / "sam", [c.image_name for c in cameras], maps, seed=2, style=SamStyle.clean())
    views = build_views(cameras, str(tmp_path / "sam"))
    assert views.ids == "per-view"
    lift = lift_views(scene.gaussians, views, backend="cpu", choose_gamma=True, folds=2)
    assert lift.association is not None and lift.views.ids == "per-view"
    n = lift.association.n_instances
    assert list(lift.accumulation.label_ids) == list(range(n + 1))
    assert lift.gamma_choice is not None
    assert n == len(np.unique(scene.labels))  # clean masks: the spheres and the ground


def test_cli_ids_consistent_refuses_a_sam_folder(workspace, capsys):
    rc = run("segment", workspace / "scene.ply", "--cameras", workspace / "cameras.json", "--masks",
             workspace / "sam", "-o", workspace / "no.ply", "--ids", "consistent", "--backend", "cpu")
    assert rc == 2
    assert "SAM's layout" in capsys.readouterr().err
    assert not os.path.exists(workspace / "no.ply")


def test_a_view_with_a_thousand_masks(scene, truth_maps, tmp_path):
    """1,000 masks in one view (a fine grid of tiny masks, SAM at its most eager) beside ordinary views: read,
    passed in chunks, associated, lifted."""
    names = [c.image_name for c in scene.cameras[:4]]
    write_sam_folders(tmp_path / "sam", names[1:], truth_maps[1:4], seed=1, style=SamStyle.clean())
    camera = scene.cameras[0]
    cells = (np.arange(camera.height)[:, None] // 2 * 32 + np.arange(camera.width)[None, :] // 3) % 1000
    folder = tmp_path / "sam" / names[0]
    folder.mkdir()
    for k in range(1000):
        _write_mask(folder / f"{k}.png", cells == k)
    result = segment_scene(scene.gaussians, scene.cameras[:4], str(tmp_path / "sam"), backend="cpu")
    association = result.report["association"]
    assert association["masks"] >= 1000 + 3
    assert 1 <= association["n_instances"] < association["masks"]


@pytest.mark.parametrize("kind", ["sam", "label maps"])
def test_the_lift_summed_from_the_per_view_pass_is_the_pass_over_the_new_maps(scene, truth_maps, tmp_path, kind):
    """segment --ids per-view sums the lift from the per-view pass's entries (no second pass over the views):
    the same accumulation as a pass over the re-numbered maps (float32 rounding apart), background included."""
    from blender_gsseg.core.lift.views import build_views

    if kind == "sam":
        write_sam_folders(tmp_path / "sam", [c.image_name for c in scene.cameras], truth_maps, seed=3)
        views = build_views(scene.cameras, str(tmp_path / "sam"))
    else:
        views = build_views(scene.cameras, permuted_label_maps(truth_maps, seed=2), ids="per-view")
    associated, association, assembled = associate.associate_views(scene.gaussians, views, backend="cpu",
                                                                   assemble=True)
    passed = associated.accumulate(scene.gaussians, backend="cpu", mode="dense")
    np.testing.assert_array_equal(assembled.label_ids, passed.label_ids)
    scale = float(passed.weights.max())
    np.testing.assert_allclose(assembled.weights, passed.weights, rtol=1e-5, atol=1e-6 * scale)
    assert (kind == "sam") == (not np.any(passed.weights[0]))  # SAM folders have no background
    # SAM folders: some views' pixels in no mask show the ground (a mask in about half the views) and are
    # summed into its instance; label maps say background themselves, so nothing is filled
    assert (kind == "sam") == bool(np.any(association.unmasked_instances > 0))


def _view(ids, gaussians, segment, weight):
    """A hand-made per-view pass output: entries (Gaussian, segment index or -1, weight)."""
    return associate.ViewSegments(np.asarray(ids, np.int64), np.ones(len(ids), np.int64),
                                  np.asarray(gaussians, np.int32), np.asarray(segment, np.int32),
                                  np.asarray(weight, np.float32))


def _bank(owner, count):
    bank = associate._Bank(len(owner))
    for _ in range(count):
        bank.new()
    for i, k in enumerate(owner):
        bank.add(k, np.array([i]), np.array([1.0], np.float32))
    bank.update_owner(np.arange(len(owner)))
    return bank


def test_a_small_object_given_to_the_ground_is_split_off_and_a_cut_part_is_not():
    """Gaussians 0-5 ground, 6-7 a small object the greedy pass gave to the ground (instance 0), 8-11 an object
    (instance 1) whose part 10-11 is a mask of its own in view 0. The small object is its own mask wherever the
    ground is one: split off; the part shares its object's mask in views 1 and 2: kept."""
    ground, small, whole, part = [0, 1, 2, 3, 4, 5], [6, 7], [8, 9], [10, 11]
    views = []
    for v in range(3):
        gaussians = ground + small + whole + part
        segment = [0] * 6 + [1, 1] + [2, 2] + ([3, 3] if v == 0 else [2, 2])
        views.append(_view([1, 2, 3, 4] if v == 0 else [1, 2, 3], gaussians, segment, [1.0] * 12))
    bank = _bank([0] * 8 + [1] * 4, 2)
    assert associate._split_parts(views, bank, associate._decisions(views, bank)) == 1
    assert bank.count == 3
    assert bank.owner[small].tolist() == [2, 2] and set(bank.owner[ground]) == {0}
    assert bank.owner[part].tolist() == [1, 1]


def test_instances_sharing_a_mask_in_most_views_are_joined_and_touching_objects_are_not():
    """Instances 0 and 1: the two halves of one object (cut in view 0 only); 2 and 3: two objects merged into
    one mask in view 1 only."""
    views = []
    for v in range(4):
        halves = [0, 0] if v else [0, 1]
        touching = [2, 2] if v == 1 else [2, 3]
        views.append(_view([1, 2, 3, 4], [0, 1, 2, 3], halves + touching, [1.0] * 4))
    bank = _bank([0, 1, 2, 3], 4)
    assert associate._consensus(views, bank) == 1
    assert bank.count == 3
    assert bank.owner[0] == bank.owner[1] and len({bank.owner[1], bank.owner[2], bank.owner[3]}) == 3


def test_pixels_in_no_mask_show_the_instance_that_no_mask_of_the_view_gives():
    """View entries: Gaussians 0-3 (the ground, instance 0) seen only in pixels in no mask, 4-5 (instance 1)
    in mask 0. The unmasked pixels show the ground; when the ground is also a mask of the view they stay
    ignored, and so do unmasked pixels shared by several instances."""
    owner = np.array([0, 0, 0, 0, 1, 1])
    view = _view([1], [0, 1, 2, 3, 4, 5], [-1, -1, -1, -1, 0, 0], [1.0] * 6)
    visible = np.array([4.0, 2.0])  # each instance's weight in the whole view
    assert associate._unmasked_instance(view, owner, visible, {1}) == 0
    assert associate._unmasked_instance(view, owner, visible, {0, 1}) == -1
    three = np.array([0, 0, 1, 1, 2, 2])
    shared = _view([1], [0, 2, 4], [-1, -1, -1], [1.0] * 3)
    assert associate._unmasked_instance(shared, three, np.array([1.0, 1.0, 1.0]), set()) == -1


def test_matched_labels_rename_one_to_one():
    from blender_gsseg.core.metrics import matched_labels

    truth = np.array([1, 1, 2, 2, 3, 3])
    assert matched_labels(np.array([5, 5, 7, -1, 9, 9]), truth).tolist() == [1, 1, 2, -1, 3, 3]
    assert matched_accuracy(np.array([5, 5, 7, -1, 9, 9]), truth) == 5 / 6
    renamed = matched_labels(np.array([4, 4, 6, 6, 6, 6]), np.array([1, 1, 1, 1, 1, 1]))
    assert renamed.tolist()[2:] == [1, 1, 1, 1]  # the larger share takes the true id
    assert renamed[0] == renamed[1] and renamed[0] not in (1, 4, 6)  # the other gets an id of its own
