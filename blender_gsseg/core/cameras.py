"""Cameras: one type (OpenCV axes, world-to-camera) and loaders for cameras.json, COLMAP and transforms.json.

:func:`load_cameras` reads

* an INRIA ``cameras.json`` (a list of ``{id, img_name, width, height, position, rotation, fx, fy}``; ``position``
  is the camera centre in world space, ``rotation`` the camera-to-world 3x3 matrix by rows, OpenCV axes; the
  principal point is the image centre),
* a COLMAP sparse model (``cameras.bin`` + ``images.bin`` or ``cameras.txt`` + ``images.txt``; models PINHOLE,
  SIMPLE_PINHOLE, SIMPLE_RADIAL, RADIAL and OPENCV, distortion ignored with a warning),
* a nerfstudio / Blender synthetic ``transforms.json`` (camera-to-world matrices in OpenGL axes).

A folder is accepted when it holds one of those (COLMAP files directly, ``cameras.json``, ``transforms.json``,
``sparse/0`` or ``sparse``, in that order of preference). Any ``.json`` file is recognised by its content, so
``transforms_train.json`` works. Cameras come back sorted by image name.

All image coordinates follow COLMAP: continuous, the top-left pixel covers [0, 1) x [0, 1). nerfstudio uses the
same convention; INRIA's cameras.json and Blender synthetic files have the principal point at the image centre.
The writers are the exact inverses of the loaders and write atomically.
"""

import dataclasses
import json
import math
import mmap
import os
import struct
import warnings

import numpy as np

from .errors import BadInputError
from .fileio import atomic_output


@dataclasses.dataclass
class Camera:
    """A pinhole camera. ``world_to_camera`` is 4x4 in OpenCV axes (x right, y down, z forward).

    Image coordinates are continuous with the top-left pixel covering [0, 1) x [0, 1), so its centre is
    (0.5, 0.5) (COLMAP's convention): a point projects to ``u = fx * x / z + cx``.
    """

    world_to_camera: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    image_name: str

    def scaled(self, scale):
        """This camera at W' = round(S*W), H' = round(S*H), intrinsics scaled by W'/W and H'/H."""
        width, height = int(round(scale * self.width)), int(round(scale * self.height))
        sx, sy = width / self.width, height / self.height
        return dataclasses.replace(self, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy,
                                   width=width, height=height)

    def project(self, points):
        """Project world points [N, 3] -> (uv [N, 2] in continuous pixel coordinates, depth [N])."""
        points = np.asarray(points, dtype=np.float64)
        cam = points @ self.world_to_camera[:3, :3].T + self.world_to_camera[:3, 3]
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack([self.fx * cam[:, 0] / z + self.cx, self.fy * cam[:, 1] / z + self.cy], axis=1)
        return uv, z

    @property
    def camera_to_world(self):
        return np.linalg.inv(self.world_to_camera)

    @property
    def centre(self):
        """The camera centre in world coordinates, [3]."""
        rotation = self.world_to_camera[:3, :3]
        return -rotation.T @ self.world_to_camera[:3, 3]

    @classmethod
    def from_camera_to_world(cls, camera_to_world, fx, fy, cx, cy, width, height, image_name):
        """A camera from a camera-to-world matrix (3x4 or 4x4, OpenCV axes, rigid)."""
        c2w = np.asarray(camera_to_world, dtype=np.float64)
        w2c = _rigid_inverse(c2w[None, :3, :3], c2w[None, :3, 3])[0]
        return cls(w2c, float(fx), float(fy), float(cx), float(cy), int(width), int(height), str(image_name))


