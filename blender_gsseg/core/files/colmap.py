"""COLMAP sparse models: ``cameras.bin`` + ``images.bin`` or ``cameras.txt`` + ``images.txt``; models PINHOLE,
SIMPLE_PINHOLE, SIMPLE_RADIAL, RADIAL and OPENCV (distortion ignored with a warning); written back exactly."""

from __future__ import annotations

import collections.abc
import math
import mmap
import os
import struct
import warnings

import numpy as np

from ..cameras import Camera, quaternions_to_rotations, rotations_to_quaternions, world_to_camera_matrices
from ..errors import BadInputError
from .camera_checks import check_finite, check_intrinsics, check_side, make_cameras, stack_cameras, write_bytes


# COLMAP camera models: id -> (name, number of parameters). Only the first five are supported.
COLMAP_MODELS = {
    0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5), 4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5), 8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12), 11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}


COLMAP_MODEL_IDS = {name: model_id for model_id, (name, _) in COLMAP_MODELS.items()}
SUPPORTED_COLMAP_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")


def _intrinsics_from_params(model, params):
    """(fx, fy, cx, cy, distortion coefficients) from COLMAP parameters of a supported model."""
    if model == "PINHOLE":
        fx, fy, cx, cy = params
        return fx, fy, cx, cy, ()
    if model == "OPENCV":
        fx, fy, cx, cy = params[:4]
        return fx, fy, cx, cy, tuple(params[4:])
    f, cx, cy = params[:3]  # SIMPLE_PINHOLE, SIMPLE_RADIAL, RADIAL
    return f, f, cx, cy, tuple(params[3:])


def colmap_files(folder: str | os.PathLike) -> str | None:
    """The COLMAP extension ('.bin' or '.txt') of a complete model in ``folder``, or None when there is none."""
    for ext in (".bin", ".txt"):
        if all(os.path.isfile(os.path.join(folder, name + ext)) for name in ("cameras", "images")):
            return ext
    return None


def load_colmap(folder: str | os.PathLike) -> list[Camera]:  # sorted by image name
    """Load a COLMAP sparse model folder (.bin preferred over .txt when both are there)."""
    folder = os.fspath(folder)
    ext = colmap_files(folder)
    if ext is None:
        raise BadInputError(f"{folder}: not a COLMAP model: needs cameras.bin + images.bin or "
                            f"cameras.txt + images.txt")
    cameras_path = os.path.join(folder, "cameras" + ext)
    images_path = os.path.join(folder, "images" + ext)
    if ext == ".bin":
        intrinsics = _read_colmap_cameras_bin(cameras_path)
        images = _read_colmap_images_bin(images_path)
    else:
        intrinsics = _read_colmap_cameras_txt(cameras_path)
        images = _read_colmap_images_txt(images_path)
    return _colmap_to_cameras(cameras_path, images_path, intrinsics, images)


def _colmap_camera(path, label, camera_id, model, width, height, params):
    """Validate one COLMAP camera record; returns (model, width, height, params)."""
    if model not in SUPPORTED_COLMAP_MODELS:
        raise BadInputError(f"{path}: {label}: unsupported COLMAP camera model {model} (supported: "
                            f"{', '.join(SUPPORTED_COLMAP_MODELS)}; undistort the images first, e.g. with "
                            f"'colmap image_undistorter')")
    expected = COLMAP_MODELS[COLMAP_MODEL_IDS[model]][1]
    if len(params) != expected:
        raise BadInputError(f"{path}: {label}: COLMAP model {model} takes {expected} parameters, "
                            f"not {len(params)}")
    if not all(math.isfinite(p) for p in params):
        raise BadInputError(f"{path}: {label}: non-finite camera parameters")
    if width <= 0 or height <= 0:
        raise BadInputError(f"{path}: {label}: image size must be positive, not {width}x{height}")
    width, height = check_side(path, label, "width", width), check_side(path, label, "height", height)
    return model, width, height, tuple(float(p) for p in params)


