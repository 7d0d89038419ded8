"""From a bare splat file (no cameras, no masks) in Blender: the panel's next step and Add View Cameras."""

import os

import numpy as np
import pytest

from blender_harness import REPO, run_bpy

pytestmark = pytest.mark.blender

DEMO = os.path.join(REPO, "blender_gsseg", "data", "demo")


def looks_at(world_to_camera, point):
    """Pixel offset (normalised by the focal length) of ``point`` from the optical axis, and its depth."""
    cam = np.asarray(world_to_camera)[:3, :3] @ point + np.asarray(world_to_camera)[:3, 3]
    return np.hypot(cam[0], cam[1]) / cam[2], cam[2]


def test_add_view_cameras_around_the_splat_and_a_proxy(tmp_path):
    from blender_gsseg.core.files.splats import read_gaussians

    ply = os.path.join(DEMO, "scene_trained.ply")
    proxy = np.array([0.6, -0.4, 0.3])
    result = run_bpy("view_cameras.py", home=tmp_path / "home", args={"ply": ply, "proxy": proxy.tolist()})
    assert result["step_empty"] == "Next: Import Splat"
    assert result["step_splat"].startswith("Next: Import Cameras, or put a box around each object")
    assert result["step_cameras"].startswith("Next: choose the Masks folder")
    means = read_gaussians(ply).means
    centre = (np.percentile(means, 2, axis=0) + np.percentile(means, 98, axis=0)) / 2
    for matrix in result["whole"]:
        offset, depth = looks_at(matrix, centre)
        assert offset < 1e-5 and depth > 0
    for matrix in result["proxy"]:
        offset, depth = looks_at(matrix, proxy)
        assert offset < 1e-5 and 0.4 < depth < 3.0  # framing a 0.5 m cube, not the whole scene
    assert {tuple(i) for i in result["intrinsics"]} == {tuple(result["intrinsics"][0])}
    fx, fy, cx, cy, width, height = result["intrinsics"][0]
    assert (width, height, cx, cy) == (320, 240, 160.0, 120.0) and np.isclose(fx, 160 / np.tan(np.radians(30)))


def test_select_inside_object_and_linked_instances(tmp_path):
    from blender_harness import labeled_scene
    from blender_gsseg.core.files.splats import read_gaussians

    paths = labeled_scene(tmp_path / "scene")
    gaussians = read_gaussians(paths["labeled.ply"])
    labels = np.asarray(paths["labels"])
    splat_location = np.array([0.3, -0.2, 0.1])
    seeds = [int(np.flatnonzero(labels == 1)[0]), int(np.flatnonzero(labels == 3)[5])]
    result = run_bpy("select_inside.py", home=tmp_path / "home", args={
        "ply": paths["labeled.ply"], "splat_location": splat_location.tolist(), "box_location": [1.0, 0.4, 0.5],
        "box_rotation": [0.3, 0.2, 0.9], "box_scale": [0.9, 0.6, 0.5], "seed_points": seeds})
    # the truth: centres in the box's own frame within its half-size 1
    box = np.asarray(result["box_world"])
    assert np.allclose(result["splat_world"], np.block([[np.eye(3), splat_location[:, None]], [np.zeros(3), 1]]))
    world = gaussians.means.astype(np.float64) + splat_location
    local = (world - box[:3, 3]) @ np.linalg.inv(box[:3, :3]).T
    truth = np.flatnonzero(np.all(np.abs(local) < 1.0, axis=1))
    assert 50 < len(truth) < len(gaussians) // 2
    assert result["inside"] == truth.tolist()
    assert result["linked"] == np.flatnonzero(np.isin(labels, [1, 3])).tolist()
    assert result["modes"] == {name: ["OBJECT", "EDIT"] for name in
                               ("select_instance", "deselect_instance", "select_unseen", "invert_selection")}
    # the last, invoked twice: inverting twice from the selection of unseen points gives it back
    assert result["invoked_selection"] == np.flatnonzero(labels == -1).tolist()
    assert "menu_select" in result["menus"]["VIEW3D_MT_select_edit_mesh"]
    assert "menu_select" in result["menus"]["VIEW3D_MT_edit_mesh_context_menu"]
    assert "menu_add" in result["menus"]["VIEW3D_MT_add"]


