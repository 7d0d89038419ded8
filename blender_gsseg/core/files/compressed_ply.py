"""SuperSplat's compressed PLY (``.compressed.ply``), in and out: a ``chunk`` element with each run of 256 splats'
position, scale and colour ranges, the splats packed into four uint32 (11-10-11-bit position and log-scale, a
2 + 3 x 10-bit quaternion, 8-bit colour and alpha) and an optional ``sh`` element of 8-bit coefficients.

Read as splat-transform 2.7.1 decodes it (``decompress-ply.ts``), in its float64 before storing float32, so the
values match its PLY output to the last bit, into the standard INRIA properties (no normals: splat-transform writes
none either). One deliberate difference: a saturated alpha (0 or 255) decodes to the finite logit splat-transform
gives ``.splat`` (:func:`.quantize.finite_saturated_logits`), where it gives -inf / +inf here.

Written as splat-transform 3.7.0 writes it: the same Morton order, chunk ranges and packing, the same bytes after
the header. ``gsseg_label`` rides along as an int vertex property, which the reader keeps.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import BadInputError
from ..gaussians import SH_C0, Gaussians, standard_dtype
from .ply_elements import (PLY_TYPES, PlyElementData, PlyHeader, check_header_text, read_ply_elements,
                           read_ply_header)
from .quantize import finite_saturated_logits, morton_order, sigmoid64, unorm

CHUNK_SIZE = 256  # splats per chunk
_CHUNK_REQUIRED = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
                   "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z")
_CHUNK_COLOR = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
_PACKED = ("packed_position", "packed_rotation", "packed_scale", "packed_color")


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

    def unpacked(values, shift, bits):  # a bit field as a fraction of its largest value
        mask = (1 << bits) - 1
        return ((values >> np.uint32(shift)) & np.uint32(mask)).astype(np.float64) / mask

    def lerp(low, high, t):  # a * (1 - t) + b * t, in float64 as splat-transform does
        return column(low) * (1.0 - t) + column(high) * t

    pos = packed["packed_position"].astype(np.uint32)
    for axis, (shift, bits) in zip("xyz", ((21, 11), (11, 10), (0, 11)), strict=True):
        out[axis] = lerp(f"min_{axis}", f"max_{axis}", unpacked(pos, shift, bits))

    scl = packed["packed_scale"].astype(np.uint32)
    for index, axis, (shift, bits) in zip(range(3), "xyz", ((21, 11), (11, 10), (0, 11)), strict=True):
        out[f"scale_{index}"] = lerp(f"min_scale_{axis}", f"max_scale_{axis}", unpacked(scl, shift, bits))

    col = packed["packed_color"].astype(np.uint32)
    for index, channel, shift in zip(range(3), "rgb", (24, 16, 8), strict=True):
        value = unpacked(col, shift, 8)
        if has_color:
            value = lerp(f"min_{channel}", f"max_{channel}", value)
        out[f"f_dc_{index}"] = (value - 0.5) / SH_C0
    alpha8 = col & np.uint32(0xFF)
    with np.errstate(divide="ignore"):
        logit = -np.log(1.0 / (alpha8.astype(np.float64) / 255.0) - 1.0)
    out["opacity"] = finite_saturated_logits(alpha8, logit)

    rot = packed["packed_rotation"].astype(np.uint32)
    norm = 1.0 / (np.sqrt(2.0) * 0.5)
    a = (unpacked(rot, 20, 10) - 0.5) * norm
    b = (unpacked(rot, 10, 10) - 0.5) * norm
    c = (unpacked(rot, 0, 10) - 0.5) * norm
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

    if gaussians.sh_degree > 3:
        raise BadInputError(f"{path}: compressed PLY holds SH up to degree 3 (convert with --sh-degree 3)")
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
    for kind, text in gaussians.meta_lines:  # checked before anything lands: a written file always reads back
        check_header_text(gaussians.path or "scene", kind, text)
    with output_file(path, "wb", commit) as handle:
        handle.write(("\n".join(lines) + "\nend_header\n").encode("utf-8"))
        handle.write(chunk_data.tobytes())
        handle.write(vertex.tobytes())
        if rest:
            codes = np.empty((count, len(rest)), dtype=np.uint8)
            for index, name in enumerate(rest):
                codes[:, index] = np.clip(np.trunc((column(name) / 8.0 + 0.5) * 256.0), 0, 255)
            handle.write(codes.tobytes())

