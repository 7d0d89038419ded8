"""GaussianSplats3D's ``.ksplat``, in: decoded as splat-transform 3.7.0 decodes it (its reader, checked on files
written by GaussianSplats3D 0.4.7, the format's own writer). Two layouts that writer does not make are read as
the format means them where splat-transform differs: sections of different SH degrees (each section's
coefficients go to their own PLY columns) and empty partial buckets (skipped).

A 4096-byte main header (version 0.1+, section count, splat count, compression level 0-2, the range of 8-bit SH),
then one 1024-byte header per section, then each section's buckets and splats. A splat's position is float32
(level 0) or 16 bits from its bucket's centre; scales (linear) and the quaternion are float32 or float16; colour
and opacity are 8 bits (after the sigmoid); SH bands 1-2 are float32, float16 or 8 bits across the header's range.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import BadInputError
from ..gaussians import REST_COUNT_TO_DEGREE, Gaussians, standard_dtype
from .quantize import decode_rgba8

MAIN_HEADER, SECTION_HEADER = 4096, 1024
# Per compression level: bytes of the centre, scale, rotation, colour and one SH component; the default position
# quantisation range.
LEVELS = {0: (12, 12, 16, 4, 4, 1), 1: (6, 6, 8, 4, 2, 32767), 2: (6, 6, 8, 4, 1, 32767)}
SH_COMPONENTS = {degree: rest for rest, degree in REST_COUNT_TO_DEGREE.items()}  # SH values per splat by degree
_SECTION = np.dtype([("count", "<u4"), ("capacity", "<u4"), ("bucket_size", "<u4"), ("buckets", "<u4"),
                     ("block_size", "<f4"), ("bucket_storage", "<u2"), ("pad", "<u2"), ("range", "<u4"),
                     ("pad2", "<u4"), ("full_buckets", "<u4"), ("partial_buckets", "<u4"), ("sh_degree", "<u2")])


def read_ksplat(path: str | os.PathLike) -> Gaussians:
    """Decode a ``.ksplat`` file."""
    path = os.fspath(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if len(raw) < MAIN_HEADER:
        raise BadInputError(f"{path}: too small to be a .ksplat file ({len(raw)} bytes, its header alone is "
                            f"{MAIN_HEADER})")
    if raw[0] != 0 or raw[1] < 1:
        raise BadInputError(f"{path}: .ksplat version {raw[0]}.{raw[1]} is not read (0.1 and later are)")
    sections, count = (int(v) for v in raw[4:20].view("<u4")[[0, 3]])
    level = int(raw[20:22].view("<u2")[0])
    # as splat-transform (JavaScript's `value || default`): a zero or NaN bound means the default
    sh_low, sh_high = ((float(v) if v == v and v != 0 else default)
                       for v, default in zip(raw[36:44].view("<f4"), (-1.5, 1.5), strict=True))
    if level not in LEVELS:
        raise BadInputError(f"{path}: unknown .ksplat compression level {level} (0, 1 and 2 exist)")
    if count == 0:
        raise BadInputError(f"{path}: the .ksplat file holds no splats")
    data_start = MAIN_HEADER + sections * SECTION_HEADER
    if len(raw) < data_start:
        raise BadInputError(f"{path}: truncated .ksplat file (its {sections} section headers are cut off)")
    headers = raw[MAIN_HEADER:data_start].reshape(sections, SECTION_HEADER)[:, :_SECTION.itemsize].copy() \
        .view(_SECTION).ravel()
    # every section's degree, an empty one's too: its degree sizes its room in the file
    for index, header in enumerate(headers):
        if int(header["sh_degree"]) not in SH_COMPONENTS or int(header["sh_degree"]) > 3:
            raise BadInputError(f"{path}: damaged .ksplat file: section {index} claims SH degree "
                                f"{int(header['sh_degree'])} (0 to 3 exist)")
    degree = int(max((h["sh_degree"] for h in headers if h["count"]), default=0))
    # Check the sections against the header and the file before allocating anything from their numbers.
    held = int(sum(int(h["count"]) for h in headers))
    if held != count:
        raise BadInputError(f"{path}: the .ksplat header says {count} splats, its sections hold {held}")
    end = data_start + sum(_section_size(h, level) for h in headers)
    if any(h["count"] > h["capacity"] for h in headers) or end > len(raw):
        raise BadInputError(f"{path}: damaged .ksplat file (its sections need {end} bytes, the file has "
                            f"{len(raw)})")
    out = np.zeros(count, dtype=standard_dtype(SH_COMPONENTS[degree]))
    try:
        _decode_sections(raw, headers, level, (sh_low, sh_high), out, data_start)
    except (ValueError, IndexError) as error:
        raise BadInputError(f"{path}: damaged .ksplat file ({error})") from None
    return Gaussians(out, source_format="ksplat", path=path)


def _stride(header, level):  # bytes per splat of a section
    centre, scale, rotation, colour, sh, _ = LEVELS[level]
    return centre + scale + rotation + colour + SH_COMPONENTS.get(int(header["sh_degree"]), 0) * sh


def _storage(header):  # bytes of a section's partial bucket sizes and bucket centres, before its splats
    return int(header["bucket_storage"]) * int(header["buckets"]) + int(header["partial_buckets"]) * 4


def _section_size(header, level):  # bytes of a section's buckets and splats (room for its capacity)
    return _storage(header) + _stride(header, level) * int(header["capacity"])


def _decode_sections(raw, headers, level, sh_range, out, offset):
    """Decode every section's splats into ``out`` in file order (the sections were checked against the file)."""
    centre_bytes, scale_bytes, rotation_bytes, colour_bytes, sh_bytes, default_range = LEVELS[level]
    rest = sum(1 for name in out.dtype.names if name.startswith("f_rest_")) // 3  # SH coefficients per channel
    done = 0
    for header in headers:
        components = SH_COMPONENTS[int(header["sh_degree"])]
        stride = _stride(header, level)
        partial_meta = int(header["partial_buckets"]) * 4
        storage = _storage(header)
        count = int(header["count"])
        if count:
            quantisation = int(header["range"]) or default_range
            splats = raw[offset + storage:offset + storage + count * stride].reshape(count, stride)
            target = out[done:done + count]
            if level == 0:
                position = splats[:, :12].copy().view("<f4").astype(np.float64)
            else:
                centres = raw[offset + partial_meta:offset + partial_meta + int(header["buckets"]) * 12] \
                    .copy().view("<f4").reshape(-1, 3).astype(np.float64)
                partial_sizes = raw[offset:offset + partial_meta].copy().view("<u4")
                bucket = _bucket_of_each_splat(count, int(header["bucket_size"]), int(header["full_buckets"]),
                                               partial_sizes)
                steps = splats[:, :6].copy().view("<u2").astype(np.float64)
                scale = float(header["block_size"]) / 2.0 / quantisation
                position = (steps - quantisation) * scale + centres[bucket]
            for axis, name in enumerate("xyz"):
                target[name] = position[:, axis]
            floats = "<f4" if level == 0 else "<f2"
            start = centre_bytes
            linear = splats[:, start:start + scale_bytes].copy().view(floats).astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                log_scale = np.where(linear > 0, np.log(np.where(linear > 0, linear, 1.0)), -10.0)
            start += scale_bytes
            rotation = splats[:, start:start + rotation_bytes].copy().view(floats)
            start += rotation_bytes
            decode_rgba8(target, splats[:, start:start + 4])
            start += colour_bytes
            for k in range(3):
                target[f"scale_{k}"] = log_scale[:, k]
            for k in range(4):
                target[f"rot_{k}"] = rotation[:, k]
            if components:
                packed = splats[:, start:start + components * sh_bytes].copy()
                if level == 2:
                    low, high = (float(np.float32(v)) for v in sh_range)
                    values = low + packed.astype(np.float64) / 255.0 * (high - low)
                else:
                    values = packed.view("<f4" if level == 0 else "<f2")
                for i in range(components):
                    # stored band by band, each band's coefficients channel by channel
                    band_start, band_size, first = (0, 3, 0) if i < 9 else (9, 5, 3) if i < 24 else (24, 7, 8)
                    channel, coefficient = divmod(i - band_start, band_size)
                    target[f"f_rest_{channel * rest + coefficient + first}"] = values[:, i]
            done += count
        offset += _section_size(header, level)


def _bucket_of_each_splat(count, capacity, full, partial_sizes):  # -> int64 [count]
    """Full buckets hold ``capacity`` splats each, in order; then the partial buckets hold their own sizes."""
    bucket = np.arange(count) // max(capacity, 1)
    first_partial = full * capacity
    if count > first_partial:
        ends = np.cumsum(partial_sizes.astype(np.int64))  # where each partial bucket's splats end
        if not len(ends) or ends[-1] < count - first_partial:
            raise ValueError("its partial buckets hold fewer splats than the section")
        bucket[first_partial:] = full + np.searchsorted(ends, np.arange(count - first_partial), side="right")
    return bucket
