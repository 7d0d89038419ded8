"""Hierarchical labels: two mask levels lifted so that every part lies inside its object, packed into
gsseg_code with its layout comment, and selected by level."""

import json

import numpy as np
import pytest
from PIL import Image

from blender_gsseg.cli import main
from blender_gsseg.core.files.inria_cameras import write_cameras_json
from blender_gsseg.core.errors import BadInputError
from blender_gsseg.core.files.ply import write_gaussians
from blender_gsseg.core.files.splats import read_gaussians
from blender_gsseg.core.files.labels import CodeLayout
from blender_gsseg.core.lift.levels import parent_labels
from synthetic.scene import make_scene


def test_layout_packing_and_fields():
    layout = CodeLayout.for_levels(["objects", "parts"], [5, 300])
    assert layout.bits == [3, 9] and layout.comment() == "gsseg_code_layout objects:3 parts:9"
    objects = np.array([0, 5, 2, -1, 1])
    parts = np.array([0, 300, 17, -1, 0])
    codes = layout.pack([objects, parts])
    assert codes.tolist() == [0, (5 << 9) | 300, (2 << 9) | 17, -1, 1 << 9]
    assert layout.field(codes, 0).tolist() == [0, 5, 2, -1, 1]
    assert layout.field(codes, 1).tolist() == [0, 300, 17, -1, 0]
    again = CodeLayout.from_comments(["x", layout.comment()])
    assert again == layout
    with pytest.raises(BadInputError, match="31"):
        CodeLayout.for_levels(["a", "b"], [2**20, 2**12])
    with pytest.raises(BadInputError):
        layout.field(codes, 2)


def test_parent_is_the_coarse_label_overlapped_most():
    coarse = np.array([[1, 1, 2, 2], [1, 1, 2, 0]])
    fine = np.array([[5, 5, 5, 7], [5, 0, 7, 7]])
    assert parent_labels([fine], [coarse], [0, 5, 7, 9]).tolist() == [0, 1, 2, 0]


@pytest.fixture(scope="module")
def two_level(tmp_path_factory):
    root = tmp_path_factory.mktemp("levels")
    scene = make_scene(n_spheres=3, points_per_unit_area=400, n_cameras=10, width=120, height=90, seed=5)
    write_gaussians(root / "scene.ply", scene.gaussians)
    write_cameras_json(root / "cams.json", scene.cameras)
    for folder, parts in (("objects", False), ("parts", True)):
        (root / folder).mkdir()
        for camera in scene.cameras:
            Image.fromarray(scene.mask(camera, parts=parts).astype(np.uint8)).save(
                root / folder / f"{camera.image_name}.png")
    assert main(["segment", str(root / "scene.ply"), "--cameras", str(root / "cams.json"), "--masks",
                 str(root / "objects"), "--masks", str(root / "parts"), "-o", str(root / "out.ply"),
                 "--backend", "cpu", "--report", str(root / "report.json")]) == 0
    return root, scene


def test_parts_lie_inside_their_objects(two_level):
    root, scene = two_level
    out = read_gaussians(root / "out.ply")
    layout = CodeLayout.from_comments(out.comments)
    assert layout.names == ["objects", "parts"] and layout.bits == [2, 3]
    codes = out.vertex["gsseg_code"]
    objects, parts = layout.field(codes, 0), layout.field(codes, 1)
    np.testing.assert_array_equal(parts, np.where(codes < 0, -1, out.vertex["gsseg_label"]))
    # every part inside its object: part 2k+1 / 2k+2 only on object k+1
    has_part = parts > 0
    np.testing.assert_array_equal((parts[has_part] - 1) // 2 + 1, objects[has_part])
    assert not np.any((objects == 0) & (parts > 0))
    seen = codes >= 0
    assert np.mean(objects[seen] == scene.labels[seen]) > 0.9
    assert np.mean(parts[seen] == scene.part_labels[seen]) > 0.85
    assert (codes[seen] >> 3 == objects[seen]).all()  # the coarse level is a prefix of the fine one
    report = json.loads((root / "report.json").read_text())
    assert report["code_layout"] == {"levels": ["objects", "parts"], "bits": [2, 3]}
    assert report["levels"][1]["parents"] == {"0": 0, "1": 1, "2": 1, "3": 2, "4": 2, "5": 3, "6": 3}


def test_select_by_level_and_relabel(two_level, capsys):
    root, _ = two_level
    out = read_gaussians(root / "out.ply")
    layout = CodeLayout.from_comments(out.comments)
    objects = layout.field(out.vertex["gsseg_code"], 0)
    assert main(["extract", str(root / "out.ply"), "--labels", "2", "--level", "0", "-o",
                 str(root / "obj2.ply")]) == 0
    picked = read_gaussians(root / "obj2.ply")
    assert len(picked) == int((objects == 2).sum())
    assert set(np.unique(picked.vertex["gsseg_label"])) <= {0, 3, 4}  # its parts (or no part)
    assert main(["split", str(root / "out.ply"), "--level", "0", "-o", str(root / "split")]) == 0
    assert main(["relabel", str(root / "out.ply"), "--gamma", "0.4", "-o", str(root / "re.ply")]) == 0
    relabeled = read_gaussians(root / "re.ply")
    re_objects = layout.field(relabeled.vertex["gsseg_code"], 0)
    re_parts = layout.field(relabeled.vertex["gsseg_code"], 1)
    assert (re_objects > 0).sum() < (objects > 0).sum()
    has_part = re_parts > 0
    np.testing.assert_array_equal((re_parts[has_part] - 1) // 2 + 1, re_objects[has_part])
    assert main(["remove", str(root / "out.ply"), "--labels", "1", "--level", "3", "-o",
                 str(root / "x.ply")]) == 2
    assert "--level 3" in capsys.readouterr().err


def test_a_layout_comment_edited_to_too_few_bits_is_refused(two_level, tmp_path, capsys):
    """Issue 29: a gsseg_code_layout comment edited to 1 bit per level made relabel raise ValueError."""
    import re
    import shutil

    root, _ = two_level
    raw = (root / "out.ply").read_bytes()
    edited = re.sub(rb"comment gsseg_code_layout ([^\n]*)",
                    lambda m: b"comment gsseg_code_layout " + re.sub(rb":\d+", b":1", m.group(1)), raw, count=1)
    assert edited != raw
    (tmp_path / "e.ply").write_bytes(edited)
    for source in root.glob("out*.gsseg.npz"):
        shutil.copyfile(source, tmp_path / source.name.replace("out", "e", 1))
    assert main(["relabel", str(tmp_path / "e.ply"), "--gamma", "0"]) == 2
    err = capsys.readouterr().err
    assert "comment gives level 0 1 bits, too few for label" in err and "Traceback" not in err
