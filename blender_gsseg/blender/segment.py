"""Segmentation glue: Blender objects in, core calls, attributes out. No maths here.

The accumulation is cached in a ``.gsseg.npz`` file (beside the .blend when it is saved, else in the temporary
folder); its path is stored on the object (``Object.gsseg.accumulation_path``). Moving the gamma slider
re-solves from the cached shares (:class:`~..core.solver.Shares`) and rewrites ``gsseg_label`` (INT) and
``gsseg_confidence`` (FLOAT) with foreach_set.
"""

import os
import tempfile
import uuid
import warnings

import bpy
import numpy as np

from ..core.accumulate import SIDECAR_SUFFIX, Accumulation
from ..core.errors import BadInputError
from ..core.levels import CODE_PROPERTY
from ..core.pipeline import default_memory_budget, label_colour, level_sidecars, solve_level_sidecars
from ..core.solver import Shares
from ..core.views import build_views
from . import display, io_splat
from . import labels as label_list
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
    """Leave edit mode for the duration (mesh data written in edit mode is overwritten on exit).

    ``stay=True``: do not go back to edit mode. Operators that change object-level state (the cache path,
    the instance list, custom properties) use it: an undo step pushed in edit mode restores only the mesh,
    one pushed in object mode restores everything."""

    def __init__(self, obj, stay=False):
        self.obj = obj
        self.was_edit = obj.mode == "EDIT"
        self.stay = stay

    def __enter__(self):
        if self.was_edit:
            self._set_mode("OBJECT")
        return self

    def __exit__(self, *exc):
        if self.was_edit and not self.stay:
            self._set_mode("EDIT")
        return False

    def _set_mode(self, mode):
        context = bpy.context
        with context.temp_override(active_object=self.obj, object=self.obj):
            bpy.ops.object.mode_set(mode=mode)


UNSEEN_COLOUR = (20, 20, 20)  # sRGB 8-bit, for points no view saw


def write_label_colors(mesh, labels, colours=None):
    """``gsseg_label_col``: each label's colour (``colours``: {id: (r, g, b) sRGB in [0, 1]}, e.g. the instance
    list's; else the CLI's label colours), for the label display."""
    colours = colours or {}
    labels = np.asarray(labels, dtype=np.int64)
    low = int(labels.min(initial=0))
    if len(labels) and int(labels.max()) - low < (1 << 22):  # a lookup table by label: O(N)
        present = np.flatnonzero(np.bincount(labels - low))
        lookup = np.zeros(int(present[-1]) + 1, dtype=np.int64)
        lookup[present] = np.arange(len(present))
        ids, inverse = present + low, lookup[labels - low]
    else:
        ids, inverse = np.unique(labels, return_inverse=True)
    table = np.array([np.asarray(UNSEEN_COLOUR) / 255.0 if i < 0 else
                      colours.get(int(i), np.asarray(label_colour(int(i))) / 255.0) for i in ids],
                     dtype=np.float32).reshape(-1, 3)
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


def apply_gamma(obj, gamma=None, new_ids=()):
    """Solve the cached accumulation at ``gamma`` (default: the object's slider), apply the object's merges and
    manual labels, write the attributes and refresh the instance list (``new_ids``: labels to list even when
    no point takes them now, e.g. every label of a new segmentation).

    Returns (number of labels, number of unseen Gaussians)."""
    settings = obj.gsseg
    if not settings.accumulation_path:
        raise BadInputError(f"'{obj.name}' has no segmentation yet; run Segment first")
    gamma = settings.gamma if gamma is None else gamma
    with _ObjectMode(obj):
        mesh = obj.data
        layout = label_list.layout_of(obj)
        if layout is not None and len(layout.bits) > 1:
            return _apply_gamma_levels(obj, layout, gamma)
        shares = shares_for(settings.accumulation_path, len(mesh.vertices))
        labels, confidence = shares.solve(gamma)
        labels = label_list.apply_edits(obj, labels)
        label_list.write_attribute(mesh, io_splat.LABEL_ATTRIBUTE, labels, "INT")
        label_list.write_attribute(mesh, io_splat.CONFIDENCE_ATTRIBUTE, confidence, "FLOAT")
        label_list.sync(obj, extra_ids=new_ids)
        label_list.refresh_display(obj)
        mesh.update()
    return len(shares.label_ids), int(np.count_nonzero(~shares.seen))


