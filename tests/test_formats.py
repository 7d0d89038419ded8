"""Compressed splat formats: SuperSplat compressed PLY, antimatter15 .splat, Niantic .spz.

Three kinds of test:
- round trips: a tiny encoder per format (below, written from the format descriptions and from the encoders in
  splat-transform / the SPZ library) packs known values, and the decoder must recover them within the
  quantisation step of each field;
- fixtures: tests/data/formats/ holds small encoded files with the standard PLY that PlayCanvas' splat-transform
  2.7.1 produced from each (see tests/data/formats/README.md); our decode must equal it;
- bad input: every malformed file raises BadInputError with a one-line message naming the file.
- written files: what gsseg writes in each format against what splat-transform 3.7.0 writes from the same source,
  or against its decoding of ours (tests/data/splat_transform_3.7.0/, see the README there).

Regenerate the fixture inputs with ``PYTHONPATH=. python tests/test_formats.py --make-fixtures tests/data/formats``,
then convert each with splat-transform as the README there says.
"""

import gzip
import os
import struct
import sys

import numpy as np
import pytest

from blender_gsseg.cli import main
from blender_gsseg.core.errors import BadInputError
from blender_gsseg.core.files.compressed_ply import read_compressed_ply
from blender_gsseg.core.files.dot_splat import read_dot_splat
from blender_gsseg.core.files.ply import write_gaussians
from blender_gsseg.core.files.ply_elements import read_ply_elements
from blender_gsseg.core.files.splats import read_gaussians
from blender_gsseg.core.files.spz import read_spz
from blender_gsseg.core.gaussians import SH_C0, sh_flip_signs, standard_dtype

try:
    import zstandard
except ImportError:  # pragma: no cover - depends on the environment
    zstandard = None

DATA = os.path.join(os.path.dirname(__file__), "data", "formats")
DATA_370 = os.path.join(os.path.dirname(__file__), "data", "splat_transform_3.7.0")
SOURCE_370 = os.path.join(DATA_370, "source_sh3.ply")
LOGIT_HIGH = np.float32(np.log((1 - 1e-6) / (1 - (1 - 1e-6))))
SH_REST = {0: 0, 1: 3, 2: 8, 3: 15, 4: 24}


def standard_names(rest_count):
    return list(standard_dtype(rest_count).names)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


# ----------------------------------------------------------------------------------------------------------------
# known scenes