def look_at(eye, target, up=(0.0, 0.0, 1.0)):
    """World-to-camera 4x4 (OpenCV axes) for a camera at ``eye`` looking at ``target``."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    w2c = np.eye(4)
    w2c[:3, :3] = rot
    w2c[:3, 3] = -rot @ eye
    return w2c


def ring_cameras(count, width=160, height=120, radius=6.0, height_above=3.0, fov_x_deg=60.0, prefix="view"):
    """Cameras on a circle around the origin, looking at the scene centre."""
    fx = 0.5 * width / np.tan(np.radians(fov_x_deg) / 2)
    cameras = []
    for k in range(count):
        angle = 2 * np.pi * (k + 0.37) / count
        eye = (radius * np.cos(angle), radius * np.sin(angle), height_above + 0.6 * np.sin(3 * angle))
        cameras.append(Camera(look_at(eye, (0, 0, 0.6)), fx, fx, width / 2, height / 2, width, height,
                              f"{prefix}_{k:03d}"))
    return cameras


# ---------------------------------------------------------------------------------------------------------------
# Maths helpers (vectorised over cameras)

# COLMAP camera models: id -> (name, number of parameters). Only the first five are supported.
COLMAP_MODELS = {
    0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5), 4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5), 8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12), 11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}
COLMAP_MODEL_IDS = {name: model_id for model_id, (name, _) in COLMAP_MODELS.items()}
SUPPORTED_COLMAP_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
# Perspective camera models nerfstudio may name in transforms.json ("camera_model").
SUPPORTED_TRANSFORMS_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "PERSPECTIVE")
TRANSFORMS_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
# A 3x3 matrix whose singular values all lie within this of 1 is taken as a rotation (and re-orthonormalised).
ROTATION_TOLERANCE = 1e-3
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])


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


def quaternions_to_rotations(quaternions):
    """Unit quaternions [N, 4] (w, x, y, z) -> rotation matrices [N, 3, 3] (COLMAP's qvec2rotmat)."""
    q = np.asarray(quaternions, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], axis=-1).reshape(q.shape[:-1] + (3, 3))


def rotations_to_quaternions(rotations):
    """Rotation matrices [N, 3, 3] -> unit quaternions [N, 4] (w, x, y, z) with w >= 0 (COLMAP's rotmat2qvec)."""
    r = np.asarray(rotations, dtype=np.float64)
    # COLMAP's names: R.flat = Rxx, Ryx, Rzx, Rxy, Ryy, Rzy, Rxz, Ryz, Rzz (so Ryx is row 0, column 1).
    rxx, ryx, rzx = r[..., 0, 0], r[..., 0, 1], r[..., 0, 2]
    rxy, ryy, rzy = r[..., 1, 0], r[..., 1, 1], r[..., 1, 2]
    rxz, ryz, rzz = r[..., 2, 0], r[..., 2, 1], r[..., 2, 2]
    zero = np.zeros_like(rxx)
    # Bar-Itzhack: the quaternion is the eigenvector of the largest eigenvalue (lower triangle used by eigh).
    k = np.stack([
        rxx - ryy - rzz, zero, zero, zero,
        ryx + rxy, ryy - rxx - rzz, zero, zero,
        rzx + rxz, rzy + ryz, rzz - rxx - ryy, zero,
        ryz - rzy, rzx - rxz, rxy - ryx, rxx + ryy + rzz,
    ], axis=-1).reshape(r.shape[:-2] + (4, 4)) / 3.0
    _, vectors = np.linalg.eigh(k)
    q = vectors[..., [3, 0, 1, 2], -1]
    q = np.where(q[..., :1] < 0, -q, q)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _rigid_inverse(rotations, translations):
    """[N, 3, 3] rotations and [N, 3] translations of a rigid map -> [N, 4, 4] matrices of its inverse."""
    n = rotations.shape[0]
    out = np.zeros((n, 4, 4))
    rt = np.swapaxes(rotations, 1, 2)
    out[:, :3, :3] = rt
    out[:, :3, 3] = -np.einsum("nij,nj->ni", rt, translations)
    out[:, 3, 3] = 1.0
    return out


def _world_to_camera(rotations, translations):
    """[N, 3, 3] world-to-camera rotations and [N, 3] translations -> [N, 4, 4]."""
    n = rotations.shape[0]
    out = np.zeros((n, 4, 4))
    out[:, :3, :3] = rotations
    out[:, :3, 3] = translations
    out[:, 3, 3] = 1.0
    return out


