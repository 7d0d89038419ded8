"""Core cameras (OpenCV axes: x right, y down, z forward; pixel intrinsics) <-> Blender camera objects.

A Blender camera looks down its local -Z with +Y up, so its axes are OpenCV's with y and z flipped:
``matrix_world = camera_to_world_opencv @ diag(1, -1, -1, 1)``.

Intrinsics: sensor fit HORIZONTAL with a 36 mm sensor, ``lens = fx * 36 / W``; the principal point becomes the
lens shift (Blender shifts in units of the image width under horizontal fit):
``shift_x = (W/2 - cx) / W`` and ``shift_y = (cy - H/2) * (fx/fy) / W``; fy != fx needs a non-square pixel
aspect in the scene (``pixel_aspect_x : pixel_aspect_y = fy : fx``), which :func:`apply_render_settings` sets with
the resolution. The exact intrinsics, the image size and name and the world-to-camera matrix are also kept as
custom properties (``gsseg_*``) so nothing is lost to float32 matrices or to the render settings.
"""

import os

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ..core.cameras import Camera
from ..core.files.camera_files import load_cameras

SENSOR_WIDTH = 36.0
AXES_FLIP = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV camera axes <-> Blender camera axes (self-inverse)
PROP_PREFIX = "gsseg_"
INTRINSIC_KEYS = ("fx", "fy", "cx", "cy", "width", "height")
# A stored world-to-camera matrix is used when the object's matrix still matches it within this.
POSE_TOLERANCE = 1e-5


def blender_matrix(camera):
    """The Blender ``matrix_world`` (a Matrix) of a core camera."""
    return Matrix((camera.camera_to_world @ AXES_FLIP).tolist())


def world_to_camera_from_matrix(matrix_world):
    """OpenCV world-to-camera 4x4 from a Blender camera's world matrix (scale in the matrix is removed)."""
    c2w = np.array(matrix_world, dtype=np.float64)
    rotation = c2w[:3, :3]
    norms = np.linalg.norm(rotation, axis=0)
    norms[norms == 0] = 1.0
    c2w[:3, :3] = rotation / norms
    c2w = c2w @ AXES_FLIP
    w2c = np.eye(4)
    w2c[:3, :3] = c2w[:3, :3].T
    w2c[:3, 3] = -c2w[:3, :3].T @ c2w[:3, 3]
    return w2c


def lens_settings(camera):
    """(lens mm, shift_x, shift_y, pixel_aspect_x, pixel_aspect_y) for a core camera."""
    lens = camera.fx * SENSOR_WIDTH / camera.width
    shift_x = (camera.width / 2.0 - camera.cx) / camera.width
    shift_y = (camera.cy - camera.height / 2.0) * (camera.fx / camera.fy) / camera.width
    ratio = camera.fy / camera.fx
    return lens, shift_x, shift_y, max(ratio, 1.0), max(1.0 / ratio, 1.0)


def configure_camera_object(obj, camera):
    """Set pose, lens, shift and the gsseg_* custom properties of a camera object from a core camera."""
    data = obj.data
    lens, shift_x, shift_y, _, _ = lens_settings(camera)
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = SENSOR_WIDTH
    data.lens_unit = "MILLIMETERS"
    data.lens = lens
    data.shift_x = shift_x
    data.shift_y = shift_y
    obj.matrix_world = blender_matrix(camera)
    obj[PROP_PREFIX + "fx"] = float(camera.fx)
    obj[PROP_PREFIX + "fy"] = float(camera.fy)
    obj[PROP_PREFIX + "cx"] = float(camera.cx)
    obj[PROP_PREFIX + "cy"] = float(camera.cy)
    obj[PROP_PREFIX + "width"] = int(camera.width)
    obj[PROP_PREFIX + "height"] = int(camera.height)
    obj[PROP_PREFIX + "image_name"] = camera.image_name
    obj[PROP_PREFIX + "world_to_camera"] = [float(v) for v in np.asarray(camera.world_to_camera).ravel()]


def camera_object(camera, collection, name=None):
    data = bpy.data.cameras.new(name or camera.image_name)
    data.clip_start = 0.01
    data.clip_end = 1000.0
    obj = bpy.data.objects.new(name or os.path.splitext(os.path.basename(camera.image_name))[0] or "camera", data)
    collection.objects.link(obj)
    configure_camera_object(obj, camera)
    return obj


