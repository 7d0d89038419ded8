"""nerfstudio / Blender synthetic ``transforms.json``: camera-to-world matrices in OpenGL axes, intrinsics per
file or per frame."""

from __future__ import annotations

import collections.abc
import json
import math
import os
import warnings

import numpy as np

from ..cameras import OPENGL_TO_OPENCV, Camera, rigid_inverse
from ..errors import BadInputError
from .camera_checks import (check_finite, check_intrinsics, check_rotations, make_cameras, read_integer, read_json,
                            named_entry, read_matrix, read_number, require_key, stack_cameras, write_bytes)


# Perspective camera models nerfstudio may name in transforms.json ("camera_model").
SUPPORTED_TRANSFORMS_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "PERSPECTIVE")
TRANSFORMS_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def load_transforms_json(
    path: str | os.PathLike,
    data: dict | None = None,  # the parsed JSON: an object with "frames"
) -> list[Camera]:  # sorted by image name
    """Load a nerfstudio / Blender synthetic transforms.json (``data``: parsed content, read when None)."""
    path = os.fspath(path)
    if data is None:
        data = read_json(path)
    if not isinstance(data, dict) or "frames" not in data:
        raise BadInputError(f"{path}: a transforms.json must be an object with 'frames'")
    frames = data["frames"]
    if not isinstance(frames, list):
        raise BadInputError(f"{path}: 'frames' must be a list")
    if not frames:
        raise BadInputError(f"{path}: holds no frames")
    folder = os.path.dirname(os.path.abspath(path))
    _check_transforms_model(path, "top level", data)
    n = len(frames)
    names, widths, heights, labels = [], [], [], []
    fx, fy, cx, cy = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    matrices = np.empty((n, 3, 4))
    distorted = 0
    for i, frame in enumerate(frames):
        file_path, label = named_entry(path, "frame", i, frame, "file_path")
        labels.append(label)
        _check_transforms_model(path, label, frame)
        name = file_path
        while name.startswith("./"):
            name = name[2:]
        names.append(name)

        def get(key, frame=frame):
            return frame[key] if key in frame else data.get(key)

        w, h = get("w"), get("h")
        if w is None or h is None:
            size = _image_size(folder, file_path, path, label)
            if size is None:
                raise BadInputError(f"{path}: {label}: no 'w'/'h' and the image file was not found to read its "
                                    f"size")
            w = size[0] if w is None else w
            h = size[1] if h is None else h
        widths.append(read_integer(path, label, w, "w"))
        heights.append(read_integer(path, label, h, "h"))
        fx[i], fy[i] = _transforms_focal(path, label, frame, data, widths[-1], heights[-1])
        cx[i] = widths[-1] / 2.0 if get("cx") is None else read_number(path, label, get("cx"), "cx")
        cy[i] = heights[-1] / 2.0 if get("cy") is None else read_number(path, label, get("cy"), "cy")
        matrix = read_matrix(path, label, require_key(path, label, frame, "transform_matrix"), "transform_matrix",
                         [(4, 4), (3, 4)])
        matrices[i] = matrix[:3]
        coefficients = [get(key) for key in TRANSFORMS_DISTORTION_KEYS]
        coefficients = [read_number(path, label, v, k) for k, v in zip(TRANSFORMS_DISTORTION_KEYS, coefficients, strict=True)
                        if v is not None]
        distorted += any(c != 0 for c in coefficients)
    widths, heights = np.array(widths), np.array(heights)
    check_intrinsics(path, fx, fy, cx, cy, widths, heights, labels)
    check_finite(path, matrices[:, :, 3], labels, "camera position in 'transform_matrix'")
    rotations = check_rotations(path, matrices[:, :, :3], labels, what="rotation in 'transform_matrix'")
    # OpenGL camera axes (y up, z backward) -> OpenCV (y down, z forward): flip the camera's y and z axes.
    w2c = rigid_inverse(rotations @ OPENGL_TO_OPENCV, matrices[:, :, 3])
    if distorted:
        warnings.warn(f"{path}: lens distortion (k1..k4, p1, p2) ignored for {distorted} frame(s): images are "
                      f"treated as undistorted pinhole images", stacklevel=3)
    return make_cameras(w2c, fx, fy, cx, cy, widths, heights, names)


