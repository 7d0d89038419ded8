"""Segmentation glue: Blender objects in, core calls, attributes out. No maths here.

The accumulation is cached in a ``.gsseg.npz`` file (beside the .blend when it is saved, else in the temporary
folder); its path is stored on the object (``Object.gsseg.accumulation_path``). Moving the gamma slider
re-solves from the cached shares (:class:`~..core.solver.Shares`) and rewrites ``gsseg_label`` (INT) and
``gsseg_confidence`` (FLOAT) with foreach_set.
"""

import dataclasses
import os
import tempfile
import uuid
import warnings

import bpy
import numpy as np

from ..core.accumulate import SIDECAR_SUFFIX, Accumulation, accumulate_weights
from ..core.errors import BadInputError
from ..core.masks import label_index_maps, load_masks
from ..core.pipeline import default_memory_budget, label_colour
from ..core.solver import Shares
from . import display, io_splat
from .cameras import cameras_in_collection

# path -> (modification time, size, Shares): moving the slider must not reload the file every time.
_SHARES_CACHE = {}


def cache_path_for(obj):
    """Where to keep an object's accumulation: beside the .blend if saved, else in the temporary folder."""
    # A new name every time: undo may bring back an object that points at an earlier cache file.
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in obj.name)
    tag = uuid.uuid4().hex[:8]
    if bpy.data.filepath:
        folder = os.path.dirname(bpy.data.filepath)
        stem = os.path.splitext(os.path.basename(bpy.data.filepath))[0]
        return os.path.join(folder, f"{stem}.{safe}-{tag}{SIDECAR_SUFFIX}")
    folder = os.path.join(tempfile.gettempdir(), "gsseg")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"{safe}-{tag}{SIDECAR_SUFFIX}")


def shares_for(path, n_gaussians):
    path = bpy.path.abspath(path)
    stat = os.stat(path) if os.path.isfile(path) else None
    if stat is None:
        raise BadInputError(f"{path}: the cached segmentation is gone; run Segment again")
    cached = _SHARES_CACHE.get(path)
    stamp = (stat.st_mtime_ns, stat.st_size)
    if cached is not None and cached[0] == stamp and len(cached[1].seen) == n_gaussians:
        return cached[1]
    shares = Shares.from_accumulation(Accumulation.load(path, n_gaussians))
    if len(_SHARES_CACHE) >= 2:  # [L, N] floats each: keep only the most recent
        _SHARES_CACHE.pop(next(iter(_SHARES_CACHE)))
    _SHARES_CACHE[path] = ((stat.st_mtime_ns, stat.st_size), shares)
    return shares


class _ObjectMode:
    """Leave edit mode for the duration (mesh data written in edit mode is overwritten on exit)."""

    def __init__(self, obj):
        self.obj = obj
        self.was_edit = obj.mode == "EDIT"

    def __enter__(self):
        if self.was_edit:
            self._set_mode("OBJECT")
        return self

    def __exit__(self, *exc):
        if self.was_edit:
            self._set_mode("EDIT")
        return False

    def _set_mode(self, mode):
        context = bpy.context
        with context.temp_override(active_object=self.obj, object=self.obj):
            bpy.ops.object.mode_set(mode=mode)


def write_int_attribute(mesh, name, values):
    attribute = mesh.attributes.get(name)
    if attribute is not None and (attribute.data_type != "INT" or attribute.domain != "POINT"):
        mesh.attributes.remove(attribute)
        attribute = None
    if attribute is None:
        attribute = mesh.attributes.new(name, "INT", "POINT")
    attribute.data.foreach_set("value", np.ascontiguousarray(values, dtype=np.int32))


def write_float_attribute(mesh, name, values):
    attribute = mesh.attributes.get(name)
    if attribute is not None and (attribute.data_type != "FLOAT" or attribute.domain != "POINT"):
        mesh.attributes.remove(attribute)
        attribute = None
    if attribute is None:
        attribute = mesh.attributes.new(name, "FLOAT", "POINT")
    attribute.data.foreach_set("value", np.ascontiguousarray(values, dtype=np.float32))