def test_segment_from_proxies_without_cameras(tmp_path):
    """Box proxies as issue 14 defines them (each object's bounding box x1.15): Segment from Proxies labels every
    object at least as well as the naive rule (centre inside the smallest box) on recall and precision, names
    the instances after the proxies, and an object can then be removed."""
    import sys

    sys.path.insert(0, os.path.join(REPO, "bench"))
    from proxies import box_proxies

    from blender_gsseg.core.files.splats import read_gaussians
    from blender_gsseg.core.scene.proxy_segment import baseline_labels

    ply = os.path.join(DEMO, "scene_trained.ply")
    gaussians = read_gaussians(ply)
    truth = np.load(os.path.join(DEMO, "gt_labels_trained.npy"))
    proxies = box_proxies(gaussians, truth)
    boxes = {}
    for proxy in proxies:
        corners = proxy.triangles.reshape(-1, 3)
        low, high = corners.min(axis=0), corners.max(axis=0)
        boxes[f"box {proxy.label}"] = (((low + high) / 2).tolist(), (high - low).tolist())
    result = run_bpy("segment_proxies.py", home=tmp_path / "home", timeout=600,
                     args={"ply": ply, "boxes": boxes, "remove": 3, "gamma": 0.4, "halo_gamma": -0.4,
                           "cache_copy": str(tmp_path / "cache.gsseg.npz"), "blend": str(tmp_path / "scene.blend")})
    labels = np.asarray(result["labels"])
    naive = baseline_labels(gaussians, proxies)
    named = {int(label): name for label, name in result["items"].items() if int(label) > 0}
    assert named == {proxy.label: f"box {proxy.label}" for proxy in proxies}
    for proxy in proxies:
        label = proxy.label
        actual, ours, theirs = truth == label, labels == label, naive == label
        recall, baseline_recall = (ours & actual).sum() / actual.sum(), (theirs & actual).sum() / actual.sum()
        precision, baseline_precision = (ours & actual).sum() / ours.sum(), (theirs & actual).sum() / theirs.sum()
        assert recall >= baseline_recall and precision >= baseline_precision, (label, recall, precision,
                                                                               baseline_recall, baseline_precision)
    # Gaussians whose 3-sigma footprint touches no box are never taken
    from blender_gsseg.core.scene.proxy_segment import footprint_points, touches
    ends = footprint_points(gaussians)
    outside = ~np.any([touches(ends, proxy.triangles) for proxy in proxies], axis=0)
    assert outside.sum() > 1000 and (labels[outside] == 0).all()
    # the proxies leave a cache as Segment does (issue 28, item 2): at γ 0 the solver gives the proxies' labels,
    # the slider re-solves, the panel says so, a delete takes the halo, and all of it survives save and reopen
    from blender_gsseg.core.lift.sidecar import load_accumulation
    from blender_gsseg.core.lift.solver import Shares
    from blender_gsseg.core.scene.proxy_segment import Proxy, proxy_labels

    assert "Not segmented yet" not in result["panel"], result["panel"]
    assert result["boxes"] == {f"box {proxy.label}": [proxy.label, "WIRE", True] for proxy in proxies}
    assert result["unmarked"] == ["TEXTURED", False, False]  # a new cube's own display, restored
    assert result["undone"] == [proxies[0].label, "WIRE", True]
    shares = Shares.from_accumulation(load_accumulation(tmp_path / "cache.gsseg.npz", len(gaussians)))
    assert (shares.solve(0.0)[0] == labels).all()
    located = [Proxy(proxy.label, proxy.triangles) for proxy in proxies]  # the boxes as Blender's cubes make them
    assert (proxy_labels(gaussians, located) == labels).mean() > 0.999
    tight = np.asarray(result["labels_gamma"])
    assert (tight == shares.solve(0.4)[0]).all() and (tight > 0).sum() < (labels > 0).sum()
    taken = (labels == 3) | shares.members(3, -0.4)
    assert taken.sum() > (labels == 3).sum()  # the halo adds points
    assert result["after"] == len(gaussians) - int(taken.sum())
    kept = np.flatnonzero(~taken)
    assert result["index_reopened"] == list(range(len(kept)))  # the delete wrote the cache of the points kept
    assert result["reopened_path"].startswith("//scene.")
    assert (np.asarray(result["labels_reopened"]) == shares.solve(0.0)[0][kept]).all()


