"""Issue 29's defects in the format readers and writers, one regression test each: hostile or damaged files give
one line naming the file (BadInputError) or a MemoryBudgetError, never a traceback, a wrong scene or an output
that cannot be read back."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_formats import random_scene, scene_to_ply_bytes  # noqa: E402

from blender_gsseg.core.errors import BadInputError  # noqa: E402
from blender_gsseg.core.files.splats import read_gaussians, write_splat_file  # noqa: E402


def one_line_bad(path, *fragments):
    """Reading ``path`` is refused in one line that names it."""
    with pytest.raises(BadInputError) as info:
        read_gaussians(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def ply_parts(count=5, degree=1, seed=1):
    data = scene_to_ply_bytes(random_scene(count, degree=degree, seed=seed))
    end = data.index(b"end_header\n") + len(b"end_header\n")
    return data[:end], data[end:]


def with_lines(head, before_end=b"", after_format=b""):
    head = head.replace(b"end_header\n", before_end + b"end_header\n")
    return head.replace(b"format binary_little_endian 1.0\n", b"format binary_little_endian 1.0\n" + after_format)


# ----------------------------------------------------------------------------------------------------------------
# PLY headers


def test_two_ply_elements_of_one_name_are_refused(tmp_path):
    head, body = ply_parts()
    cams = tmp_path / "cams.ply"
    cams.write_bytes(with_lines(head, b"element cam 3\nproperty float a\nelement cam 5\nproperty float a\n")
                     + body + b"\0" * 32)
    one_line_bad(cams, "two PLY elements are named 'cam'")
    vertices = tmp_path / "vertices.ply"
    vertex_lines = head[head.index(b"element vertex"):head.index(b"end_header")]
    vertices.write_bytes(with_lines(head, vertex_lines) + body + body)
    one_line_bad(vertices, "two PLY elements are named 'vertex'")


def test_end_header_ends_the_header_only_as_its_own_line(tmp_path):
    head, body = ply_parts()
    want = read_gaussians(_write(tmp_path / "plain.ply", head + body))
    commented = _write(tmp_path / "comment.ply", with_lines(head, after_format=b"comment see end_header below\n")
                       + body)
    got = read_gaussians(commented)
    assert got.comments == ["see end_header below"]
    assert got.vertex.tobytes() == want.vertex.tobytes()
    flagged = head.replace(b"end_header\n", b"property uchar end_header_flag\nend_header\n")
    rows = np.empty(len(want), dtype=want.vertex.dtype.descr + [("end_header_flag", "u1")])
    for name in want.vertex.dtype.names:
        rows[name] = want.vertex[name]
    rows["end_header_flag"] = 7
    got = read_gaussians(_write(tmp_path / "flag.ply", flagged + rows.tobytes()))
    assert (got.vertex["end_header_flag"] == 7).all() and (got.vertex["x"] == want.vertex["x"]).all()


def test_utf8_header_comments_read_and_write_losslessly(tmp_path):
    head, body = ply_parts()
    source = _write(tmp_path / "utf8.ply", with_lines(head, after_format="comment café ünïcode ✓\n".encode()) + body)
    scene = read_gaussians(source)
    assert scene.comments == ["café ünïcode ✓"]
    write_splat_file(tmp_path / "out.ply", scene)
    assert "comment café ünïcode ✓\n".encode() in (tmp_path / "out.ply").read_bytes()
    assert read_gaussians(tmp_path / "out.ply").comments == ["café ünïcode ✓"]
    write_splat_file(tmp_path / "out.compressed.ply", scene)
    assert "café ünïcode ✓" in read_gaussians(tmp_path / "out.compressed.ply").comments


def test_a_header_that_is_not_utf8_is_refused_naming_the_input(tmp_path):
    head, body = ply_parts()
    latin = _write(tmp_path / "latin.ply", with_lines(head, after_format="comment café\n".encode("latin-1")) + body)
    one_line_bad(latin, "line 3 is not UTF-8")


def test_header_comments_with_line_breaks_are_refused_on_read_and_on_write(tmp_path):
    head, body = ply_parts()
    broken = _write(tmp_path / "vt.ply", with_lines(head, after_format=b"comment a\x0belement foo 3\n") + body)
    one_line_bad(broken, "'\\x0b'")
    scene = read_gaussians(_write(tmp_path / "ok.ply", head + body))
    for text in ("two\nlines", "a\rb", "x\u2028y"):
        hostile = scene.with_comments([text])
        for name in ("out.ply", "out.compressed.ply"):
            with pytest.raises(BadInputError, match="cannot hold the character"):
                write_splat_file(tmp_path / name, hostile)
            assert not (tmp_path / name).exists()


def test_property_names_a_header_cannot_hold_are_refused_on_write(tmp_path):
    head, body = ply_parts()
    scene = read_gaussians(_write(tmp_path / "ok.ply", head + body))
    for name in ("two words", "line\nbreak", ""):
        hostile = scene.with_float_property(name, np.zeros(len(scene))) if name else None
        if hostile is None:
            continue
        with pytest.raises(BadInputError, match="cannot be written in a PLY header"):
            write_splat_file(tmp_path / "out.ply", hostile)
        assert not (tmp_path / "out.ply").exists()


def test_a_huge_declared_list_element_is_refused_before_allocating(tmp_path):
    import resource

    head, body = ply_parts()
    hostile = _write(tmp_path / "faces.ply", with_lines(
        head, b"element face 1000000000\nproperty list uchar int vertex_indices\n") + body + b"\x03" + b"\0" * 12)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    one_line_bad(hostile, "element counts need at least 1000000")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB: well under 200 MB


def _write(path, data):
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------------------------------------------
# .glb


def glb_parts(tmp_path):
    """A .glb gsseg wrote (10 splats, SH degree 1): its JSON document and binary chunk."""
    import json
    import struct

    source = _write(tmp_path / "glb_source.ply", scene_to_ply_bytes(random_scene(10, degree=1, seed=3)))
    write_splat_file(tmp_path / "source.glb", read_gaussians(source))
    raw = (tmp_path / "source.glb").read_bytes()
    length = struct.unpack_from("<I", raw, 12)[0]
    return json.loads(raw[20:20 + length]), raw[20 + length + 8:]


def glb_bytes(document, blob):
    import json
    import struct

    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    return (struct.pack("<III", 0x46546C67, 2, 12 + 8 + len(text) + 8 + len(blob))
            + struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(blob), 0x004E4942) + blob)


def _position(document):
    return document["accessors"][document["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]


def _first_sh(document):
    attributes = document["meshes"][0]["primitives"][0]["attributes"]
    return next(name for name in attributes if "SH_DEGREE_1_COEF_0" in name)


def _rename_sh(document):
    attributes = document["meshes"][0]["primitives"][0]["attributes"]
    attributes["KHR_gaussian_splatting:SH_DEGREE_x_COEF_1"] = attributes.pop(_first_sh(document))


GLB_EDITS = {
    "stride -120000": (lambda d: d["bufferViews"][_position(d)["bufferView"]].update(byteStride=-120000), "byteStride"),
    "stride -12": (lambda d: d["bufferViews"][_position(d)["bufferView"]].update(byteStride=-12), "byteStride"),
    "stride -24": (lambda d: d["bufferViews"][_position(d)["bufferView"]].update(byteStride=-24), "byteStride"),
    "JSON a list": (lambda d: [d], "not an object"),
    "JSON a string": (lambda d: "x", "not an object"),
    "meshes a dict": (lambda d: d.update(meshes={"a": 1}), "meshes"),
    "accessor out of range": (lambda d: d["meshes"][0]["primitives"][0]["attributes"].update(POSITION=999),
                              "accessors index 999 out of range"),
    "bufferView out of range": (lambda d: _position(d).update(bufferView=999), "bufferViews index 999"),
    "count -5": (lambda d: _position(d).update(count=-5), "count is -5"),
    "count 0": (lambda d: _position(d).update(count=0), "count is 0"),
    "componentType 9999": (lambda d: _position(d).update(componentType=9999), "componentType 9999"),
    "type MAT9": (lambda d: _position(d).update(type="MAT9"), "type 'MAT9'"),
    "byteOffset -100": (lambda d: _position(d).update(byteOffset=-100), "byteOffset is -100"),
    "SH_DEGREE_x": (_rename_sh, "malformed SH attribute name"),
    "SH count 10 of 9": (lambda d: d["accessors"][d["meshes"][0]["primitives"][0]["attributes"][_first_sh(d)]]
                         .update(count=9), "has 9 rows for 10 splats"),
    "accessors a number": (lambda d: d.update(accessors=5), "no list of accessors"),
    "comment with a newline": (lambda d: d["meshes"][0]["primitives"][0]["extras"]["gsseg"].update(
        comments=["a\nelement foo 3"]), "cannot hold the character '\\n'"),
}


@pytest.mark.parametrize("case", list(GLB_EDITS))
def test_hostile_glb_is_refused_in_one_line(tmp_path, case):
    import copy

    document, blob = glb_parts(tmp_path)
    edit, fragment = GLB_EDITS[case]
    changed = copy.deepcopy(document)
    result = edit(changed)
    changed = changed if result is None else result
    path = _write(tmp_path / "hostile.glb", glb_bytes(changed, blob))
    one_line_bad(path, fragment)


def test_glb_property_names_and_comments_are_checked_when_read(tmp_path):
    """A .glb carrying a property whose name a PLY header cannot hold is refused when read, naming it."""
    source = read_gaussians(_write(tmp_path / "s.ply", scene_to_ply_bytes(random_scene(6, seed=4))))
    hostile = source.with_float_property("two words", np.zeros(len(source)))
    write_splat_file(tmp_path / "named.glb", hostile)  # a .glb can carry any name
    one_line_bad(tmp_path / "named.glb", "'two words' cannot be written in a PLY header")


# ----------------------------------------------------------------------------------------------------------------
# .sog

SOG_SOURCE = os.path.join(os.path.dirname(__file__), "data", "splat_transform_3.7.0", "st_sh1_300.sog")


def sog_with(tmp_path, name, **replaced):
    """The splat-transform SOG fixture with members replaced (bytes, or meta.json as JSON text)."""
    import io
    import zipfile

    with zipfile.ZipFile(SOG_SOURCE) as source:
        members = {member: source.read(member) for member in source.namelist()}
    members.update({key.replace("__", "."): value for key, value in replaced.items()})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return _write(tmp_path / name, buffer.getvalue())


def _sog_meta():
    import json
    import zipfile

    with zipfile.ZipFile(SOG_SOURCE) as source:
        return json.loads(source.read("meta.json"))


def _vp8l_header(width, height):
    """A lossless WebP whose header declares ``width`` x ``height`` (its pixels are not there)."""
    import struct

    payload = b"\x2f" + struct.pack("<I", (width - 1) | ((height - 1) << 14) | (1 << 28)) + b"\0" * 16
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


@pytest.mark.parametrize("case, meta_text, fragment", [
    ("list", lambda m: [m], "meta.json is a list"),
    ("number", lambda m: 5, "meta.json is a int"),
    ("shN a list", lambda m: {**m, "shN": [1]}, "shN is a list"),
    ("count 1e400", lambda m: "1e400", "count is inf"),
    ("count 10^13", lambda m: {**m, "count": 10 ** 13}, "says 10000000000000 splats"),
])
def test_hostile_sog_meta_is_refused_in_one_line(tmp_path, case, meta_text, fragment):
    import json

    meta = _sog_meta()
    edited = meta_text(meta)
    text = json.dumps({**meta, "count": 1}).replace('"count": 1', '"count": 1e400') if edited == "1e400" \
        else json.dumps(edited)
    one_line_bad(sog_with(tmp_path, "hostile.sog", meta__json=text.encode()), fragment)


def test_sog_webp_header_of_16383_squared_is_refused_before_decoding(tmp_path):
    name = _sog_meta()["means"]["files"][0]
    path = sog_with(tmp_path, "bomb.sog", **{name.replace(".", "__"): _vp8l_header(16383, 16383)})
    one_line_bad(path, name)
    import io

    from PIL import Image

    real = io.BytesIO()  # a real image, far larger than 300 splats need
    Image.new("RGBA", (600, 600)).save(real, format="WEBP", lossless=True)
    path = sog_with(tmp_path, "big.sog", **{name.replace(".", "__"): real.getvalue()})
    one_line_bad(path, "declares 600x600 pixels")


def test_sog_bit_flips_are_refused_in_one_line(tmp_path):
    import random

    raw = open(SOG_SOURCE, "rb").read()
    rng = random.Random(29)
    for attempt in range(24):
        data = bytearray(raw)
        for _ in range(3):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        path = _write(tmp_path / f"flip{attempt}.sog", bytes(data))
        try:
            read_gaussians(path)
        except BadInputError as error:
            assert str(error).startswith(str(path)) and "\n" not in str(error)


# ----------------------------------------------------------------------------------------------------------------
# .ksplat


def test_ksplat_extra_empty_section_of_sh_degree_9_is_one_line(tmp_path):
    import struct

    good = open(os.path.join(os.path.dirname(__file__), "data", "splat_transform_3.7.0",
                             "gs3d_sh1_300_l1.ksplat"), "rb").read()
    sections = struct.unpack_from("<I", good, 4)[0]
    extra = bytearray(1024)
    struct.pack_into("<H", extra, 40, 9)  # sh_degree of an empty section (count 0, capacity 0)
    start = 4096 + 1024 * sections
    data = bytearray(good[:start] + bytes(extra) + good[start:])
    struct.pack_into("<I", data, 4, sections + 1)
    one_line_bad(_write(tmp_path / "extra.ksplat", bytes(data)), "section 1 claims SH degree 9")


# ----------------------------------------------------------------------------------------------------------------
# every format's scene


def test_gapped_f_rest_numbering_is_refused_when_read(tmp_path):
    """f_rest_0..7 and f_rest_100: nine coefficients that are not bands 0-8 (writing .spz, .glb, .sog raised
    ValueError); refused when read, naming the file."""
    head, body = ply_parts(degree=1)
    gapped = _write(tmp_path / "gapped.ply", head.replace(b"property float f_rest_8\n", b"property float f_rest_100\n")
                    + body)
    one_line_bad(gapped, "not numbered 0 to 8", "f_rest_100")


# ----------------------------------------------------------------------------------------------------------------
# .spz


def test_spz_declaring_millions_of_splats_is_checked_against_the_budget_before_inflating(tmp_path, monkeypatch):
    """A 74 KB legacy .spz of 4M zero splats is a valid file (zeros compress 1000:1), so it is a budget
    matter (exit 3, the figure and the budget), checked before a byte is inflated; v4 the same."""
    import gzip
    import struct

    from blender_gsseg.core.errors import MemoryBudgetError
    from blender_gsseg.core.files import read_budget

    count = 4_000_000
    body = struct.pack("<IIIBBBB", 0x5053474E, 2, count, 0, 12, 0, 0) + bytes(count * 19)
    legacy = _write(tmp_path / "zeros.spz", gzip.compress(body, 9))
    monkeypatch.setattr(read_budget, "read_memory_budget", lambda: 64 << 20)
    with pytest.raises(MemoryBudgetError, match=r"zeros.spz: an SPZ of 4000000 splats .* needs 0\.\d+ GiB"):
        read_gaussians(legacy)


def test_our_spz_opens_in_splat_transform_370_unmirrored():
    """splat-transform 3.7.0 (and SuperSplat through it) reads .spz as PLY axes: its decoding of the .spz we
    write (ours_sh3.spz.st.ply, tests/data/splat_transform_3.7.0/README.md) gives the source's positions, not
    y and z negated, and our reader gives the same scene back."""
    from blender_gsseg.core.files.spz import _read_spz_v4, spz_streams
    from blender_gsseg.core.files.ply_elements import read_ply_elements

    folder = os.path.join(os.path.dirname(__file__), "data", "splat_transform_3.7.0")
    source = read_gaussians(os.path.join(folder, "source_sh3.ply"))
    ours = os.path.join(folder, "ours_sh3.spz")
    # the fixture is what the writer makes today
    stored = _read_spz_v4(ours, open(ours, "rb").read())[4]
    assert bytes(stored["positions"]) == spz_streams(source)[0]
    _, elements = read_ply_elements(os.path.join(folder, "ours_sh3.spz.st.ply"))
    theirs = np.stack([elements["vertex"][a] for a in "xyz"], axis=1)
    np.testing.assert_allclose(theirs, source.means, atol=0.5 / 4096 + 1e-6)
    np.testing.assert_array_equal(read_gaussians(ours).means, theirs)


def test_ascii_and_list_bodies_keep_utf8_and_end_header_words(tmp_path):
    """The ASCII and list-property bodies go through plyfile, whose own header parser reads ASCII only and ends at
    any line starting 'end_header': it is given our parsed header instead."""
    head, body = ply_parts()
    scene = read_gaussians(_write(tmp_path / "plain.ply", head + body))
    names = scene.vertex.dtype.names
    lines = ["ply", "format ascii 1.0", "comment café, see end_header", f"element vertex {len(scene)}"]
    lines += [f"property float {n}" for n in names] + ["end_header"]
    lines += [" ".join(repr(float(row[n])) for n in names) for row in scene.vertex]
    ascii_scene = read_gaussians(_write(tmp_path / "ascii.ply", ("\n".join(lines) + "\n").encode()))
    assert ascii_scene.comments == ["café, see end_header"]
    np.testing.assert_array_equal(ascii_scene.vertex["x"], scene.vertex["x"])
    listed = with_lines(head, b"element face 1\nproperty list uchar int vertex_indices\n",
                        "comment ünïcode end_header\n".encode()) + body + b"\x01\x05\0\0\0"
    got = read_gaussians(_write(tmp_path / "list.ply", listed))
    assert got.comments == ["ünïcode end_header"] and list(got.elements[0].data[0][0]) == [5]
    write_splat_file(tmp_path / "back.ply", got)
    assert read_gaussians(tmp_path / "back.ply").comments == ["ünïcode end_header"]
