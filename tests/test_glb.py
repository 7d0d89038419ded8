"""glTF binary (.glb) with KHR_gaussian_splatting: read against splat-transform 3.7.0's own .glb of the same scene,
written so that PLY -> .glb -> PLY is exact (every property and the header), with labels through EXT_mesh_features
and EXT_structural_metadata and gsseg_code's levels as feature ids of their own (fixtures in
tests/data/splat_transform_3.7.0/, made as its README says)."""

import os

import numpy as np

from blender_gsseg.cli import main
from blender_gsseg.core.files.gltf import read_glb
from blender_gsseg.core.files.labels import label_table_comments, read_label_table
from blender_gsseg.core.files.ply import write_gaussians
from blender_gsseg.core.files.quantize import sigmoid64
from blender_gsseg.core.files.splats import read_gaussians, write_splat_file

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "splat_transform_3.7.0")
SOURCE = os.path.join(DATA, "source_sh3.ply")


def test_reads_splat_transforms_glb_as_the_source():
    """splat-transform turned the scene 180° about Z and wrote linear scales and sigmoid opacities: reading undoes
    all of it. What goes through no exp or sigmoid comes back bit for bit, SH bands 1-3 with their signs."""
    source, glb = read_gaussians(SOURCE), read_gaussians(os.path.join(DATA, "st_sh3.glb"))
    assert glb.property_names == source.property_names and glb.sh_degree == 3
    for name in source.property_names:
        want, got = source.vertex[name], glb.vertex[name]
        if name.startswith("scale_"):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=name)
        elif name == "opacity":  # through float32 sigmoid: equal alphas
            np.testing.assert_allclose(sigmoid64(got), sigmoid64(want), rtol=0, atol=1e-7)
        else:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=name)


def test_ply_glb_ply_is_exact_and_carries_labels_names_and_colours(tmp_path):
    source = read_gaussians(SOURCE)
    labels = np.random.default_rng(0).integers(-1, 5, len(source)).astype(np.int32)
    labels[:3] = (-1, 70000, 3)  # unseen, a large id
    table = {0: ("background", "#808080"), 3: ("Suzanne left", "#ff0000"), 70000: ("far", "#0a0b0c")}
    labelled = source.with_int_property("gsseg_label", labels).with_comments(
        label_table_comments(np.unique(labels[labels >= 0]), table))
    write_gaussians(tmp_path / "labelled.ply", labelled)
    assert main(["convert", str(tmp_path / "labelled.ply"), str(tmp_path / "scene.glb")]) == 0
    assert main(["convert", str(tmp_path / "scene.glb"), str(tmp_path / "back.ply")]) == 0
    back = read_gaussians(tmp_path / "back.ply")
    assert back.property_names == labelled.property_names
    for name in labelled.property_names:
        assert back.vertex[name].tobytes() == labelled.vertex[name].tobytes(), name
    assert read_label_table(back.comments) == read_label_table(labelled.comments)
    assert read_label_table(back.comments)[3] == ("Suzanne left", "#ff0000")


def test_glb_is_what_other_readers_read(tmp_path):
    """The standard attributes alone (as a viewer reads them, without gsseg's exact extras) give the scene."""
    write_splat_file(tmp_path / "scene.glb", read_gaussians(SOURCE))
    document, blob = _glb_document(tmp_path / "scene.glb")
    attributes = document["meshes"][0]["primitives"][0]["attributes"]
    assert document["extensionsUsed"] == ["KHR_gaussian_splatting"]
    assert {"POSITION", "COLOR_0", "KHR_gaussian_splatting:ROTATION", "KHR_gaussian_splatting:SCALE",
            "KHR_gaussian_splatting:OPACITY", "KHR_gaussian_splatting:SH_DEGREE_3_COEF_6"} <= set(attributes)
    del attributes["_GSSEG_LOG_SCALE"], attributes["_GSSEG_OPACITY_LOGIT"]
    _write_glb_document(tmp_path / "standard.glb", document, blob)
    source, plain = read_gaussians(SOURCE), read_glb(tmp_path / "standard.glb")
    np.testing.assert_allclose(sigmoid64(plain.vertex["opacity"]), sigmoid64(source.vertex["opacity"]), atol=1e-7)
    for k in range(3):
        np.testing.assert_allclose(plain.vertex[f"scale_{k}"], source.vertex[f"scale_{k}"], rtol=1e-6, atol=1e-7)


