"""Readers for the compressed splat formats: SuperSplat compressed PLY, antimatter15 ``.splat`` and Niantic ``.spz``.

Each reader decodes to a :class:`~blender_gsseg.core.gaussians.Gaussians` holding the standard INRIA float32
properties in the standard order ``x y z f_dc_0..2 f_rest_* opacity scale_0..2 rot_0..3`` (no normals: PlayCanvas'
splat-transform, whose decoding we follow, writes none either). Writing is always standard PLY.

The formulas are those of ``@playcanvas/splat-transform`` 2.7.1 (``decompress-ply.ts``, ``read-splat.ts``) and of the
Niantic/Adobe SPZ library it runs as WebAssembly (``@adobe/spz`` 0.2.2, ``load-spz.cc``), evaluated in the same
precision (splat-transform computes in float64 and stores float32; the SPZ library computes in float32), so the
decoded values match splat-transform's PLY output to the last bit or, where a logarithm is involved, within an ulp.

One deliberate difference: an opacity that is saturated in the file (8-bit alpha 0 or 255) decodes to
``logit(1e-6)`` / ``logit(1 - 1e-6)`` in all three formats, the rule splat-transform applies to ``.splat``; for
compressed PLY and SPZ splat-transform yields -inf / +inf there, which no PLY consumer wants.

Everything is vectorised numpy (no per-splat Python loops) and works with numpy 1.x and 2.x.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib

import numpy as np

from ..errors import BadInputError
from ..gaussians import SH_C0, Gaussians
from .ply import PLY_TYPES, PlyElementData, PlyHeader, read_ply_elements, read_ply_header

CHUNK_SIZE = 256  # splats per chunk in the compressed PLY format
SPZ_MAGIC = 0x5053474E  # "NGSP" read as a little-endian uint32
SPZ_SH_DIM = {0: 0, 1: 3, 2: 8, 3: 15, 4: 24}  # SH coefficients per channel (without DC) for degree 0..4

# Saturated opacities (8-bit alpha 0 or 255): splat-transform's .splat rule, clamp to [1e-6, 1 - 1e-6] then logit,
# computed the same way (float64, then float32).
_EPSILON = 1e-6
_LOGIT_HIGH = np.float32(np.log((1.0 - _EPSILON) / (1.0 - (1.0 - _EPSILON))))
_LOGIT_LOW = np.float32(np.log(_EPSILON / (1.0 - _EPSILON)))

_CHUNK_REQUIRED = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
                   "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z")
_CHUNK_COLOR = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
_PACKED = ("packed_position", "packed_rotation", "packed_scale", "packed_color")


def standard_dtype(rest_count: int = 0) -> np.dtype:
    """The INRIA vertex layout (float32, little-endian) with ``rest_count`` f_rest_* properties."""
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(rest_count)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return np.dtype([(name, "<f4") for name in names])


def _logit_from_unorm8(alpha, values):
    """Opacity logit from an 8-bit alpha: ``values`` for alpha 1..254, the saturated constants at 0 and 255."""
    out = np.asarray(values, dtype=np.float32).copy()
    out[alpha == 255] = _LOGIT_HIGH
    out[alpha == 0] = _LOGIT_LOW
    return out


# --------------------------------------------------------------------------------------------------------------
# SuperSplat compressed PLY


def _type_code(prop):
    return None if prop.is_list else PLY_TYPES[prop.type_name]


def read_compressed_ply(path: str | os.PathLike, header: PlyHeader | None = None) -> Gaussians:
    """Decode a SuperSplat / splat-transform compressed PLY (``chunk`` + packed ``vertex`` + optional ``sh``)."""
    path = os.fspath(path)
    if header is None:
        header = read_ply_header(path)
    chunk_el = header.element("chunk")
    vertex_el = header.element("vertex")
    if chunk_el is None or vertex_el is None:
        raise BadInputError(f"{path}: compressed PLY needs both a 'chunk' and a 'vertex' element")
    chunk_types = {p.name: _type_code(p) for p in chunk_el[2]}
    vertex_types = {p.name: _type_code(p) for p in vertex_el[2]}
    missing = [n for n in _CHUNK_REQUIRED if n not in chunk_types]
    if missing:
        raise BadInputError(f"{path}: compressed PLY chunk element lacks properties: {' '.join(missing)}")
    has_color = any(n in chunk_types for n in _CHUNK_COLOR)
    if has_color and not all(n in chunk_types for n in _CHUNK_COLOR):
        raise BadInputError(f"{path}: compressed PLY chunk element has only some of min/max_r/g/b")
    wrong = [n for n in _CHUNK_REQUIRED + (_CHUNK_COLOR if has_color else ()) if chunk_types[n] != "f4"]
    if wrong:
        raise BadInputError(f"{path}: compressed PLY chunk properties must be float: {' '.join(wrong)}")
    missing = [n for n in _PACKED if n not in vertex_types]
    if missing:
        raise BadInputError(f"{path}: compressed PLY vertex element lacks properties: {' '.join(missing)}")
    wrong = [n for n in _PACKED if vertex_types[n] != "u4"]
    if wrong:
        raise BadInputError(f"{path}: compressed PLY packed properties must be uint32: {' '.join(wrong)}")
    count = vertex_el[1]
    expected_chunks = -(-count // CHUNK_SIZE)
    if chunk_el[1] != expected_chunks:
        raise BadInputError(
            f"{path}: compressed PLY has {chunk_el[1]} chunks for {count} splats; expected ceil({count}/256) = "
            f"{expected_chunks}")
    sh_el = header.element("sh")
    rest_count = 0
    if sh_el is not None:
        rest_count = len(sh_el[2])
        if rest_count not in (9, 24, 45):
            raise BadInputError(f"{path}: compressed PLY 'sh' element has {rest_count} properties; "
                                "expected 9, 24 or 45")
        names = [p.name for p in sh_el[2]]
        if names != [f"f_rest_{i}" for i in range(rest_count)] or any(_type_code(p) != "u1" for p in sh_el[2]):
            raise BadInputError(f"{path}: compressed PLY 'sh' element must hold uchar "
                                f"f_rest_0..f_rest_{rest_count - 1}")
        if sh_el[1] != count:
            raise BadInputError(f"{path}: compressed PLY 'sh' element has {sh_el[1]} rows for {count} splats")

    header, data = read_ply_elements(path, header)
    chunks, packed = data["chunk"], data["vertex"]

    out = np.empty(count, dtype=standard_dtype(rest_count))
    chunk_index = np.arange(count) // CHUNK_SIZE

    def column(name):
        return chunks[name].astype(np.float64)[chunk_index]

    def unorm(values, shift, bits):
        mask = (1 << bits) - 1
        return ((values >> np.uint32(shift)) & np.uint32(mask)).astype(np.float64) / mask

    def lerp(low, high, t):  # a * (1 - t) + b * t, in float64 as splat-transform does
        return column(low) * (1.0 - t) + column(high) * t

    pos = packed["packed_position"].astype(np.uint32)
    for axis, (shift, bits) in zip("xyz", ((21, 11), (11, 10), (0, 11)), strict=True):
        out[axis] = lerp(f"min_{axis}", f"max_{axis}", unorm(pos, shift, bits))

    scl = packed["packed_scale"].astype(np.uint32)
    for index, axis, (shift, bits) in zip(range(3), "xyz", ((21, 11), (11, 10), (0, 11)), strict=True):
        out[f"scale_{index}"] = lerp(f"min_scale_{axis}", f"max_scale_{axis}", unorm(scl, shift, bits))

    col = packed["packed_color"].astype(np.uint32)
    for index, channel, shift in zip(range(3), "rgb", (24, 16, 8), strict=True):
        value = unorm(col, shift, 8)
        if has_color:
            value = lerp(f"min_{channel}", f"max_{channel}", value)
        out[f"f_dc_{index}"] = (value - 0.5) / SH_C0
    alpha8 = col & np.uint32(0xFF)
    with np.errstate(divide="ignore"):
        logit = -np.log(1.0 / (alpha8.astype(np.float64) / 255.0) - 1.0)
    out["opacity"] = _logit_from_unorm8(alpha8, logit)

    rot = packed["packed_rotation"].astype(np.uint32)
    norm = 1.0 / (np.sqrt(2.0) * 0.5)
    a = (unorm(rot, 20, 10) - 0.5) * norm
    b = (unorm(rot, 10, 10) - 0.5) * norm
    c = (unorm(rot, 0, 10) - 0.5) * norm
    m = np.sqrt(np.maximum(0.0, 1.0 - (a * a + b * b + c * c)))
    which = (rot >> np.uint32(30)).astype(np.intp)
    quat = np.empty((count, 4), dtype=np.float64)
    # the largest component (index `which`) is m; the other three are a, b, c in order
    others = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]], dtype=np.intp)[which]
    rows = np.arange(count)
    quat[rows, which] = m
    quat[rows, others[:, 0]] = a
    quat[rows, others[:, 1]] = b
    quat[rows, others[:, 2]] = c
    for index in range(4):
        out[f"rot_{index}"] = quat[:, index]

    if rest_count:
        sh = data["sh"]
        for index in range(rest_count):
            raw = sh[f"f_rest_{index}"]
            n = (raw.astype(np.float64) + 0.5) / 256.0
            n[raw == 0] = 0.0
            n[raw == 255] = 1.0
            out[f"f_rest_{index}"] = (n - 0.5) * 8.0

    # Keep extra vertex properties (none in files SuperSplat writes) and any element other than chunk / sh.
    extra = [n for n in packed.dtype.names if n not in _PACKED and n not in out.dtype.names]
    if extra:
        merged = np.empty(count, dtype=out.dtype.descr + [(n, packed.dtype[n]) for n in extra])
        for name in out.dtype.names:
            merged[name] = out[name]
        for name in extra:
            merged[name] = packed[name]
        out = merged
    elements, vertex_position = [], 0
    for name, _count, props in header.elements:
        if name == "vertex":
            vertex_position = len(elements)
        elif name not in ("chunk", "sh"):
            elements.append(PlyElementData(name, props, data[name]))
    property_types = {p.name: p.type_name for p in vertex_el[2] if p.name in extra}
    return Gaussians(out, property_types=property_types, meta_lines=header.meta_lines, elements=elements,
                     vertex_position=vertex_position, source_format="compressed-ply", path=path)


def sigmoid64(logits: np.ndarray) -> np.ndarray:  # [N] -> float64 [N]
    """Opacity from its logit in float64, as splat-transform computes it before quantising."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def morton_order(positions: np.ndarray) -> np.ndarray:  # [N, 3] -> int64 [N]
    """The splats in Morton (Z-order) order of their positions quantised to 10 bits per axis over the scene's
    bounds, and a run of more than 256 splats in one cell ordered again over its own bounds: neighbours share a
    chunk, so the chunks' ranges are tight (what splat-transform does, cell for cell)."""
    positions = np.asarray(positions, dtype=np.float64)
    order = np.arange(len(positions))
    pending = [(0, len(order))]
    while pending:
        start, end = pending.pop()
        members = order[start:end]
        code = _morton_code(positions[members])
        if code is None:
            continue
        ranked = np.argsort(code, kind="stable")
        order[start:end] = members[ranked]
        code = code[ranked]
        bounds = np.concatenate(([0], np.flatnonzero(code[1:] != code[:-1]) + 1, [len(code)]))
        crowded = np.flatnonzero(np.diff(bounds) > 256)
        pending += [(start + int(bounds[k]), start + int(bounds[k + 1])) for k in crowded]
    return order