def _check_rotations(path, matrices, labels, what="rotation"):
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
        raise BadInputError(f"{path}: {labels[index]}: singular {what} (singular values {_fmt(s[index])})")
    not_rotation = (np.abs(s - 1.0) > ROTATION_TOLERANCE).any(axis=1)
    if not_rotation.any():
        index = int(np.flatnonzero(not_rotation)[0])
        raise BadInputError(f"{path}: {labels[index]}: the {what} is not a rotation (scaled or sheared; "
                            f"singular values {_fmt(s[index])})")
    rotations = u @ vt
    reflection = np.linalg.det(rotations) < 0
    if reflection.any():
        index = int(np.flatnonzero(reflection)[0])
        raise BadInputError(f"{path}: {labels[index]}: the {what} is a reflection (determinant < 0), "
                            f"not a rotation")
    return rotations


def _check_finite(path, values, labels, what):
    values = np.asarray(values, dtype=np.float64)
    if values.size:
        finite = np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
        if not finite.all():
            index = int(np.flatnonzero(~finite)[0])
            raise BadInputError(f"{path}: {labels[index]}: non-finite {what}")
    return values


def _check_intrinsics(path, fx, fy, cx, cy, widths, heights, labels):
    """Vectorised checks on intrinsics: finite, focal lengths and sizes positive."""
    fx, fy, cx, cy = (np.asarray(a, dtype=np.float64) for a in (fx, fy, cx, cy))
    for name, values in (("fx", fx), ("fy", fy), ("cx", cx), ("cy", cy)):
        bad = ~np.isfinite(values)
        if name in ("fx", "fy"):
            bad |= ~(values > 0)
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise BadInputError(f"{path}: {labels[index]}: {name} must be a finite"
                                f"{' positive' if name in ('fx', 'fy') else ''} number, not {values[index]!r}")
    for name, values in (("width", widths), ("height", heights)):
        for index, value in enumerate(values):
            if not value > 0:
                raise BadInputError(f"{path}: {labels[index]}: {name} must be a positive integer, not {value!r}")


def _fmt(values):
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def _make_cameras(w2c, fx, fy, cx, cy, widths, heights, names):
    cameras = [
        Camera(w2c[i], float(fx[i]), float(fy[i]), float(cx[i]), float(cy[i]), int(widths[i]), int(heights[i]),
               str(names[i]))
        for i in range(len(names))
    ]
    cameras.sort(key=lambda camera: camera.image_name)
    return cameras


# ---------------------------------------------------------------------------------------------------------------
# JSON value helpers

def _number(path, label, value, key):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInputError(f"{path}: {label}: '{key}' must be a number, not {value!r}")
    return float(value)


def _integer(path, label, value, key):
    number = _number(path, label, value, key)
    if not math.isfinite(number) or number != int(number) or number <= 0:
        raise BadInputError(f"{path}: {label}: '{key}' must be a positive integer, not {value!r}")
    return int(number)


def _matrix(path, label, value, key, shapes):
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadInputError(f"{path}: {label}: '{key}' must be a matrix of numbers") from None
    if array.shape not in shapes or any(isinstance(v, (bool, str)) for v in np.ravel(np.array(value, dtype=object))):
        expected = " or ".join("x".join(str(d) for d in shape) for shape in shapes)
        raise BadInputError(f"{path}: {label}: '{key}' must be {expected} numbers, not shape {array.shape}")
    return array


def _require(path, label, entry, key):
    if key not in entry:
        raise BadInputError(f"{path}: {label}: missing key '{key}'")
    return entry[key]


def _read_json(path):
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8-sig"))
    except OSError as error:
        raise BadInputError(f"{path}: cannot read: {error.strerror or error}") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise BadInputError(f"{path}: not valid JSON ({error})") from None


# ---------------------------------------------------------------------------------------------------------------
# Loading