def _check_transforms_model(path, label, entry):
    model = entry.get("camera_model")
    if model is not None and str(model).upper() not in SUPPORTED_TRANSFORMS_MODELS:
        raise BadInputError(f"{path}: {label}: unsupported camera_model {model!r} (supported: "
                            f"{', '.join(SUPPORTED_TRANSFORMS_MODELS)})")


def _transforms_focal(path, label, frame, top, width, height):
    """(fx, fy): fl_x / fl_y or camera_angle_x / camera_angle_y, a frame's own keys before the top level's."""

    def focal(fl_key, angle_key, size):
        for entry in (frame, top):
            if entry.get(fl_key) is not None:
                return read_number(path, label, entry[fl_key], fl_key)
            if entry.get(angle_key) is not None:
                angle = read_number(path, label, entry[angle_key], angle_key)
                if not 0 < angle < math.pi:
                    raise BadInputError(f"{path}: {label}: '{angle_key}' must be in (0, pi) radians, not {angle}")
                return 0.5 * size / math.tan(0.5 * angle)
        return None

    fx = focal("fl_x", "camera_angle_x", width)
    fy = focal("fl_y", "camera_angle_y", height)
    if fx is None and fy is None:
        raise BadInputError(f"{path}: {label}: missing key 'fl_x' or 'camera_angle_x' (no focal length)")
    return (fy if fx is None else fx), (fx if fy is None else fy)


IMAGE_EXTENSIONS = ("", ".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")


def _image_size(folder, file_path, path="transforms.json", label="frame"):
    """(width, height) of the image ``file_path`` (relative to ``folder``; Blender synthetic paths lack the
    extension), or None when no such image can be read; one that Pillow refuses to open for its size (a
    decompression bomb, e.g. 200 Mpx) is refused naming it."""
    base = file_path if os.path.isabs(file_path) else os.path.join(folder, file_path)
    for ext in IMAGE_EXTENSIONS:
        candidate = base + ext
        if os.path.isfile(candidate):
            try:
                from PIL import Image
            except ImportError:  # pragma: no cover - Pillow is a dependency
                return None
            try:
                with Image.open(candidate) as image:
                    return image.size
            except Image.DecompressionBombError as error:
                raise BadInputError(f"{path}: {label}: no 'w'/'h', and its image {candidate} is too large to "
                                    f"read ({error})") from None
            except OSError:
                continue
    return None


def write_transforms_json(path: str | os.PathLike, cameras: collections.abc.Sequence[Camera]) -> None:
    """Write a nerfstudio transforms.json: intrinsics shared by all cameras at the top level, others per frame;
    ``file_path`` is the image name; ``transform_matrix`` camera-to-world in OpenGL axes."""
    rotations, translations = stack_cameras(cameras)
    c2w = rigid_inverse(rotations, translations)
    c2w[:, :3, :3] = c2w[:, :3, :3] @ OPENGL_TO_OPENCV  # OpenCV camera axes -> OpenGL (self-inverse flip)
    keys = {"fl_x": "fx", "fl_y": "fy", "cx": "cx", "cy": "cy", "w": "width", "h": "height"}

    def value(camera, attribute):
        v = getattr(camera, attribute)
        return int(v) if attribute in ("width", "height") else float(v)

    shared = {key: value(cameras[0], attribute) for key, attribute in keys.items()
              if cameras and all(value(c, attribute) == value(cameras[0], attribute) for c in cameras)}
    meta = {"camera_model": "OPENCV", **shared, "frames": []}
    for i, camera in enumerate(cameras):
        frame = {"file_path": camera.image_name}
        frame.update({key: value(camera, attribute) for key, attribute in keys.items() if key not in shared})
        frame["transform_matrix"] = [[float(v) for v in row] for row in c2w[i]]
        meta["frames"].append(frame)
    write_bytes(path, json.dumps(meta, indent=1).encode("utf-8"))
