"""Checks and helpers shared by the camera file readers and writers: one clear error naming the file and the
camera for any bad value."""

import json
import math

import numpy as np

from ..cameras import Camera
from ..errors import BadInputError
from .commit import output_file


# A 3x3 matrix whose singular values all lie within this of 1 is taken as a rotation (and re-orthonormalised).
ROTATION_TOLERANCE = 1e-3
# An image side past this is a damaged file, not a camera (sizes below it meet the memory budget instead).
MAX_IMAGE_SIDE = 1 << 24


def plain(value) -> str:
    """A value as a message shows it: numpy scalars as plain numbers (0.0, not np.float64(0.0))."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def check_side(path, label, name, value) -> int:
    """An image width or height: a positive integer up to MAX_IMAGE_SIDE."""
    if isinstance(value, np.generic):
        value = value.item()
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and value == int(value) and value > 0):
        raise BadInputError(f"{path}: {label}: {name} must be a positive integer, not {plain(value)}")
    if value > MAX_IMAGE_SIDE:
        raise BadInputError(f"{path}: {label}: {name} {int(value)} is past any image ({MAX_IMAGE_SIDE} pixels at "
                            f"most: damaged?)")
    return int(value)


def check_rotations(path, matrices, labels, what="rotation"):
    """Validate [N, 3, 3] matrices as rotations and return them re-orthonormalised; BadInputError otherwise.

    Non-finite values, singular matrices, reflections and matrices that are not rotations within
    ROTATION_TOLERANCE (scaled or sheared) are refused, naming the first offending camera.
    """
    matrices = np.asarray(matrices, dtype=np.float64)
    if matrices.shape[0] == 0:
        return matrices
    finite = np.isfinite(matrices).all(axis=(1, 2))
    if not finite.all():
        index = int(np.flatnonzero(~finite)[0])
        raise BadInputError(f"{path}: {labels[index]}: non-finite values in the {what}")
    u, s, vt = np.linalg.svd(matrices)
    singular = s[:, 2] <= 1e-6 * np.maximum(s[:, 0], 1e-300)
    if singular.any():
        index = int(np.flatnonzero(singular)[0])
        raise BadInputError(f"{path}: {labels[index]}: singular {what} (singular values {format_values(s[index])})")
    not_rotation = (np.abs(s - 1.0) > ROTATION_TOLERANCE).any(axis=1)
    if not_rotation.any():
        index = int(np.flatnonzero(not_rotation)[0])
        raise BadInputError(f"{path}: {labels[index]}: the {what} is not a rotation (scaled or sheared; "
                            f"singular values {format_values(s[index])})")
    rotations = u @ vt
    reflection = np.linalg.det(rotations) < 0
    if reflection.any():
        index = int(np.flatnonzero(reflection)[0])
        raise BadInputError(f"{path}: {labels[index]}: the {what} is a reflection (determinant < 0), "
                            f"not a rotation")
    return rotations


def check_finite(path, values, labels, what):
    values = np.asarray(values, dtype=np.float64)
    if values.size:
        finite = np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
        if not finite.all():
            index = int(np.flatnonzero(~finite)[0])
            raise BadInputError(f"{path}: {labels[index]}: non-finite {what}")
    return values


def check_intrinsics(path, fx, fy, cx, cy, widths, heights, labels):
    """Vectorised checks on intrinsics: finite, focal lengths and sizes positive."""
    fx, fy, cx, cy = (np.asarray(a, dtype=np.float64) for a in (fx, fy, cx, cy))
    for name, values in (("fx", fx), ("fy", fy), ("cx", cx), ("cy", cy)):
        bad = ~np.isfinite(values)
        if name in ("fx", "fy"):
            bad |= ~(values > 0)
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise BadInputError(f"{path}: {labels[index]}: {name} must be a finite"
                                f"{' positive' if name in ('fx', 'fy') else ''} number, not {plain(values[index])}")
    for name, values in (("width", widths), ("height", heights)):
        for index, value in enumerate(values):
            check_side(path, labels[index], name, value)


def format_values(values):
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def make_cameras(w2c, fx, fy, cx, cy, widths, heights, names):
    cameras = [
        Camera(w2c[i], float(fx[i]), float(fy[i]), float(cx[i]), float(cy[i]), int(widths[i]), int(heights[i]),
               str(names[i]))
        for i in range(len(names))
    ]
    cameras.sort(key=lambda camera: camera.image_name)
    return cameras


def read_number(path, label, value, key):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInputError(f"{path}: {label}: '{key}' must be a number, not {plain(value)}")
    return float(value)


def read_integer(path, label, value, key):
    number = read_number(path, label, value, key)
    if not math.isfinite(number) or number != int(number) or number <= 0:
        raise BadInputError(f"{path}: {label}: '{key}' must be a positive integer, not {plain(value)}")
    if key in ("w", "h", "width", "height"):
        check_side(path, label, f"'{key}'", number)
    return int(number)


def read_matrix(path, label, value, key, shapes):
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadInputError(f"{path}: {label}: '{key}' must be a matrix of numbers") from None
    if array.shape not in shapes or any(isinstance(v, (bool, str)) for v in np.ravel(np.array(value, dtype=object))):
        expected = " or ".join("x".join(str(d) for d in shape) for shape in shapes)
        raise BadInputError(f"{path}: {label}: '{key}' must be {expected} numbers, not shape {array.shape}")
    return array


def require_key(path, label, entry, key):
    if key not in entry:
        raise BadInputError(f"{path}: {label}: missing key '{key}'")
    return entry[key]


def read_json(path):
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8-sig"))
    except OSError as error:
        raise BadInputError(f"{path}: cannot read: {error.strerror or error}") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise BadInputError(f"{path}: not valid JSON ({error})") from None


def stack_cameras(cameras):
    w2c = np.array([np.asarray(c.world_to_camera, dtype=np.float64) for c in cameras]).reshape(-1, 4, 4)
    return w2c[:, :3, :3], w2c[:, :3, 3]


def write_bytes(path, data):
    with output_file(path, "wb") as handle:
        handle.write(data)


def named_entry(path, kind, index, entry, key):
    """(name, label) of entry ``index`` of a camera file: an object whose ``key`` holds its image name; the
    label ('camera 3 ('IMG_3.jpg')') names it in errors."""
    label = f"{kind} {index}"
    if not isinstance(entry, dict):
        raise BadInputError(f"{path}: {label}: not an object")
    name = require_key(path, label, entry, key)
    if not isinstance(name, str):
        raise BadInputError(f"{path}: {label}: '{key}' must be a string, not {name!r}")
    return name, f"{kind} {index} ({name!r})"
