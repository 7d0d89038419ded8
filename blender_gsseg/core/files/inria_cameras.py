"""INRIA ``cameras.json``: a list of ``{id, img_name, width, height, position, rotation, fx, fy}``; ``position``
is the camera centre in world space, ``rotation`` the camera-to-world 3x3 matrix by rows, OpenCV axes; the
principal point is the image centre."""

from __future__ import annotations

import collections.abc
import json
import os
import warnings

import numpy as np

from ..cameras import Camera, rigid_inverse
from ..errors import BadInputError
from .camera_checks import (check_finite, check_intrinsics, check_rotations, make_cameras, read_integer, read_json,
                            named_entry, read_matrix, read_number, require_key, stack_cameras, write_bytes)


def load_cameras_json(
    path: str | os.PathLike,
    data: list | None = None,  # the parsed JSON: a list of camera objects
) -> list[Camera]:  # sorted by image name
    """Load an INRIA cameras.json (``data``: its parsed content, read from ``path`` when None)."""
    path = os.fspath(path)
    if data is None:
        data = read_json(path)
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
        name, label = named_entry(path, "camera", i, entry, "img_name")
        labels.append(label)
        names.append(name)
        widths.append(read_integer(path, label, require_key(path, label, entry, "width"), "width"))
        heights.append(read_integer(path, label, require_key(path, label, entry, "height"), "height"))
        fx[i] = read_number(path, label, require_key(path, label, entry, "fx"), "fx")
        fy[i] = read_number(path, label, require_key(path, label, entry, "fy"), "fy")
        positions[i] = read_matrix(path, label, require_key(path, label, entry, "position"), "position", [(3,)])
        rotations[i] = read_matrix(path, label, require_key(path, label, entry, "rotation"), "rotation", [(3, 3)])
    widths, heights = np.array(widths), np.array(heights)
    cx, cy = widths / 2.0, heights / 2.0
    check_intrinsics(path, fx, fy, cx, cy, widths, heights, labels)
    check_finite(path, positions, labels, "position")
    c2w_rotations = check_rotations(path, rotations, labels)
    w2c = rigid_inverse(c2w_rotations, positions)
    return make_cameras(w2c, fx, fy, cx, cy, widths, heights, names)


def write_cameras_json(path: str | os.PathLike, cameras: collections.abc.Sequence[Camera]) -> None:
    """Write an INRIA cameras.json. Its principal point is always the image centre: an off-centre one is lost,
    with a warning."""
    rotations, translations = stack_cameras(cameras)
    c2w = rigid_inverse(rotations, translations)
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
    write_bytes(path, json.dumps(entries, indent=1).encode("utf-8"))
