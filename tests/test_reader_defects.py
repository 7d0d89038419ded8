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