UNSEEN_COLOUR = (20, 20, 20)  # sRGB 8-bit, for points no view saw


def write_label_colors(mesh, labels):
    """``gsseg_label_col``: each label's colour (the CLI's label colours), for the label display."""
    ids, inverse = np.unique(labels, return_inverse=True)
    table = np.array([UNSEEN_COLOUR if i < 0 else label_colour(int(i)) for i in ids], dtype=np.float32) / 255
    rgba = np.ones((len(labels), 4), dtype=np.float32)
    rgba[:, :3] = io_splat.srgb_to_linear(table)[inverse.ravel()]
    attribute = mesh.color_attributes.get(display.LABEL_COLOR_ATTRIBUTE)
    if attribute is not None and (attribute.data_type != "FLOAT_COLOR" or attribute.domain != "POINT"):
        mesh.color_attributes.remove(attribute)
        attribute = None
    if attribute is None:
        active = mesh.color_attributes.active_color_name
        attribute = mesh.color_attributes.new(display.LABEL_COLOR_ATTRIBUTE, "FLOAT_COLOR", "POINT")
        if active and active in mesh.color_attributes:
            mesh.color_attributes.active_color_name = active
    attribute.data.foreach_set("color", rgba.ravel())


def read_int_attribute(mesh, name):
    attribute = mesh.attributes.get(name)
    if attribute is None or attribute.domain != "POINT" or attribute.data_type != "INT":
        return None
    values = np.empty(len(mesh.vertices), dtype=np.int32)
    attribute.data.foreach_get("value", values)
    return values


def apply_gamma(obj, gamma=None):
    """Solve the cached accumulation at ``gamma`` (default: the object's slider) and write the attributes.

    Returns (number of labels, number of unseen Gaussians)."""
    settings = obj.gsseg
    if not settings.accumulation_path:
        raise BadInputError(f"'{obj.name}' has no segmentation yet; run Segment first")
    gamma = settings.gamma if gamma is None else gamma
    with _ObjectMode(obj):
        mesh = obj.data
        shares = shares_for(settings.accumulation_path, len(mesh.vertices))
        labels, confidence = shares.solve(gamma)
        write_int_attribute(mesh, io_splat.LABEL_ATTRIBUTE, labels)
        write_float_attribute(mesh, io_splat.CONFIDENCE_ATTRIBUTE, confidence)
        write_label_colors(mesh, labels)
        mesh.update()
    return len(shares.label_ids), int(np.count_nonzero(~shares.seen))