def _morton_code(positions):  # [M, 3] float64 -> int64 [M], or None when the points have no finite extent
    """Cells as splat-transform computes them: bounds over the non-NaN values, a NaN coordinate in cell 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN axis
        low, high = np.nanmin(positions, axis=0), np.nanmax(positions, axis=0)
    span = high - low
    if not np.all(np.isfinite(span)) or not np.any(span):
        return None
    scale = np.where(span > 0, 1024.0 / np.where(span > 0, span, 1.0), 0.0)
    cells = np.nan_to_num(np.minimum(1023, (positions - low) * scale), nan=0.0).astype(np.int64)
    code = np.zeros(len(positions), dtype=np.int64)
    for bit in range(10):
        for axis in range(3):
            code |= ((cells[:, axis] >> bit) & 1) << (3 * bit + axis)
    return code


def unorm(value, bits):  # float [0, 1] -> uint32 steps
    """[0, 1] -> the nearest of 2^bits levels."""
    top = (1 << bits) - 1
    return np.clip(np.floor(np.asarray(value, dtype=np.float64) * top + 0.5), 0, top).astype(np.uint32)


def _in_range(values, low, high):
    """Each value's place between its chunk's low and high (0 where the range is empty), float64."""
    span = high - low
    t = np.where(span < 1e-5, 0.0, (values - low) / np.where(span == 0, 1.0, span))
    return np.clip(t, 0.0, 1.0)


def write_compressed_ply(path: str | os.PathLike, gaussians: Gaussians, commit=None) -> None:
    """Write SuperSplat's compressed PLY: the splats in Morton order, in chunks of 256 with their position, scale
    and colour ranges; 11-10-11-bit positions and log-scales, a 2 + 3 x 10-bit quaternion (the largest component
    left out), 8-bit colour and alpha, 8-bit SH. ``gsseg_label`` rides along as an int vertex property, which our
    reader keeps."""
    from .labels import LABEL_PROPERTY
    from .commit import output_file

    order = morton_order(gaussians.means)
    source = gaussians.vertex
    count = len(source)
    chunks = -(-count // CHUNK_SIZE)
    chunk_of = np.arange(count) // CHUNK_SIZE
    starts = np.arange(chunks) * CHUNK_SIZE

    def ranges(values):  # [N, K] -> per chunk float32 low, high [C, K] and per splat float64 low, high
        low = np.minimum.reduceat(values, starts, axis=0).astype(np.float32)
        high = np.maximum.reduceat(values, starts, axis=0).astype(np.float32)
        return low, high, low.astype(np.float64)[chunk_of], high.astype(np.float64)[chunk_of]

    def column(name):  # one property in Morton order, float64 as splat-transform computes
        return source[name][order].astype(np.float64)

    def stack(names):
        return np.stack([column(name) for name in names], axis=1)

    def pack_11_10_11(t):
        return (unorm(t[:, 0], 11) << 21) | (unorm(t[:, 1], 10) << 11) | unorm(t[:, 2], 11)

    position, log_scale = stack(("x", "y", "z")), np.clip(stack(("scale_0", "scale_1", "scale_2")), -20, 20)
    rgb = 0.5 + SH_C0 * stack(("f_dc_0", "f_dc_1", "f_dc_2"))
    p_low, p_high, p_lo, p_hi = ranges(position)
    s_low, s_high, s_lo, s_hi = ranges(log_scale)
    c_low, c_high, c_lo, c_hi = ranges(rgb)
    colour = _in_range(rgb, c_lo, c_hi)
    alpha = sigmoid64(column("opacity"))
    quat = stack(("rot_0", "rot_1", "rot_2", "rot_3"))
    quat /= np.maximum(np.linalg.norm(quat, axis=1, keepdims=True), 1e-30)
    largest = np.argmax(np.abs(quat), axis=1)
    rows = np.arange(count)
    quat *= np.where(quat[rows, largest] < 0, -1.0, 1.0)[:, None]
    rotation = largest.astype(np.uint32)
    for slot in range(4):  # the three others, in order, 10 bits each
        rotation = np.where(largest != slot, (rotation << 10) | unorm(quat[:, slot] * (np.sqrt(2) * 0.5) + 0.5, 10),
                            rotation)
    vertex_fields = [("packed_position", "<u4"), ("packed_rotation", "<u4"), ("packed_scale", "<u4"),
                     ("packed_color", "<u4")]
    labelled = LABEL_PROPERTY in source.dtype.names
    if labelled:
        vertex_fields.append((LABEL_PROPERTY, "<i4"))
    vertex = np.empty(count, dtype=vertex_fields)
    vertex["packed_position"] = pack_11_10_11(_in_range(position, p_lo, p_hi))
    vertex["packed_rotation"] = rotation
    vertex["packed_scale"] = pack_11_10_11(_in_range(log_scale, s_lo, s_hi))
    vertex["packed_color"] = ((unorm(colour[:, 0], 8) << 24) | (unorm(colour[:, 1], 8) << 16)
                              | (unorm(colour[:, 2], 8) << 8) | unorm(alpha, 8))
    if labelled:
        vertex[LABEL_PROPERTY] = source[LABEL_PROPERTY][order]
    chunk_names = [f"{e}_{a}" for e in ("min", "max") for a in "xyz"]
    chunk_names += [f"{e}_scale_{a}" for e in ("min", "max") for a in "xyz"]
    chunk_names += [f"{e}_{c}" for e in ("min", "max") for c in "rgb"]
    chunk_data = np.concatenate([p_low, p_high, s_low, s_high, c_low, c_high], axis=1).astype("<f4")
    rest = [name for name in source.dtype.names if name.startswith("f_rest_")]
    lines = ["ply", "format binary_little_endian 1.0", "comment Generated by gsseg",
             *[f"{kind} {text}" for kind, text in gaussians.meta_lines], f"element chunk {chunks}",
             *[f"property float {name}" for name in chunk_names], f"element vertex {count}",
             *[f"property {'int' if kind == '<i4' else 'uint'} {name}" for name, kind in vertex_fields]]
    if rest:
        lines += [f"element sh {count}", *[f"property uchar {name}" for name in rest]]
    with output_file(path, "wb", commit) as handle:
        handle.write(("\n".join(lines) + "\nend_header\n").encode("ascii"))
        handle.write(chunk_data.tobytes())
        handle.write(vertex.tobytes())
        if rest:
            codes = np.empty((count, len(rest)), dtype=np.uint8)
            for index, name in enumerate(rest):
                codes[:, index] = np.clip(np.trunc((column(name) / 8.0 + 0.5) * 256.0), 0, 255)
            handle.write(codes.tobytes())


# --------------------------------------------------------------------------------------------------------------
# antimatter15 .splat

_SPLAT_RECORD = np.dtype([("position", "<f4", (3,)), ("scale", "<f4", (3,)), ("rgba", "u1", (4,)),
                          ("rot", "u1", (4,))])


def logit_from_alpha8(alpha: np.ndarray) -> np.ndarray:  # uint8 [N] -> float64 [N]
    """The opacity logit of an 8-bit alpha after the sigmoid, as splat-transform decodes .splat, .ksplat and .sog
    (alpha clamped to [1e-6, 1 - 1e-6])."""
    value = np.clip(np.asarray(alpha, dtype=np.float64) / 255.0, _EPSILON, 1.0 - _EPSILON)
    return np.log(value / (1.0 - value))


def decode_rgba8(out: np.ndarray, rgba: np.ndarray) -> None:  # out: structured [N]; rgba: uint8 [N, 4]
    """``f_dc_*`` and ``opacity`` of ``out`` from 8-bit base colour and alpha, as splat-transform decodes .splat and
    .ksplat."""
    for index in range(3):
        out[f"f_dc_{index}"] = (rgba[:, index].astype(np.float64) / 255.0 - 0.5) / SH_C0
    out["opacity"] = logit_from_alpha8(rgba[:, 3])


def read_dot_splat(path: str | os.PathLike) -> Gaussians:
    """Decode an antimatter15 ``.splat`` file (32 bytes per splat, no header, no SH)."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    if size == 0:
        raise BadInputError(f"{path}: empty .splat file (no splats)")
    if size % _SPLAT_RECORD.itemsize:
        raise BadInputError(f"{path}: .splat file size {size} bytes is not a multiple of 32 "
                            "(the format stores 32 bytes per splat); the file is truncated or not a .splat")
    records = np.fromfile(path, dtype=_SPLAT_RECORD)
    count = len(records)
    scale = records["scale"].astype(np.float64)
    bad = int(np.count_nonzero(~(np.isfinite(scale) & (scale > 0)).all(axis=1)))
    if bad:
        raise BadInputError(f"{path}: {bad} of {count} splats have a zero, negative or non-finite scale")

    out = np.empty(count, dtype=standard_dtype(0))
    for index, axis in enumerate("xyz"):
        out[axis] = records["position"][:, index]
        out[f"scale_{index}"] = np.log(scale[:, index])
    decode_rgba8(out, records["rgba"])
    q = records["rot"].astype(np.float64) / 255.0 * 2.0 - 1.0
    length = np.sqrt(q[:, 0] * q[:, 0] + q[:, 1] * q[:, 1] + q[:, 2] * q[:, 2] + q[:, 3] * q[:, 3])
    # (v / 255) * 2 - 1 is never 0 for an integer v, so length > 0; keep splat-transform's identity fallback anyway
    zero = length == 0
    length[zero] = 1.0
    q = q / length[:, None]
    q[zero] = (1.0, 0.0, 0.0, 0.0)
    for index in range(4):
        out[f"rot_{index}"] = q[:, index]
    return Gaussians(out, source_format="splat", path=path)