def import_cameras(context, path, collection_name=None, turn=None):
    """Load cameras with the core loader and add them as camera objects in a new collection (returned);
    ``turn`` (4x4, file -> world: the splat's :func:`recorded_turn`) places them as the splat they belong to."""
    cameras = load_cameras(path)
    if turn is not None:
        cameras = [camera.moved(np.linalg.inv(turn)) for camera in cameras]
    if collection_name is None:
        base = os.path.basename(os.path.normpath(path))
        collection_name = f"gsseg cameras ({base})"
    collection = bpy.data.collections.new(collection_name)
    context.scene.collection.children.link(collection)
    for camera in cameras:
        camera_object(camera, collection)
    collection[CAMERAS_FILE_KEY] = os.path.abspath(path)
    record_turn(collection, np.eye(4) if turn is None else turn)
    return collection, cameras


# The turn an import's Forward / Up axes (or Stand Upright) gave a splat object, file -> world (4x4, row-major
# floats): export in the file's axes takes it off again, Import Cameras puts the file's cameras where the splat is.
# On a collection of Import Cameras: the turn its cameras were given.
TURN_KEY = "gsseg_axes_turn"
CAMERAS_FILE_KEY = "gsseg_cameras_file"  # on a collection made by Import Cameras: the file its cameras came from
AXES_KEY = "gsseg_axes"  # what the import chose, for the user: "up -Y, forward Z (from the file's convention)"
# An object transform within this of the recorded turn is the turn itself (Blender keeps the rotation as float32
# Euler angles: a quarter turn comes back as cos = -4.4e-8).
TURN_TOLERANCE = 1e-6
UPRIGHT_TOLERANCE = 1e-3  # degrees: Stand Upright leaves a splat whose up is this close to Z


def recorded_turn(obj):
    """The turn recorded on the splat ``obj`` (4x4 float64, file -> world), or None."""
    values = obj.get(TURN_KEY) if obj is not None else None
    if values is None or len(values) != 16:
        return None
    return np.array(list(values), dtype=np.float64).reshape(4, 4)


def record_turn(obj, turn):
    obj[TURN_KEY] = [float(v) for v in np.asarray(turn, dtype=np.float64).ravel()]


def cameras_waiting(context):
    """The chosen camera collection when it came from Import Cameras before any splat (none is the scene's splat
    yet) and was not turned: its cameras are in the frame of the splat file to come, and turn with it. None
    otherwise."""
    settings = context.scene.gsseg
    collection = settings.camera_collection
    if settings.splat_object is not None or collection is None or CAMERAS_FILE_KEY not in collection:
        return None
    turn = recorded_turn(collection)
    return collection if turn is None or is_identity_turn(turn) else None


def turn_cameras(collection, turn):
    """Turn the cameras of ``collection`` (made by Import Cameras) by ``turn`` (4x4, file -> world), their exact
    poses with them, and record it on the collection."""
    inverse = np.linalg.inv(turn)
    for obj in collection.all_objects:
        if obj.type == "CAMERA":
            configure_camera_object(obj, camera_from_object(obj).moved(inverse))
    record_turn(collection, turn)


def apply_import_axes(obj, choice):
    """Turn the just-imported splat ``obj`` by the axes of ``choice`` (core.scene.up_axis.AxisChoice): as the
    object's rotation, the data untouched, and recorded (:data:`TURN_KEY`)."""
    turn = np.eye(4)
    turn[:3, :3] = choice.turn
    obj.matrix_world = Matrix(turn.tolist()) @ obj.matrix_world
    record_turn(obj, turn)
    obj[AXES_KEY] = choice.describe()
    return turn


def is_identity_turn(turn):
    return float(np.abs(np.asarray(turn, dtype=np.float64) - np.eye(4)).max()) <= TURN_TOLERANCE