class SegmentJob:
    """One segmentation: inputs gathered from Blender in the main thread (:meth:`prepare`), the accumulation
    (:meth:`run`, pure core, safe in a worker thread: it touches no bpy data), then :meth:`finish` in the main
    thread (cache file, solve, attributes)."""

    def __init__(self, obj, gaussians, views, index_maps, label_ids, backend, warnings_seen):
        self.object_name = obj.name
        self.n_gaussians = len(gaussians)
        self.gaussians = gaussians
        self.views = views
        self.index_maps = index_maps
        self.label_ids = label_ids
        self.backend = backend
        self.warnings = warnings_seen
        self.done = 0
        self.total = len(views)
        self.cancel_requested = False
        self.accumulation = None
        self.error = None

    @classmethod
    def prepare(cls, context, obj, *, collection, mask_dir, scale=1.0, backend="auto"):
        if not mask_dir or not os.path.isdir(bpy.path.abspath(mask_dir)):
            raise BadInputError(f"mask folder {mask_dir!r} does not exist")
        if collection is None:
            raise BadInputError("no camera collection chosen")
        pairs = cameras_in_collection(collection, context.scene)
        if not pairs:
            raise BadInputError(f"collection '{collection.name}' holds no cameras")
        cameras = [camera for _, camera in pairs]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with _ObjectMode(obj):
                gaussians = io_splat.gaussians_from_object(obj)
            scaled = [camera.scaled(scale) for camera in cameras]
            mask_set = load_masks(bpy.path.abspath(mask_dir), cameras,
                                  sizes=[(camera.width, camera.height) for camera in scaled])
            index_maps = label_index_maps(mask_set)
        # The splats live in the object's local space: fold its transform into each view.
        to_world = np.array(obj.matrix_world, dtype=np.float64)
        views = []
        for index in mask_set.camera_indices:
            camera = scaled[index]
            views.append(type(camera)(camera.world_to_camera @ to_world, camera.fx, camera.fy, camera.cx,
                                      camera.cy, camera.width, camera.height, camera.image_name))
        return cls(obj, gaussians, views, index_maps, mask_set.label_ids, backend,
                   [str(w.message) for w in caught])

    def _progress(self, done, total):
        self.done, self.total = done, total

    def _cancel(self):
        return self.cancel_requested

    def run(self):
        """Accumulate; exceptions are kept in ``self.error`` (re-raised by :meth:`finish`)."""
        try:
            self.accumulation = accumulate_weights(
                self.gaussians, self.views, self.index_maps, self.label_ids, backend=self.backend,
                progress=self._progress, cancel=self._cancel, memory_budget=default_memory_budget())
        except BaseException as error:  # CancelledError included: finish() reports it
            self.error = error
        finally:
            self.gaussians = self.index_maps = None  # free the inputs early

    def finish(self):
        """Cache the accumulation, solve at the object's gamma and write the attributes; returns figures."""
        if self.error is not None:
            raise self.error
        obj = bpy.data.objects.get(self.object_name)
        if obj is None or obj.type != "MESH" or len(obj.data.vertices) != self.n_gaussians:
            raise BadInputError(f"'{self.object_name}' was deleted or changed during segmentation")
        path = cache_path_for(obj)
        self.accumulation.save(path)
        obj.gsseg.accumulation_path = path
        label_count, unseen = apply_gamma(obj)
        return {
            "object": obj.name,
            "views": len(self.views),
            "labels": [int(v) for v in self.label_ids],
            "label_count": label_count,
            "unseen": unseen,
            "path": path,
            "warnings": self.warnings,
        }


def segment(context, obj, *, collection, mask_dir, scale=1.0, backend="auto", progress=None):
    """Accumulate the masks of ``mask_dir`` seen by the cameras of ``collection`` onto ``obj``; cache, solve and
    write the label attributes, synchronously. Returns a dict of figures and the warnings raised on the way."""
    job = SegmentJob.prepare(context, obj, collection=collection, mask_dir=mask_dir, scale=scale, backend=backend)
    if progress is not None:
        def report(done, total):
            job.done, job.total = done, total
            progress(done, total)
        job._progress = report
    job.run()
    return job.finish()


def select_instance(obj, label, extend=False):
    """Select the points whose gsseg_label is ``label`` (edit-mode selection); returns how many."""
    with _ObjectMode(obj):
        mesh = obj.data
        labels = read_int_attribute(mesh, io_splat.LABEL_ATTRIBUTE)
        if labels is None:
            raise BadInputError(f"'{obj.name}' has no {io_splat.LABEL_ATTRIBUTE} attribute; run Segment first")
        selection = labels == label
        if extend:
            selection |= _selection(mesh)
        attribute = mesh.attributes.get(".select_vert")
        if attribute is None:
            attribute = mesh.attributes.new(".select_vert", "BOOLEAN", "POINT")
        attribute.data.foreach_set("value", selection)
        mesh.update()
    return int(np.count_nonzero(labels == label))


def _selection(mesh):
    attribute = mesh.attributes.get(".select_vert")
    selection = np.zeros(len(mesh.vertices), dtype=bool)
    if attribute is not None:
        attribute.data.foreach_get("value", selection)
    return selection