def write_dot_splat(path: str | os.PathLike, gaussians: Gaussians, commit=None) -> None:
    """Write an antimatter15 ``.splat``: float32 position and linear scale, 8-bit RGBA (base colour and
    sigmoid(opacity)) and 8-bit quaternion (normalised, w first), as splat-transform reads it."""
    from .commit import output_file

    v = gaussians.vertex
    records = np.zeros(len(gaussians), dtype=_SPLAT_RECORD)
    records["position"] = np.stack([v[a] for a in "xyz"], axis=1)
    records["scale"] = np.exp(np.stack([v[f"scale_{k}"] for k in range(3)], axis=1).astype(np.float64))
    alpha = sigmoid64(v["opacity"])
    rgba = np.concatenate([gaussians.base_colors.astype(np.float64), alpha[:, None]], axis=1)
    records["rgba"] = np.clip(np.round(rgba * 255.0), 0, 255)
    q = gaussians.rotations.astype(np.float64)  # normalised, w first
    records["rot"] = np.clip(np.round(q * 128.0 + 128.0), 0, 255)
    with output_file(path, "wb", commit) as handle:
        handle.write(records.tobytes())


# --------------------------------------------------------------------------------------------------------------
# Niantic .spz

# CoordinateSystem enum of the SPZ library (SPZ_ADOBE_coordinate_system extension payload), standard family only:
# value -> per-axis sign relative to RDF (x right, y down, z forward), the space PLY files and splat-transform use.
_SPZ_COORDINATES = {
    1: ("LDB", (-1, 1, -1)), 2: ("RDB", (1, 1, -1)), 3: ("LUB", (-1, -1, -1)), 4: ("RUB", (1, -1, -1)),
    5: ("LDF", (-1, 1, 1)), 6: ("RDF", (1, 1, 1)), 7: ("LUF", (-1, -1, 1)), 8: ("RUF", (1, -1, 1)),
}
_SPZ_ROTATED = range(9, 17)  # the rotated family (LBD ... RFU; the library's header and its .d.ts disagree on names)
_SPZ_EXT_COORDINATE_SYSTEM = 0xADBE0003


