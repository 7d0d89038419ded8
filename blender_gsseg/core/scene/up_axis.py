"""Which way is up in a splat scene, and the rotation that stands it upright (Blender's +Z up).

Every reader gives the 3DGS frame of INRIA/COLMAP-trained scenes, OpenCV's axes (x right, y down, z forward):
their up is -Y, whatever the file (``.spz`` and ``.glb`` are turned into that frame by their readers). A capture
is not always aligned with its axes, though: where the scene's cameras are known, their mean up vector (each
camera's image up, OpenCV's -y, in the world) says which way is up, as long as they agree (a rig looking down at
an object from one side of it does; cameras all around a sphere do not).

Importing, the same question is asked of a file (:func:`choose_axes`): the up and forward axes it is read with, as
Blender's importers offer them (``axis_conversion``: the file's forward axis becomes Blender's +Y, its up axis +Z).
Auto takes the up a PLY header declares (``comment gsseg_up Z``: gsseg writes it where it knows, e.g. ``gsseg
demo``'s outputs and an export in Blender's axes), else from the cameras beside the file (the camera files Import
Cameras reads), else from cameras imported before the splat, snapped to the nearest of the file's axes so that a
file already Z up is left exactly as it is, else from the convention (-Y);
the forward axis is then the one the smallest turn of that up onto +Z brings to +Y.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import os
import warnings

import numpy as np

from ..cameras import Camera
from ..errors import BadInputError
from ..gaussians import Gaussians

CONVENTION_UP = np.array([0.0, -1.0, 0.0])  # the 3DGS frame (OpenCV, COLMAP): y points down
MIN_AGREEMENT = 0.5  # the cameras' mean up must be at least this long (1: all alike) to be trusted
AXES = ("X", "Y", "Z", "-X", "-Y", "-Z")  # the names of Blender's importers' Forward / Up options
AUTO = "AUTO"
BLENDER_FORWARD, BLENDER_UP = "Y", "Z"  # where axis_conversion puts a file's forward and up axes
UP_COMMENT = "gsseg_up"  # a PLY header comment "gsseg_up Z": the file's up axis, declared by whoever wrote it


def camera_up(camera: Camera) -> np.ndarray:  # [3] unit, world
    """The world direction of ``camera``'s image up (OpenCV's -y)."""
    return -np.asarray(camera.world_to_camera, dtype=np.float64)[1, :3]


def cameras_up(cameras: collections.abc.Sequence[Camera]) -> np.ndarray | None:  # [3] unit, or None
    """The cameras' mean up vector, unit; None when there are none or they disagree (the mean of their unit up
    vectors shorter than :data:`MIN_AGREEMENT`)."""
    if not len(cameras):
        return None
    ups = np.array([camera_up(camera) / max(np.linalg.norm(camera_up(camera)), 1e-12) for camera in cameras])
    mean = ups.mean(axis=0)
    length = float(np.linalg.norm(mean))
    return mean / length if length >= MIN_AGREEMENT else None


def upright_rotation(up: np.ndarray, target: np.ndarray = (0.0, 0.0, 1.0)) -> np.ndarray:  # [3, 3]
    """The smallest rotation taking the direction ``up`` to ``target`` (default +Z); a half turn about X (or Y,
    for a target along X) when they are opposite."""
    up = np.asarray(up, dtype=np.float64)
    up = up / np.linalg.norm(up)
    target = np.asarray(target, dtype=np.float64)
    target = target / np.linalg.norm(target)
    axis = np.cross(up, target)
    sine, cosine = float(np.linalg.norm(axis)), float(np.dot(up, target))
    if sine < 1e-12:
        if cosine > 0:
            return np.eye(3)
        other = np.array([1.0, 0.0, 0.0]) if abs(target[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        axis = np.cross(target, other)
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)  # a half turn about ``axis``
    axis /= sine
    cross = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + sine * cross + (1.0 - cosine) * (cross @ cross)  # Rodrigues


def axis_vector(name: str) -> np.ndarray:  # [3]
    """The unit vector of an axis name of :data:`AXES` ('-Y': (0, -1, 0))."""
    if name not in AXES:
        raise BadInputError(f"axis {name!r}: expected one of {', '.join(AXES)}")
    vector = np.zeros(3)
    vector["XYZ".index(name[-1])] = -1.0 if name.startswith("-") else 1.0
    return vector


def nearest_axis(direction: np.ndarray) -> str:
    """The name of the signed axis nearest to ``direction``."""
    direction = np.asarray(direction, dtype=np.float64)
    index = int(np.argmax(np.abs(direction)))
    return ("-" if direction[index] < 0 else "") + "XYZ"[index]


def axis_turn(forward: str, up: str) -> np.ndarray:  # [3, 3]
    """The rotation that takes a file whose forward and up axes are ``forward`` and ``up`` to Blender's (forward
    +Y, up +Z), as ``bpy_extras.io_utils.axis_conversion(from_forward=forward, from_up=up)`` gives it."""
    f, u = axis_vector(forward), axis_vector(up)
    if abs(f @ u) > 0.5:
        raise BadInputError(f"forward axis {forward} and up axis {up} must be different axes")
    source = np.column_stack([np.cross(f, u), f, u])  # the file's (right, forward, up)
    return source.T  # Blender's (right, forward, up) are X, Y, Z


def upright_forward(up: str) -> str:
    """The forward axis that goes with ``up`` in Auto: the file axis the smallest turn of ``up`` onto +Z brings to
    +Y (Z up: Y; -Y up, the 3DGS frame: Z; Y up: -Z)."""
    return nearest_axis(upright_rotation(axis_vector(up)).T @ axis_vector(BLENDER_FORWARD))


@dataclasses.dataclass(frozen=True)
class AxisChoice:
    """The axes a splat file is imported with, the turn they give (file -> Blender), and what said so."""

    forward: str
    up: str
    source: str  # what decided the up axis ("chosen", "the cameras of cameras.json", "the file's convention")
    off_axis_degrees: float | None = None  # Auto from cameras: the angle between their mean up and the axis

    @property
    def turn(self) -> np.ndarray:  # [3, 3]
        return axis_turn(self.forward, self.up)

    def describe(self) -> str:
        text = f"up {self.up}, forward {self.forward} (from {self.source}"
        if self.off_axis_degrees is not None and self.off_axis_degrees >= 0.05:
            text += f"; their mean up is {self.off_axis_degrees:.1f}° off the axis"
        return text + ")"


def cameras_beside(path: str | os.PathLike):
    """(the cameras of the camera file Import Cameras reads in the folder of the splat file ``path``, that file's
    name), or (None, None) when there is none or it cannot be read (an import never fails for it)."""
    from ..files.camera_files import camera_source_in, load_cameras

    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    source = camera_source_in(folder)
    if source is None:
        return None, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. COLMAP lens distortion: no matter for which way is up
            cameras = load_cameras(source)
    except BadInputError:
        return None, None
    return cameras, os.path.relpath(source, folder)


def declared_up(comments: collections.abc.Iterable[str]) -> str | None:
    """The up axis a header's ``comments`` declare (the first ``gsseg_up AXIS`` with AXIS one of :data:`AXES`)."""
    for comment in comments:
        words = comment.split()
        if len(words) == 2 and words[0] == UP_COMMENT and words[1] in AXES:
            return words[1]
    return None


