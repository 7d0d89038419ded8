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

from __future__ import annotations

import os


from ..cameras import Camera
from ..errors import BadInputError
from .camera_checks import read_json
from .colmap import colmap_files, load_colmap
from .inria_cameras import load_cameras_json
from .nerf_transforms import load_transforms_json


def load_cameras(path: str | os.PathLike) -> list[Camera]:
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


def camera_source_in(folder: str | os.PathLike) -> str | None:
    """The camera file or COLMAP folder that :func:`load_cameras` reads for ``folder`` (COLMAP files directly,
    ``cameras.json``, ``transforms.json``, ``sparse/0``, ``sparse``, in that order), or None when it holds none."""
    folder = os.fspath(folder)
    if colmap_files(folder):
        return folder
    for name in ("cameras.json", "transforms.json"):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
    for sub in (os.path.join("sparse", "0"), "sparse"):
        candidate = os.path.join(folder, sub)
        if os.path.isdir(candidate) and colmap_files(candidate):
            return candidate
    return None


def _load_folder(folder):
    source = camera_source_in(folder)
    if source is not None:
        return load_colmap(source) if os.path.isdir(source) else _load_json_file(source)
    partial = [name for name in ("cameras.bin", "images.bin", "cameras.txt", "images.txt")
               if os.path.isfile(os.path.join(folder, name))]
    if partial:
        raise BadInputError(f"{folder}: incomplete COLMAP model: only {', '.join(partial)} (a model needs "
                            f"cameras.bin + images.bin or cameras.txt + images.txt)")
    raise BadInputError(f"{folder}: no cameras found: expected cameras.json, transforms.json, a COLMAP model "
                        f"(cameras.bin/images.bin or cameras.txt/images.txt), sparse/0 or sparse")


def _load_json_file(path):
    data = read_json(path)
    if isinstance(data, list):
        return load_cameras_json(path, data)
    if isinstance(data, dict) and "frames" in data:
        return load_transforms_json(path, data)
    raise BadInputError(f"{path}: neither an INRIA cameras.json (a list of cameras) nor a transforms.json "
                        f"(an object with 'frames')")