# The SPZ library's sign table for its 24 SH coefficients under a flip of the axes; each entry names the axes whose
# flip changes that coefficient's sign. It is the parity of the real SH basis (3DGS order, m = -l..l) except the last
# one, band 4 m = 4 (even in x and y, so it should never flip), where the library uses y. Following it is what makes
# band-4 data written by the library come back as it went in.
_SPZ_SH_FLIP_AXES = ("y", "z", "x",
                     "xy", "yz", "", "xz", "",
                     "y", "xyz", "y", "z", "x", "z", "x",
                     "xy", "yz", "xy", "yz", "", "xz", "", "xz", "y")


def sh_flip_signs(degree, signs):
    """Per-coefficient SH signs (bands 1..degree) for a flip of the axes by ``signs`` (x, y, z each +1 or -1)."""
    flips = dict(zip("xyz", signs, strict=True))
    table = [int(np.prod([flips[a] for a in axes])) for axes in _SPZ_SH_FLIP_AXES]
    return np.array(table[:SPZ_SH_DIM[degree]], dtype=np.float32)


def _spz_stream_sizes(version, count, sh_dim):
    """Byte sizes of the attribute streams in file order: positions, alphas, colors, scales, rotations, sh."""
    return [
        ("positions", count * (6 if version == 1 else 9)),
        ("alphas", count),
        ("colors", count * 3),
        ("scales", count * 3),
        ("rotations", count * (4 if version >= 3 else 3)),
        ("sh", count * sh_dim * 3),
    ]


