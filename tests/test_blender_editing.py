"""The instance list (names and colours through the PLY header), the editing operators and their undo, label
levels (gsseg_code), in headless bpy. Each test runs its script of
tests/blender_scripts/ in its own process (blender_harness.py)."""

import numpy as np
import pytest

from blender_harness import BLENDER_RELEASES, labeled_scene, run_bpy

from blender_gsseg.core.files.splats import read_gaussians
from blender_gsseg.core.files.labels import read_label_table

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return labeled_scene(tmp_path_factory.mktemp("scene"), levels=True)


def test_instance_list_names_colours_and_header(scene, tmp_path):
    """Import fills the list from the gsseg_label comments; an unchanged export is byte-identical; renamed and
    recoloured instances are written back, and the label display uses the list's colours."""
    source = read_gaussians(scene["labeled.ply"])
    table = read_label_table(source.comments)
    labels = source.vertex["gsseg_label"]
    result = run_bpy("instance_list_names_colours.py", home=tmp_path / "home", args={
        "ply": scene["labeled.ply"], "same": str(tmp_path / "same.ply"), "edited": str(tmp_path / "edited.ply")})
    ids, counts = np.unique(labels, return_counts=True)
    expected = [[-1, int(i), table[int(i)][0], table[int(i)][1], int(c)] for i, c in zip(ids, counts, strict=True) if i >= 0]
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

    from blender_gsseg.core.lift.sidecar import load_accumulation, save_accumulation, sidecar_path

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
    save_accumulation(sidecar_path(ply), accumulation)
    result = run_bpy("editing_operators_exact_undo.py", home=tmp_path / "home",
                     args={"ply": str(ply), "raw": scene["scene.ply"]}, blender=release)
    assert result["steps"] == 13
    assert result["halo_extra"] == shared.tolist(), result  # the halo: points shared with instance 2
    assert min(result["counts"][str(k)] for k in (1, 2, 3)) > 10


def test_levels_round_trip_and_prefix_selection(scene, tmp_path):
    """A multi-level PLY: the level selector lists each level's instances; a coarse label selects all its
    parts; the packed code round-trips bit for bit; merges are refused (they would leave codes stale)."""
    from blender_gsseg.core.files.labels import CodeLayout

    source = read_gaussians(scene["multi.ply"])
    layout = CodeLayout.from_comments(source.comments)
    result = run_bpy("levels_round_trip_prefix_selection.py", home=tmp_path / "home",
                     args={"ply": scene["multi.ply"], "out": str(tmp_path / "out.ply")})
    assert result["levels"] == ["0", "LABEL"]
    assert result["names"] == ["0: objects", "1: parts"]
    coarse = layout.field(source.vertex["gsseg_code"], 0)
    ids, counts = np.unique(coarse[coarse >= 0], return_counts=True)
    assert [(r[0], r[2]) for r in result["rows0"]] == list(zip(ids.tolist(), counts.tolist(), strict=True))
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
