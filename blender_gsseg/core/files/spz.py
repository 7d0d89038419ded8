"""Niantic's ``.spz``, in and out: versions 1-3 (one gzip stream) and 4 (a 32-byte header, a table of contents and
one Zstandard stream per attribute): fixed-point positions, 8-bit alpha, colour and log-scale, a packed quaternion,
8-bit SH up to degree 4.

Axes: written in PLY's axes (RDF) as they are, and read as PLY axes unless the Adobe coordinate-system extension
names others (or the caller says the file is an old RUB one: ``axes="rub"``). The SPZ README says RUB, but
Niantic's own PLY -> SPZ converter writes the coordinate system "unspecified" and keeps PLY's axes, so most
``.spz`` in the wild hold RDF, and splat-transform 3.7.0 / SuperSplat read ``.spz`` as PLY axes
(nianticlabs/spz#84, playcanvas/supersplat#885); gsseg before issue 29, the SPZ library's converter and
splat-transform 2.7.1 stored RUB (y and z negated). We write no coordinate-system extension: its layout in
nianticlabs/spz#82 could not be confirmed here (the one read below is what ``@adobe/spz`` 0.2.2 reads: the
``spz_v4_luf_sh3.spz`` fixture), and splat-transform 3.7.0 ignores it anyway (it decodes a file tagged LUF as
stored, checked by hand), so a file without it reads as PLY axes everywhere that matters.

Read as the Niantic/Adobe SPZ library decodes it (``@adobe/spz`` 0.2.2, ``load-spz.cc``, which splat-transform
2.7.1 runs as WebAssembly), in its float32, so the values match splat-transform's PLY output to the last bit or,
through a logarithm, within an ulp. One deliberate difference: a saturated alpha (0 or 255) decodes to the finite
logit splat-transform gives ``.splat`` (:func:`.quantize.finite_saturated_logits`), not -inf / +inf.

Written as version 4, packed as the library packs it with splat-transform's 5/4-bit SH, byte-identical in every
stream to splat-transform 3.7.0's own .spz of the same scene.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

from ..errors import BadInputError
from ..gaussians import Gaussians, sh_flip_signs, standard_dtype
from .quantize import finite_saturated_logits

SPZ_MAGIC = 0x5053474E  # "NGSP" read as a little-endian uint32
SPZ_SH_DIM = {0: 0, 1: 3, 2: 8, 3: 15, 4: 24}  # SH coefficients per channel (without DC) for degree 0..4

# CoordinateSystem enum of the SPZ library (SPZ_ADOBE_coordinate_system extension payload), standard family only:
# value -> per-axis sign relative to RDF (x right, y down, z forward), the space PLY files and splat-transform use.
_SPZ_COORDINATES = {
    1: ("LDB", (-1, 1, -1)), 2: ("RDB", (1, 1, -1)), 3: ("LUB", (-1, -1, -1)), 4: ("RUB", (1, -1, -1)),
    5: ("LDF", (-1, 1, 1)), 6: ("RDF", (1, 1, 1)), 7: ("LUF", (-1, -1, 1)), 8: ("RUF", (1, -1, 1)),
}
_SPZ_ROTATED = range(9, 17)  # the rotated family (LBD ... RFU; the library's header and its .d.ts disagree on names)
_SPZ_EXT_COORDINATE_SYSTEM = 0xADBE0003


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
        _check_spz_memory(path, count, degree, needed)
        # inflated piece by piece into one buffer of the promised size: zlib's own growing output would take
        # twice the body at its peak
        body, done, view = bytearray(needed), 0, None
        view = memoryview(body)
        while done < needed:
            piece = inflater.decompress(inflater.unconsumed_tail, min(1 << 24, needed - done))
            if not piece:
                break
            view[done:done + len(piece)] = piece
            done += len(piece)
        # what follows the splat data (extension records, if any) is small; never inflate a bomb past that
        tail = inflater.decompress(inflater.unconsumed_tail, 1 << 16) if done == needed else b""
        while not inflater.eof and inflater.unconsumed_tail:
            inflater.decompress(inflater.unconsumed_tail, 1 << 20)  # skip over an over-long tail, keep checking
    except zlib.error as error:
        raise BadInputError(f"{path}: corrupt SPZ gzip stream ({error})") from None
    if not inflater.eof:
        raise BadInputError(f"{path}: truncated SPZ file: the gzip stream ends early")
    return head, view[:done], tail  # apart: joining them would copy the whole inflated body once more


def _check_spz_memory(path, count, degree, stream_bytes):
    """Before inflating: the decoded streams and the scene (float32 rows) must fit the reader's budget. A small
    file may hold millions of splats legitimately (uniform data compresses 1000:1), so this is a budget (exit 3),
    not damage."""
    from .read_budget import check_read_memory

    check_read_memory(path, f"an SPZ of {count} splats (SH degree {degree})",
                      stream_bytes + count * standard_dtype(3 * SPZ_SH_DIM[degree]).itemsize)


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
    _check_spz_memory(path, count, degree, sum(size for _, size in streams))
    buffers = {name: _zstd_decompress(path, raw[start:start + compressed], size)
               for name, (start, compressed, size) in parts.items()}
    buffers.setdefault("sh", b"")
    return version, count, degree, fractional, buffers, extensions


def _read_spz_legacy(path, raw):
    head, data, tail = _gunzip_spz(path, raw)
    _magic, version, count, degree, fractional, flags, _reserved = struct.unpack_from("<IIIBBBB", head)
    if count == 0:
        raise BadInputError(f"{path}: SPZ file holds no splats")
    sizes = _spz_stream_sizes(version, count, SPZ_SH_DIM[degree])
    needed = sum(size for _, size in sizes)
    if len(data) < needed:
        raise BadInputError(f"{path}: truncated SPZ data: {16 + len(data)} bytes after decompression, the header "
                            f"promises {count} splats ({16 + needed} bytes)")
    buffers, offset = {}, 0
    for name, size in sizes:
        buffers[name] = data[offset:offset + size]  # views: no second copy of the inflated data
        offset += size
    # extension records (Adobe) follow the splat data in legacy files
    extensions = _spz_extensions(bytes(data[offset:]) + tail) if flags & 0x2 else {}
    return version, count, degree, fractional, buffers, extensions


SPZ_WRITE_LEVEL = 12  # zstd level of the streams we write
SPZ_SH1_BITS, SPZ_SH_REST_BITS = 5, 4  # what the SPZ library keeps of the SH bands (splat-transform's default)


SPZ_AXES = {"ply": 6, "rdf": 6, "rub": 4}  # the axes a .spz without the coordinate-system extension holds


def spz_streams(gaussians: Gaussians, fractional_bits: int = 12, axes: str = "ply") -> list[bytes]:
    """The six SPZ attribute streams of a scene (positions, alphas, colours, scales, rotations, SH), packed as the
    SPZ library packs them, in PLY's axes (``axes="rub"``: the SPZ README's RUB, y and z negated)."""
    v = gaussians.vertex
    count = len(gaussians)
    signs = np.array(_SPZ_COORDINATES[SPZ_AXES[axes]][1], dtype=np.float64)
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
    toc = b"".join(struct.pack("<QQ", len(packed), len(stream))
                   for packed, stream in zip(compressed, streams, strict=True))
    with output_file(path, "wb", commit) as handle:
        handle.write(header + toc + b"".join(compressed))


def read_spz(path: str | os.PathLike, axes: str | None = None) -> Gaussians:
    """Decode a Niantic ``.spz`` file (versions 1-3: gzip; version 4: Zstandard streams) into PLY (RDF) space.
    ``axes``: the axes of a file without the coordinate-system extension, ``"ply"`` (the default: what
    splat-transform 3.7.0, SuperSplat and Niantic's converter hold) or ``"rub"`` (older files: gsseg before issue
    29, splat-transform 2.7.1); the extension, when present, wins."""
    path = os.fspath(path)
    if axes is None:
        axes = "ply"
    if axes not in SPZ_AXES:
        raise BadInputError(f"SPZ axes {axes!r}: expected one of {', '.join(SPZ_AXES)}")
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

    # Stored coordinate system: PLY's (or the caller's) unless the Adobe coordinate-system extension names one.
    signs = _SPZ_COORDINATES[SPZ_AXES[axes]][1]
    payload = extensions.get(_SPZ_EXT_COORDINATE_SYSTEM)
    if payload is not None and len(payload) >= 4:
        system = struct.unpack_from("<I", payload)[0]
        if system in _SPZ_ROTATED:
            raise BadInputError(f"{path}: SPZ data stored in a rotated-family coordinate system (extension value "
                                f"{system}, y and z axes swapped) is not supported")
        if system in _SPZ_COORDINATES:
            signs = _SPZ_COORDINATES[system][1]
        elif system != 0:  # 0 = unspecified: the default above
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
    out["opacity"] = finite_saturated_logits(alpha8, logit)

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

    if sh_dim:  # one coefficient at a time: no float copy of the whole SH block
        sh = np.frombuffer(buffers["sh"], dtype=np.uint8).reshape(count, sh_dim, 3)
        sh_signs = sh_flip_signs(degree, signs)
        for channel in range(3):
            for k in range(sh_dim):
                out[f"f_rest_{channel * sh_dim + k}"] = \
                    (sh[:, k, channel].astype(np.float32) - f32(128.0)) / f32(128.0) * sh_signs[k]
    return Gaussians(out, source_format="spz", path=path)