def test_a_damaged_glb_is_one_clear_line(tmp_path, capsys):
    write_splat_file(tmp_path / "scene.glb", read_gaussians(SOURCE))
    data = (tmp_path / "scene.glb").read_bytes()
    (tmp_path / "cut.glb").write_bytes(data[:len(data) // 2])
    (tmp_path / "notglb.glb").write_bytes(b"not a glb at all, really")
    for name in ("cut.glb", "notglb.glb"):
        assert main(["info", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"gsseg: error: {tmp_path / name}: ") and "\n" not in err, err


def test_glb_keeps_every_other_property_and_the_header(tmp_path):
    """Normals, gsseg_code with its layout comment, a double, a uchar, a uint and any comment: PLY -> .glb -> PLY
    gives the same file, byte for byte."""
    from blender_gsseg.core.gaussians import Gaussians

    v = read_gaussians(SOURCE).vertex
    extra = [("gsseg_code", "<i4"), ("weight", "<f8"), ("flag", "u1"), ("big", "<u4")]
    names = ["x", "y", "z", "nx", "ny", "nz"] + [n for n in v.dtype.names if n not in "xyz"]
    table = np.zeros(len(v), dtype=[(n, "<f4") for n in names] + extra)
    for name in v.dtype.names:
        table[name] = v[name]
    rng = np.random.default_rng(1)
    table["nx"] = rng.normal(size=len(v))
    table["gsseg_code"] = rng.integers(-1, 2 ** 30, len(v))
    table["weight"] = rng.normal(size=len(v))
    table["flag"] = rng.integers(0, 256, len(v))
    table["big"] = rng.integers(0, 2 ** 32, len(v), dtype=np.uint64)
    scene = Gaussians(table, meta_lines=[("comment", "gsseg_code_layout objects:3 parts:4"),
                                         ("comment", "made by a test")])
    write_gaussians(tmp_path / "scene.ply", scene)
    assert main(["convert", str(tmp_path / "scene.ply"), str(tmp_path / "scene.glb")]) == 0
    assert main(["convert", str(tmp_path / "scene.glb"), str(tmp_path / "back.ply")]) == 0
    assert (tmp_path / "back.ply").read_bytes() == (tmp_path / "scene.ply").read_bytes()


def _glb_document(path):
    """(JSON document, binary chunk) of a .glb, read here with struct alone."""
    import json
    import struct

    data = open(path, "rb").read()
    size = struct.unpack_from("<I", data, 12)[0]
    return json.loads(data[20:20 + size]), data[20 + size + 8:]


def _write_glb_document(path, document, blob):
    """A .glb of a (changed) JSON document and binary chunk: :func:`_glb_document`'s inverse."""
    import json
    import struct

    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<III", 0x46546C67, 2, 28 + len(text) + len(blob)))
        handle.write(struct.pack("<II", len(text), 0x4E4F534A) + text)
        handle.write(struct.pack("<II", len(blob), 0x004E4942) + bytes(blob))


def _float_accessor(document, blob, index):
    accessor = document["accessors"][index]
    view = document["bufferViews"][accessor["bufferView"]]
    assert accessor["componentType"] == 5126 and accessor["type"] == "SCALAR"
    return np.frombuffer(blob, "<f4", accessor["count"], view["byteOffset"] + accessor.get("byteOffset", 0))


def test_glb_carries_each_level_as_feature_ids_and_the_layout_as_a_table(tmp_path):
    """gsseg_code with levels objects:3 parts:4: each level's labels are feature ids of their own (null for unseen
    splats) and the layout is the gsseg_code_level property table; a reader that keeps only the standard parts
    (no gsseg extras, no _GSSEG_P attributes) packs the same gsseg_code and layout from them."""
    from blender_gsseg.core.files.labels import CodeLayout

    source = read_gaussians(SOURCE)
    rng = np.random.default_rng(3)
    objects, parts = rng.integers(-1, 6, len(source)), rng.integers(0, 12, len(source))
    layout = CodeLayout(["objects", "parts"], [3, 4])
    codes = layout.pack([objects, parts])
    scene = source.with_int_property("gsseg_code", codes).with_comments([layout.comment()])
    write_gaussians(tmp_path / "levels.ply", scene)
    assert main(["convert", str(tmp_path / "levels.ply"), str(tmp_path / "levels.glb")]) == 0
    document, blob = _glb_document(tmp_path / "levels.glb")
    primitive = document["meshes"][0]["primitives"][0]
    features = {f["label"]: f for f in primitive["extensions"]["EXT_mesh_features"]["featureIds"]}
    assert set(features) == {"gsseg_code:objects", "gsseg_code:parts"}
    assert [f["attribute"] for f in features.values()] == [0, 1]  # _FEATURE_ID_n from 0, consecutive
    for name, labels, null in (("objects", objects, 8), ("parts", parts, 16)):
        ids = features[f"gsseg_code:{name}"]
        assert ids["nullFeatureId"] == null
        got = _float_accessor(document, blob, primitive["attributes"][f"_FEATURE_ID_{ids['attribute']}"])
        want = np.where(objects < 0, null, labels)  # a splat unseen at the coarse level is unseen at every level
        np.testing.assert_array_equal(got, want)
        assert ids["featureCount"] == len(np.unique(want[want != null]))
    metadata = document["extensions"]["EXT_structural_metadata"]
    table = next(t for t in metadata["propertyTables"] if t["class"] == "gsseg_code_level")
    assert table["count"] == 2 and set(metadata["schema"]["classes"]) == {"gsseg_code_level"}

    # keep only the standard parts: no extras, no _GSSEG_* attributes
    del primitive["extras"]
    for name in [a for a in primitive["attributes"] if a.startswith("_GSSEG_")]:
        del primitive["attributes"][name]
    _write_glb_document(tmp_path / "standard.glb", document, blob)
    plain = read_gaussians(tmp_path / "standard.glb")
    np.testing.assert_array_equal(plain.vertex["gsseg_code"], codes)
    assert CodeLayout.from_comments(plain.comments) == layout


def test_glb_levels_beside_labels_and_a_level_too_wide_for_feature_ids(tmp_path, capsys):
    """With gsseg_label the labels are _FEATURE_ID_0 and the levels follow; a level of 25 bits cannot be float
    feature ids: it is left out with a warning, and the code still comes back exactly through gsseg's extras."""
    from blender_gsseg.core.files.labels import CodeLayout

    source = read_gaussians(SOURCE)
    rng = np.random.default_rng(4)
    objects, parts = rng.integers(0, 3, len(source)), rng.integers(0, 1 << 25, len(source))
    layout = CodeLayout(["objects", "parts"], [2, 25])
    scene = source.with_int_property("gsseg_label", objects.astype(np.int32)).with_int_property(
        "gsseg_code", layout.pack([objects, parts])).with_comments([layout.comment()])
    write_gaussians(tmp_path / "wide.ply", scene)
    assert main(["convert", str(tmp_path / "wide.ply"), str(tmp_path / "wide.glb")]) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"gsseg: warning: {tmp_path / 'wide.glb'}: gsseg_code level 'parts' needs more than 24 bits: written "
        f"without its feature ids (readers other than gsseg see no such level)"]
    document, _ = _glb_document(tmp_path / "wide.glb")
    features = document["meshes"][0]["primitives"][0]["extensions"]["EXT_mesh_features"]["featureIds"]
    assert [(f["label"], f["attribute"]) for f in features] == [("gsseg_label", 0), ("gsseg_code:objects", 1)]
    back = read_gaussians(tmp_path / "wide.glb")
    assert back.vertex["gsseg_code"].tobytes() == scene.vertex["gsseg_code"].tobytes()


def test_glb_layout_that_gsseg_could_not_have_written_is_one_line(tmp_path, capsys):
    """A gsseg_code_level table whose levels need more than 31 bits, read without gsseg's extras: one line."""
    from blender_gsseg.core.files.labels import CodeLayout

    source = read_gaussians(SOURCE)
    layout = CodeLayout(["objects", "parts"], [3, 4])
    scene = source.with_int_property("gsseg_code", layout.pack([np.ones(len(source), int)] * 2)).with_comments(
        [layout.comment()])
    write_gaussians(tmp_path / "levels.ply", scene)
    assert main(["convert", str(tmp_path / "levels.ply"), str(tmp_path / "levels.glb")]) == 0
    document, blob = _glb_document(tmp_path / "levels.glb")
    primitive = document["meshes"][0]["primitives"][0]
    del primitive["extras"]
    table = next(t for t in document["extensions"]["EXT_structural_metadata"]["propertyTables"]
                 if t["class"] == "gsseg_code_level")
    view = document["bufferViews"][table["properties"]["bits"]["values"]]
    blob = bytearray(blob)
    blob[view["byteOffset"]:view["byteOffset"] + 2] = bytes([30, 30])  # 60 bits
    _write_glb_document(tmp_path / "bad.glb", document, blob)
    capsys.readouterr()
    assert main(["info", str(tmp_path / "bad.glb")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"gsseg: error: {tmp_path / 'bad.glb'}: bad gsseg_code layout") and "\n" not in err


def test_glb_of_a_scene_with_a_bad_layout_comment_names_the_scene(tmp_path, capsys):
    """A gsseg_code_layout comment over 31 bits in the source: one line naming the source, nothing written."""
    source = read_gaussians(SOURCE)
    scene = source.with_int_property("gsseg_code", np.zeros(len(source), np.int32)).with_comments(
        ["gsseg_code_layout objects:40"])
    write_gaussians(tmp_path / "bad_layout.ply", scene)
    assert main(["convert", str(tmp_path / "bad_layout.ply"), str(tmp_path / "out.glb")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"gsseg: error: {tmp_path / 'bad_layout.ply'}: bad 'gsseg_code_layout' comment: "
                   f"'gsseg_code_layout objects:40'"), err
    assert not (tmp_path / "out.glb").exists()