def _attribute_buffers(mesh):
    """Every generic POINT attribute of a vertex-only mesh as (name, data_type, numpy array, prop)."""
    n = len(mesh.vertices)
    layouts = {
        "FLOAT": ("value", np.float32, 1), "INT": ("value", np.int32, 1), "BOOLEAN": ("value", bool, 1),
        "FLOAT_VECTOR": ("vector", np.float32, 3), "FLOAT_COLOR": ("color", np.float32, 4),
        "BYTE_COLOR": ("color", np.float32, 4), "FLOAT2": ("vector", np.float32, 2),
        "INT8": ("value", np.int32, 1), "QUATERNION": ("value", np.float32, 4),
        "INT32_2D": ("value", np.int32, 2),
    }
    buffers = []
    for attribute in mesh.attributes:
        if attribute.domain != "POINT":
            continue
        layout = layouts.get(attribute.data_type)
        if layout is None:
            raise BadInputError(f"attribute {attribute.name!r} of type {attribute.data_type} is not supported")
        prop, dtype, width = layout
        values = np.empty(n * width, dtype=dtype)
        attribute.data.foreach_get(prop, values)
        buffers.append((attribute.name, attribute.data_type, values.reshape(n, width), prop))
    return buffers


def keep_points(obj, keep):
    """Rebuild ``obj``'s vertex-only mesh with the points where ``keep`` is true (all attributes kept)."""
    mesh = obj.data
    if len(mesh.edges) or len(mesh.polygons):
        raise BadInputError(f"'{obj.name}' has edges or faces; deleting by label works on point meshes only")
    buffers = _attribute_buffers(mesh)
    active_color = mesh.color_attributes.active_color_name
    render_index = mesh.color_attributes.render_color_index
    render_name = mesh.color_attributes[render_index].name if 0 <= render_index < len(mesh.color_attributes) else None
    mesh.clear_geometry()
    count = int(np.count_nonzero(keep))
    mesh.vertices.add(count)
    for name, data_type, values, prop in buffers:
        attribute = mesh.attributes.get(name)
        if attribute is None:
            attribute = mesh.attributes.new(name, data_type, "POINT")
        attribute.data.foreach_set(prop, np.ascontiguousarray(values[keep]).ravel())
    if active_color and active_color in mesh.color_attributes:
        mesh.color_attributes.active_color_name = active_color
    if render_name and render_name in mesh.color_attributes:
        names = [a.name for a in mesh.color_attributes]
        mesh.color_attributes.render_color_index = names.index(render_name)
    mesh.update()
    return count


def subset_accumulation(accumulation, keep):
    """The accumulation (dense or bounded form) of the Gaussians where ``keep`` is true."""
    if hasattr(accumulation, "subset"):
        return accumulation.subset(keep)
    n = accumulation.n_gaussians
    changes = {}
    for field in dataclasses.fields(accumulation):
        value = getattr(accumulation, field.name)
        if field.name != "label_ids" and isinstance(value, np.ndarray) and value.ndim and value.shape[-1] == n:
            changes[field.name] = value[..., keep]
    return dataclasses.replace(accumulation, **changes)


def delete_instance(obj, label):
    """Delete the points whose gsseg_label is ``label``; the cached accumulation follows. Returns how many."""
    with _ObjectMode(obj):
        mesh = obj.data
        labels = read_int_attribute(mesh, io_splat.LABEL_ATTRIBUTE)
        if labels is None:
            raise BadInputError(f"'{obj.name}' has no {io_splat.LABEL_ATTRIBUTE} attribute; run Segment first")
        keep = labels != label
        removed = int(np.count_nonzero(~keep))
        if removed == 0:
            return 0
        path = obj.gsseg.accumulation_path
        accumulation = None
        if path and os.path.isfile(bpy.path.abspath(path)):
            try:
                accumulation = Accumulation.load(bpy.path.abspath(path), len(labels))
            except BadInputError:
                accumulation = None
        keep_points(obj, keep)
        if accumulation is not None:
            # Never overwrite a sidecar that came with the file: the subset goes to our own cache.
            new_path = cache_path_for(obj)
            subset_accumulation(accumulation, keep).save(new_path)
            obj.gsseg.accumulation_path = new_path
    return removed