def with_up_comment(gaussians: Gaussians, axis: str) -> Gaussians:
    """``gaussians`` with the header comment declaring ``axis`` their up (any other such comment dropped)."""
    axis_vector(axis)
    return gaussians.with_comments([f"{UP_COMMENT} {axis}"], drop_prefix=UP_COMMENT + " ")


def detected_up(path: str | os.PathLike, imported=None, comments: collections.abc.Iterable[str] = ()):
    """(the up axis of the splat file ``path``, what said so, the angle in degrees between the cameras' mean up
    and that axis or None): the up its header ``comments`` declare, else the mean up of the cameras beside it when
    they agree, else of ``imported`` ((cameras in the file's frame, their name): cameras imported before the
    splat), else the convention (-Y)."""
    declared = declared_up(comments)
    if declared is not None:
        return declared, f"its header: {UP_COMMENT} {declared}", None
    cameras, name = cameras_beside(path)
    if not cameras and imported is not None and len(imported[0]):
        cameras, name = imported
    up = cameras_up(cameras) if cameras else None
    if up is not None:
        axis = nearest_axis(up)
        angle = float(np.degrees(np.arccos(np.clip(up @ axis_vector(axis), -1.0, 1.0))))
        return axis, f"the cameras of {name}", angle
    why = "the file's convention" if not cameras else f"the file's convention: the cameras of {name} disagree"
    return nearest_axis(CONVENTION_UP), why, None


def choose_axes(path: str | os.PathLike, forward: str = AUTO, up: str = AUTO, imported=None,
                comments: collections.abc.Iterable[str] = ()) -> AxisChoice:
    """The axes to import the splat file ``path`` with: ``forward`` and ``up`` as given (names of :data:`AXES`),
    either or both :data:`AUTO` (see the module docstring; ``imported``, ``comments``: :func:`detected_up`'s).
    An explicit forward axis along the detected up is replaced by Auto's forward."""
    for name in (forward, up):
        if name != AUTO and name not in AXES:
            raise BadInputError(f"axis {name!r}: expected one of {AUTO}, {', '.join(AXES)}")
    angle = None
    if up == AUTO:
        up, source, angle = detected_up(path, imported, comments)
        if forward != AUTO and abs(axis_vector(forward) @ axis_vector(up)) > 0.5:
            forward = AUTO
    else:
        source = "the options"
    if forward == AUTO:
        forward = upright_forward(up)
    axis_turn(forward, up)  # refuses two explicit axes along one line
    return AxisChoice(forward, up, source, angle)
