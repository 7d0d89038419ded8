"""PlayCanvas SOG (version 2), in: a zip of ``meta.json`` and lossless WebP images, decoded as splat-transform
3.7.0 decodes it (its reader, checked on files it wrote).

- positions: ``means_l``/``means_u`` hold the low and high bytes of 16-bit values between ``means.mins`` and
  ``means.maxs`` of the log-transformed positions (sign(x) log(|x| + 1));
- ``quats``: three 8-bit components of the unit quaternion (w first) without its largest one, whose index is the
  alpha byte less 252;
- ``scales``: three indices into a 256-entry codebook of log-scales;
- ``sh0``: three indices into a codebook of f_dc, and the opacity after the sigmoid as the alpha byte;
- ``shN`` (optional): a 16-bit palette index per splat (``shN_labels``), each palette entry a row of
  coefficients in ``shN_centroids`` (64 entries per image row) whose RGB bytes index the SH codebook.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np

from ..errors import BadInputError
from ..gaussians import Gaussians
from .compressed import standard_dtype

SH_COEFFICIENTS = {0: 0, 1: 3, 2: 8, 3: 15}


def read_sog(path: str | os.PathLike) -> Gaussians:
    """Decode a bundled ``.sog`` file."""
    path = os.fspath(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise BadInputError(f"{path}: not a SOG file (a zip of meta.json and WebP images): {error}") from None
    with archive:
        try:
            meta = json.loads(archive.read("meta.json"))
        except KeyError:
            raise BadInputError(f"{path}: the SOG bundle has no meta.json") from None
        except ValueError as error:
            raise BadInputError(f"{path}: unreadable SOG meta.json ({error})") from None
        if meta.get("version") != 2:
            raise BadInputError(f"{path}: SOG version {meta.get('version', 1)} is not read (version 2 is)")
        try:
            return _decode(path, archive, meta)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise BadInputError(f"{path}: damaged SOG file ({error!r})") from None


def _decode(path, archive, meta):
    from PIL import Image

    count = int(meta["count"])
    if count <= 0:
        raise BadInputError(f"{path}: the SOG file holds no splats")

    def rgba(name):  # uint8 [pixels, 4] in row order, and the image's width
        try:
            with Image.open(io.BytesIO(archive.read(name))) as picture:
                return np.asarray(picture.convert("RGBA"), dtype=np.uint8).reshape(-1, 4), picture.size[0]
        except KeyError:
            raise BadInputError(f"{path}: the SOG bundle lacks {name}") from None
        except OSError as error:
            raise BadInputError(f"{path}: {name} is not a readable image ({error})") from None

    def image(name):  # uint8 [count, 4]: one pixel per splat
        pixels, _ = rgba(name)
        if len(pixels) < count:
            raise BadInputError(f"{path}: {name} has {len(pixels)} pixels for {count} splats")
        return pixels[:count]

    shn = meta.get("shN") or {}
    bands = int(shn.get("bands", 0)) if shn else 0
    coefficients = SH_COEFFICIENTS[bands]
    out = np.empty(count, dtype=standard_dtype(3 * coefficients))

    low, high = (image(name).astype(np.int64) for name in meta["means"]["files"][:2])
    mins, maxs = np.asarray(meta["means"]["mins"], np.float64), np.asarray(meta["means"]["maxs"], np.float64)
    span = np.where(maxs - mins != 0, maxs - mins, 1.0)
    for axis, name in enumerate("xyz"):
        value = mins[axis] + span[axis] * ((low[:, axis] | (high[:, axis] << 8)) / 65535.0)
        out[name] = np.sign(value) * (np.exp(np.abs(value)) - 1.0)

    quats = image(meta["quats"]["files"][0])
    tag = quats[:, 3].astype(np.int64)
    valid = (tag >= 252) & (tag <= 255)
    largest = np.where(valid, tag - 252, 0)
    parts = quats[:, :3].astype(np.float64) / 255.0 * 2.0 - 1.0
    others = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])[largest]
    quat = np.zeros((count, 4))
    rows = np.arange(count)
    for k in range(3):
        quat[rows, others[:, k]] = parts[:, k] / np.sqrt(2.0)
    quat[rows, largest] = np.sqrt(np.maximum(0.0, 1.0 - np.sum(quat * quat, axis=1)))
    quat[~valid] = (1.0, 0.0, 0.0, 0.0)
    for k in range(4):
        out[f"rot_{k}"] = quat[:, k]

    scale_book = np.asarray(meta["scales"]["codebook"], dtype=np.float32)
    scales = image(meta["scales"]["files"][0])
    for k in range(3):
        out[f"scale_{k}"] = scale_book[scales[:, k]]

    colour_book = np.asarray(meta["sh0"]["codebook"], dtype=np.float32)
    sh0 = image(meta["sh0"]["files"][0])
    for k in range(3):
        out[f"f_dc_{k}"] = colour_book[sh0[:, k]]
    alpha = np.clip(sh0[:, 3] / 255.0, 1e-6, 1.0 - 1e-6)
    out["opacity"] = np.log(alpha / (1.0 - alpha))

    if coefficients:
        sh_book = np.asarray(shn["codebook"], dtype=np.float32)
        centroids_name, labels_name = shn["files"][:2]
        centroids, width = rgba(centroids_name)
        if width != 64 * coefficients:
            raise BadInputError(f"{path}: {centroids_name} is {width} pixels wide, not {64 * coefficients} for "
                                f"{bands} SH bands")
        labels = image(labels_name).astype(np.int64)
        entry = labels[:, 0] | (labels[:, 1] << 8)
        known = entry < int(shn["count"])
        for j in range(coefficients):
            pixel = (entry // 64) * width + (entry % 64) * coefficients + j
            inside = known & (pixel < len(centroids))
            rgb = centroids[np.where(inside, pixel, 0)]
            for channel in range(3):
                out[f"f_rest_{j + channel * coefficients}"] = np.where(inside, sh_book[rgb[:, channel]], 0.0)
    return Gaussians(out, source_format="sog", path=path)
