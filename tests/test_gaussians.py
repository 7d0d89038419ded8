"""Splat PLY IO: every INRIA variant read, written back losslessly; derived views; bad files."""

import warnings

import numpy as np
import plyfile
import pytest

from blender_gsseg.core.errors import BadInputError
from blender_gsseg.core.files.ply import write_gaussians
from blender_gsseg.core.files.splats import read_gaussians
from blender_gsseg.core.gaussians import SH_C0

BASE = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
TAIL = ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]


def inria_array(n, degree, rng, extras=()):
    rest = 3 * ((degree + 1) ** 2 - 1)
    names = BASE + [f"f_rest_{i}" for i in range(rest)] + TAIL
    dtype = [(name, "f4") for name in names] + list(extras)
    array = np.zeros(n, dtype=dtype)
    for name in names:
        array[name] = rng.normal(size=n).astype(np.float32)
    for name, kind in extras:
        info = np.iinfo(kind) if np.dtype(kind).kind in "iu" else None
        array[name] = rng.integers(info.min, info.max, n) if info else rng.normal(size=n)
    return array


def write_plyfile(path, vertex, text=False, byte_order="<", comments=(), extra_elements=()):
    elements = [plyfile.PlyElement.describe(vertex, "vertex")] + list(extra_elements)
    plyfile.PlyData(elements, text=text, byte_order=byte_order, comments=list(comments)).write(str(path))


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("text,byte_order", [(False, "<"), (False, ">"), (True, "=")])
def test_read_all_variants_and_round_trip(tmp_path, degree, text, byte_order):
    rng = np.random.default_rng(degree)
    extras = [("semantic_id", "u2"), ("flag", "u1"), ("weight", "f8"), ("count", "i4")]
    vertex = inria_array(50, degree, rng, extras)
    camera = np.zeros(2, dtype=[("view", "i4"), ("fov", "f4")])
    camera["view"] = [3, 4]
    write_plyfile(tmp_path / "in.ply", vertex, text, byte_order, comments=["made by test", "second"],
                  extra_elements=[plyfile.PlyElement.describe(camera, "camera")])
    scene = read_gaussians(tmp_path / "in.ply")
    assert scene.sh_degree == degree
    assert scene.property_names == list(vertex.dtype.names)
    for name in vertex.dtype.names:
        expected = vertex[name] if not text or vertex.dtype[name].kind != "f" else vertex[name]
        np.testing.assert_array_equal(scene.vertex[name], expected)
        assert scene.vertex.dtype[name].str[1:] == vertex.dtype[name].str[1:]
    assert scene.comments == ["made by test", "second"]
    assert [e.name for e in scene.elements] == ["camera"]

    write_gaussians(tmp_path / "out.ply", scene)
    again = read_gaussians(tmp_path / "out.ply")
    assert again.vertex.tobytes() == scene.vertex.tobytes()
    np.testing.assert_array_equal(again.elements[0].data["view"], [3, 4])
    # the written file is standard little-endian; with the same header as plyfile would write for it
    write_plyfile(tmp_path / "plyfile_le.ply", again.vertex, comments=["made by test", "second"],
                  extra_elements=[plyfile.PlyElement.describe(camera, "camera")])
    header = open(tmp_path / "out.ply", "rb").read().split(b"end_header\n")[0]
    assert header == open(tmp_path / "plyfile_le.ply", "rb").read().split(b"end_header\n")[0]
    if not text and byte_order == "<":
        # an unedited binary little-endian file comes back byte for byte
        assert open(tmp_path / "out.ply", "rb").read() == open(tmp_path / "in.ply", "rb").read()


def test_type_names_kept_as_written(tmp_path):
    rng = np.random.default_rng(0)
    vertex = inria_array(10, 0, rng)
    write_plyfile(tmp_path / "a.ply", vertex)
    raw = open(tmp_path / "a.ply", "rb").read()
    raw = raw.replace(b"property float x\n", b"property float32 x\n")
    (tmp_path / "b.ply").write_bytes(raw)
    write_gaussians(tmp_path / "c.ply", read_gaussians(tmp_path / "b.ply"))
    assert open(tmp_path / "c.ply", "rb").read() == raw