def test_gamma_survives_blender_edits_and_saving(tmp_path):
    from blender_harness import labeled_scene
    from blender_gsseg.core.lift.sidecar import load_accumulation
    from blender_gsseg.core.lift.solver import Shares

    paths = labeled_scene(tmp_path / "scene")
    result = run_bpy("gamma_survives.py", home=tmp_path / "home", timeout=600, args={
        "ply": paths["scene.ply"], "cameras": paths["cameras.json"], "masks": paths["masks"],
        "gamma": 0.3, "gamma2": -0.4, "folder": str(tmp_path / "blends"), "delete": 1})
    index = np.asarray(result["index"])
    n = paths["n"]
    deleted = np.arange(n)[::3]
    kept = np.setdiff1d(np.arange(n), deleted)
    assert sorted(set(index.tolist())) == kept.tolist() and len(index) == len(kept) + 10  # ten duplicated
    accumulation = load_accumulation(result["cache"]).subset(index)
    for gamma, key in ((0.3, "labels"), (-0.4, "labels2")):
        expected, _ = Shares.from_accumulation(accumulation).solve(gamma)
        assert (np.asarray(result[key]) == expected).all(), key
    name = result["saved_path"]
    assert name.startswith("//scene.") and name.endswith(".gsseg.npz") and "/" not in name[2:]
    assert result["reopened_path"] == name  # and the slider worked there (the script checks the cache)
    assert result["orphan_kept_until_open"] and result["orphan_removed"] and result["bound_kept"]
    assert result["copy_path"].startswith("//") and result["copy_path"][2:] in result["copy_files"]
    # Blender 5.3 warned at every save of a "//" path without PATH_SUPPORTS_BLEND_RELATIVE (issue 28, item 5)
    assert 'blend relative "//"' not in result["_output"]


def test_stand_upright_with_and_without_cameras(tmp_path):
    """Issue 28, item 1: a capture in the 3DGS frame (Y down) imported in its own axes lies on its side in Blender
    (imported with Auto axes it stands: -90° about X, by the convention, and Stand Upright leaves it). Add View
    Cameras circles the chosen cameras' up (here the file's -Y) even so; Stand Upright turns it so that up is Z:
    from the cameras' mean up, turning them too, so that segmenting afterwards
    gives the labels the file's frame gives."""
    from blender_harness import labeled_scene

    from blender_gsseg.core.files.inria_cameras import write_cameras_json
    from blender_gsseg.core.files.camera_files import load_cameras
    from blender_gsseg.core.files.ply import write_gaussians
    from blender_gsseg.core.files.splats import read_gaussians
    from blender_gsseg.core.pipeline import segment_scene
    from blender_gsseg.core.scene.object_transform import transform_gaussians
    from test_up_axis import TURN_X, turned

    paths = labeled_scene(tmp_path / "upright")  # Z up
    lying = transform_gaussians(read_gaussians(paths["scene.ply"]), TURN_X)  # as a capture holds it: -Y up
    write_gaussians(tmp_path / "lying.ply", lying)
    cameras = turned(load_cameras(paths["cameras.json"]), TURN_X)
    write_cameras_json(tmp_path / "lying.json", cameras)
    result = run_bpy("stand_upright.py", home=tmp_path / "home", args={
        "ply": str(tmp_path / "lying.ply"), "cameras": str(tmp_path / "lying.json"), "masks": paths["masks"]})
    # the rig before standing upright: every view's image up along the file's -Y
    assert all(-np.asarray(row) @ [0, -1, 0] > 0.5 for row in result["rig_ups"]), result["rig_ups"]
    np.testing.assert_allclose(np.asarray(result["convention"])[:3, :3], TURN_X[:3, :3].T, atol=1e-6)
    np.testing.assert_allclose(result["convention_again"], result["convention"], atol=1e-7)
    matrix = np.asarray(result["matrix"])
    assert matrix[:3, :3] @ [0, -1, 0] @ [0, 0, 1] > 0.99  # the file's up (here its -Y) is Z now
    np.testing.assert_allclose(result["again"], result["matrix"], atol=1e-6)
    for name, before in result["before"].items():  # the cameras see the splat as before
        np.testing.assert_allclose(np.asarray(result["after"][name]) @ matrix, before, atol=1e-4)
    labels = np.asarray(result["labels"])
    expected = segment_scene(lying, cameras, paths["masks"], scale=1.0, backend="cpu").labels
    assert (labels == expected).mean() > 0.999, (labels == expected).mean()


