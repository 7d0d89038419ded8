"""Formats out: `gsseg convert`, the .glb (KHR_gaussian_splatting, labels through EXT_mesh_features and
EXT_structural_metadata) against splat-transform 3.7.0's own .glb, and the .splat writer against splat-transform's
decoding of it (fixtures in tests/data/gltf/, made as its README says)."""

import os

import numpy as np
import pytest

from blender_gsseg.cli import main
from blender_gsseg.core.files.gltf import read_glb
from blender_gsseg.core.files.splats import read_gaussians, write_gaussians, write_splat_file
from blender_gsseg.core.files.labels import label_table_comments, read_label_table

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "gltf")
SOURCE = os.path.join(DATA, "source_sh3.ply")


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def quat_angle(a, b):
    dot = np.clip(np.abs(np.sum(a * b, axis=1)), 0.0, 1.0)
    return 2.0 * np.arccos(dot)


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
            np.testing.assert_allclose(sigmoid(got), sigmoid(want), rtol=0, atol=1e-7)
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
    np.testing.assert_allclose(sigmoid(plain.vertex["opacity"]), sigmoid(source.vertex["opacity"]), atol=1e-7)
    for k in range(3):
        np.testing.assert_allclose(plain.vertex[f"scale_{k}"], source.vertex[f"scale_{k}"], rtol=1e-6, atol=1e-7)


def test_our_splat_decodes_in_splat_transform_within_the_format_steps(tmp_path):
    """ours.splat is what convert writes today; splat-transform decoded it to ours.splat.st.ply: positions and
    scales as float32, colour and alpha within half an 8-bit step, rotations within the 8-bit quaternion's."""
    source = read_gaussians(SOURCE)
    assert main(["convert", SOURCE, str(tmp_path / "ours.splat")]) == 0
    assert (tmp_path / "ours.splat").read_bytes() == open(os.path.join(DATA, "ours.splat"), "rb").read()
    decoded = read_gaussians(os.path.join(DATA, "ours.splat.st.ply"))
    assert len(decoded) == len(source)
    for axis in "xyz":
        assert decoded.vertex[axis].tobytes() == source.vertex[axis].tobytes()
    for k in range(3):
        np.testing.assert_allclose(decoded.vertex[f"scale_{k}"], source.vertex[f"scale_{k}"], atol=1e-6)
    assert np.abs(decoded.base_colors - source.base_colors).max() <= 0.5 / 255 + 1e-6
    assert np.abs(sigmoid(decoded.vertex["opacity"]) - sigmoid(source.vertex["opacity"])).max() <= 0.5 / 255 + 1e-6
    angles = quat_angle(decoded.rotations.astype(np.float64), source.rotations.astype(np.float64))
    assert angles.max() < 0.03  # radians: 8 bits per component


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