def _spz_extensions(blob):
    """Parse ``[u32 type][u32 length][payload]`` records; return {type: payload}. Stops quietly at junk."""
    records, offset = {}, 0
    while offset + 8 <= len(blob):
        kind, length = struct.unpack_from("<II", blob, offset)
        if offset + 8 + length > len(blob):
            break
        records.setdefault(kind, bytes(blob[offset + 8:offset + 8 + length]))
        offset += 8 + length
    return records


def _gunzip_spz(path, raw):
    """Inflate a legacy (version 1-3) gzip SPZ; return the decompressed bytes, checking the stream is whole."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        head = inflater.decompress(raw, 16)
        if len(head) < 16:
            raise BadInputError(f"{path}: truncated SPZ file: the gzip stream ends inside the 16-byte header")
        magic, version, count, degree = struct.unpack_from("<IIIB", head)
        if magic != SPZ_MAGIC:
            raise BadInputError(f"{path}: not an SPZ file (bad magic 0x{magic:08x} inside the gzip stream, "
                                f"expected 0x{SPZ_MAGIC:08x} 'NGSP')")
        if version not in (1, 2, 3):
            raise BadInputError(f"{path}: unsupported SPZ version {version} in a gzip stream (expected 1, 2 or 3)")
        if degree not in SPZ_SH_DIM:
            raise BadInputError(f"{path}: unsupported SPZ SH degree {degree} (expected 0 to 4)")
        needed = sum(size for _, size in _spz_stream_sizes(version, count, SPZ_SH_DIM[degree]))
        # what follows the splat data (extension records, if any) is small; never inflate a bomb past that
        body = inflater.decompress(inflater.unconsumed_tail, needed + (1 << 16))
        while not inflater.eof and inflater.unconsumed_tail:
            inflater.decompress(inflater.unconsumed_tail, 1 << 20)  # skip over an over-long tail, keep checking
    except zlib.error as error:
        raise BadInputError(f"{path}: corrupt SPZ gzip stream ({error})") from None
    if not inflater.eof:
        raise BadInputError(f"{path}: truncated SPZ file: the gzip stream ends early")
    return head + body


def _zstd_decompress(path, chunk, size):
    try:
        import zstandard
    except ImportError:
        zstandard = None
    # never inflate more than the table of contents promises (plus one byte, to notice a longer stream)
    if zstandard is not None:
        try:
            with zstandard.ZstdDecompressor().stream_reader(chunk) as reader:
                out = reader.read(size + 1)
        except zstandard.ZstdError as error:
            raise BadInputError(f"{path}: corrupt SPZ zstd stream ({error})") from None
    else:
        try:
            from compression import zstd  # Python 3.14+
        except ImportError:
            raise BadInputError(f"{path}: SPZ version 4 is Zstandard-compressed; install the 'zstandard' "
                                "package to read it") from None
        try:
            out = zstd.ZstdDecompressor().decompress(chunk, max_length=size + 1)
        except zstd.ZstdError as error:
            raise BadInputError(f"{path}: corrupt SPZ zstd stream ({error})") from None
    if len(out) != size:
        raise BadInputError(f"{path}: SPZ zstd stream decompressed to {len(out)} bytes, expected {size}")
    return out


def _read_spz_v4(path, raw):
    if len(raw) < 32:
        raise BadInputError(f"{path}: truncated SPZ file: {len(raw)} bytes, shorter than the 32-byte header")
    magic, version, count, degree, fractional, flags, num_streams, toc = struct.unpack_from("<IIIBBBBI", raw)
    if version != 4:
        raise BadInputError(f"{path}: unsupported SPZ version {version} with an uncompressed 'NGSP' header "
                            "(expected version 4; versions 1-3 are gzip-compressed)")
    if degree not in SPZ_SH_DIM:
        raise BadInputError(f"{path}: unsupported SPZ SH degree {degree} (expected 0 to 4)")
    streams = [(name, size) for name, size in _spz_stream_sizes(version, count, SPZ_SH_DIM[degree]) if size]
    if count == 0:
        raise BadInputError(f"{path}: SPZ file holds no splats")
    if count > len(raw) * 1024 // 9:  # the SPZ library's own sanity bound (compression ratio <= 1024)
        raise BadInputError(f"{path}: corrupt SPZ header: {count} splats cannot fit in {len(raw)} bytes")
    if num_streams != len(streams):
        raise BadInputError(f"{path}: SPZ header lists {num_streams} streams, expected {len(streams)}")
    if toc < 32 or toc + 16 * num_streams > len(raw):
        raise BadInputError(f"{path}: truncated or corrupt SPZ file: table of contents at byte {toc} does not fit "
                            f"in {len(raw)} bytes")
    offset = toc + 16 * num_streams
    parts = {}
    for index, (name, size) in enumerate(streams):
        compressed, uncompressed = struct.unpack_from("<QQ", raw, toc + 16 * index)
        if uncompressed != size:
            raise BadInputError(f"{path}: SPZ {name} stream holds {uncompressed} bytes, expected {size} "
                                f"for {count} splats")
        if offset + compressed > len(raw):
            raise BadInputError(f"{path}: truncated SPZ file: the {name} stream runs past the end of the file")
        parts[name] = (offset, compressed, size)
        offset += compressed
    if offset != len(raw):
        raise BadInputError(f"{path}: corrupt SPZ file: {len(raw) - offset} bytes after the last stream")
    extensions = _spz_extensions(raw[32:toc]) if flags & 0x2 else {}
    buffers = {name: _zstd_decompress(path, raw[start:start + compressed], size)
               for name, (start, compressed, size) in parts.items()}
    buffers.setdefault("sh", b"")
    return version, count, degree, fractional, buffers, extensions


def _read_spz_legacy(path, raw):
    data = _gunzip_spz(path, raw)
    _magic, version, count, degree, fractional, flags, _reserved = struct.unpack_from("<IIIBBBB", data)
    if count == 0:
        raise BadInputError(f"{path}: SPZ file holds no splats")
    sizes = _spz_stream_sizes(version, count, SPZ_SH_DIM[degree])
    needed = 16 + sum(size for _, size in sizes)
    if len(data) < needed:
        raise BadInputError(f"{path}: truncated SPZ data: {len(data)} bytes after decompression, the header "
                            f"promises {count} splats ({needed} bytes)")
    buffers, offset = {}, 16
    for name, size in sizes:
        buffers[name] = data[offset:offset + size]
        offset += size
    # extension records (Adobe) follow the splat data in legacy files
    extensions = _spz_extensions(data[offset:]) if flags & 0x2 else {}
    return version, count, degree, fractional, buffers, extensions


SPZ_WRITE_LEVEL = 12  # zstd level of the streams we write
SPZ_SH1_BITS, SPZ_SH_REST_BITS = 5, 4  # what the SPZ library keeps of the SH bands (splat-transform's default)


def spz_streams(gaussians: Gaussians, fractional_bits: int = 12) -> list[bytes]:
    """The six SPZ attribute streams of a scene (positions, alphas, colours, scales, rotations, SH), packed as the
    SPZ library packs them, in its stored coordinate system RUB (PLY is RDF: y and z flip)."""
    v = gaussians.vertex
    count = len(gaussians)
    signs = np.array(_SPZ_COORDINATES[4][1], dtype=np.float64)
    to_u8 = lambda values: np.clip(np.round(values), 0, 255).astype(np.uint8)  # noqa: E731
    column = lambda name: v[name].astype(np.float64)  # noqa: E731
    xyz = np.stack([column(a) for a in "xyz"], axis=1) * signs
    fixed = np.round(xyz * (1 << fractional_bits)).astype(np.int64) & 0xFFFFFF
    positions = np.stack([fixed & 0xFF, (fixed >> 8) & 0xFF, (fixed >> 16) & 0xFF], axis=-1).astype(np.uint8)
    alphas = to_u8(255.0 / (1.0 + np.exp(-column("opacity"))))
    colours = to_u8(np.stack([column(f"f_dc_{c}") for c in range(3)], axis=1) * (0.15 * 255) + 0.5 * 255)
    scales = to_u8((np.stack([column(f"scale_{k}") for k in range(3)], axis=1) + 10.0) * 16.0)
    quat = np.stack([column(f"rot_{k}") for k in (1, 2, 3, 0)], axis=1)  # x y z w
    quat /= np.maximum(np.linalg.norm(quat, axis=1, keepdims=True), 1e-30)
    quat[:, :3] *= signs * np.prod(signs)  # a quaternion's xyz is an axial vector
    largest = np.argmax(np.abs(quat), axis=1)
    negate = quat[np.arange(count), largest] < 0
    packed = largest.astype(np.uint64)
    for i in range(4):  # the other three, smallest-three, each a sign bit and 9 bits of magnitude
        magnitude = np.floor(511 * (np.abs(quat[:, i]) / np.sqrt(0.5)) + 0.5).astype(np.uint64)
        sign = ((quat[:, i] < 0) ^ negate).astype(np.uint64)
        packed = np.where(largest != i, (packed << 10) | (sign << 9) | magnitude, packed)
    rotations = packed.astype("<u4").view(np.uint8).reshape(count, 4)
    degree = gaussians.sh_degree
    sh = b""
    if degree:
        rest = gaussians.sh_rest.astype(np.float64) * sh_flip_signs(degree, tuple(int(x) for x in signs))[None, :, None]
        codes = np.clip(np.round(rest * 128.0 + 128.0), 0, 255).astype(np.int64)  # [N, coeff, channel]
        bucket = np.full(rest.shape[1], 1 << (8 - SPZ_SH_REST_BITS))
        bucket[:3] = 1 << (8 - SPZ_SH1_BITS)
        bucket = bucket[None, :, None]
        sh = np.clip((codes + bucket // 2) // bucket * bucket, 0, 255).astype(np.uint8).tobytes()
    return [positions.tobytes(), alphas.tobytes(), colours.tobytes(), scales.tobytes(), rotations.tobytes(), sh]


def write_spz(path: str | os.PathLike, gaussians: Gaussians, commit=None) -> None:
    """Write a Niantic ``.spz``, version 4 (a 32-byte header, a table of contents, one Zstandard stream per
    attribute), as the SPZ library (through splat-transform) writes it."""
    import zstandard

    from .commit import output_file

    fractional_bits = 12
    streams = [stream for stream in spz_streams(gaussians, fractional_bits) if stream]
    compressor = zstandard.ZstdCompressor(level=SPZ_WRITE_LEVEL)
    compressed = [compressor.compress(stream) for stream in streams]
    header = struct.pack("<IIIBBBBI", SPZ_MAGIC, 4, len(gaussians), gaussians.sh_degree, fractional_bits, 0,
                         len(streams), 32)
    header += b"\0" * (32 - len(header))
    toc = b"".join(struct.pack("<QQ", len(packed), len(stream)) for packed, stream in zip(compressed, streams, strict=True))
    with output_file(path, "wb", commit) as handle:
        handle.write(header + toc + b"".join(compressed))


def read_spz(path: str | os.PathLike) -> Gaussians:
    """Decode a Niantic ``.spz`` file (versions 1-3: gzip; version 4: Zstandard streams) into PLY (RDF) space."""
    path = os.fspath(path)
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] == b"\x1f\x8b":
        version, count, degree, fractional, buffers, extensions = _read_spz_legacy(path, raw)
    elif len(raw) >= 4 and struct.unpack_from("<I", raw)[0] == SPZ_MAGIC:
        version, count, degree, fractional, buffers, extensions = _read_spz_v4(path, raw)
    elif len(raw) < 4:
        raise BadInputError(f"{path}: truncated SPZ file ({len(raw)} bytes)")
    else:
        raise BadInputError(f"{path}: not an SPZ file (neither gzip-compressed nor starting with 'NGSP'; "
                            f"first bytes {raw[:4].hex()})")
    if fractional > 30:
        raise BadInputError(f"{path}: SPZ header has {fractional} fractional bits (at most 30 make sense)")

    # Stored coordinate system: RUB unless the Adobe coordinate-system extension names another one.
    signs = _SPZ_COORDINATES[4][1]
    payload = extensions.get(_SPZ_EXT_COORDINATE_SYSTEM)
    if payload is not None and len(payload) >= 4:
        system = struct.unpack_from("<I", payload)[0]
        if system in _SPZ_ROTATED:
            raise BadInputError(f"{path}: SPZ data stored in a rotated-family coordinate system (extension value "
                                f"{system}, y and z axes swapped) is not supported")
        if system in _SPZ_COORDINATES:
            signs = _SPZ_COORDINATES[system][1]
        elif system != 0:  # 0 = unspecified, which the library reads as RUB
            raise BadInputError(f"{path}: SPZ coordinate-system extension has unknown value {system}")
    flip = np.array(signs, dtype=np.float32)
    flip_q = flip * np.float32(np.prod(signs))  # a quaternion's xyz is an axial vector

    sh_dim = SPZ_SH_DIM[degree]
    f32 = np.float32
    out = np.empty(count, dtype=standard_dtype(3 * sh_dim))

    if version == 1:  # float16 positions (never released, still read by the library)
        positions = np.frombuffer(buffers["positions"], dtype="<f2").astype(np.float32).reshape(count, 3)
    else:
        b = np.frombuffer(buffers["positions"], dtype=np.uint8).reshape(count, 3, 3).astype(np.int32)
        fixed = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)
        fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
        positions = fixed.astype(np.float32) * f32(1.0 / (1 << fractional))
    positions = positions * flip
    for index, axis in enumerate("xyz"):
        out[axis] = positions[:, index]

    scales = np.frombuffer(buffers["scales"], dtype=np.uint8).reshape(count, 3).astype(np.float32)
    scales = scales / f32(16.0) - f32(10.0)
    for index in range(3):
        out[f"scale_{index}"] = scales[:, index]

    alpha8 = np.frombuffer(buffers["alphas"], dtype=np.uint8)
    x = alpha8.astype(np.float32) / f32(255.0)
    with np.errstate(divide="ignore"):
        ratio = x / (f32(1.0) - x)  # float32, as the library does; the log is rounded to float32 once
        logit = np.log(ratio.astype(np.float64))
    out["opacity"] = _logit_from_unorm8(alpha8, logit)

    colors = np.frombuffer(buffers["colors"], dtype=np.uint8).reshape(count, 3).astype(np.float32)
    colors = (colors / f32(255.0) - f32(0.5)) / f32(0.15)
    for index in range(3):
        out[f"f_dc_{index}"] = colors[:, index]

    rotations = np.frombuffer(buffers["rotations"], dtype=np.uint8)
    quat = np.empty((count, 4), dtype=np.float32)  # x y z w
    if version >= 3:
        comp = rotations.reshape(count, 4).astype(np.uint32)
        comp = comp[:, 0] | (comp[:, 1] << np.uint32(8)) | (comp[:, 2] << np.uint32(16)) | (comp[:, 3] << np.uint32(24))
        largest = (comp >> np.uint32(30)).astype(np.intp)
        # the three smaller components, highest index first, sit in bits 0-9, 10-19, 20-29
        slots = np.array([[3, 2, 1], [3, 2, 0], [3, 1, 0], [2, 1, 0]], dtype=np.intp)[largest]
        rows = np.arange(count)
        sum_squares = np.zeros(count, dtype=np.float32)
        for group in range(3):
            bits = comp >> np.uint32(10 * group)
            magnitude = (bits & np.uint32(511)).astype(np.float32)
            value = f32(np.sqrt(0.5)) * magnitude / f32(511.0)
            value = np.where((bits >> np.uint32(9)) & np.uint32(1), -value, value)
            quat[rows, slots[:, group]] = value
            sum_squares = sum_squares + value * value
        # the library takes sqrt(1 - s) unclamped (NaN for a corrupt s > 1); clamp as its version-2 path does
        quat[rows, largest] = np.sqrt(np.maximum(f32(0.0), f32(1.0) - sum_squares))
    else:
        xyz = rotations.reshape(count, 3).astype(np.float32) * f32(1.0 / 127.5) + f32(-1.0)
        quat[:, :3] = xyz
        norm2 = xyz[:, 0] * xyz[:, 0] + xyz[:, 1] * xyz[:, 1] + xyz[:, 2] * xyz[:, 2]
        quat[:, 3] = np.sqrt(np.maximum(f32(0.0), f32(1.0) - norm2))
    quat[:, :3] *= flip_q
    out["rot_0"] = quat[:, 3]
    out["rot_1"] = quat[:, 0]
    out["rot_2"] = quat[:, 1]
    out["rot_3"] = quat[:, 2]

    if sh_dim:
        sh = np.frombuffer(buffers["sh"], dtype=np.uint8).reshape(count, sh_dim, 3).astype(np.float32)
        sh = (sh - f32(128.0)) / f32(128.0)
        sh = sh * sh_flip_signs(degree, signs)[None, :, None]
        for channel in range(3):
            for k in range(sh_dim):
                out[f"f_rest_{channel * sh_dim + k}"] = sh[:, k, channel]
    return Gaussians(out, source_format="spz", path=path)
