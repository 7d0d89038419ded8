"""Splat files out by name, whatever the format: `gsseg convert`, remove, extract and split write any format of the
format table, say what it cannot keep and refuse a name no format claims before any work."""

import os

import numpy as np
import pytest

from blender_gsseg.cli import build_parser, main
from blender_gsseg.core.files.formats import READ_FORMATS, WRITTEN_FORMATS
from blender_gsseg.core.files.labels import label_table_comments
from blender_gsseg.core.files.ply import write_gaussians
from blender_gsseg.core.files.splats import read_gaussians, write_splat_file

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "splat_transform_3.7.0")
SOURCE = os.path.join(DATA, "source_sh3.ply")


def test_convert_says_what_a_format_cannot_keep(tmp_path, capsys):
    labelled = read_gaussians(SOURCE).with_int_property("gsseg_label", np.zeros(40, np.int32))
    write_gaussians(tmp_path / "labelled.ply", labelled)
    assert main(["convert", str(tmp_path / "labelled.ply"), str(tmp_path / "out.splat")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [f"gsseg: warning: {tmp_path / 'out.splat'}: .splat cannot carry labels: gsseg_label is not written",
                   f"gsseg: warning: {tmp_path / 'out.splat'}: .splat holds no view-dependent colour: SH degree 3 "
                   f"is dropped"]
    assert len(read_gaussians(tmp_path / "out.splat")) == 40


@pytest.mark.parametrize("name, phrase", [("out.obj", "unknown output format"),
                                          ("out.sog.txt", "unknown output format")])
def test_convert_refuses_a_format_it_does_not_write_before_any_work(tmp_path, capsys, name, phrase):
    assert main(["convert", SOURCE, str(tmp_path / name)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"gsseg: error: {tmp_path / name}: ") and phrase in err and "\n" not in err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("degree", [0, 1, 2])
def test_sh_degree_keeps_the_lower_bands(tmp_path, degree):
    source = read_gaussians(SOURCE)
    assert main(["convert", SOURCE, str(tmp_path / "cut.ply"), "--sh-degree", str(degree)]) == 0
    cut = read_gaussians(tmp_path / "cut.ply")
    assert cut.sh_degree == degree
    kept = (degree + 1) ** 2 - 1
    np.testing.assert_array_equal(cut.sh_rest, source.sh_rest[:, :kept])
    assert [n for n in cut.property_names if not n.startswith("f_rest_")] == \
        [n for n in source.property_names if not n.startswith("f_rest_")]


def test_remove_extract_and_split_write_any_format(tmp_path, capsys):
    source = read_gaussians(SOURCE)
    labels = np.arange(len(source), dtype=np.int32) % 3 - 1  # -1, 0, 1
    labelled = source.with_int_property("gsseg_label", labels).with_comments(label_table_comments([0, 1], {}))
    write_gaussians(tmp_path / "scene.ply", labelled)
    assert main(["remove", str(tmp_path / "scene.ply"), "--labels", "1", "-o", str(tmp_path / "kept.glb")]) == 0
    kept = read_gaussians(tmp_path / "kept.glb")
    assert kept.vertex.tobytes() == labelled.subset(labels != 1).vertex.tobytes()
    assert main(["extract", str(tmp_path / "scene.ply"), "--labels", "1", "-o", str(tmp_path / "one.splat")]) == 0
    assert len(read_gaussians(tmp_path / "one.splat")) == int((labels == 1).sum())
    assert "cannot carry labels" in capsys.readouterr().err
    assert main(["split", str(tmp_path / "scene.ply"), "-o", str(tmp_path / "parts"), "--format", "glb"]) == 0
    files = sorted(f for f in os.listdir(tmp_path / "parts") if not f.startswith("gsseg-"))
    assert files == ["scene_label_0.glb", "scene_label_1.glb", "scene_unseen.glb"]
    for name, label in zip(files, (0, 1, -1), strict=True):
        part = read_gaussians(tmp_path / "parts" / name)
        assert (part.vertex["gsseg_label"] == label).all() and len(part) == int((labels == label).sum())


@pytest.mark.parametrize("splat_format", WRITTEN_FORMATS, ids=lambda f: f.ending)
def test_each_written_format_reads_back_and_keeps_labels_as_the_table_says(tmp_path, splat_format):
    labels = np.arange(40, dtype=np.int32) % 3
    scene = read_gaussians(SOURCE).with_int_property("gsseg_label", labels)
    path = tmp_path / ("scene" + splat_format.ending)
    lost = write_splat_file(path, scene)
    back = read_gaussians(path)
    assert len(back) == 40
    assert ("gsseg_label" in back.property_names) == splat_format.keeps_labels
    assert any("cannot carry labels" in problem for problem in lost) != splat_format.keeps_labels
    if splat_format.keeps_labels:
        assert np.array_equal(np.sort(back.vertex["gsseg_label"]), np.sort(labels))


def test_the_cli_lists_the_tables_formats():
    """Every command that reads or writes splat files names the formats of the table, and split's --format
    offers each written one."""
    commands = {name: sub.format_help() for name, sub in
                next(a for a in build_parser()._actions if a.dest == "command").choices.items()}
    written = [f.ending for f in WRITTEN_FORMATS]
    for name in ("convert", "remove", "extract"):
        assert all(ending in commands[name] for ending in written), name
    for name in ("convert", "segment"):
        assert all(f.ending in commands[name] for f in READ_FORMATS), name
    assert "{" + ",".join(ending[1:] for ending in written) + "}" in commands["split"]