def test_a_damaged_glb_is_one_clear_line(tmp_path, capsys):
    write_splat_file(tmp_path / "scene.glb", read_gaussians(SOURCE))
    data = (tmp_path / "scene.glb").read_bytes()
    (tmp_path / "cut.glb").write_bytes(data[:len(data) // 2])
    (tmp_path / "notglb.glb").write_bytes(b"not a glb at all, really")
    for name in ("cut.glb", "notglb.glb"):
        assert main(["info", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"gsseg: error: {tmp_path / name}: ") and "\n" not in err, err


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


@pytest.mark.parametrize("source, reference", [("source_sh3.ply", "st_sh3.compressed.ply"),
                                               ("source_sh1_300.ply", "st_sh1_300.compressed.ply"),
                                               ("source_dense_700.ply", "st_dense_700.compressed.ply")])
def test_compressed_ply_is_splat_transforms_to_the_byte(tmp_path, source, reference):
    """The same Morton order, chunk ranges and packing as splat-transform 3.7.0: the same bytes after the header
    (which names the writer). The dense scene has 600 splats in one Morton cell, which splat-transform orders
    again over their own bounds."""
    assert main(["convert", os.path.join(DATA, source), str(tmp_path / "ours.compressed.ply")]) == 0
    ours = (tmp_path / "ours.compressed.ply").read_bytes()
    theirs = open(os.path.join(DATA, reference), "rb").read()
    body = lambda data: data[data.index(b"end_header\n") + len(b"end_header\n"):]  # noqa: E731
    assert len(body(ours)) == len(body(theirs)) and body(ours) == body(theirs)
    assert ours.replace(b"gsseg", b"splat-transform 3.7.0") == theirs


def test_compressed_ply_keeps_labels(tmp_path):
    source = read_gaussians(os.path.join(DATA, "source_sh1_300.ply"))
    labels = np.arange(len(source), dtype=np.int32) % 4 - 1
    write_gaussians(tmp_path / "labelled.ply", source.with_int_property("gsseg_label", labels))
    assert main(["convert", str(tmp_path / "labelled.ply"), str(tmp_path / "out.compressed.ply")]) == 0
    back = read_gaussians(tmp_path / "out.compressed.ply")
    from blender_gsseg.core.files.compressed import morton_order

    np.testing.assert_array_equal(back.vertex["gsseg_label"], labels[morton_order(source.means)])


@pytest.mark.parametrize("source, reference", [("source_sh3.ply", "st_sh3.spz"),
                                               ("source_sh1_300.ply", "st_sh1_300.spz")])
def test_spz_against_splat_transforms(tmp_path, source, reference):
    """SPZ version 4 with 5/4-bit SH, as splat-transform writes it, at most 1.10x its size. splat-transform 3.7.0
    stores PLY axes as they are (its comment: 'no coordinate conversion'), where the SPZ library and earlier
    splat-transform (2.7.1, tests/data/formats) store RUB: we keep the library's RUB. So the colour, alpha and
    scale streams are byte-identical, positions are its with y and z negated, and the decoded scene is the source
    within the format's steps."""
    from blender_gsseg.core.files.compressed import _read_spz_v4

    assert main(["convert", os.path.join(DATA, source), str(tmp_path / "ours.spz")]) == 0
    ours_raw, theirs_raw = (tmp_path / "ours.spz").read_bytes(), open(os.path.join(DATA, reference), "rb").read()
    assert len(ours_raw) <= 1.10 * len(theirs_raw)
    ours, theirs = (_read_spz_v4(name, raw)[4] for name, raw in (("ours", ours_raw), ("theirs", theirs_raw)))
    for stream in ("alphas", "colors", "scales"):
        assert ours[stream] == theirs[stream], stream

    def fixed(buffer):
        b = np.frombuffer(buffer, np.uint8).reshape(-1, 3, 3).astype(np.int64)
        value = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)
        return np.where(value & 0x800000, value - (1 << 24), value)

    np.testing.assert_allclose(fixed(ours["positions"]), fixed(theirs["positions"]) * [1, -1, -1], atol=1)
    scene, decoded = read_gaussians(os.path.join(DATA, source)), read_gaussians(tmp_path / "ours.spz")
    np.testing.assert_allclose(decoded.means, scene.means, atol=0.5 / 4096 + 1e-6)
    assert quat_angle(decoded.rotations.astype(np.float64), scene.rotations.astype(np.float64)).max() < 0.01
    step = np.full(scene.sh_rest.shape[1], 16 / 128)
    step[:3] = 8 / 128
    assert (np.abs(decoded.sh_rest - scene.sh_rest) <= step[None, :, None] / 2 + 1 / 128 + 1e-6).all()


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


@pytest.mark.parametrize("name", ["st_sh3", "st_sh1_300"])
def test_reads_sog_as_splat_transform_decodes_it(name):
    """SOG version 2 (WebP images, codebooks, the SH palette) decoded to splat-transform's own decoding, bit for
    bit (its writer reorders the splats: both decodings are in its order)."""
    ours = read_gaussians(os.path.join(DATA, f"{name}.sog"))
    theirs = read_gaussians(os.path.join(DATA, f"{name}.sog.st.ply"))
    assert sorted(ours.property_names) == sorted(theirs.property_names) and len(ours) == len(theirs)
    for prop in theirs.property_names:
        assert ours.vertex[prop].tobytes() == theirs.vertex[prop].tobytes(), prop


def test_a_damaged_sog_is_one_clear_line(tmp_path, capsys):
    import zipfile

    with zipfile.ZipFile(os.path.join(DATA, "st_sh3.sog")) as source, \
            zipfile.ZipFile(tmp_path / "nosh0.sog", "w") as damaged:
        for item in source.namelist():
            if item != "sh0.webp":
                damaged.writestr(item, source.read(item))
    (tmp_path / "notzip.sog").write_bytes(b"not a zip")
    for name, phrase in (("nosh0.sog", "lacks sh0.webp"), ("notzip.sog", "not a SOG file")):
        assert main(["info", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"gsseg: error: {tmp_path / name}: ") and phrase in err and "\n" not in err, err


def _sog_errors(source_name, decoded):
    """Errors of a decoded SOG (in the writer's Morton order) against the source."""
    from blender_gsseg.core.files.compressed import morton_order
    from blender_gsseg.core.metrics import splat_errors

    source = read_gaussians(os.path.join(DATA, source_name))
    return splat_errors(source.subset(morton_order(source.means)), decoded)


def test_sog_we_write_is_what_splat_transform_decodes(tmp_path):
    """splat-transform 3.7.0 decoded the .sog gsseg wrote from the 300-splat source (ours_sh1_300.sog.st.ply):
    our reader gives the same values bit for bit, and writing the source again gives the same scene (the SH
    palette's k-means within its own error: a BLAS may break a distance tie another way)."""
    theirs = read_gaussians(os.path.join(DATA, "ours_sh1_300.sog.st.ply"))
    committed = read_gaussians(os.path.join(DATA, "ours_sh1_300.sog"))
    for prop in theirs.property_names:
        assert committed.vertex[prop].tobytes() == theirs.vertex[prop].tobytes(), prop
    assert main(["convert", os.path.join(DATA, "source_sh1_300.ply"), str(tmp_path / "again.sog")]) == 0
    again = read_gaussians(tmp_path / "again.sog")
    assert sorted(again.property_names) == sorted(theirs.property_names) and again.sh_degree == 1
    for prop in theirs.property_names:
        if not prop.startswith("f_rest_"):
            assert again.vertex[prop].tobytes() == theirs.vertex[prop].tobytes(), prop
    assert _sog_errors("source_sh1_300.ply", again)["sh_rest"] <= \
        1.01 * _sog_errors("source_sh1_300.ply", theirs)["sh_rest"]


@pytest.mark.parametrize("source, reference", [("source_sh3.ply", "st_sh3.sog.st.ply"),
                                               ("source_sh1_300.ply", "st_sh1_300.sog.st.ply")])
def test_sog_error_is_at_most_splat_transforms(tmp_path, source, reference):
    """Per attribute, our .sog's RMS error against the source is no more than 1.25x that of splat-transform's
    own .sog of it (decoded by splat-transform), and the file no more than 1.10x its size."""
    assert main(["convert", os.path.join(DATA, source), str(tmp_path / "ours.sog")]) == 0
    ours = _sog_errors(source, read_gaussians(tmp_path / "ours.sog"))
    theirs = _sog_errors(source, read_gaussians(os.path.join(DATA, reference)))
    assert set(ours) == set(theirs) == {"position", "f_dc", "opacity", "log_scale", "rotation_deg", "sh_rest"}
    for attribute, error in ours.items():
        assert error <= 1.25 * theirs[attribute] + 1e-9, (attribute, error, theirs[attribute])
    size_theirs = os.path.getsize(os.path.join(DATA, reference.replace(".sog.st.ply", ".sog")))
    assert os.path.getsize(tmp_path / "ours.sog") <= 1.10 * size_theirs


def test_sog_round_trip_is_within_the_formats_steps(tmp_path):
    """PLY -> .sog -> PLY: positions within half a 16-bit step of their log, opacity within half an 8-bit step,
    each log-scale and colour the codebook entry nearest the source's, rotations within the 8-bit components'
    reach; the splats come back in Morton order."""
    from blender_gsseg.core.files.compressed import morton_order, sigmoid64

    source = read_gaussians(os.path.join(DATA, "source_sh1_300.ply"))
    source = source.subset(morton_order(source.means))  # the writer's order, so that the files compare in turn
    write_gaussians(tmp_path / "ordered.ply", source)
    assert main(["convert", str(tmp_path / "ordered.ply"), str(tmp_path / "scene.sog")]) == 0
    back = read_gaussians(tmp_path / "scene.sog")
    logged = lambda p: np.sign(p) * np.log1p(np.abs(p))  # noqa: E731
    steps = (logged(source.means.astype(np.float64)).max(axis=0) - logged(source.means.astype(np.float64)).min(axis=0))
    error = np.abs(logged(back.means.astype(np.float64)) - logged(source.means.astype(np.float64)))
    assert (error <= 0.5 * steps / 65535 + 1e-6).all()
    assert np.abs(sigmoid64(back.vertex["opacity"]) - sigmoid64(source.vertex["opacity"])).max() <= 0.5 / 255 + 1e-6
    assert quat_angle(back.rotations.astype(np.float64), source.rotations.astype(np.float64)).max() < 0.02
    import json
    import zipfile

    with zipfile.ZipFile(tmp_path / "scene.sog") as archive:
        meta = json.loads(archive.read("meta.json"))
    for names, book in ((["scale_0", "scale_1", "scale_2"], "scales"), (["f_dc_0", "f_dc_1", "f_dc_2"], "sh0")):
        entries = np.asarray(meta[book]["codebook"], dtype=np.float32).astype(np.float64)
        for name in names:
            value = source.vertex[name].astype(np.float64)
            nearest = entries[np.argmin(np.abs(value[:, None] - entries[None, :]), axis=1)]
            np.testing.assert_array_equal(back.vertex[name].astype(np.float64), nearest, err_msg=name)


def test_sog_says_what_it_cannot_keep_and_refuses_what_it_cannot_write(tmp_path, capsys):
    source = read_gaussians(SOURCE)
    write_gaussians(tmp_path / "labelled.ply", source.with_int_property("gsseg_label", np.zeros(40, np.int32)))
    assert main(["convert", str(tmp_path / "labelled.ply"), str(tmp_path / "out.sog")]) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"gsseg: warning: {tmp_path / 'out.sog'}: .sog cannot carry labels: gsseg_label is not written"]
    assert len(read_gaussians(tmp_path / "out.sog")) == 40
    no_sh = str(tmp_path / "no_sh.ply")
    write_gaussians(no_sh, source.with_sh_degree(0))
    for scene, out, args, phrase in (
            (SOURCE, "bad.sog", ["--sog-palette", "0"], "palette must hold 1 to 65536 entries"),
            (SOURCE, "bad.sog", ["--sog-palette", "70000"], "palette must hold 1 to 65536 entries"),
            (no_sh, "bad.sog", ["--sog-palette", "0"], "palette must hold 1 to 65536 entries"),
            (SOURCE, "bad.spz", ["--sog-palette", "16"], "--sog-palette is for .sog outputs, not .spz")):
        assert main(["convert", scene, str(tmp_path / out)] + args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"gsseg: error: {tmp_path / out}: ") and phrase in err and "\n" not in err, err
        assert not (tmp_path / out).exists()


def test_sog_palette_size_is_the_option(tmp_path):
    """--sog-palette N: N palette entries in meta.json, every splat's entry below N."""
    import json
    import zipfile

    assert main(["convert", os.path.join(DATA, "source_sh1_300.ply"), str(tmp_path / "small.sog"),
                 "--sog-palette", "16"]) == 0
    with zipfile.ZipFile(tmp_path / "small.sog") as archive:
        meta = json.loads(archive.read("meta.json"))
    assert meta["shN"]["count"] == 16 and meta["shN"]["bands"] == 1 and meta["count"] == 300
    rest = read_gaussians(tmp_path / "small.sog").sh_rest.reshape(300, -1)
    assert len(np.unique(rest, axis=0)) <= 16


@pytest.mark.parametrize("name", ["gs3d_sh2_l0", "gs3d_sh2_l2", "gs3d_sh1_300_l1"])
def test_reads_ksplat_as_splat_transform_decodes_it(name):
    """GaussianSplats3D 0.4.7 wrote these (compression levels 0, 1 and 2; SH bands 1-2): our decoding is
    splat-transform's own, bit for bit."""
    ours = read_gaussians(os.path.join(DATA, f"{name}.ksplat"))
    theirs = read_gaussians(os.path.join(DATA, f"{name}.ksplat.st.ply"))
    assert sorted(ours.property_names) == sorted(theirs.property_names) and len(ours) == len(theirs)
    assert ours.sh_degree == theirs.sh_degree == (1 if "sh1" in name else 2)
    for prop in theirs.property_names:
        assert ours.vertex[prop].tobytes() == theirs.vertex[prop].tobytes(), prop


def test_ksplat_of_floats_is_the_source():
    """Level 0 keeps float32 positions, scales, quaternions and SH: matched by position, each splat of the file
    is the source's (GaussianSplats3D dropped the one splat whose alpha is 0), SH bands 1-2 exactly, the base
    colour within its 8-bit step."""
    source = read_gaussians(SOURCE).with_sh_degree(2)
    ksplat = read_gaussians(os.path.join(DATA, "gs3d_sh2_l0.ksplat"))
    where = {tuple(p): i for i, p in enumerate(source.means.tolist())}
    match = source.subset(np.array([where[tuple(p)] for p in ksplat.means.tolist()]))
    assert len(ksplat) == len(source) - 1 and (sigmoid(source.vertex["opacity"]) < 1 / 255).sum() == 1
    np.testing.assert_array_equal(ksplat.sh_rest, match.sh_rest)
    np.testing.assert_allclose(ksplat.vertex["scale_0"], match.vertex["scale_0"], rtol=0, atol=1e-6)
    assert quat_angle(ksplat.rotations.astype(np.float64), match.rotations.astype(np.float64)).max() < 1e-3
    assert np.abs(ksplat.sh_dc - match.sh_dc).max() <= 1 / 255 / 0.28209479177387814 + 1e-6


def test_a_damaged_ksplat_is_one_clear_line(tmp_path, capsys):
    import struct

    good = open(os.path.join(DATA, "gs3d_sh1_300_l1.ksplat"), "rb").read()

    def patched(offset, fmt, value):
        data = bytearray(good)
        struct.pack_into(fmt, data, offset, value)
        return bytes(data)

    cases = {"small.ksplat": (good[:1000], "too small to be a .ksplat file"),
             "level.ksplat": (patched(20, "<H", 7), "unknown .ksplat compression level 7"),
             "cut.ksplat": (good[:len(good) - 600], "damaged .ksplat file"),
             # counts that would allocate gigabytes if believed: checked against the sections and the file first
             "count.ksplat": (patched(16, "<I", 0xFFFFFFF0), "header says 4294967280 splats, its sections hold 299"),
             "section.ksplat": (patched(4096, "<I", 0xFFFFFFF0), "header says 299 splats, its sections hold")}
    for name, (data, phrase) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert main(["info", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"gsseg: error: {tmp_path / name}: ") and phrase in err and "\n" not in err, err
    # a partial bucket claiming 2^32 - 1 splats: its splats are placed by cumulative sizes, nothing is expanded
    (tmp_path / "bucket.ksplat").write_bytes(patched(4096 + 1024, "<I", 0xFFFFFFFF))
    assert len(read_gaussians(tmp_path / "bucket.ksplat")) == 299


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


def test_morton_order_places_a_nan_position_as_splat_transform_does():
    """Bounds over the other splats, the NaN coordinate in cell 0 (JavaScript's NaN >>> 0): the others keep
    their order, the NaN splat sorts with cell 0 (first here)."""
    from blender_gsseg.core.files.compressed import morton_order

    positions = np.random.default_rng(8).normal(size=(500, 3))
    with_nan = np.vstack(([np.nan, np.nan, np.nan], positions))
    order = morton_order(with_nan)
    assert order[0] == 0
    np.testing.assert_array_equal(order[1:], morton_order(positions) + 1)