def _tall_column(folder_names, tmp_path):
    """A column of Gaussians 2 tall along the file's -Y (its top at y = -2, as a capture in the 3DGS frame holds a
    standing figure), written into each of ``folder_names``; cameras around it whose image up is the file's -Y."""
    from scenes import gaussians_from_arrays

    from blender_gsseg.core.cameras import Camera, look_at
    from blender_gsseg.core.files.ply import write_gaussians

    rng = np.random.default_rng(3)
    n = 600
    means = np.column_stack([rng.normal(0, 0.08, n), rng.uniform(-2.0, 0.0, n), rng.normal(0, 0.08, n)])
    gaussians = gaussians_from_arrays(means.astype(np.float32), np.full((n, 3), -3.5, np.float32),
                                      np.tile(np.float32([1, 0, 0, 0]), (n, 1)), np.full(n, 2.0, np.float32))
    paths = {}
    for name in folder_names:
        os.makedirs(tmp_path / name, exist_ok=True)
        paths[name] = str(tmp_path / name / "column.ply")
        write_gaussians(paths[name], gaussians)
    cameras = [Camera(look_at((3 * np.cos(a), -1.5, 3 * np.sin(a)), (0, -1, 0), (0, -1, 0)), 100, 100, 80, 60,
                      160, 120, f"{k:02d}.png") for k, a in enumerate(np.linspace(0, 2 * np.pi, 8, endpoint=False))]
    return gaussians, cameras, paths


def _sees_upright(world_to_camera, top, bottom):
    """Whether a camera sees ``top`` above ``bottom`` (a smaller image row) and the segment between them closer to
    vertical than horizontal in its image."""
    from blender_gsseg.core.cameras import Camera

    pixels, depths = Camera(np.asarray(world_to_camera), 100, 100, 80, 60, 160, 120, "").project(
        np.array([top, bottom], dtype=np.float64))
    (top_x, top_y), (bottom_x, bottom_y) = pixels
    return bool((depths > 0).all() and top_y < bottom_y and abs(top_y - bottom_y) > abs(top_x - bottom_x))