def file_axes_matrix(obj):
    """The transform to bake into the splat ``obj`` to write it in the axes of the file it came from: its
    transform with the recorded turn taken off (the artist's moves stay, expressed in the file's axes); exactly
    the identity while the object has not been moved since the turn. Its ``matrix_world`` without a record."""
    matrix = np.array(obj.matrix_world, dtype=np.float64)
    turn = recorded_turn(obj)
    if turn is None:
        return matrix
    matrix = np.linalg.inv(turn) @ matrix  # world -> the file's axes, after the object's transform
    return np.eye(4) if is_identity_turn(matrix) else matrix


def object_up(obj):
    """The world direction that is up for the splat ``obj`` by its recorded turn (what the turn put at +Z, moved
    on with the object since), or None without a record."""
    turn = recorded_turn(obj)
    if turn is None:
        return None
    up = np.array(obj.matrix_world, dtype=np.float64)[:3, :3] @ np.linalg.inv(turn)[:3, :3] @ [0.0, 0.0, 1.0]
    return up / max(float(np.linalg.norm(up)), 1e-12)


def has_exact_intrinsics(obj):
    return all(PROP_PREFIX + key in obj for key in INTRINSIC_KEYS)


def camera_from_object(obj, scene=None):
    """A core Camera from a Blender camera object.

    Intrinsics come from the gsseg_* custom properties when present, else from lens, sensor, shift and the
    scene's resolution and pixel aspect. The pose comes from the stored world-to-camera matrix while the
    object has not been moved, else from ``matrix_world``.
    """
    w2c = world_to_camera_from_matrix(obj.matrix_world)
    stored = obj.get(PROP_PREFIX + "world_to_camera")
    if stored is not None and len(stored) == 16:
        exact = np.array(list(stored), dtype=np.float64).reshape(4, 4)
        if np.abs(exact - w2c).max() <= POSE_TOLERANCE * max(1.0, np.abs(exact[:3, 3]).max()):
            w2c = exact
    name = obj.get(PROP_PREFIX + "image_name", obj.name)
    if has_exact_intrinsics(obj):
        values = {key: obj[PROP_PREFIX + key] for key in INTRINSIC_KEYS}
        return Camera(w2c, float(values["fx"]), float(values["fy"]), float(values["cx"]), float(values["cy"]),
                      int(values["width"]), int(values["height"]), str(name))
    scene = scene or bpy.context.scene
    render = scene.render
    width = int(round(render.resolution_x * render.resolution_percentage / 100.0))
    height = int(round(render.resolution_y * render.resolution_percentage / 100.0))
    data = obj.data
    if data.type != "PERSP":
        raise ValueError(f"camera '{obj.name}' is not a perspective camera")
    ycor = render.pixel_aspect_y / render.pixel_aspect_x
    fit = data.sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if width * render.pixel_aspect_x >= height * render.pixel_aspect_y else "VERTICAL"
    sensor = data.sensor_height if fit == "VERTICAL" and data.sensor_fit != "AUTO" else data.sensor_width
    viewfac = width if fit == "HORIZONTAL" else ycor * height
    fx = data.lens / sensor * viewfac
    fy = fx / ycor
    cx = width / 2.0 - data.shift_x * viewfac
    cy = height / 2.0 + data.shift_y * viewfac / ycor
    return Camera(w2c, fx, fy, cx, cy, width, height, str(name))


def cameras_in_collection(collection, scene=None):
    """[(object, Camera)] for the camera objects of ``collection`` (and its children), sorted by image name."""
    pairs = [(obj, camera_from_object(obj, scene)) for obj in collection.all_objects if obj.type == "CAMERA"]
    pairs.sort(key=lambda pair: (pair[1].image_name, pair[0].name))
    return pairs


def apply_render_settings(scene, obj):
    """Make ``obj`` the scene camera and set the resolution (100 %) and pixel aspect to its image's."""
    camera = camera_from_object(obj, scene)
    _, _, _, aspect_x, aspect_y = lens_settings(camera)
    render = scene.render
    render.resolution_x = camera.width
    render.resolution_y = camera.height
    render.resolution_percentage = 100
    render.pixel_aspect_x = aspect_x
    render.pixel_aspect_y = aspect_y
    scene.camera = obj
    return camera


VIEW_COLLECTION = "gsseg view cameras"


