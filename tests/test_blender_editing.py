"""The instance list (names and colours through the PLY header), the editing operators and their undo, label
levels (gsseg_code), in headless bpy. Each test runs in its own process (blender_harness.py)."""

import importlib.util

import numpy as np
import pytest

from blender_harness import BLENDER_RELEASES, labeled_scene, run_bpy

from blender_gsseg.core.gaussians import read_gaussians
from blender_gsseg.core.pipeline import read_label_table

if importlib.util.find_spec("bpy") is None:
    pytest.skip("bpy (Blender as a Python module) is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return labeled_scene(tmp_path_factory.mktemp("scene"), levels=True)


# Helpers for the child processes: the whole state of a splat object, for exact undo comparisons.
SNAPSHOT = """
import hashlib
import bpy
import numpy as np
from blender_gsseg.blender import segment, labels as label_list, editing, io_splat

def snapshot(name):
    obj = bpy.data.objects[name]
    if obj.mode == "EDIT":  # attribute data is only readable in object mode
        bpy.ops.object.mode_set(mode="OBJECT")
        try:
            return snapshot(name)
        finally:
            bpy.ops.object.mode_set(mode="EDIT")
    mesh = obj.data
    attributes = {}
    for attr_name, data_type, values, _ in segment._attribute_buffers(mesh):
        attributes[attr_name] = (data_type, hashlib.sha1(np.ascontiguousarray(values).tobytes()).hexdigest())
    return {
        "n": len(mesh.vertices),
        "attributes": attributes,
        "props": {k: str(obj[k]) for k in obj.keys() if k.startswith("gsseg_")},
        "path": obj.gsseg.accumulation_path,
        "gamma": round(obj.gsseg.gamma, 6),
        "list": [(i.level, i.id, i.name, tuple(round(c, 6) for c in i.color), i.count) for i in obj.gsseg.labels],
        "objects": sorted(o.name for o in bpy.data.objects),
    }

def int_attr(obj, name):
    return label_list.read_attribute(obj.data, name)

def bool_attr(obj, name):
    if obj.mode == "EDIT":
        name_ = obj.name
        bpy.ops.object.mode_set(mode="OBJECT")
        try:
            return bool_attr(bpy.data.objects[name_], name)
        finally:
            bpy.ops.object.mode_set(mode="EDIT")
    values = label_list.read_attribute(obj.data, name, "BOOLEAN")
    return np.zeros(len(obj.data.vertices), bool) if values is None else values

def points_drawn(obj):
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for inst in depsgraph.object_instances:
        if inst.object.type == "POINTCLOUD" and inst.object.original == obj:
            return len(inst.object.data.points)
    for inst in depsgraph.object_instances:
        if inst.object.type == "POINTCLOUD" and inst.object.name == obj.name:
            return len(inst.object.data.points)
    return None

def op(name, **kwargs):
    result = getattr(bpy.ops.gsseg, name)("EXEC_DEFAULT", True, **kwargs)  # True: push an undo step
    assert result == {"FINISHED"}, (name, result)
"""


def test_instance_list_names_colours_and_header(scene, tmp_path):
    """Import fills the list from the gsseg_label comments; an unchanged export is byte-identical; renamed and
    recoloured instances are written back, and the label display uses the list's colours."""
    source = read_gaussians(scene["labeled.ply"])
    table = read_label_table(source.comments)
    labels = source.vertex["gsseg_label"]
    result = run_bpy("""
        assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"]) == {"FINISHED"}
        obj = bpy.context.active_object
        items = [(i.level, i.id, i.name, label_list.hex_colour(i.color), i.count) for i in obj.gsseg.labels]
        RESULT["items"] = items
        assert obj.gsseg.accumulation_path == ARGS["ply"][:-4] + ".gsseg.npz"
        # unchanged: the same bytes
        assert bpy.ops.gsseg.export_splat(filepath=ARGS["same"]) == {"FINISHED"}
        # rename and recolour; the label display follows the colours
        item2 = label_list.find_item(obj, 2)
        item2.name = "red\\nchair"  # a line break cannot go into a header comment
        RESULT["cleaned"] = item2.name
        item3 = label_list.find_item(obj, 3)
        item3.color = (1.0, 0.0, 0.0)
        colours = np.empty(4 * len(obj.data.vertices), np.float32)
        obj.data.color_attributes["gsseg_label_col"].data.foreach_get("color", colours)
        colours = colours.reshape(-1, 4)
        ids = int_attr(obj, "gsseg_label")
        assert np.allclose(colours[ids == 3, :3], [1.0, 0.0, 0.0]), colours[ids == 3][:2]
        assert not np.allclose(colours[ids == 2, :3], [1.0, 0.0, 0.0])
        # selecting a list row makes it the instance the buttons act on
        obj.gsseg.labels_index = [i.id for i in obj.gsseg.labels].index(2)
        assert obj.gsseg.instance == 2
        assert bpy.ops.gsseg.export_splat(filepath=ARGS["edited"]) == {"FINISHED"}
    """, preamble=SNAPSHOT, home=tmp_path / "home", args={
        "ply": scene["labeled.ply"], "same": str(tmp_path / "same.ply"), "edited": str(tmp_path / "edited.ply")})
    ids, counts = np.unique(labels, return_counts=True)
    expected = [[-1, int(i), table[int(i)][0], table[int(i)][1], int(c)] for i, c in zip(ids, counts) if i >= 0]
    expected += [[-1, i, table[i][0], table[i][1], 0] for i in sorted(set(table) - set(ids.tolist()))]
    assert sorted(result["items"]) == sorted(expected)
    with open(scene["labeled.ply"], "rb") as a, open(tmp_path / "same.ply", "rb") as b:
        assert a.read() == b.read()
    assert result["cleaned"] == "red chair"
    edited = read_gaussians(tmp_path / "edited.ply")
    new_table = read_label_table(edited.comments)
    assert new_table[2] == ("red chair", table[2][1])
    assert new_table[3] == (table[3][0], "#ff0000")
    assert {k: v for k, v in new_table.items() if k not in (2, 3)} == {k: v for k, v in table.items()
                                                                     if k not in (2, 3)}
    assert [c for c in edited.comments if not c.startswith("gsseg_label ")] == \
        [c for c in source.comments if not c.startswith("gsseg_label ")]
    assert edited.vertex.tobytes() == source.vertex.tobytes()


@pytest.mark.parametrize("release", list(BLENDER_RELEASES))
def test_editing_operators_and_exact_undo(release, scene, tmp_path):
    """Every editing operator does what it says, and Ctrl+Z (ed.undo) brings back the exact previous state:
    attributes (bit for bit), custom properties, cache path, instance list, objects."""
    import shutil

    from blender_gsseg.core.accumulate import load_accumulation, sidecar_path

    # A copy of the scene where a few points of instance 2 share 40 % of their weight with instance 1: at
    # gamma -0.4 they stay in 2 but are members of 1 (0.4 > (1 - 0.4) / 2), the halo 'with halo' removes.
    ply = tmp_path / "halo.ply"
    shutil.copy(scene["labeled.ply"], ply)
    accumulation = load_accumulation(sidecar_path(scene["labeled.ply"]))
    labels = np.asarray(scene["labels"])
    shared = np.flatnonzero(labels == 2)[:12]
    weights = accumulation.weights
    total = weights[:, shared].sum(axis=0)
    weights[:, shared] = 0
    ids = accumulation.label_ids.tolist()
    weights[ids.index(1), shared] = 0.4 * total
    weights[ids.index(2), shared] = 0.6 * total
    accumulation.save(sidecar_path(ply))
    result = run_bpy("""
        from blender_gsseg.core.accumulate import load_accumulation
        from blender_gsseg.core.solver import Shares
        assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"]) == {"FINISHED"}
        obj = bpy.context.active_object
        NAME = obj.name
        obj.gsseg.gamma = -0.4  # re-solves from the sidecar
        obj.gsseg.delete_halo = False
        bpy.ops.ed.undo_push(message="start")  # headless Blender starts without an undo stack
        states = [snapshot(NAME)]
        L = int_attr(obj, "gsseg_label")
        n = len(L)
        counts = {int(i): int(c) for i, c in zip(*np.unique(L, return_counts=True))}
        RESULT["counts"] = counts

        def fresh():
            return bpy.data.objects[NAME]

        op("select_instance", label=1)
        assert (bool_attr(fresh(), ".select_vert") == (L == 1)).all()
        states.append(snapshot(NAME))
        op("select_instance", label=2, extend=True)
        assert (bool_attr(fresh(), ".select_vert") == np.isin(L, [1, 2])).all()
        states.append(snapshot(NAME))
        op("deselect_instance", label=1)
        assert (bool_attr(fresh(), ".select_vert") == (L == 2)).all()
        states.append(snapshot(NAME))
        op("invert_selection")
        assert (bool_attr(fresh(), ".select_vert") == (L != 2)).all()
        states.append(snapshot(NAME))
        op("hide_instance", label=2)
        obj = fresh()
        assert (bool_attr(obj, ".hide_vert") == (L == 2)).all() and (bool_attr(obj, "gsseg_hidden") == (L == 2)).all()
        assert points_drawn(obj) == n - counts[2], (points_drawn(obj), n - counts[2])
        states.append(snapshot(NAME))
        op("isolate_instance", label=1)
        obj = fresh()
        assert (bool_attr(obj, ".hide_vert") == (L != 1)).all()
        assert (bool_attr(obj, ".select_vert") == (L == 1)).all()  # hidden points are deselected
        assert points_drawn(obj) == counts[1]
        states.append(snapshot(NAME))
        op("reveal")
        obj = fresh()
        assert not bool_attr(obj, ".hide_vert").any() and points_drawn(obj) == n
        states.append(snapshot(NAME))
        # a manual fix: select some background points by hand and give them a new instance
        picked = (L == 0) & (np.arange(n) % 5 == 0)
        obj.data.attributes[".select_vert"].data.foreach_set("value", picked)
        bpy.ops.ed.undo_push(message="select by hand")
        states.append(snapshot(NAME))
        op("assign_instance", new_instance=True)
        obj = fresh()
        new_id = max(counts) + 1
        L2 = L.copy()
        L2[picked] = new_id
        assert (int_attr(obj, "gsseg_label") == L2).all()
        assert label_list.find_item(obj, new_id).count == picked.sum()
        states.append(snapshot(NAME))
        op("merge_instances", source=3, target=1)
        obj = fresh()
        L3 = np.where(L2 == 3, 1, L2)
        assert (int_attr(obj, "gsseg_label") == L3).all()
        assert label_list.find_item(obj, 3) is None
        assert label_list.find_item(obj, 1).count == (L3 == 1).sum()
        states.append(snapshot(NAME))
        # delete 1 with its halo at gamma -0.4: members of 1 and of 3 (merged into it), manual labels kept
        shares = Shares.from_accumulation(load_accumulation(obj.gsseg.accumulation_path, n))
        manual = picked
        halo = ((L3 == 1) | shares.members(1, -0.4) | shares.members(3, -0.4)) & ~manual
        RESULT["halo_extra"] = np.flatnonzero(halo & (L3 != 1)).tolist()
        op("delete_instance", label=1, halo="ON")
        obj = fresh()
        assert len(obj.data.vertices) == (~halo).sum(), (len(obj.data.vertices), (~halo).sum())
        assert (int_attr(obj, "gsseg_label") == L3[~halo]).all()
        assert obj.gsseg.accumulation_path != states[-1]["path"]
        states.append(snapshot(NAME))
        L4 = L3[~halo]
        op("delete_instance", label=2)
        obj = fresh()
        keep = L4 != 2
        assert len(obj.data.vertices) == keep.sum()
        assert (int_attr(obj, "gsseg_label") == L4[keep]).all()
        assert label_list.find_item(obj, 2) is None and label_list.find_item(obj, 1) is None
        states.append(snapshot(NAME))
        L5 = L4[keep]
        # separate the manual instance into a new object
        colours = np.empty(4 * len(L5), np.float32)
        obj.data.color_attributes["Col"].data.foreach_get("color", colours)
        op("separate_instance", label=new_id)
        obj = fresh()
        new = next(o for o in bpy.data.objects if o.name.startswith(NAME + ".") and o.type == "MESH")
        assert len(new.data.vertices) == (L5 == new_id).sum() and len(obj.data.vertices) == (L5 != new_id).sum()
        assert io_splat.header_of(new) == io_splat.header_of(obj) and new.modifiers
        part = np.empty(4 * len(new.data.vertices), np.float32)
        new.data.color_attributes["Col"].data.foreach_get("color", part)
        assert (part.reshape(-1, 4) == colours.reshape(-1, 4)[L5 == new_id]).all()
        assert [i.id for i in new.gsseg.labels] == [new_id]
        assert load_accumulation(new.gsseg.accumulation_path).n_gaussians == len(new.data.vertices)
        states.append(snapshot(NAME))
        RESULT["steps"] = len(states) - 1

        # Ctrl+Z all the way back: every earlier state comes back exactly
        for expected in reversed(states[:-1]):
            assert bpy.ops.ed.undo() == {"FINISHED"}
            got = snapshot(NAME)
            assert got == expected, {k: (got[k], expected[k]) for k in got if got[k] != expected[k]}
        # and Ctrl+Shift+Z forward again
        for expected in states[1:]:
            assert bpy.ops.ed.redo() == {"FINISHED"}
            assert snapshot(NAME) == expected

        # edit mode: select, then undo (the edit-mode undo step restores the selection)
        for _ in states[1:]:
            bpy.ops.ed.undo()
        bpy.context.view_layer.objects.active = fresh()
        assert bpy.ops.object.mode_set("EXEC_DEFAULT", True, mode="EDIT") == {"FINISHED"}
        bpy.ops.mesh.select_all("EXEC_DEFAULT", True, action="DESELECT")
        before = snapshot(NAME)
        op("select_instance", label=2)
        assert fresh().mode == "EDIT"
        assert (bool_attr(fresh(), ".select_vert") == (L == 2)).all()
        assert bpy.ops.ed.undo() == {"FINISHED"}
        assert snapshot(NAME) == before
        # a delete from edit mode changes the cache path and the list too: it ends in object mode, so that its
        # undo step restores all of it
        op("delete_instance", label=2)
        assert fresh().mode == "OBJECT" and len(fresh().data.vertices) == n - counts[2]
        assert bpy.ops.ed.undo() == {"FINISHED"}
        assert fresh().mode == "EDIT"
        assert snapshot(NAME) == before
        bpy.ops.object.mode_set(mode="OBJECT")

        # merges and manual labels survive a re-solve at another gamma
        obj = fresh()
        op("merge_instances", source=3, target=1)
        obj = fresh()
        label_list.write_attribute(obj.data, ".select_vert", picked, "BOOLEAN")
        op("assign_instance", label=2)
        obj = fresh()
        obj.gsseg.gamma = 0.3
        solved = Shares.from_accumulation(load_accumulation(ARGS["ply"][:-4] + ".gsseg.npz")).solve(0.3)[0]
        expected = np.where(solved == 3, 1, solved)
        expected[picked] = 2
        assert (int_attr(obj, "gsseg_label") == expected).all()
        # a splat with no segmentation can be labelled by hand
        assert bpy.ops.gsseg.import_splat(filepath=ARGS["raw"]) == {"FINISHED"}
        raw = bpy.context.active_object
        m = len(raw.data.vertices)
        label_list.write_attribute(raw.data, ".select_vert", np.arange(m) < 10, "BOOLEAN")
        op("assign_instance", new_instance=True)
        assert (int_attr(bpy.context.active_object, "gsseg_label") == (np.arange(m) < 10)).all()
    """, preamble=SNAPSHOT, home=tmp_path / "home", args={"ply": str(ply), "raw": scene["scene.ply"]},
        blender=release)
    assert result["steps"] == 13
    assert result["halo_extra"] == shared.tolist(), result  # the halo: points shared with instance 2
    assert min(result["counts"][str(k)] for k in (1, 2, 3)) > 10


def test_levels_round_trip_and_prefix_selection(scene, tmp_path):
    """A multi-level PLY: the level selector lists each level's instances; a coarse label selects all its
    parts; the packed code round-trips bit for bit; merges are refused (they would leave codes stale)."""
    from blender_gsseg.core.levels import CodeLayout

    source = read_gaussians(scene["multi.ply"])
    layout = CodeLayout.from_comments(source.comments)
    result = run_bpy("""
        assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"]) == {"FINISHED"}
        obj = bpy.context.active_object
        RESULT["levels"] = [item[0] for item in label_list.level_items(obj)]
        RESULT["names"] = [item[1] for item in label_list.level_items(obj)]
        assert obj.gsseg.level == "LABEL"  # the finest level first
        obj.gsseg.level = "0"
        # the list shows the rows of the current level only (and filters by name or id)
        import types
        fake = types.SimpleNamespace(bitflag_filter_item=1 << 30, filter_name="")
        flags, order = bpy.types.GSSEG_UL_instances.filter_items(fake, bpy.context, obj.gsseg, "labels")
        assert [i.level for i, f in zip(obj.gsseg.labels, flags) if f] == [0] * len(label_list.items_of_level(obj, 0))
        fake.filter_name = "objects_2"
        flags, _ = bpy.types.GSSEG_UL_instances.filter_items(fake, bpy.context, obj.gsseg, "labels")
        assert [(i.level, i.id) for i, f in zip(obj.gsseg.labels, flags) if f] == [(0, 2)]
        RESULT["rows0"] = sorted((i.id, i.name, i.count) for i in obj.gsseg.labels if i.level == 0)
        codes = int_attr(obj, "gsseg_code")
        op("select_instance", label=2)  # object 2: both its parts
        RESULT["selected"] = np.flatnonzero(bool_attr(obj, ".select_vert")).tolist()
        op("isolate_instance", label=3)
        assert points_drawn(bpy.data.objects[obj.name]) == int(RESULT["rows0"][-1][2])
        op("reveal")
        # the label display follows the level
        colours = np.empty(4 * len(codes), np.float32)
        obj.data.color_attributes["gsseg_label_col"].data.foreach_get("color", colours)
        RESULT["colours_level0"] = len({tuple(c) for c in colours.reshape(-1, 4).tolist()})
        obj.gsseg.level = "LABEL"
        obj.data.color_attributes["gsseg_label_col"].data.foreach_get("color", colours)
        RESULT["colours_finest"] = len({tuple(c) for c in colours.reshape(-1, 4).tolist()})
        try:
            bpy.ops.gsseg.merge_instances(source=1, target=2)
            raise AssertionError("merge on a multi-level scene did not fail")
        except RuntimeError as error:
            RESULT["merge_error"] = str(error)
        bpy.ops.object.select_all(action="DESELECT")
        assert bpy.ops.gsseg.export_splat(filepath=ARGS["out"]) == {"FINISHED"}
        # gamma re-solves every level (from the level sidecars) and rewrites label and code together
        from blender_gsseg.core.gaussians import read_gaussians
        from blender_gsseg.core.pipeline import relabel_scene
        obj.gsseg.gamma = 0.4
        expected, _ = relabel_scene(ARGS["ply"], read_gaussians(ARGS["ply"]), 0.4)
        for name in ("gsseg_label", "gsseg_code"):
            assert (int_attr(obj, name) == expected.vertex[name]).all(), name
        RESULT["changed"] = int((int_attr(obj, "gsseg_code") != codes).sum())
        # after a deletion the coarser sidecars no longer fit: gamma is refused rather than desynchronised
        assert bpy.ops.gsseg.delete_instance(label=1) == {"FINISHED"}
        before = int_attr(obj, "gsseg_code").copy()
        from blender_gsseg.blender.segment import apply_gamma
        try:
            apply_gamma(obj, 0.1)
            raise AssertionError("re-solving a multi-level scene without its sidecars did not fail")
        except Exception as error:
            RESULT["levels_error"] = str(error)
        assert (int_attr(obj, "gsseg_code") == before).all()
    """, preamble=SNAPSHOT, home=tmp_path / "home", args={"ply": scene["multi.ply"], "out": str(tmp_path / "out.ply")})
    assert result["levels"] == ["0", "LABEL"]
    assert result["names"] == ["0: objects", "1: parts"]
    coarse = layout.field(source.vertex["gsseg_code"], 0)
    ids, counts = np.unique(coarse[coarse >= 0], return_counts=True)
    assert [(r[0], r[2]) for r in result["rows0"]] == list(zip(ids.tolist(), counts.tolist()))
    assert result["rows0"][1][1] == "objects_1"
    assert result["selected"] == np.flatnonzero(coarse == 2).tolist()
    parts_of_2 = set(np.unique(source.vertex["gsseg_label"][coarse == 2]).tolist())
    assert len(parts_of_2) >= 2  # the prefix match picked several finest labels
    assert result["colours_level0"] == len(np.unique(coarse))
    assert result["colours_finest"] == len(np.unique(source.vertex["gsseg_label"]))
    assert "multi-level" in result["merge_error"]
    assert result["changed"] > 0
    assert "sidecars of every level" in result["levels_error"], result["levels_error"]
    with open(scene["multi.ply"], "rb") as a, open(tmp_path / "out.ply", "rb") as b:
        assert a.read() == b.read()