@pytest.mark.parametrize("release", [None, "4.2", "5.3"])  # the test environment's bpy, the oldest, the newest
def test_import_axes(tmp_path, release):
    """Issue 28, item 1: Import Splat's Forward / Up axes. A standing column in the 3DGS frame (its top along the
    file's -Y) imports upright with Auto, from the cameras beside it and from the convention without them (a
    -90° turn about X, the object's rotation): every view of Add View Cameras sees its top above its foot, and
    Stand Upright finds nothing to do; after the artist tips it, the rig circles its up still. The demo scene
    (Z up) is left exactly as it is. Explicit axes give Blender's axis_conversion. Export in the file's axes
    writes the unedited splat byte for byte and the artist's move in the file's axes; in Blender's axes the
    whole transform. Cameras imported after the splat are turned with it, and so are cameras imported before it
    (Auto takes their up): a Gaussian projects where it did."""
    from blender_gsseg.core.cameras import Camera
    from blender_gsseg.core.files.inria_cameras import write_cameras_json
    from blender_gsseg.core.files.splats import read_gaussians

    gaussians, cameras, paths = _tall_column(("beside", "bare"), tmp_path)
    write_cameras_json(tmp_path / "beside" / "cameras.json", cameras)
    os.makedirs(tmp_path / "cams")
    write_cameras_json(tmp_path / "cams" / "cameras.json", cameras)
    out = {key: str(tmp_path / f"{key}.ply") for key in ("out", "out_moved", "out_blender")}
    result = run_bpy("import_axes.py", home=tmp_path / "home", args={
        **paths, **out, "demo": os.path.join(DEMO, "scene_trained.ply"),
        "cameras": str(tmp_path / "cams" / "cameras.json")}, blender=release)
    turn = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # -90° about X: the file's -Y up, its Z forward
    top, foot = np.array([0.0, -2.0, 0.0]), np.zeros(3)  # in the file
    for key, source in (("beside", "the cameras of cameras.json"), ("bare", "the file's convention")):
        found = result[key]
        assert source in found["axes"] and "up -Y, forward Z" in found["axes"], found["axes"]
        matrix = np.asarray(found["matrix"])
        np.testing.assert_allclose(matrix[:3, :3], turn, atol=1e-6)
        np.testing.assert_allclose(matrix[:3, 3], 0, atol=0)
        np.testing.assert_allclose(found["after_stand_upright"], found["matrix"], atol=1e-7)
        assert len(found["rig"]) == 8
        assert all(_sees_upright(w2c, turn @ top, turn @ foot) for w2c in found["rig"])
        # the lying file's own axes would not: a camera circling Z sees the column end-on or on its side
        assert not all(_sees_upright(w2c, top, foot) for w2c in found["rig"])
    tipped = np.asarray(result["tipped"]["matrix"])
    world_top, world_foot = tipped[:3, :3] @ top + tipped[:3, 3], tipped[:3, :3] @ foot + tipped[:3, 3]
    assert abs(world_top[0] - world_foot[0]) > 1.9  # it lies along X now
    assert all(_sees_upright(w2c, world_top, world_foot) for w2c in result["tipped"]["rig"])
    stood = np.asarray(result["tipped"]["stood"])  # Stand Upright: its up (the file's -Y) to Z, the turn recorded
    np.testing.assert_allclose(stood[:3, :3] @ [0, -1, 0], [0, 0, 1], atol=1e-6)
    record = np.asarray(result["tipped"]["record_stood"]).reshape(4, 4)
    np.testing.assert_allclose(record @ np.linalg.inv(np.asarray(result["tipped"]["record"]).reshape(4, 4)),
                               stood @ np.linalg.inv(tipped), atol=1e-6)  # the record took the same turn
    np.testing.assert_allclose(result["tipped"]["undone"], tipped, atol=0)  # undo: the matrix and the record
    assert result["tipped"]["record_undone"] == result["tipped"]["record"]

    assert "the cameras of cameras.json" in result["demo"]["axes"] and "up Z, forward Y" in result["demo"]["axes"]
    np.testing.assert_array_equal(result["demo"]["matrix"], np.eye(4))

    assert len(result["explicit"]) == 24 and max(result["explicit"].values()) < 1e-6, result["explicit"]
    one_line = np.asarray(result["one_line_matrix"])[:3, :3]
    assert result["one_line"] and abs(np.linalg.det(one_line) - 1) < 1e-6
    # the axis set last is kept, the other moved on: up -Z kept or forward Z kept
    assert np.allclose(one_line @ [0, 0, -1], [0, 0, 1], atol=1e-6) or \
        np.allclose(one_line @ [0, 0, 1], [0, 1, 0], atol=1e-6), one_line

    with open(paths["bare"], "rb") as source, open(out["out"], "rb") as written:
        assert written.read() == source.read()
    means = gaussians.means.astype(np.float64)
    moved = read_gaussians(out["out_moved"]).means
    np.testing.assert_allclose(moved, means + [0, -1, 0], atol=1e-5)  # one up in Blender: one along the file's -Y
    np.testing.assert_allclose(read_gaussians(out["out_blender"]).means, means @ turn.T + [0, 0, 1], atol=1e-5)
    assert read_gaussians(out["out_blender"]).comments == gaussians.comments + ["gsseg_up Z"]
    assert "its header: gsseg_up Z" in result["blender_again"]["axes"], result["blender_again"]
    np.testing.assert_array_equal(result["blender_again"]["matrix"], np.eye(4))

    # cameras imported after the splat, and before it (then Auto takes their up and they turn with the splat)
    first = result["cameras_first"]
    assert "from the cameras of 'gsseg cameras (cameras.json)" in first["axes"], first["axes"]
    np.testing.assert_allclose(np.asarray(first["record"]).reshape(4, 4)[:3, :3], turn, atol=1e-12)
    for found in (result, first):
        splat = np.asarray(found["splat_matrix"])
        np.testing.assert_allclose(splat[:3, :3], turn, atol=1e-6)
        world = means[:50] @ splat[:3, :3].T + splat[:3, 3]
        for camera in cameras:
            imported = Camera(np.asarray(found["cameras"][camera.image_name]), camera.fx, camera.fy, camera.cx,
                              camera.cy, camera.width, camera.height, camera.image_name)
            np.testing.assert_allclose(imported.project(world)[0], camera.project(means[:50])[0], atol=1e-3)
