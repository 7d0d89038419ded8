"""antimatter15's ``.splat``, in and out: no header, 32 bytes per splat (float32 position and linear scale, 8-bit
RGBA: the base colour and the opacity after the sigmoid, 8-bit quaternion, w first); no SH, no other properties.

Read as splat-transform 2.7.1 decodes it (``read-splat.ts``: alpha clamped to [1e-6, 1 - 1e-6] before the logit),
bit for bit, into the standard INRIA properties; written so that splat-transform decodes it to the source within
those 8-bit steps.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import BadInputError
from ..gaussians import Gaussians, standard_dtype
from .quantize import decode_rgba8, sigmoid64

_SPLAT_RECORD = np.dtype([("position", "<f4", (3,)), ("scale", "<f4", (3,)), ("rgba", "u1", (4,)),
                          ("rot", "u1", (4,))])


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


def write_dot_splat(path: str | os.PathLike, gaussians: Gaussians, commit=None) -> list[str]:
    """Write an antimatter15 ``.splat``: float32 position and linear scale, 8-bit RGBA (base colour and
    sigmoid(opacity)) and 8-bit quaternion (normalised, w first), as splat-transform reads it; returns what it
    could not keep (the SH bands above 0, for the caller to say)."""
    from .commit import output_file

    lost = []
    if gaussians.sh_degree:
        lost.append(f".splat holds no view-dependent colour: SH degree {gaussians.sh_degree} is dropped")

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
    return lost