class SegmentJob:
    """One segmentation: inputs gathered from Blender in the main thread (:meth:`prepare`), the accumulation
    (:meth:`run`, pure core, safe in a worker thread: it touches no bpy data), then :meth:`finish` in the main
    thread (cache file, solve, attributes)."""

    def __init__(self, obj, gaussians, views, backend, warnings_seen):
        self.object_name = obj.name
        self.n_gaussians = len(gaussians)
        self.gaussians = gaussians
        self.views = views.moved(np.array(obj.matrix_world, dtype=np.float64))  # the splats are in local space
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
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with _ObjectMode(obj):
                gaussians = io_splat.gaussians_from_object(obj)
            views = build_views([camera for _, camera in pairs], bpy.path.abspath(mask_dir), scale=scale)
        return cls(obj, gaussians, views, backend, [str(w.message) for w in caught])

    @classmethod
    def from_label_maps(cls, obj, cameras, label_maps, *, backend="auto"):
        """A job for label maps made in Blender (e.g. rendered from proxy objects): ``cameras`` at the working
        resolution (world space), ``label_maps`` int32 [H, W] (ids, 0 = background, -1 = ignore)."""
        with _ObjectMode(obj):
            gaussians = io_splat.gaussians_from_object(obj)
        return cls(obj, gaussians, build_views(cameras, label_maps), backend, [])

    def _progress(self, done, total):
        self.done, self.total = done, total

    def _cancel(self):
        return self.cancel_requested

    def run(self):
        """Accumulate; exceptions are kept in ``self.error`` (re-raised by :meth:`finish`)."""
        try:
            self.accumulation = self.views.accumulate(
                self.gaussians, backend=self.backend, progress=self._progress, cancel=self._cancel,
                memory_budget=default_memory_budget())
        except BaseException as error:  # CancelledError included: finish() reports it
            self.error = error
        finally:
            self.gaussians = None  # free the inputs early

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
        label_list.clear_edits(obj)  # a new segmentation: merges and manual labels referred to the old ids
        label_list.mark_table(obj)  # labels made here: export writes their names and colours, as the CLI does
        label_count, unseen = apply_gamma(obj, new_ids=self.accumulation.label_ids)
        return {
            "object": obj.name,
            "views": len(self.views),
            "labels": [int(v) for v in self.views.label_ids],
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


def _apply_gamma_levels(obj, layout, gamma):
    """γ on a multi-level scene: every level re-solved by the core (each finer level within its parents), then
    gsseg_label and gsseg_code rewritten together. Needs the coarser levels' sidecars beside the finest one
    (OUT.level<k>.gsseg.npz, as `gsseg segment` writes them, with their parent ids); refused otherwise, so
    that the two attributes never disagree."""
    mesh = obj.data
    n = len(mesh.vertices)
    paths = level_sidecars(bpy.path.abspath(obj.gsseg.accumulation_path), len(layout.bits))
    try:
        level_labels, confidence, label_ids = solve_level_sidecars(paths, n, gamma)
    except (BadInputError, KeyError, OSError) as error:
        raise BadInputError(f"'{obj.name}' is a multi-level scene: re-solving needs the sidecars of every level "
                            f"for its {n:,} points ({error})") from None
    label_list.write_attribute(mesh, io_splat.LABEL_ATTRIBUTE, level_labels[-1], "INT")
    label_list.write_attribute(mesh, CODE_PROPERTY, layout.pack(level_labels), "INT")
    label_list.write_attribute(mesh, io_splat.CONFIDENCE_ATTRIBUTE, confidence, "FLOAT")
    label_list.sync(obj)
    label_list.refresh_display(obj)
    mesh.update()
    return len(label_ids), int(np.count_nonzero(level_labels[-1] < 0))
