"""PlayCanvas SOG (version 2), in and out: a zip of lossless WebP images and ``meta.json`` (or those files
unbundled in a folder, as PlayCanvas publishes scenes: read only, :func:`read_sog_folder`), decoded as
splat-transform 3.7.0 decodes it (its reader, checked on files it wrote) and written as its writer lays it out
(splats in Morton order, one pixel each, the same images and meta.json), with two differences for a smaller
error: values are rounded to their steps where splat-transform truncates, and the scale and colour codebooks are
the least-squares ones (Lloyd-Max) where splat-transform weights sparse values up.

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

import concurrent.futures
import io
import json
import os
import zipfile
import zlib

import numpy as np

from ..errors import BadInputError
from ..gaussians import REST_COUNT_TO_DEGREE, Gaussians, standard_dtype
from .quantize import logit_from_alpha8

SH_COEFFICIENTS = {degree: rest // 3 for rest, degree in REST_COUNT_TO_DEGREE.items() if degree <= 3}  # per channel
# The three quaternion components kept, by the index of the largest one (left out).
QUAT_OTHERS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
MAX_SIDE = 16383  # WebP's largest image side
SH_ITERATIONS = 10  # splat-transform's default (-i)
# Lossless WebP effort (Pillow's quality 0-100 and method 0-6 in lossless mode). Measured on the biker scene:
# (25, 2) 1.945 MB in 2.2 s, (75, 4) 1.949 MB in 2.6 s, (100, 6) 1.946 MB in 66 s; below 25 the
# files grow (guitar +6% at (0, 0)). These images gain little from a harder search.
WEBP_EFFORT, WEBP_METHOD = 25, 2


def read_sog(path: str | os.PathLike) -> Gaussians:
    """Decode a bundled ``.sog`` file."""
    path = os.fspath(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise BadInputError(f"{path}: not a SOG file (a zip of meta.json and WebP images): {error}") from None
    with archive:
        try:
            text = archive.read("meta.json")
        except KeyError:
            raise BadInputError(f"{path}: the SOG bundle has no meta.json") from None
        except _DAMAGED_ZIP as error:
            raise BadInputError(f"{path}: damaged SOG file: meta.json cannot be unpacked ({error})") from None
        try:
            return _read(path, text, archive.read, "the SOG bundle", "sog")
        except _DAMAGED_ZIP as error:
            raise BadInputError(f"{path}: damaged SOG file: an image cannot be unpacked ({error})") from None


# what a damaged zip member raises when read: a bad CRC, a bad deflate stream, an unknown or encrypted method
_DAMAGED_ZIP = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError)


def read_sog_folder(path: str | os.PathLike) -> Gaussians:
    """Decode an unbundled SOG: ``meta.json`` (``path``) and the WebP images it names beside it, as PlayCanvas
    publishes scenes; the same files as a bundled ``.sog`` holds, decoded by the same steps."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))

    def read(name):  # the bytes of an image beside meta.json; KeyError when it is not there, as a zip says
        if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", ".."):
            raise BadInputError(f"{path}: {name!r} is not a file name beside meta.json")
        try:
            with open(os.path.join(folder, name), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise KeyError(name) from None
        except OSError as error:
            raise BadInputError(f"{path}: {name} beside it is unreadable ({error})") from None

    try:
        with open(path, "rb") as handle:
            text = handle.read()
    except OSError as error:
        raise BadInputError(f"{path}: unreadable ({error})") from None
    return _read(path, text, read, "the SOG folder", "sog (unbundled: meta.json + WebP images)")


def sog_meta_in(folder: str | os.PathLike) -> str | None:
    """``folder``'s ``meta.json`` when it holds one (an unbundled SOG given by its folder), else None."""
    meta = os.path.join(os.fspath(folder), "meta.json")
    return meta if os.path.isdir(folder) and os.path.isfile(meta) else None


def _read(path, text, read, holder, source_format):
    """Decode a SOG from its ``meta.json`` text and ``read(name) -> bytes`` (KeyError for a missing file) of
    ``holder`` (the bundle or the folder, for the errors)."""
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise BadInputError(f"{path}: unreadable SOG meta.json ({error})") from None
    if not isinstance(meta, dict):
        raise BadInputError(f"{path}: the SOG meta.json is a {type(meta).__name__}, not an object")
    if "means" not in meta:
        raise BadInputError(f"{path}: not a SOG meta.json (it names no means images)")
    if meta.get("version") != 2:
        raise BadInputError(f"{path}: SOG version {meta.get('version', 1)!r} is not read (version 2 is)")
    try:
        return _decode(path, read, meta, holder, source_format)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as error:
        raise BadInputError(f"{path}: damaged SOG file ({type(error).__name__}: {error})") from None


def _decode(path, read, meta, holder, source_format):
    from PIL import Image

    count = meta.get("count")
    if isinstance(count, float) and count.is_integer():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int):
        raise BadInputError(f"{path}: the SOG meta.json's count is {count!r}, not a whole number")
    if count <= 0:
        raise BadInputError(f"{path}: the SOG file holds no splats")
    for key in ("means", "quats", "scales", "sh0"):
        if not isinstance(meta.get(key), dict) or not isinstance(meta[key].get("files"), list):
            raise BadInputError(f"{path}: the SOG meta.json's {key!r} is not an object with a list of files")

    def rgba(name, most):  # uint8 [pixels, 4] in row order, and the image's width
        try:
            with Image.open(io.BytesIO(read(name))) as picture:
                # its header's size checked before it is decoded: a small file can declare a huge image
                width, height = picture.size
                if width * height > most:
                    raise BadInputError(f"{path}: damaged SOG file: {name} declares {width}x{height} pixels, "
                                        f"more than {most} for {count} splats")
                return np.asarray(picture.convert("RGBA"), dtype=np.uint8).reshape(-1, 4), width
        except KeyError:
            raise BadInputError(f"{path}: {holder} lacks {name}") from None
        except (OSError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
            raise BadInputError(f"{path}: {name} is not a readable image ({error})") from None

    def pixels_of(name):  # the pixels an image's header declares (nothing decoded)
        try:
            with Image.open(io.BytesIO(read(name))) as picture:
                return picture.size[0] * picture.size[1]
        except KeyError:
            raise BadInputError(f"{path}: {holder} lacks {name}") from None
        except (OSError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
            raise BadInputError(f"{path}: {name} is not a readable image ({error})") from None

    # One pixel per splat: the count must fit in the images (a count of 10^13 is damage, not a big scene),
    # and an image may not be far larger than the count needs (splat-transform's are at most a few rows more).
    most = 4 * count + (1 << 16)
    declared = pixels_of(meta["means"]["files"][0])
    if declared < count:
        raise BadInputError(f"{path}: damaged SOG file: meta.json says {count} splats, its images hold "
                            f"{declared} pixels")

    def image(name):  # uint8 [count, 4]: one pixel per splat
        pixels, _ = rgba(name, most)
        if len(pixels) < count:
            raise BadInputError(f"{path}: {name} has {len(pixels)} pixels for {count} splats")
        return pixels[:count]

    shn = meta.get("shN") or {}
    if not isinstance(shn, dict):
        raise BadInputError(f"{path}: the SOG meta.json's shN is a {type(shn).__name__}, not an object")
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
    others = QUAT_OTHERS[largest]
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
    out["opacity"] = logit_from_alpha8(sh0[:, 3])

    if coefficients:
        sh_book = np.asarray(shn["codebook"], dtype=np.float32)
        centroids_name, labels_name = shn["files"][:2]
        centroids, width = rgba(centroids_name, 64 * coefficients * 1024)  # at most 65536 entries, 64 a row
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
    return Gaussians(out, source_format=source_format, path=path)


def default_palette_size(count: int) -> int:
    """splat-transform's SH palette size for ``count`` splats: 1024 times the largest power of two not above
    count / 1024, at most 65536 (the labels image holds 16-bit entries)."""
    return int(min(64.0, 2.0 ** np.floor(np.log2(count / 1024.0))) * 1024)


def write_sog(path: str | os.PathLike, gaussians: Gaussians, commit=None, palette_size: int | None = None,
              iterations: int = SH_ITERATIONS) -> None:
    """Write a bundled ``.sog``: 16-bit log positions, largest-three quaternions, 256-entry codebooks for the
    log-scales and colours, the opacity in the colour image's alpha, and the higher SH bands as a k-means
    palette of ``palette_size`` entries (default :func:`default_palette_size`)."""
    from .commit import output_file
    from .quantize import codebook_1d, kmeans_palette, morton_order, sigmoid64, unorm

    count, degree = len(gaussians), gaussians.sh_degree
    if count == 0:
        raise BadInputError(f"{path}: a SOG file cannot be empty (no splats to write)")
    if degree > 3:
        raise BadInputError(f"{path}: SOG holds SH up to degree 3 (convert with --sh-degree 3)")
    width = int(np.ceil(np.sqrt(count) / 4) * 4)
    height = int(np.ceil(count / width / 4) * 4)
    if max(width, height) > MAX_SIDE:
        raise BadInputError(f"{path}: {count} splats need {width}x{height} images, past WebP's {MAX_SIDE} a side")
    if palette_size is not None and not 1 <= int(palette_size) <= 65536:  # checked with or without SH to fill it
        raise BadInputError(f"{path}: the SH palette must hold 1 to 65536 entries, not {palette_size}")
    palette = default_palette_size(count) if palette_size is None else int(palette_size)

    vertex = gaussians.vertex[morton_order(gaussians.means)]
    column = lambda names: np.stack([vertex[n].astype(np.float64) for n in names], axis=1)  # noqa: E731

    def image(channels, rows=height, side=width):  # up to 4 uint8 [M] -> RGBA [rows, side, 4], zeros after M
        pixels = np.zeros((rows * side, 4), dtype=np.uint8)
        for k, values in enumerate(channels):
            pixels[:len(values), k] = values
        return pixels.reshape(rows, side, 4)

    # The codebooks, the SH palette and the WebP encodes run side by side (numpy and libwebp release the GIL);
    # each image is encoded as soon as it is ready.
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        scales_job = pool.submit(codebook_1d, column(["scale_0", "scale_1", "scale_2"]).T.ravel())
        colours_job = pool.submit(codebook_1d, column(["f_dc_0", "f_dc_1", "f_dc_2"]).T.ravel())
        if degree:
            coefficients = SH_COEFFICIENTS[degree]
            palette_job = pool.submit(kmeans_palette, column([f"f_rest_{k}" for k in range(3 * coefficients)]),
                                      palette, iterations)
        encoded = {}

        def encode(name, channels, **shape):
            encoded[name] = pool.submit(_lossless_webp, image(channels, **shape))

        opaque = np.full(count, 255, dtype=np.uint8)
        position = column("xyz")
        logged = np.sign(position) * np.log1p(np.abs(position))
        mins, maxs = logged.min(axis=0), logged.max(axis=0)
        span = maxs - mins
        steps = unorm((logged - mins) / np.where(span > 0, span, 1.0), 16)
        encode("means_l.webp", [*(steps & 0xFF).T, opaque])
        encode("means_u.webp", [*(steps >> 8).T, opaque])

        quat = column(["rot_0", "rot_1", "rot_2", "rot_3"])
        length = np.linalg.norm(quat, axis=1, keepdims=True)
        quat = np.where(length > 0, quat / np.where(length > 0, length, 1.0), [1.0, 0.0, 0.0, 0.0])
        largest = np.argmax(np.abs(quat), axis=1)
        rows = np.arange(count)
        quat *= np.where(quat[rows, largest] < 0, -np.sqrt(2.0), np.sqrt(2.0))[:, None]
        kept = quat[rows[:, None], QUAT_OTHERS[largest]]
        encode("quats.webp", [*unorm(kept * 0.5 + 0.5, 8).T, (252 + largest).astype(np.uint8)])

        scale_book, scale_entry = scales_job.result()
        encode("scales.webp", [*scale_entry.reshape(3, count).astype(np.uint8), opaque])
        colour_book, colour_entry = colours_job.result()
        encode("sh0.webp", [*colour_entry.reshape(3, count).astype(np.uint8), unorm(sigmoid64(vertex["opacity"]), 8)])
        meta = {"version": 2, "asset": {"generator": "gsseg"}, "count": count,
                "means": {"mins": mins.tolist(), "maxs": maxs.tolist(), "files": ["means_l.webp", "means_u.webp"]},
                "scales": {"codebook": scale_book.tolist(), "files": ["scales.webp"]},
                "quats": {"files": ["quats.webp"]},
                "sh0": {"codebook": colour_book.tolist(), "files": ["sh0.webp"]}}

        if degree:
            centroids, entry = palette_job.result()
            sh_book, sh_entry = codebook_1d(centroids.ravel())
            # a palette entry's row in PLY order is channel-major (f_rest_{c * K + j}); its pixels go by coefficient
            sh_entry = sh_entry.reshape(len(centroids), 3, coefficients).transpose(0, 2, 1).reshape(-1, 3)
            encode("shN_centroids.webp", [*sh_entry.T.astype(np.uint8), np.full(len(sh_entry), 255, np.uint8)],
                   rows=-(-len(centroids) // 64), side=64 * coefficients)
            encode("shN_labels.webp", [(entry & 0xFF).astype(np.uint8), (entry >> 8).astype(np.uint8),
                                       np.zeros(count, np.uint8), opaque])
            meta["shN"] = {"count": palette, "bands": degree, "codebook": sh_book.tolist(),
                           "files": ["shN_centroids.webp", "shN_labels.webp"]}
        images = {name: job.result() for name, job in encoded.items()}

    with output_file(path, "wb", commit) as handle:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
            for name, webp in images.items():
                archive.writestr(name, webp)
            archive.writestr("meta.json", json.dumps(meta))


def _lossless_webp(pixels):  # uint8 [H, W, 4] -> WebP bytes
    from PIL import Image

    out = io.BytesIO()
    # exact: keep the colour of transparent pixels (the colour of a splat whose opacity rounds to 0)
    Image.fromarray(pixels, "RGBA").save(out, format="WEBP", lossless=True, exact=True, quality=WEBP_EFFORT,
                                         method=WEBP_METHOD)
    return out.getvalue()