def _read_colmap_cameras_txt(path):
    cameras = {}
    for number, line in _text_lines(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        label = f"line {number}"
        if len(fields) < 4:
            raise BadInputError(f"{path}: {label}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...'")
        try:
            camera_id, width, height = int(fields[0]), int(fields[2]), int(fields[3])
            params = [float(v) for v in fields[4:]]
        except ValueError:
            raise BadInputError(f"{path}: {label}: bad number in {line!r}") from None
        model = fields[1].upper()
        if model not in COLMAP_MODEL_IDS:
            raise BadInputError(f"{path}: {label}: unknown COLMAP camera model {fields[1]!r}")
        if camera_id in cameras:
            raise BadInputError(f"{path}: {label}: duplicate camera id {camera_id}")
        cameras[camera_id] = _colmap_camera(path, f"{label} (camera {camera_id})", camera_id, model, width,
                                            height, params)
    return cameras


def _read_colmap_images_txt(path):
    """[(name, camera_id, qvec[4], tvec[3], label)] from images.txt (two lines per image, second may be empty)."""
    images = []
    lines = _text_lines(path)
    index = 0
    while index < len(lines):
        number, line = lines[index]
        index += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        # The 2D points line: may be empty, or absent at the end of the file. A writer that leaves it out
        # entirely is tolerated: a line that is not (X, Y, POINT3D_ID) triples is read as the next image.
        if index < len(lines) and _is_points_line(lines[index][1]):
            index += 1
        fields = stripped.split(maxsplit=9)
        label = f"line {number}"
        if len(fields) < 10:
            raise BadInputError(f"{path}: {label}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME'")
        try:
            int(fields[0])
            values = [float(v) for v in fields[1:8]]
            camera_id = int(fields[8])
        except ValueError:
            raise BadInputError(f"{path}: {label}: bad number in {stripped!r}") from None
        name = fields[9]
        images.append((name, camera_id, values[:4], values[4:], f"{label} (image {name!r})"))
    return images


def _is_points_line(line):
    fields = line.split()
    if len(fields) % 3:
        return False
    try:
        for field in fields:
            float(field)
    except ValueError:
        return False
    return True


def _text_lines(path):
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8", errors="surrogateescape")
    except OSError as error:
        raise BadInputError(f"{path}: cannot read: {error.strerror or error}") from None
    return list(enumerate(text.splitlines(), start=1))


class _BinaryReader:
    """Bounds-checked little-endian reads from a memory-mapped file: a short read is a BadInputError."""

    def __init__(self, path, data):
        self.path, self.data, self.offset = path, data, 0

    def read(self, fmt, what):
        size = struct.calcsize(fmt)
        if self.offset + size > len(self.data):
            raise BadInputError(f"{self.path}: truncated file (ends inside {what} at byte {len(self.data)})")
        values = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += size
        return values

    def read_cstring(self, what):
        end = self.data.find(b"\x00", self.offset)
        if end < 0:
            raise BadInputError(f"{self.path}: truncated file (ends inside {what} at byte {len(self.data)})")
        raw = bytes(self.data[self.offset:end])
        self.offset = end + 1
        return raw.decode("utf-8", errors="surrogateescape")

    def skip(self, size, what):
        if self.offset + size > len(self.data):
            raise BadInputError(f"{self.path}: truncated file (ends inside {what} at byte {len(self.data)})")
        self.offset += size


def _map_file(path, parse):
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                raise BadInputError(f"{path}: truncated file (empty)")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return parse(_BinaryReader(path, data))
    except OSError as error:
        raise BadInputError(f"{path}: cannot read: {error.strerror or error}") from None


def _read_colmap_cameras_bin(path):
    def parse(reader):
        (count,) = reader.read("<Q", "the camera count")
        cameras = {}
        for index in range(count):
            camera_id, model_id, width, height = reader.read("<iiQQ", f"camera record {index}")
            label = f"camera {camera_id}"
            if model_id not in COLMAP_MODELS:
                raise BadInputError(f"{path}: {label}: unknown COLMAP camera model id {model_id}")
            model, param_count = COLMAP_MODELS[model_id]
            if model not in SUPPORTED_COLMAP_MODELS:
                _colmap_camera(path, label, camera_id, model, width, height, ())  # raises: unsupported model
            params = reader.read(f"<{param_count}d", f"the parameters of camera {camera_id}")
            if camera_id in cameras:
                raise BadInputError(f"{path}: duplicate camera id {camera_id}")
            cameras[camera_id] = _colmap_camera(path, label, camera_id, model, width, height, params)
        return cameras

    return _map_file(path, parse)


def _read_colmap_images_bin(path):
    def parse(reader):
        (count,) = reader.read("<Q", "the image count")
        images = []
        for index in range(count):
            record = reader.read("<i7di", f"image record {index}")
            name = reader.read_cstring(f"the name of image record {index}")
            (points,) = reader.read("<Q", f"the 2D point count of image {name!r}")
            reader.skip(24 * points, f"the 2D points of image {name!r}")
            images.append((name, record[8], list(record[1:5]), list(record[5:8]), f"image {name!r}"))
        return images

    return _map_file(path, parse)


def _colmap_to_cameras(cameras_path, images_path, intrinsics, images):
    if not images:
        raise BadInputError(f"{images_path}: holds no images")
    n = len(images)
    names = [image[0] for image in images]
    labels = [image[4] for image in images]
    quaternions = np.array([image[2] for image in images], dtype=np.float64).reshape(n, 4)
    translations = np.array([image[3] for image in images], dtype=np.float64).reshape(n, 3)
    fx, fy, cx, cy = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    widths, heights = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    distorted = {}
    for i, (name, camera_id, _, _, label) in enumerate(images):
        if camera_id not in intrinsics:
            raise BadInputError(f"{images_path}: {label} refers to camera id {camera_id}, which "
                                f"{os.path.basename(cameras_path)} does not define")
        model, widths[i], heights[i], params = intrinsics[camera_id]
        fx[i], fy[i], cx[i], cy[i], coefficients = _intrinsics_from_params(model, params)
        if any(c != 0 for c in coefficients):
            distorted[model] = distorted.get(model, 0) + 1
    check_intrinsics(cameras_path, fx, fy, cx, cy, widths, heights, labels)
    check_finite(images_path, quaternions, labels, "quaternion")
    check_finite(images_path, translations, labels, "translation")
    norms = np.linalg.norm(quaternions, axis=1)
    bad = norms < 1e-8
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise BadInputError(f"{images_path}: {labels[index]}: singular rotation (zero quaternion)")
    w2c = world_to_camera_matrices(quaternions_to_rotations(quaternions), translations)
    if distorted:
        summary = ", ".join(f"{model} ({count} image{'s' if count > 1 else ''})"
                            for model, count in sorted(distorted.items()))
        warnings.warn(f"{cameras_path}: lens distortion of COLMAP model {summary} ignored: images are treated "
                      f"as undistorted pinhole images (undistort them with 'colmap image_undistorter' for exact "
                      f"masks)", stacklevel=3)
    return make_cameras(w2c, fx, fy, cx, cy, widths, heights, names)


def _colmap_records(cameras, model, distortion):
    """Shared camera records for the COLMAP writers: (camera rows [(id, model, w, h, params)], per-image ids)."""
    if model not in SUPPORTED_COLMAP_MODELS:
        raise ValueError(f"unsupported COLMAP model {model!r}; choose one of {', '.join(SUPPORTED_COLMAP_MODELS)}")
    count = COLMAP_MODELS[COLMAP_MODEL_IDS[model]][1] - (4 if model in ("PINHOLE", "OPENCV") else 3)
    distortion = tuple(float(v) for v in (distortion if distortion is not None else (0.0,) * count))
    if len(distortion) != count:
        raise ValueError(f"COLMAP model {model} takes {count} distortion coefficients, not {len(distortion)}")
    rows, ids, camera_ids = [], {}, []
    for camera in cameras:
        if model in ("PINHOLE", "OPENCV"):
            params = (float(camera.fx), float(camera.fy), float(camera.cx), float(camera.cy)) + distortion
        else:
            if camera.fx != camera.fy:
                raise ValueError(f"COLMAP model {model} has one focal length, but camera {camera.image_name!r} "
                                 f"has fx={float(camera.fx)} != fy={float(camera.fy)}")
            params = (float(camera.fx), float(camera.cx), float(camera.cy)) + distortion
        key = (int(camera.width), int(camera.height), params)
        if key not in ids:
            ids[key] = len(ids) + 1
            rows.append((ids[key], model, key[0], key[1], params))
        camera_ids.append(ids[key])
    rotations, translations = stack_cameras(cameras)
    quaternions = rotations_to_quaternions(rotations) if len(cameras) else np.zeros((0, 4))
    return rows, camera_ids, quaternions, translations


def write_colmap_text(
    folder: str | os.PathLike,
    cameras: collections.abc.Sequence[Camera],
    model: str = "PINHOLE",
    distortion: collections.abc.Sequence[float] | None = None,  # e.g. [k1] (SIMPLE_RADIAL), default zeros
) -> None:
    """Write cameras.txt, images.txt (empty 2D point lines) and an empty points3D.txt into ``folder``.

    ``model``: a supported COLMAP model (the single-focal ones need fx == fy); ``distortion``: its coefficients
    (default zeros). Identical intrinsics share one camera id."""
    folder = os.fspath(folder)
    rows, camera_ids, quaternions, translations = _colmap_records(cameras, model, distortion)
    lines = ["# Camera list with one line of data per camera:",
             "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
             f"# Number of cameras: {len(rows)}"]
    lines += [" ".join([str(camera_id), name, str(w), str(h)] + [repr(p) for p in params])
              for camera_id, name, w, h, params in rows]
    cameras_text = "\n".join(lines) + "\n"
    lines = ["# Image list with two lines of data per image:",
             "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
             "#   POINTS2D[] as (X, Y, POINT3D_ID)",
             f"# Number of images: {len(cameras)}, mean observations per image: 0"]
    for i, camera in enumerate(cameras):
        values = [repr(float(v)) for v in quaternions[i]] + [repr(float(v)) for v in translations[i]]
        lines.append(" ".join([str(i + 1)] + values + [str(camera_ids[i]), camera.image_name]))
        lines.append("")
    images_text = "\n".join(lines) + "\n"
    points_text = "# 3D point list with one line of data per point:\n" \
                  "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n" \
                  "# Number of points: 0, mean track length: 0\n"
    write_bytes(os.path.join(folder, "cameras.txt"), cameras_text.encode("utf-8", errors="surrogateescape"))
    write_bytes(os.path.join(folder, "images.txt"), images_text.encode("utf-8", errors="surrogateescape"))
    write_bytes(os.path.join(folder, "points3D.txt"), points_text.encode("utf-8"))


def write_colmap_binary(
    folder: str | os.PathLike,
    cameras: collections.abc.Sequence[Camera],
    model: str = "PINHOLE",
    distortion: collections.abc.Sequence[float] | None = None,  # the model's coefficients
) -> None:
    """Write cameras.bin, images.bin (no 2D points) and an empty points3D.bin into ``folder`` (see
    :func:`write_colmap_text` for ``model`` and ``distortion``)."""
    folder = os.fspath(folder)
    rows, camera_ids, quaternions, translations = _colmap_records(cameras, model, distortion)
    parts = [struct.pack("<Q", len(rows))]
    for camera_id, name, w, h, params in rows:
        parts.append(struct.pack(f"<iiQQ{len(params)}d", camera_id, COLMAP_MODEL_IDS[name], w, h, *params))
    cameras_bytes = b"".join(parts)
    parts = [struct.pack("<Q", len(cameras))]
    for i, camera in enumerate(cameras):
        parts.append(struct.pack("<i7di", i + 1, *(float(v) for v in quaternions[i]),
                                 *(float(v) for v in translations[i]), camera_ids[i]))
        parts.append(camera.image_name.encode("utf-8", errors="surrogateescape") + b"\x00")
        parts.append(struct.pack("<Q", 0))
    images_bytes = b"".join(parts)
    write_bytes(os.path.join(folder, "cameras.bin"), cameras_bytes)
    write_bytes(os.path.join(folder, "images.bin"), images_bytes)
    write_bytes(os.path.join(folder, "points3D.bin"), struct.pack("<Q", 0))