def random_scene(count, degree=0, seed=0):
    """Values in PLY space: positions, log-scales, f_dc, opacity logits, unit quaternions (w first), f_rest."""
    rng = np.random.default_rng(seed)
    quats = rng.normal(size=(count, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    rest = SH_REST[degree]
    scene = {
        "xyz": rng.uniform(-3.0, 3.0, size=(count, 3)),
        "log_scale": rng.uniform(-6.0, 0.5, size=(count, 3)),
        "f_dc": rng.uniform(-1.6, 1.6, size=(count, 3)),
        "opacity": rng.uniform(-5.0, 5.0, size=count),
        "quat": quats,
        "f_rest": rng.uniform(-0.9, 0.9, size=(count, 3 * rest)),  # channel-major, as in PLY
    }
    if count >= 4:
        scene["opacity"][:2] = (9.0, -9.0)  # saturate to 8-bit alpha 255 and 0
        scene["quat"][2] = (1.0, 0.0, 0.0, 0.0)
        scene["quat"][3] = (0.0, 0.0, 0.0, -1.0)
    return scene


def quat_angle(a, b):
    """Angle (radians) between the rotations of unit quaternions a and b (sign-insensitive)."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    dot = np.clip(np.abs(np.sum(a * b, axis=1)), 0.0, 1.0)
    return 2.0 * np.arccos(dot)


def column(g, names):
    return np.stack([g.vertex[n].astype(np.float64) for n in names], axis=1)


def decoded(g):
    rest = [n for n in g.vertex.dtype.names if n.startswith("f_rest_")]
    return {
        "xyz": column(g, ["x", "y", "z"]),
        "log_scale": column(g, ["scale_0", "scale_1", "scale_2"]),
        "f_dc": column(g, ["f_dc_0", "f_dc_1", "f_dc_2"]),
        "opacity": g.vertex["opacity"].astype(np.float64),
        "quat": column(g, ["rot_0", "rot_1", "rot_2", "rot_3"]),
        "f_rest": column(g, rest) if rest else np.zeros((len(g), 0)),
    }


# ----------------------------------------------------------------------------------------------------------------
# encoders


def encode_splat(scene):
    """antimatter15 .splat: 3 f32 position, 3 f32 linear scale, RGBA u8, quaternion u8 (q * 128 + 128, w first)."""
    count = len(scene["xyz"])
    record = np.zeros(count, dtype=[("p", "<f4", (3,)), ("s", "<f4", (3,)), ("c", "u1", (4,)), ("q", "u1", (4,))])
    record["p"] = scene["xyz"]
    record["s"] = np.exp(scene["log_scale"])
    rgb = 0.5 + SH_C0 * scene["f_dc"]
    record["c"][:, :3] = np.clip(np.round(rgb * 255), 0, 255)
    record["c"][:, 3] = np.clip(np.round(sigmoid(scene["opacity"]) * 255), 0, 255)
    record["q"] = np.clip(np.round(scene["quat"] * 128 + 128), 0, 255)
    return record.tobytes()


def _pack_unorm(value, bits):
    top = (1 << bits) - 1
    return np.clip(np.floor(value * top + 0.5), 0, top).astype(np.uint32)


def _normalize(x, low, high):
    span = high - low
    out = np.where(span < 1e-5, 0.0, (x - low) / np.where(span == 0, 1.0, span))
    return np.where(x <= low, 0.0, np.where(x >= high, 1.0, out))


def encode_compressed_ply(scene, chunk_colors=True, chunk_count=None):
    """SuperSplat compressed PLY, packed as splat-transform's CompressedChunk does (without the Morton sort)."""
    count = len(scene["xyz"])
    chunks = -(-count // 256) if chunk_count is None else chunk_count
    chunk_of = np.arange(count) // 256
    rgb = scene["f_dc"] * SH_C0 + 0.5

    def minmax(values):
        low = np.array([values[chunk_of == c].min(axis=0) if np.any(chunk_of == c) else values[0] * 0
                        for c in range(chunks)])
        high = np.array([values[chunk_of == c].max(axis=0) if np.any(chunk_of == c) else values[0] * 0
                         for c in range(chunks)])
        return low.astype(np.float32), high.astype(np.float32)

    p_lo, p_hi = minmax(scene["xyz"])
    s_lo, s_hi = minmax(np.clip(scene["log_scale"], -20, 20))
    c_lo, c_hi = minmax(rgb)
    idx = np.minimum(chunk_of, chunks - 1)

    def pack111011(values, low, high):
        n = _normalize(values, low[idx].astype(np.float64), high[idx].astype(np.float64))
        return (_pack_unorm(n[:, 0], 11) << 21) | (_pack_unorm(n[:, 1], 10) << 11) | _pack_unorm(n[:, 2], 11)

    position = pack111011(scene["xyz"], p_lo, p_hi)
    scale = pack111011(scene["log_scale"], s_lo, s_hi)
    colour = _normalize(rgb, c_lo[idx].astype(np.float64), c_hi[idx].astype(np.float64)) if chunk_colors else rgb
    alpha = sigmoid(scene["opacity"])
    color = ((_pack_unorm(colour[:, 0], 8) << 24) | (_pack_unorm(colour[:, 1], 8) << 16)
             | (_pack_unorm(colour[:, 2], 8) << 8) | _pack_unorm(alpha, 8))
    q = scene["quat"] / np.linalg.norm(scene["quat"], axis=1, keepdims=True)
    largest = np.argmax(np.abs(q), axis=1)
    q = q * np.where(q[np.arange(count), largest] < 0, -1.0, 1.0)[:, None]
    rotation = largest.astype(np.uint32)
    for slot in range(4):
        part = _pack_unorm(q[:, slot] * (np.sqrt(2) * 0.5) + 0.5, 10)
        keep = largest != slot
        rotation = np.where(keep, (rotation << 10) | part, rotation)

    chunk_names = ["min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
                   "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z"]
    chunk_values = [p_lo, p_hi, s_lo, s_hi]
    if chunk_colors:
        chunk_names += ["min_r", "min_g", "min_b", "max_r", "max_g", "max_b"]
        chunk_values += [c_lo, c_hi]
    chunk_data = np.concatenate(chunk_values, axis=1).astype("<f4")
    vertex = np.stack([position, rotation, scale, color], axis=1).astype("<u4")
    rest = scene["f_rest"].shape[1]
    lines = ["ply", "format binary_little_endian 1.0", "comment Generated by test_formats.py",
             f"element chunk {chunks}"]
    lines += [f"property float {n}" for n in chunk_names]
    lines += [f"element vertex {count}"]
    lines += [f"property uint {n}" for n in ("packed_position", "packed_rotation", "packed_scale", "packed_color")]
    body = chunk_data.tobytes() + vertex.tobytes()
    if rest:
        lines += [f"element sh {count}"] + [f"property uchar f_rest_{i}" for i in range(rest)]
        sh = np.clip(np.trunc((scene["f_rest"] / 8 + 0.5) * 256), 0, 255).astype(np.uint8)
        body += sh.tobytes()
    return ("\n".join(lines) + "\nend_header\n").encode("ascii") + body


# SPZ stores RUB (x right, y up, z back) unless an extension says otherwise; PLY is RDF: flip y and z.
SPZ_FLIP = np.array([1.0, -1.0, -1.0])


def spz_streams(scene, version, signs=SPZ_FLIP, fractional_bits=12):
    """The six packed attribute byte strings, as the SPZ library's packGaussians makes them (SH at 8 bits)."""
    count = len(scene["xyz"])
    signs = np.asarray(signs, dtype=np.float64)
    fixed = np.round(scene["xyz"] * signs * (1 << fractional_bits)).astype(np.int64) & 0xFFFFFF
    positions = np.stack([fixed & 0xFF, (fixed >> 8) & 0xFF, (fixed >> 16) & 0xFF], axis=-1).astype(np.uint8)
    to_u8 = lambda v: np.clip(np.round(v), 0, 255).astype(np.uint8)  # noqa: E731
    alphas = to_u8(sigmoid(scene["opacity"]) * 255)
    colors = to_u8(scene["f_dc"] * (0.15 * 255) + 0.5 * 255)
    scales = to_u8((scene["log_scale"] + 10) * 16)
    q = scene["quat"] / np.linalg.norm(scene["quat"], axis=1, keepdims=True)
    xyzw = np.concatenate([q[:, 1:], q[:, :1]], axis=1)
    xyzw[:, :3] *= signs * np.prod(signs)
    if version >= 3:
        largest = np.argmax(np.abs(xyzw), axis=1)
        negate = xyzw[np.arange(count), largest] < 0
        comp = largest.astype(np.uint64)
        for i in range(4):
            mag = np.floor(511 * (np.abs(xyzw[:, i]) / np.sqrt(0.5)) + 0.5).astype(np.uint64)
            negbit = ((xyzw[:, i] < 0) ^ negate).astype(np.uint64)
            comp = np.where(largest != i, (comp << 10) | (negbit << 9) | mag, comp)
        rotations = comp.astype("<u4").view(np.uint8).reshape(count, 4)
    else:
        xyzw = xyzw * np.where(xyzw[:, 3] < 0, -127.5, 127.5)[:, None] + 127.5
        rotations = to_u8(xyzw[:, :3])
    rest = scene["f_rest"].shape[1] // 3
    if rest:
        sh = scene["f_rest"].reshape(count, 3, rest).transpose(0, 2, 1)  # [N, coeff, channel]
        degree = {3: 1, 8: 2, 15: 3, 24: 4}[rest]
        sh = sh * sh_flip_signs(degree, tuple(int(s) for s in signs))[None, :, None]
        sh = to_u8(sh * 128 + 128)
    else:
        sh = np.zeros((count, 0), dtype=np.uint8)
    return [positions.tobytes(), alphas.tobytes(), colors.tobytes(), scales.tobytes(), rotations.tobytes(),
            sh.tobytes()]


def encode_spz(scene, version=3, fractional_bits=12, flags=0, magic=0x5053474E, coordinate_system=None,
               extensions=b"", numpoints=None, signs=SPZ_FLIP):
    """A .spz file: versions 1-3 gzip a 16-byte header and the streams; version 4 has zstd streams and a TOC.
    Stored in the library's RUB (``signs``) unless ``coordinate_system`` names the axes in the extension."""
    count = len(scene["xyz"]) if numpoints is None else numpoints
    degree = {0: 0, 9: 1, 24: 2, 45: 3, 72: 4}[scene["f_rest"].shape[1]]
    if coordinate_system is not None:
        name, value = coordinate_system
        signs = (1 if name[0] == "R" else -1, 1 if name[1] == "D" else -1, 1 if name[2] == "F" else -1)
        extensions += struct.pack("<III", 0xADBE0003, 4, value)
        flags |= 0x2
    streams = spz_streams(scene, version, signs, fractional_bits)
    if version < 4:
        header = struct.pack("<IIIBBBB", magic, version, count, degree, fractional_bits, flags, 0)
        return gzip.compress(header + b"".join(streams) + extensions, mtime=0)
    streams = [s for s in streams if s]
    packed = [zstandard.ZstdCompressor(level=3).compress(s) for s in streams]
    toc_offset = 32 + len(extensions)
    header = struct.pack("<IIIBBBBI12x", magic, version, count, degree, fractional_bits, flags, len(packed),
                         toc_offset)
    toc = b"".join(struct.pack("<QQ", len(p), len(s)) for p, s in zip(packed, streams, strict=True))
    return header + extensions + toc + b"".join(packed)


# ----------------------------------------------------------------------------------------------------------------
# round trips


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def check_layout(g, rest_count, source_format):
    assert g.property_names == standard_names(rest_count)
    assert all(g.vertex.dtype[n] == np.dtype("<f4") for n in g.property_names)
    assert all(g.property_types[n] == "float" for n in g.property_names)
    assert g.source_format == source_format
    g.check()


def check_opacity(got, want, step):
    """Sigmoid of the decoded logit within one quantisation step; saturated alphas give +/- LOGIT_HIGH."""
    alpha = sigmoid(want)
    assert np.all(np.abs(sigmoid(got) - alpha) <= step)
    assert np.all(np.isfinite(got)) and np.all(np.abs(got) <= LOGIT_HIGH * (1 + 1e-6))


def test_splat_round_trip(tmp_path):
    scene = random_scene(50, seed=1)
    path = write(tmp_path, "scene.splat", encode_splat(scene))
    g = read_dot_splat(path)
    check_layout(g, 0, "splat")
    got = decoded(g)
    np.testing.assert_array_equal(got["xyz"], scene["xyz"].astype(np.float32))
    np.testing.assert_allclose(got["log_scale"], scene["log_scale"], atol=1e-6)
    rgb = np.clip(0.5 + SH_C0 * scene["f_dc"], 0, 1)
    np.testing.assert_allclose(0.5 + SH_C0 * got["f_dc"], rgb, atol=0.5 / 255 + 1e-7)
    check_opacity(got["opacity"], scene["opacity"], 0.5 / 255 + 1e-6)
    assert got["opacity"][0] == LOGIT_HIGH and got["opacity"][1] == -LOGIT_HIGH
    np.testing.assert_allclose(np.linalg.norm(got["quat"], axis=1), 1.0, atol=1e-6)
    assert quat_angle(got["quat"], scene["quat"]).max() < 0.03
    assert len(read_gaussians(path)) == 50  # dispatch by extension


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("chunk_colors", [True, False])
def test_compressed_ply_round_trip(tmp_path, degree, chunk_colors):
    scene = random_scene(600, degree=degree, seed=degree)  # three chunks, the last one partial
    path = write(tmp_path, "scene.compressed.ply", encode_compressed_ply(scene, chunk_colors=chunk_colors))
    g = read_compressed_ply(path)
    check_layout(g, 3 * SH_REST[degree], "compressed-ply")
    got = decoded(g)
    chunk_of = np.arange(600) // 256
    for key, values in (("xyz", scene["xyz"]), ("log_scale", scene["log_scale"])):
        span = np.array([np.ptp(values[chunk_of == c], axis=0) for c in range(3)])[chunk_of]
        step = span / np.array([2047, 1023, 2047])
        assert np.all(np.abs(got[key] - values) <= 0.5 * step + 1e-6), key
    rgb = 0.5 + SH_C0 * scene["f_dc"]
    if chunk_colors:
        span = np.array([np.ptp(rgb[chunk_of == c], axis=0) for c in range(3)])[chunk_of]
        color_tol = 0.5 * span / 255 + 1e-6
        want_rgb = rgb
    else:
        color_tol = 0.5 / 255 + 1e-6
        want_rgb = np.clip(rgb, 0, 1)
    assert np.all(np.abs(0.5 + SH_C0 * got["f_dc"] - want_rgb) <= color_tol)
    check_opacity(got["opacity"], scene["opacity"], 0.5 / 255 + 1e-6)
    assert got["opacity"][0] == LOGIT_HIGH and got["opacity"][1] == -LOGIT_HIGH
    np.testing.assert_allclose(np.linalg.norm(got["quat"], axis=1), 1.0, atol=2e-3)
    assert quat_angle(got["quat"], scene["quat"]).max() < 4e-3
    if degree:
        assert np.all(np.abs(got["f_rest"] - scene["f_rest"]) <= 8 / 256 + 1e-6)
    assert len(read_gaussians(path)) == 600  # dispatch on the chunk element


@pytest.mark.parametrize("layout", ["big-endian", "ascii"])
def test_compressed_ply_other_encodings(tmp_path, layout):
    import plyfile

    scene = random_scene(300, degree=1, seed=8)
    source = write(tmp_path, "le.compressed.ply", encode_compressed_ply(scene))
    ply = plyfile.PlyData.read(source)
    ply.text = layout == "ascii"
    ply.byte_order = ">" if layout == "big-endian" else "="
    other = str(tmp_path / "other.compressed.ply")
    ply.write(other)
    a, b = read_compressed_ply(source), read_gaussians(other)
    assert b.source_format == "compressed-ply"
    assert np.array_equal(a.vertex, b.vertex)  # plyfile writes ASCII floats exactly (repr), so bit-identical


SPZ_VERSIONS = [1, 2, 3, pytest.param(4, marks=pytest.mark.skipif(zstandard is None, reason="zstandard missing"))]


@pytest.mark.parametrize("version", SPZ_VERSIONS)
@pytest.mark.parametrize("degree", [0, 1, 3, 4])
def test_spz_round_trip(tmp_path, version, degree):
    scene = random_scene(60, degree=degree, seed=10 + degree)
    if version == 1:  # float16 positions
        data = bytearray(gzip.decompress(encode_spz(scene, version=2)))
        half = scene["xyz"] * SPZ_FLIP
        rest = data[16 + 60 * 9:]
        data = bytes(data[:16]) + half.astype("<f2").tobytes() + bytes(rest)
        data = gzip.compress(data[:4] + struct.pack("<I", 1) + data[8:])
        # version 1 keeps the first-three quaternion encoding of version 2
    else:
        data = encode_spz(scene, version=version)
    path = write(tmp_path, "scene.spz", data)
    g = read_spz(path, axes="rub")  # the encoder stores the library's RUB, without the extension
    check_layout(g, 3 * SH_REST[degree], "spz")
    got = decoded(g)
    if version == 1:
        np.testing.assert_allclose(got["xyz"], scene["xyz"], rtol=1e-3, atol=1e-3)
    else:
        assert np.all(np.abs(got["xyz"] - scene["xyz"]) <= 0.5 / 4096 + 1e-6)
    assert np.all(np.abs(got["log_scale"] - scene["log_scale"]) <= 0.5 / 16 + 1e-6)
    assert np.all(np.abs(got["f_dc"] - scene["f_dc"]) <= 0.5 / (0.15 * 255) + 1e-5)
    check_opacity(got["opacity"], scene["opacity"], 0.5 / 255 + 1e-6)
    assert got["opacity"][0] == LOGIT_HIGH and got["opacity"][1] == -LOGIT_HIGH
    if version >= 3:
        assert quat_angle(got["quat"], scene["quat"]).max() < 0.012
    else:  # x y z at 8 bits with w >= 0; w = sqrt(1 - |xyz|^2) is exact only up to that (coarse near w = 0)
        want = scene["quat"] * np.where(scene["quat"][:, :1] < 0, -1.0, 1.0)
        assert np.all(np.abs(got["quat"][:, 1:] - want[:, 1:]) <= 0.5 / 127.5 + 1e-6)
        w = np.sqrt(np.maximum(0.0, 1.0 - np.sum(got["quat"][:, 1:] ** 2, axis=1)))
        np.testing.assert_allclose(got["quat"][:, 0], w, atol=1e-6)
    if degree:
        assert np.all(np.abs(got["f_rest"] - scene["f_rest"]) <= 0.5 / 128 + 1e-6)
    assert len(read_gaussians(path, spz_axes="rub")) == 60
    if version >= 2:  # the default: a file without the extension holds PLY axes (splat-transform 3.7.0's reading)
        plain = decoded(read_spz(write(tmp_path, "rdf.spz", encode_spz(scene, version=version, signs=(1, 1, 1)))))
        assert np.all(np.abs(plain["xyz"] - scene["xyz"]) <= 0.5 / 4096 + 1e-6)
        if degree:
            assert np.all(np.abs(plain["f_rest"] - scene["f_rest"]) <= 0.5 / 128 + 1e-6)


@pytest.mark.skipif(zstandard is None, reason="zstandard missing")
@pytest.mark.parametrize("system", [("RDF", 6), ("LUF", 7), ("RUB", 4), ("LDB", 1)])
def test_spz_coordinate_system_extension(tmp_path, system):
    scene = random_scene(40, degree=3, seed=5)
    plain = read_spz(write(tmp_path, "plain.spz", encode_spz(scene, version=4)), axes="rub")
    tagged = read_spz(write(tmp_path, "tagged.spz", encode_spz(scene, version=4, coordinate_system=system)))
    assert np.array_equal(tagged.vertex, read_spz(tmp_path / "tagged.spz", axes="rub").vertex)  # the extension wins
    a, b = decoded(plain), decoded(tagged)
    for key in ("xyz", "log_scale", "f_dc", "opacity", "f_rest"):
        np.testing.assert_allclose(b[key], a[key], atol=1e-6, err_msg=key)
    assert quat_angle(a["quat"], b["quat"]).max() < 1e-3


@pytest.mark.skipif(zstandard is None, reason="zstandard missing")
def test_spz_rotated_coordinate_system_is_refused(tmp_path):
    data = encode_spz(random_scene(4), version=4, extensions=struct.pack("<III", 0xADBE0003, 4, 9), flags=2)
    path = write(tmp_path, "rotated.spz", data)
    with pytest.raises(BadInputError, match="rotated-family coordinate system .extension value 9"):
        read_spz(path)


def test_spz_legacy_extensions_after_the_data_are_skipped(tmp_path):
    scene = random_scene(20, degree=1, seed=3)
    plain = read_spz(write(tmp_path, "plain.spz", encode_spz(scene)))
    ext = struct.pack("<IIfff", 0xADBE0002, 12, -0.5, 0.5, 1.0)
    tagged = read_spz(write(tmp_path, "tagged.spz", encode_spz(scene, flags=2, extensions=ext)))
    assert np.array_equal(plain.vertex, tagged.vertex)


def test_written_ply_is_standard(tmp_path):
    scene = random_scene(30, degree=2, seed=4)
    g = read_spz(write(tmp_path, "scene.spz", encode_spz(scene)))
    out = tmp_path / "out.ply"
    write_gaussians(out, g)
    back = read_gaussians(out)
    assert back.property_names == standard_names(24)
    assert np.array_equal(back.vertex, g.vertex)
    assert back.sh_degree == 2


# ----------------------------------------------------------------------------------------------------------------
# splat-transform fixtures

def read_spz_rub(path):
    """splat-transform 2.7.1 (through the SPZ library) stored and read .spz as RUB, without the extension: these
    fixtures are old RUB files, read with the option for them (the default is PLY axes since issue 29)."""
    return read_spz(path, axes="rub")


FIXTURES = [
    ("splat_mixed.splat", read_dot_splat),
    ("compressed_sh1.compressed.ply", read_compressed_ply),
    ("compressed_sh3_nocolor.compressed.ply", read_compressed_ply),
    ("spz_v2_sh3.spz", read_spz_rub),
    ("spz_v3_sh2.spz", read_spz_rub),
    ("spz_v3_sh4.spz", read_spz_rub),
    pytest.param("spz_v4_sh1.spz", read_spz_rub,
                 marks=pytest.mark.skipif(zstandard is None, reason="zstandard missing")),
    pytest.param("spz_v4_luf_sh3.spz", read_spz,
                 marks=pytest.mark.skipif(zstandard is None, reason="zstandard missing")),
    ("st_written.compressed.ply", read_compressed_ply),
    pytest.param("st_written.spz", read_spz_rub,
                 marks=pytest.mark.skipif(zstandard is None, reason="zstandard missing")),
]
# Columns computed without a logarithm are bit-identical to splat-transform's; those with one (the opacity
# logit; the log-scale of .splat) are within float32 rounding of the log.
LOG_COLUMNS = {"opacity", "scale_0", "scale_1", "scale_2"}


@pytest.mark.parametrize("name, reader", FIXTURES)
def test_matches_splat_transform(name, reader):
    source = os.path.join(DATA, name)
    expected_path = source + ".st.ply"
    ours = reader(source)
    _, elements = read_ply_elements(expected_path)
    expected = elements["vertex"]
    assert len(ours) == len(expected)
    assert sorted(ours.property_names) == sorted(expected.dtype.names)
    rest = [n for n in expected.dtype.names if n.startswith("f_rest_")]
    assert ours.property_names == standard_names(len(rest))
    for prop in expected.dtype.names:
        want = expected[prop]
        got = ours.vertex[prop]
        assert got.dtype == want.dtype == np.dtype("<f4")
        if prop == "opacity":
            # splat-transform leaves saturated compressed-PLY / SPZ alphas at +/-inf; we clamp like its .splat
            # reader does
            saturated = np.isinf(want)
            np.testing.assert_array_equal(got[saturated], np.sign(want[saturated]) * LOGIT_HIGH)
            got, want = got[~saturated], want[~saturated]
        if prop in LOG_COLUMNS:
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=0, err_msg=f"{name}: {prop}")
        else:
            np.testing.assert_array_equal(got, want, err_msg=f"{name}: {prop}")


def test_fixtures_are_small():
    for entry in os.listdir(DATA):
        assert os.path.getsize(os.path.join(DATA, entry)) < 50_000, entry


# ----------------------------------------------------------------------------------------------------------------
# bad input


def expect_bad(path, reader, *fragments):
    with pytest.raises(BadInputError) as info:
        reader(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_bad_splat(tmp_path):
    good = encode_splat(random_scene(3))
    expect_bad(write(tmp_path, "odd.splat", good[:-5]), read_dot_splat, "not a multiple of 32")
    expect_bad(write(tmp_path, "empty.splat", b""), read_dot_splat, "empty")
    record = bytearray(good)
    record[12:16] = struct.pack("<f", 0.0)  # zero linear scale
    expect_bad(write(tmp_path, "zero.splat", bytes(record)), read_dot_splat, "1 of 3 splats", "scale")
    # read_gaussians reports the same way
    expect_bad(write(tmp_path, "odd2.splat", good[:-1]), read_gaussians, "not a multiple of 32")


def test_bad_spz(tmp_path):
    scene = random_scene(10, degree=1)
    good = encode_spz(scene)
    expect_bad(write(tmp_path, "plain.spz", b"hello world, no gzip here"), read_spz, "not an SPZ file")
    expect_bad(write(tmp_path, "short.spz", b"\x1f"), read_spz, "truncated")
    expect_bad(write(tmp_path, "cut.spz", good[: len(good) // 2]), read_spz, "truncated")
    expect_bad(write(tmp_path, "gzcorrupt.spz", good[:10] + b"\xff" * 40), read_spz, "corrupt")
    expect_bad(write(tmp_path, "magic.spz", encode_spz(scene, magic=0x12345678)), read_spz, "bad magic 0x12345678")
    version7 = gzip.compress(struct.pack("<IIIBBBB", 0x5053474E, 7, 10, 1, 12, 0, 0) + bytes(300))
    expect_bad(write(tmp_path, "version.spz", version7), read_spz, "unsupported SPZ version 7")
    expect_bad(write(tmp_path, "more.spz", encode_spz(scene, numpoints=11)), read_spz, "truncated SPZ data")
    expect_bad(write(tmp_path, "none.spz", encode_spz(random_scene(0))), read_spz, "no splats")
    inner = gzip.decompress(good)
    expect_bad(write(tmp_path, "header.spz", gzip.compress(inner[:9])), read_spz, "16-byte header")
    bad_degree = gzip.compress(inner[:12] + b"\x07" + inner[13:])
    expect_bad(write(tmp_path, "degree.spz", bad_degree), read_spz, "SH degree 7")
    expect_bad(write(tmp_path, "ngsp3.spz", inner), read_spz, "unsupported SPZ version 3")


@pytest.mark.skipif(zstandard is None, reason="zstandard missing")
def test_bad_spz_v4(tmp_path):
    good = encode_spz(random_scene(10, degree=1), version=4)
    expect_bad(write(tmp_path, "cut.spz", good[:-3]), read_spz, "truncated")
    expect_bad(write(tmp_path, "hdr.spz", good[:20]), read_spz, "32-byte header")
    expect_bad(write(tmp_path, "tail.spz", good + b"\0"), read_spz, "after the last stream")
    streams = bytearray(good)
    streams[15] = 5
    expect_bad(write(tmp_path, "streams.spz", bytes(streams)), read_spz, "lists 5 streams, expected 6")
    toc = bytearray(good)
    toc[16:20] = struct.pack("<I", 10_000)
    expect_bad(write(tmp_path, "toc.spz", bytes(toc)), read_spz, "table of contents")
    size = bytearray(good)
    size[32 + 8:32 + 16] = struct.pack("<Q", 31)  # positions: 31 bytes instead of 90
    expect_bad(write(tmp_path, "size.spz", bytes(size)), read_spz, "positions stream holds 31 bytes")
    huge = bytearray(good)
    huge[8:12] = struct.pack("<I", 2_000_000_000)
    expect_bad(write(tmp_path, "huge.spz", bytes(huge)), read_spz, "cannot fit")
    garbage = bytearray(good)
    first = 32 + 16 * 6
    garbage[first:first + 8] = b"\xAA" * 8
    expect_bad(write(tmp_path, "zstd.spz", bytes(garbage)), read_spz, "corrupt SPZ zstd stream")


def test_bad_compressed_ply(tmp_path):
    scene = random_scene(300, degree=1)
    expect_bad(write(tmp_path, "chunks.ply", encode_compressed_ply(scene, chunk_count=1)), read_gaussians,
               "1 chunks for 300 splats", "ceil(300/256) = 2")
    good = encode_compressed_ply(scene)
    expect_bad(write(tmp_path, "cut.ply", good[:-100]), read_gaussians, "truncated")
    missing = good.replace(b"property float max_scale_z\n", b"")
    expect_bad(write(tmp_path, "missing.ply", missing), read_gaussians, "lacks properties: max_scale_z")
    typed = good.replace(b"property uint packed_scale", b"property int packed_scale")
    expect_bad(write(tmp_path, "typed.ply", typed), read_gaussians, "must be uint32: packed_scale")
    header_end = good.index(b"end_header\n")
    head = good[:header_end].replace(b"property uchar f_rest_8\n", b"")
    expect_bad(write(tmp_path, "sh.ply", head + good[header_end:]), read_gaussians, "'sh' element has 8")
    partial = good.replace(b"property float max_b\n", b"")
    expect_bad(write(tmp_path, "colour.ply", partial), read_gaussians, "only some of")


# ----------------------------------------------------------------------------------------------------------------
# written files against splat-transform 3.7.0


def test_our_splat_decodes_in_splat_transform_within_the_format_steps(tmp_path):
    """ours.splat is what convert writes today; splat-transform decoded it to ours.splat.st.ply: positions and
    scales as float32, colour and alpha within half an 8-bit step, rotations within the 8-bit quaternion's."""
    source = read_gaussians(SOURCE_370)
    assert main(["convert", SOURCE_370, str(tmp_path / "ours.splat")]) == 0
    assert (tmp_path / "ours.splat").read_bytes() == open(os.path.join(DATA_370, "ours.splat"), "rb").read()
    decoded = read_gaussians(os.path.join(DATA_370, "ours.splat.st.ply"))
    assert len(decoded) == len(source)
    for axis in "xyz":
        assert decoded.vertex[axis].tobytes() == source.vertex[axis].tobytes()
    for k in range(3):
        np.testing.assert_allclose(decoded.vertex[f"scale_{k}"], source.vertex[f"scale_{k}"], atol=1e-6)
    assert np.abs(decoded.base_colors - source.base_colors).max() <= 0.5 / 255 + 1e-6
    assert np.abs(sigmoid(decoded.vertex["opacity"]) - sigmoid(source.vertex["opacity"])).max() <= 0.5 / 255 + 1e-6
    angles = quat_angle(decoded.rotations.astype(np.float64), source.rotations.astype(np.float64))
    assert angles.max() < 0.03  # radians: 8 bits per component


@pytest.mark.parametrize("source, reference", [("source_sh3.ply", "st_sh3.compressed.ply"),
                                               ("source_sh1_300.ply", "st_sh1_300.compressed.ply"),
                                               ("source_dense_700.ply", "st_dense_700.compressed.ply")])
def test_compressed_ply_is_splat_transforms_to_the_byte(tmp_path, source, reference):
    """The same Morton order, chunk ranges and packing as splat-transform 3.7.0: the same bytes after the header
    (which names the writer). The dense scene has 600 splats in one Morton cell, which splat-transform orders
    again over their own bounds."""
    assert main(["convert", os.path.join(DATA_370, source), str(tmp_path / "ours.compressed.ply")]) == 0
    ours = (tmp_path / "ours.compressed.ply").read_bytes()
    theirs = open(os.path.join(DATA_370, reference), "rb").read()
    body = lambda data: data[data.index(b"end_header\n") + len(b"end_header\n"):]  # noqa: E731
    assert len(body(ours)) == len(body(theirs)) and body(ours) == body(theirs)
    assert ours.replace(b"gsseg", b"splat-transform 3.7.0") == theirs


def test_compressed_ply_keeps_labels(tmp_path):
    source = read_gaussians(os.path.join(DATA_370, "source_sh1_300.ply"))
    labels = np.arange(len(source), dtype=np.int32) % 4 - 1
    write_gaussians(tmp_path / "labelled.ply", source.with_int_property("gsseg_label", labels))
    assert main(["convert", str(tmp_path / "labelled.ply"), str(tmp_path / "out.compressed.ply")]) == 0
    back = read_gaussians(tmp_path / "out.compressed.ply")
    from blender_gsseg.core.files.quantize import morton_order

    np.testing.assert_array_equal(back.vertex["gsseg_label"], labels[morton_order(source.means)])


@pytest.mark.parametrize("source, reference", [("source_sh3.ply", "st_sh3.spz"),
                                               ("source_sh1_300.ply", "st_sh1_300.spz")])
def test_spz_against_splat_transforms(tmp_path, source, reference):
    """SPZ version 4 with 5/4-bit SH, as splat-transform writes it, at most 1.10x its size. splat-transform 3.7.0
    stores PLY axes as they are (its comment: 'no coordinate conversion') and reads .spz so; since issue 29 so do
    we (before, we stored the SPZ README's RUB, and SuperSplat / splat-transform 3.7.0 showed our files upside
    down). So the colour, alpha, scale and position streams are byte-identical (positions within one step), and
    the decoded scene is the source within the format's steps, with no axis flip."""
    from blender_gsseg.core.files.spz import _read_spz_v4

    assert main(["convert", os.path.join(DATA_370, source), str(tmp_path / "ours.spz")]) == 0
    ours_raw, theirs_raw = (tmp_path / "ours.spz").read_bytes(), open(os.path.join(DATA_370, reference), "rb").read()
    assert len(ours_raw) <= 1.10 * len(theirs_raw)
    ours, theirs = (_read_spz_v4(name, raw)[4] for name, raw in (("ours", ours_raw), ("theirs", theirs_raw)))
    for stream in ("alphas", "colors", "scales"):
        assert ours[stream] == theirs[stream], stream

    def fixed(buffer):
        b = np.frombuffer(buffer, np.uint8).reshape(-1, 3, 3).astype(np.int64)
        value = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)
        return np.where(value & 0x800000, value - (1 << 24), value)

    np.testing.assert_allclose(fixed(ours["positions"]), fixed(theirs["positions"]), atol=1)
    scene, decoded = read_gaussians(os.path.join(DATA_370, source)), read_gaussians(tmp_path / "ours.spz")
    np.testing.assert_allclose(decoded.means, scene.means, atol=0.5 / 4096 + 1e-6)
    assert quat_angle(decoded.rotations.astype(np.float64), scene.rotations.astype(np.float64)).max() < 0.01
    step = np.full(scene.sh_rest.shape[1], 16 / 128)
    step[:3] = 8 / 128
    assert (np.abs(decoded.sh_rest - scene.sh_rest) <= step[None, :, None] / 2 + 1 / 128 + 1e-6).all()


# ----------------------------------------------------------------------------------------------------------------
# fixture generation


def scene_to_ply_bytes(scene):
    """A standard PLY of a known scene (the source splat-transform encodes for the st_written_* fixtures)."""
    rest = scene["f_rest"].shape[1]
    vertex = np.empty(len(scene["xyz"]), dtype=standard_dtype(rest))
    for i, axis in enumerate("xyz"):
        vertex[axis] = scene["xyz"][:, i]
        vertex[f"scale_{i}"] = scene["log_scale"][:, i]
        vertex[f"f_dc_{i}"] = scene["f_dc"][:, i]
    vertex["opacity"] = scene["opacity"]
    for i in range(4):
        vertex[f"rot_{i}"] = scene["quat"][:, i]
    for i in range(rest):
        vertex[f"f_rest_{i}"] = scene["f_rest"][:, i]
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {len(vertex)}"]
    lines += [f"property float {n}" for n in vertex.dtype.names] + ["end_header"]
    return ("\n".join(lines) + "\n").encode("ascii") + vertex.tobytes()


def fixture_inputs():
    """The inputs of the splat-transform fixtures (file name -> bytes).

    ``source_*.ply`` are not fixtures: splat-transform encodes them into the ``st_written_*`` files (a genuine
    third-party encode, Morton-ordered, SPZ version 4 with 5/4-bit SH); delete them once converted.
    """
    files = {}
    scene = random_scene(40, seed=100)
    files["splat_mixed.splat"] = encode_splat(scene)
    scene = random_scene(300, degree=1, seed=101)
    files["compressed_sh1.compressed.ply"] = encode_compressed_ply(scene)
    scene = random_scene(40, degree=3, seed=102)
    scene["f_rest"][0] = 5.0  # saturate the 8-bit SH codes at 255 ...
    scene["f_rest"][1] = -5.0  # ... and 0
    files["compressed_sh3_nocolor.compressed.ply"] = encode_compressed_ply(scene, chunk_colors=False)
    files["spz_v2_sh3.spz"] = encode_spz(random_scene(40, degree=3, seed=103), version=2)
    files["spz_v3_sh2.spz"] = encode_spz(random_scene(40, degree=2, seed=104), version=3)
    files["spz_v3_sh4.spz"] = encode_spz(random_scene(30, degree=4, seed=109), version=3)
    if zstandard is not None:
        files["spz_v4_sh1.spz"] = encode_spz(random_scene(40, degree=1, seed=105), version=4)
        files["spz_v4_luf_sh3.spz"] = encode_spz(random_scene(30, degree=3, seed=106), version=4,
                                                 coordinate_system=("LUF", 7))
    files["source_compressed.ply"] = scene_to_ply_bytes(random_scene(300, degree=1, seed=107))
    files["source_spz.ply"] = scene_to_ply_bytes(random_scene(40, degree=3, seed=108))
    return files


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--make-fixtures":
        os.makedirs(sys.argv[2], exist_ok=True)
        for name, data in fixture_inputs().items():
            with open(os.path.join(sys.argv[2], name), "wb") as handle:
                handle.write(data)
            print(name, len(data))
    else:
        print("usage: python tests/test_formats.py --make-fixtures DIR")