def test_derived_views(tmp_path):
    rng = np.random.default_rng(1)
    vertex = inria_array(20, 1, rng)
    write_plyfile(tmp_path / "a.ply", vertex)
    scene = read_gaussians(tmp_path / "a.ply")
    np.testing.assert_allclose(scene.opacities, 1 / (1 + np.exp(-vertex["opacity"])), rtol=1e-6)
    np.testing.assert_allclose(scene.scales[:, 2], np.exp(vertex["scale_2"]), rtol=1e-6)
    q = np.stack([vertex[f"rot_{i}"] for i in range(4)], 1)
    np.testing.assert_allclose(scene.rotations, q / np.linalg.norm(q, axis=1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(scene.base_colors[:, 1], np.clip(0.5 + SH_C0 * vertex["f_dc_1"], 0, 1), rtol=1e-6)
    # f_rest is channel-major: f_rest_{c*K + k}
    assert scene.sh_rest.shape == (20, 3, 3)
    np.testing.assert_array_equal(scene.sh_rest[:, 2, 1], vertex["f_rest_5"])


def test_subset_and_int_properties(tmp_path):
    rng = np.random.default_rng(2)
    vertex = inria_array(30, 0, rng)
    write_plyfile(tmp_path / "a.ply", vertex)
    scene = read_gaussians(tmp_path / "a.ply")
    labelled = scene.with_int_property("gsseg_label", np.arange(30) % 4)
    assert labelled.property_names[-1] == "gsseg_label"
    relabelled = labelled.with_int_property("gsseg_label", np.full(30, -1))
    assert relabelled.property_names == labelled.property_names
    write_gaussians(tmp_path / "b.ply", relabelled.subset(np.arange(30) % 3 == 0))
    back = read_gaussians(tmp_path / "b.ply")
    assert len(back) == 10
    assert back.property_types["gsseg_label"] == "int"
    np.testing.assert_array_equal(back.vertex["gsseg_label"], -1)
    np.testing.assert_array_equal(back.vertex["x"], vertex["x"][::3])


def _bad(path, *phrases):
    with pytest.raises(BadInputError) as info:
        read_gaussians(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    for phrase in phrases:
        assert phrase in message
    return message


def test_bad_files(tmp_path):
    rng = np.random.default_rng(3)
    (tmp_path / "text.ply").write_text("hello world")
    _bad(tmp_path / "text.ply", "not a PLY")
    no_vertex = np.zeros(3, dtype=[("a", "f4")])
    plyfile.PlyData([plyfile.PlyElement.describe(no_vertex, "face")]).write(str(tmp_path / "face.ply"))
    _bad(tmp_path / "face.ply", "no 'vertex'")
    partial = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    write_plyfile(tmp_path / "points.ply", partial)
    _bad(tmp_path / "points.ply", "missing", "opacity", "rot_3")

    vertex = inria_array(40, 0, rng)
    write_plyfile(tmp_path / "good.ply", vertex)
    raw = open(tmp_path / "good.ply", "rb").read()
    (tmp_path / "truncated.ply").write_bytes(raw[:-100])
    _bad(tmp_path / "truncated.ply", "truncated")
    # a header that claims far more than the file holds must not allocate it
    (tmp_path / "huge.ply").write_bytes(raw.replace(b"element vertex 40", b"element vertex 4000000000000"))
    _bad(tmp_path / "huge.ply", "truncated")

    vertex["scale_1"][[2, 5]] = np.nan
    vertex["opacity"][7] = np.nan
    write_plyfile(tmp_path / "nan.ply", vertex)
    _bad(tmp_path / "nan.ply", "2 in scale_1", "1 in opacity")
    vertex["opacity"][7] = 0.5
    vertex["x"][4] = np.inf  # Inf outside the opacity stays an error
    write_plyfile(tmp_path / "inf.ply", vertex)
    _bad(tmp_path / "inf.ply", "1 in x")
    write_plyfile(tmp_path / "nan_ascii.ply", vertex, text=True)
    _bad(tmp_path / "nan_ascii.ply", "2 in scale_1")
    ascii_raw = open(tmp_path / "nan_ascii.ply", "rb").read()
    (tmp_path / "short_ascii.ply").write_bytes(ascii_raw[: len(ascii_raw) // 2])
    _bad(tmp_path / "short_ascii.ply")


def test_infinite_opacity_is_a_valid_logit_and_round_trips(tmp_path):
    """splat-transform writes fully opaque (and fully transparent) splats as opacity +inf (-inf)."""
    rng = np.random.default_rng(8)
    vertex = inria_array(30, 0, rng)
    vertex["opacity"][[3, 9]] = np.inf
    vertex["opacity"][4] = -np.inf
    write_plyfile(tmp_path / "opaque.ply", vertex)
    scene = read_gaussians(tmp_path / "opaque.ply")
    assert scene.opacities[[3, 9]].tolist() == [1.0, 1.0] and scene.opacities[4] == 0.0
    write_gaussians(tmp_path / "back.ply", scene)
    assert read_gaussians(tmp_path / "back.ply").vertex.tobytes() == vertex.tobytes()


def test_duplicate_property_names_and_rows_after_the_data(tmp_path):
    rng = np.random.default_rng(9)
    vertex = inria_array(10, 0, rng)
    write_plyfile(tmp_path / "good.ply", vertex)
    raw = open(tmp_path / "good.ply", "rb").read()
    (tmp_path / "twice.ply").write_bytes(raw.replace(b"property float y\n", b"property float x\n", 1))
    _bad(tmp_path / "twice.ply", "names the property 'x' twice")
    (tmp_path / "short_count.ply").write_bytes(raw.replace(b"element vertex 10", b"element vertex 8"))
    with pytest.warns(UserWarning, match=r"short_count.ply: \d+ bytes after the data"):
        assert len(read_gaussians(tmp_path / "short_count.ply")) == 8


def test_huge_log_scales_warn_once_and_stay_finite(tmp_path):
    rng = np.random.default_rng(10)
    vertex = inria_array(10, 0, rng)
    vertex["scale_0"][[1, 2]] = 200.0
    write_plyfile(tmp_path / "huge.ply", vertex)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scene = read_gaussians(tmp_path / "huge.ply")
        scales = scene.scales
    assert [str(w.message) for w in caught] == [f"{tmp_path / 'huge.ply'}: 2 log-scales (scale_0..2) above 88 "
                                                f"give Gaussians larger than float32 holds; they are clamped to "
                                                f"1.65e+38"]
    assert np.all(np.isfinite(scales))


def test_failed_write_leaves_target_untouched(tmp_path):
    rng = np.random.default_rng(4)
    write_plyfile(tmp_path / "a.ply", inria_array(5, 0, rng))
    scene = read_gaussians(tmp_path / "a.ply")
    (tmp_path / "out.ply").write_bytes(b"precious")
    broken = scene._replace(scene.vertex, property_types={**scene.property_types, "x": "nonsense"})
    with pytest.raises(KeyError):
        write_gaussians(tmp_path / "out.ply", broken)
    assert (tmp_path / "out.ply").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ply", "out.ply"]