def view_target(splat_gaussians, proxies):
    """(centre, radius) the view cameras frame: the world bounding box of the ``proxies`` (objects), or of the
    splat's Gaussians without the farthest 2 % on each side (floaters)."""
    if proxies:
        corners = np.array([tuple(obj.matrix_world @ Vector(corner)) for obj in proxies for corner in obj.bound_box])
        low, high = corners.min(axis=0), corners.max(axis=0)
    else:
        means = splat_gaussians.means.astype(np.float64)
        low, high = np.percentile(means, 2.0, axis=0), np.percentile(means, 98.0, axis=0)
    return (low + high) / 2.0, max(float(np.linalg.norm(high - low)) / 2.0, 1e-3)


def cameras_up_in(context):
    """(the mean up of the chosen collection's cameras in the world, the collection's name), or (None, None)
    when none is chosen or its cameras disagree (core.scene.up_axis)."""
    from ..core.scene.up_axis import cameras_up

    collection = context.scene.gsseg.camera_collection
    if collection is None:
        return None, None
    return cameras_up([camera for _, camera in cameras_in_collection(collection, context.scene)]), collection.name


def splat_up(context, obj):
    """(the world direction that is up for the splat ``obj``, what said so): the mean up of the chosen
    collection's cameras when they agree, else the up its import's axes said (:func:`object_up`), else the 3DGS
    convention (the file's -Y) through the object's transform."""
    from ..core.scene.up_axis import CONVENTION_UP

    up, name = cameras_up_in(context)
    if up is not None:
        return up, f"the cameras of '{name}'"
    up = object_up(obj)
    if up is not None:
        return up, f"its import's axes ({obj.get(AXES_KEY, 'recorded')})"
    up = np.array(obj.matrix_world, dtype=np.float64)[:3, :3] @ CONVENTION_UP
    return up / max(float(np.linalg.norm(up)), 1e-12), "the file's convention (-Y up)"


def stand_upright(context, obj):
    """Turn the splat ``obj`` about its origin so that its up (:func:`splat_up`) is world +Z, and the cameras of
    the chosen collection with it (they are in the splat's frame). Returns (the angle in degrees, what said
    which way is up, the number of cameras turned)."""
    from ..core.scene.up_axis import upright_rotation

    up, source = splat_up(context, obj)
    rotation = upright_rotation(up)
    pivot = np.array(obj.matrix_world, dtype=np.float64)[:3, 3]
    turn = np.eye(4)
    turn[:3, :3], turn[:3, 3] = rotation, pivot - rotation @ pivot
    collection = context.scene.gsseg.camera_collection
    cameras = [o for o in collection.all_objects if o.type == "CAMERA"] if collection is not None else []
    angle = float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0))))
    if angle < UPRIGHT_TOLERANCE:  # float32 noise of the object's rotation: already upright
        angle = 0.0
    if angle > 0.0:
        for moved in [obj] + cameras:
            moved.matrix_world = Matrix(turn) @ moved.matrix_world
        for turned in [obj] + ([collection] if cameras else []):  # the turns given so far, this one added
            previous = recorded_turn(turned)
            record_turn(turned, turn @ (np.eye(4) if previous is None else previous))
    return angle, source, len(cameras) if angle > 0.0 else 0


def add_view_cameras(context, gaussians, proxies=(), count=24, elevations=(10.0, 55.0), fov_x=60.0, up=None):
    """A rig of cameras (core.scene.view_rig) around the ``proxies`` or the whole splat (``gaussians``, in world
    space), kept in front of its opaque Gaussians, at the scene's render size; in a new collection, chosen for
    segmentation; ``up``: the world direction the rig circles (default +Z). Returns (collection, cameras)."""
    from ..core.scene.view_rig import view_rig

    render = context.scene.render
    scale = render.resolution_percentage / 100.0
    width, height = max(int(render.resolution_x * scale), 8), max(int(render.resolution_y * scale), 8)
    centre, radius = view_target(gaussians, proxies)
    cameras = view_rig(centre, radius, count=count, elevations=elevations, width=width, height=height,
                       fov_x=fov_x, obstacles=gaussians, up=(0.0, 0.0, 1.0) if up is None else tuple(up))
    collection = bpy.data.collections.new(VIEW_COLLECTION)
    context.scene.collection.children.link(collection)
    for camera in cameras:
        camera_object(camera, collection)
    context.scene.gsseg.camera_collection = collection
    return collection, cameras