def load_cameras(path):
    """Load cameras from a cameras.json, a COLMAP sparse model or a transforms.json (see the module docstring).

    Returns a list of :class:`Camera` sorted by image name. Raises BadInputError on anything unusable.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return _load_folder(path)
    if not os.path.isfile(path):
        raise BadInputError(f"{path}: no such file or folder")
    base = os.path.basename(path)
    if base.lower() in ("cameras.bin", "images.bin", "points3d.bin", "cameras.txt", "images.txt", "points3d.txt"):
        return load_colmap(os.path.dirname(os.path.abspath(path)))
    if base.lower().endswith(".json"):
        return _load_json_file(path)
    raise BadInputError(f"{path}: unknown camera file: expected cameras.json, transforms.json or a COLMAP "
                        f"sparse model (cameras.bin/images.bin or cameras.txt/images.txt)")


def _colmap_files(folder):
    """The COLMAP extension ('.bin' or '.txt') of a complete model in ``folder``, or None when there is none."""
    for ext in (".bin", ".txt"):
        if os.path.isfile(os.path.join(folder, "cameras" + ext)) and os.path.isfile(os.path.join(folder, "images" + ext)):
            return ext
    return None


def _load_folder(folder):
    if _colmap_files(folder):
        return load_colmap(folder)
    for name in ("cameras.json", "transforms.json"):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return _load_json_file(candidate)
    for sub in (os.path.join("sparse", "0"), "sparse"):
        candidate = os.path.join(folder, sub)
        if os.path.isdir(candidate) and _colmap_files(candidate):
            return load_colmap(candidate)
    partial = [name for name in ("cameras.bin", "images.bin", "cameras.txt", "images.txt")
               if os.path.isfile(os.path.join(folder, name))]
    if partial:
        raise BadInputError(f"{folder}: incomplete COLMAP model: only {', '.join(partial)} (a model needs "
                            f"cameras.bin + images.bin or cameras.txt + images.txt)")
    raise BadInputError(f"{folder}: no cameras found: expected cameras.json, transforms.json, a COLMAP model "
                        f"(cameras.bin/images.bin or cameras.txt/images.txt), sparse/0 or sparse")


def _load_json_file(path):
    data = _read_json(path)
    if isinstance(data, list):
        return load_cameras_json(path, data)
    if isinstance(data, dict) and "frames" in data:
        return load_transforms_json(path, data)
    raise BadInputError(f"{path}: neither an INRIA cameras.json (a list of cameras) nor a transforms.json "
                        f"(an object with 'frames')")


def load_cameras_json(path, data=None):
    """Load an INRIA cameras.json (``data``: its parsed content, read from ``path`` when None)."""
    path = os.fspath(path)
    if data is None:
        data = _read_json(path)
    if not isinstance(data, list):
        raise BadInputError(f"{path}: an INRIA cameras.json must be a list of cameras")
    if not data:
        raise BadInputError(f"{path}: holds no cameras")
    n = len(data)
    names, widths, heights = [], [], []
    fx, fy = np.empty(n), np.empty(n)
    positions, rotations = np.empty((n, 3)), np.empty((n, 3, 3))
    labels = []
    for i, entry in enumerate(data):
        label = f"camera {i}"
        if not isinstance(entry, dict):
            raise BadInputError(f"{path}: {label}: not an object")
        name = _require(path, label, entry, "img_name")
        if not isinstance(name, str):
            raise BadInputError(f"{path}: {label}: 'img_name' must be a string, not {name!r}")
        label = f"camera {i} ({name!r})"
        labels.append(label)
        names.append(name)
        widths.append(_integer(path, label, _require(path, label, entry, "width"), "width"))
        heights.append(_integer(path, label, _require(path, label, entry, "height"), "height"))
        fx[i] = _number(path, label, _require(path, label, entry, "fx"), "fx")
        fy[i] = _number(path, label, _require(path, label, entry, "fy"), "fy")
        positions[i] = _matrix(path, label, _require(path, label, entry, "position"), "position", [(3,)])
        rotations[i] = _matrix(path, label, _require(path, label, entry, "rotation"), "rotation", [(3, 3)])
    widths, heights = np.array(widths), np.array(heights)
    cx, cy = widths / 2.0, heights / 2.0
    _check_intrinsics(path, fx, fy, cx, cy, widths, heights, labels)
    _check_finite(path, positions, labels, "position")
    c2w_rotations = _check_rotations(path, rotations, labels)
    w2c = _rigid_inverse(c2w_rotations, positions)
    return _make_cameras(w2c, fx, fy, cx, cy, widths, heights, names)


def load_transforms_json(path, data=None):
    """Load a nerfstudio / Blender synthetic transforms.json (``data``: parsed content, read when None)."""
    path = os.fspath(path)
    if data is None:
        data = _read_json(path)
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
        label = f"frame {i}"
        if not isinstance(frame, dict):
            raise BadInputError(f"{path}: {label}: not an object")
        file_path = _require(path, label, frame, "file_path")
        if not isinstance(file_path, str):
            raise BadInputError(f"{path}: {label}: 'file_path' must be a string, not {file_path!r}")
        label = f"frame {i} ({file_path!r})"
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
            size = _image_size(folder, file_path)
            if size is None:
                raise BadInputError(f"{path}: {label}: no 'w'/'h' and the image file was not found to read its "
                                    f"size")
            w = size[0] if w is None else w
            h = size[1] if h is None else h
        widths.append(_integer(path, label, w, "w"))
        heights.append(_integer(path, label, h, "h"))
        fx[i], fy[i] = _transforms_focal(path, label, frame, data, widths[-1], heights[-1])
        cx[i] = widths[-1] / 2.0 if get("cx") is None else _number(path, label, get("cx"), "cx")
        cy[i] = heights[-1] / 2.0 if get("cy") is None else _number(path, label, get("cy"), "cy")
        matrix = _matrix(path, label, _require(path, label, frame, "transform_matrix"), "transform_matrix",
                         [(4, 4), (3, 4)])
        matrices[i] = matrix[:3]
        coefficients = [get(key) for key in TRANSFORMS_DISTORTION_KEYS]
        coefficients = [_number(path, label, v, k) for k, v in zip(TRANSFORMS_DISTORTION_KEYS, coefficients)
                        if v is not None]
        distorted += any(c != 0 for c in coefficients)
    widths, heights = np.array(widths), np.array(heights)
    _check_intrinsics(path, fx, fy, cx, cy, widths, heights, labels)
    _check_finite(path, matrices[:, :, 3], labels, "camera position in 'transform_matrix'")
    rotations = _check_rotations(path, matrices[:, :, :3], labels, what="rotation in 'transform_matrix'")
    # OpenGL camera axes (y up, z backward) -> OpenCV (y down, z forward): flip the camera's y and z axes.
    w2c = _rigid_inverse(rotations @ OPENGL_TO_OPENCV, matrices[:, :, 3])
    if distorted:
        warnings.warn(f"{path}: lens distortion (k1..k4, p1, p2) ignored for {distorted} frame(s): images are "
                      f"treated as undistorted pinhole images", stacklevel=3)
    return _make_cameras(w2c, fx, fy, cx, cy, widths, heights, names)


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
                return _number(path, label, entry[fl_key], fl_key)
            if entry.get(angle_key) is not None:
                angle = _number(path, label, entry[angle_key], angle_key)
                if not 0 < angle < math.pi:
                    raise BadInputError(f"{path}: {label}: '{angle_key}' must be in (0, pi) radians, not {angle!r}")
                return 0.5 * size / math.tan(0.5 * angle)
        return None

    fx = focal("fl_x", "camera_angle_x", width)
    fy = focal("fl_y", "camera_angle_y", height)
    if fx is None and fy is None:
        raise BadInputError(f"{path}: {label}: missing key 'fl_x' or 'camera_angle_x' (no focal length)")
    return (fy if fx is None else fx), (fx if fy is None else fy)


IMAGE_EXTENSIONS = ("", ".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")


def _image_size(folder, file_path):
    """(width, height) of the image ``file_path`` (relative to ``folder``; Blender synthetic paths lack the
    extension), or None when no such image can be read."""
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
            except OSError:
                continue
    return None


# ----- COLMAP

def load_colmap(folder):
    """Load a COLMAP sparse model folder (.bin preferred over .txt when both are there)."""
    folder = os.fspath(folder)
    ext = _colmap_files(folder)
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
    return model, int(width), int(height), tuple(float(p) for p in params)


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
    _check_intrinsics(cameras_path, fx, fy, cx, cy, widths, heights, labels)
    _check_finite(images_path, quaternions, labels, "quaternion")
    _check_finite(images_path, translations, labels, "translation")
    norms = np.linalg.norm(quaternions, axis=1)
    bad = norms < 1e-8
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise BadInputError(f"{images_path}: {labels[index]}: singular rotation (zero quaternion)")
    w2c = _world_to_camera(quaternions_to_rotations(quaternions), translations)
    if distorted:
        summary = ", ".join(f"{model} ({count} image{'s' if count > 1 else ''})"
                            for model, count in sorted(distorted.items()))
        warnings.warn(f"{cameras_path}: lens distortion of COLMAP model {summary} ignored: images are treated "
                      f"as undistorted pinhole images (undistort them with 'colmap image_undistorter' for exact "
                      f"masks)", stacklevel=3)
    return _make_cameras(w2c, fx, fy, cx, cy, widths, heights, names)


# ---------------------------------------------------------------------------------------------------------------
# Writing

def _stack(cameras):
    w2c = np.array([np.asarray(c.world_to_camera, dtype=np.float64) for c in cameras]).reshape(-1, 4, 4)
    return w2c[:, :3, :3], w2c[:, :3, 3]


def _write_bytes(path, data):
    with atomic_output(path, "wb") as handle:
        handle.write(data)


def write_cameras_json(path, cameras):
    """Write an INRIA cameras.json. Its principal point is always the image centre: an off-centre one is lost,
    with a warning."""
    rotations, translations = _stack(cameras)
    c2w = _rigid_inverse(rotations, translations)
    off_centre = [c.image_name for c in cameras
                  if abs(c.cx - c.width / 2.0) > 1e-9 * c.width or abs(c.cy - c.height / 2.0) > 1e-9 * c.height]
    if off_centre:
        warnings.warn(f"{path}: cameras.json cannot store a principal point off the image centre; lost for "
                      f"{len(off_centre)} camera(s), e.g. {off_centre[0]!r}", stacklevel=2)
    entries = [
        {"id": i, "img_name": c.image_name, "width": int(c.width), "height": int(c.height),
         "position": [float(v) for v in c2w[i, :3, 3]],
         "rotation": [[float(v) for v in row] for row in c2w[i, :3, :3]],
         "fy": float(c.fy), "fx": float(c.fx)}
        for i, c in enumerate(cameras)
    ]
    _write_bytes(path, json.dumps(entries, indent=1).encode("utf-8"))


def write_transforms_json(path, cameras):
    """Write a nerfstudio transforms.json: intrinsics shared by all cameras at the top level, others per frame;
    ``file_path`` is the image name; ``transform_matrix`` camera-to-world in OpenGL axes."""
    rotations, translations = _stack(cameras)
    c2w = _rigid_inverse(rotations, translations)
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
    _write_bytes(path, json.dumps(meta, indent=1).encode("utf-8"))


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
                                 f"has fx={camera.fx!r} != fy={camera.fy!r}")
            params = (float(camera.fx), float(camera.cx), float(camera.cy)) + distortion
        key = (int(camera.width), int(camera.height), params)
        if key not in ids:
            ids[key] = len(ids) + 1
            rows.append((ids[key], model, key[0], key[1], params))
        camera_ids.append(ids[key])
    rotations, translations = _stack(cameras)
    quaternions = rotations_to_quaternions(rotations) if len(cameras) else np.zeros((0, 4))
    return rows, camera_ids, quaternions, translations


def write_colmap_text(folder, cameras, model="PINHOLE", distortion=None):
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
    _write_bytes(os.path.join(folder, "cameras.txt"), cameras_text.encode("utf-8", errors="surrogateescape"))
    _write_bytes(os.path.join(folder, "images.txt"), images_text.encode("utf-8", errors="surrogateescape"))
    _write_bytes(os.path.join(folder, "points3D.txt"), points_text.encode("utf-8"))


def write_colmap_binary(folder, cameras, model="PINHOLE", distortion=None):
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
    _write_bytes(os.path.join(folder, "cameras.bin"), cameras_bytes)
    _write_bytes(os.path.join(folder, "images.bin"), images_bytes)
    _write_bytes(os.path.join(folder, "points3D.bin"), struct.pack("<Q", 0))
