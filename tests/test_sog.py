"""PlayCanvas SOG (.sog): read as splat-transform 3.7.0 decodes it, bit for bit; written with at most its error and
size, within the format's steps, saying what it cannot keep (fixtures in tests/data/splat_transform_3.7.0/)."""

import json
import os

import numpy as np
import pytest

from blender_gsseg.cli import main
from blender_gsseg.core.files.ply import write_gaussians
from blender_gsseg.core.files.quantize import morton_order
from blender_gsseg.core.files.splats import read_gaussians
from test_formats import quat_angle

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "splat_transform_3.7.0")
SOURCE = os.path.join(DATA, "source_sh3.ply")


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
    from blender_gsseg.core.files.quantize import sigmoid64

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


def _unbundle(sog, folder):
    """The files of a bundled .sog, unzipped into ``folder`` (as PlayCanvas publishes scenes); its meta.json."""
    import zipfile

    os.makedirs(folder, exist_ok=True)
    with zipfile.ZipFile(sog) as archive:
        archive.extractall(folder)
    return os.path.join(folder, "meta.json")


@pytest.mark.parametrize("name", ["st_sh3", "st_sh1_300", "ours_sh1_300"])
def test_unbundled_sog_reads_as_the_bundle_bit_for_bit(tmp_path, name):
    """meta.json and the WebP images beside it (or their folder) decode to the bundled .sog's scene, bit for bit."""
    bundled = read_gaussians(os.path.join(DATA, f"{name}.sog"))
    meta = _unbundle(os.path.join(DATA, f"{name}.sog"), tmp_path / name)
    for given in (meta, str(tmp_path / name)):
        unbundled = read_gaussians(given)
        assert unbundled.source_format == "sog (unbundled: meta.json + WebP images)" and unbundled.path == meta
        assert unbundled.vertex.dtype == bundled.vertex.dtype
        assert unbundled.vertex.tobytes() == bundled.vertex.tobytes()


def test_info_convert_segment_on_an_unbundled_sog(tmp_path, capsys):
    """`gsseg info` says what it is (not "not a PLY file"); convert and segment take meta.json or its folder."""
    from blender_harness import labeled_scene

    meta = _unbundle(os.path.join(DATA, "st_sh3.sog"), tmp_path / "playbot")
    for given in (meta, str(tmp_path / "playbot")):
        assert main(["info", given]) == 0
        first = capsys.readouterr().out.splitlines()[0]
        assert first == f"{given}: 40 Gaussians, SH degree 3, sog (unbundled: meta.json + WebP images)"
    assert main(["convert", str(tmp_path / "playbot"), str(tmp_path / "out.ply")]) == 0
    assert read_gaussians(tmp_path / "out.ply").vertex.tobytes() == \
        read_gaussians(os.path.join(DATA, "st_sh3.sog")).vertex.tobytes()
    capsys.readouterr()
    # a scene with cameras and masks, as a .sog and unbundled: segment reads both alike
    paths = labeled_scene(tmp_path / "scene")
    assert main(["convert", paths["scene.ply"], str(tmp_path / "scene.sog")]) == 0
    folder = tmp_path / "unbundled"
    _unbundle(tmp_path / "scene.sog", folder)
    labels = {}
    for key, given in (("bundled", tmp_path / "scene.sog"), ("folder", folder), ("meta", folder / "meta.json")):
        out = tmp_path / f"{key}.ply"
        assert main(["segment", str(given), "--cameras", paths["cameras.json"], "--masks", paths["masks"],
                     "-o", str(out), "--backend", "cpu"]) == 0
        labels[key] = read_gaussians(out).vertex["gsseg_label"]
    assert (labels["bundled"] > 0).sum() > 100
    assert (labels["folder"] == labels["bundled"]).all() and (labels["meta"] == labels["bundled"]).all()


def test_unbundled_sog_errors_are_one_clear_line(tmp_path, capsys):
    from blender_gsseg.core.files.formats import READ_FORMATS, named_format

    meta = _unbundle(os.path.join(DATA, "st_sh3.sog"), tmp_path / "scene")
    os.remove(tmp_path / "scene" / "sh0.webp")
    assert main(["info", meta]) != 0
    assert capsys.readouterr().err.strip() == f"gsseg: error: {meta}: the SOG folder lacks sh0.webp"
    other = tmp_path / "other"
    other.mkdir()
    (other / "meta.json").write_text(json.dumps({"version": 2, "count": 1, "means": {"files": ["../x.webp"]},
                                                 **{key: {"files": [f"{key}.webp"]} for key in ("quats", "scales", "sh0")}}))
    assert main(["info", str(other / "meta.json")]) != 0
    assert "is not a file name beside meta.json" in capsys.readouterr().err
    (other / "meta.json").write_text("[1, 2]")
    assert main(["info", str(other)]) != 0
    assert "the SOG meta.json is a list, not an object" in capsys.readouterr().err
    (other / "meta.json").write_text(json.dumps({"version": 2, "count": 1}))
    assert main(["info", str(other)]) != 0
    assert "not a SOG meta.json (it names no means images)" in capsys.readouterr().err
    # meta.json is a whole name: cameras_meta.json is not an unbundled SOG
    assert named_format("x/meta.json", READ_FORMATS).read.__name__ == "read_sog_folder"
    assert named_format("x/META.JSON", READ_FORMATS) is not None
    assert named_format("x/cameras_meta.json", READ_FORMATS) is None
