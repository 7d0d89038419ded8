"""Segmentation glue: Blender objects in, core calls, attributes out. No maths here.

The accumulation is cached in a ``.gsseg.npz`` file (beside the .blend when it is saved, else in the temporary
folder); its path is stored on the object (``Object.gsseg.accumulation_path``). Moving the gamma slider
re-solves from the cached shares (:class:`~..core.lift.solver.Shares`) and rewrites ``gsseg_label`` (INT) and
``gsseg_confidence`` (FLOAT) with foreach_set.
"""

import hashlib
import os
import shutil
import tempfile
import uuid
import warnings

import bpy
import numpy as np

from ..core.raster.backends import estimate_sample, expected_seconds, planned_backend
from ..core.errors import BadInputError
from ..core.files.labels import CODE_PROPERTY, LABEL_PROPERTY
from ..core.files.sam_masks import is_sam_layout
from ..core.lift.associate import PER_VIEW_COST
from ..core.lift.run import lift_views
from ..core.lift.sidecar import (SIDECAR_SUFFIX, level_sidecars, load_accumulation, save_accumulation,
                                 solve_level_sidecars)
from ..core.lift.solver import Shares
from ..core.lift.views import build_views
from . import io_splat
from . import labels as label_list
from .attributes import (CONFIDENCE_ATTRIBUTE, INDEX_ATTRIBUTE, ObjectMode, point_count, read_attribute, tag_update,
                         write_attribute)
from .camera_objects import cameras_in_collection
from .prefs import resolve_backend
from .classes import register_handlers, unregister_handlers

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


def cached_accumulation(obj):
    """The object's cached accumulation for its points as they are now: through ``gsseg_index`` when it has
    one, so Blender's own edits (delete, separate, duplicate vertices) keep the γ slider working."""
    path = bpy.path.abspath(obj.gsseg.accumulation_path)
    if not obj.gsseg.accumulation_path or not os.path.isfile(path):
        raise BadInputError(f"{path}: the cached segmentation is gone; run Segment again")
    mesh = obj.data
    index = read_attribute(mesh, INDEX_ATTRIBUTE)
    if index is None:
        return load_accumulation(path, point_count(mesh))
    accumulation = load_accumulation(path)
    if len(index) and (index.min() < 0 or index.max() >= accumulation.n_gaussians):
        raise BadInputError(f"'{obj.name}': its points no longer match the cached segmentation; run Segment again")
    if len(index) == accumulation.n_gaussians and np.array_equal(index, np.arange(len(index))):
        return accumulation
    return accumulation.subset(index)


_PROBLEMS = {}  # (path, modification time, point count) -> the cache's problem or None: the panel asks often


def cache_problem(obj):
    """One line saying why the object's cached accumulation cannot be used now, or None when it can."""
    path = bpy.path.abspath(obj.gsseg.accumulation_path)
    if not os.path.isfile(path):
        return "The cached segmentation is gone: run Segment again"
    key = (path, os.stat(path).st_mtime_ns, point_count(obj.data))
    if key not in _PROBLEMS:
        try:
            cached_accumulation(obj)
            _PROBLEMS[key] = None
        except BadInputError:
            _PROBLEMS[key] = "The points no longer match the cached segmentation: run Segment again"
        if len(_PROBLEMS) > 16:
            _PROBLEMS.pop(next(iter(_PROBLEMS)))
    return _PROBLEMS[key]


def cache_is_temporary(obj):
    """Whether the object's cache waits in the temporary folder (a .blend not saved yet)."""
    path = os.path.abspath(bpy.path.abspath(obj.gsseg.accumulation_path))
    return os.path.dirname(path) == os.path.join(os.path.abspath(tempfile.gettempdir()), "gsseg")


def write_point_index(obj):
    """``gsseg_index`` = 0..N-1: the points and the cached accumulation match one to one."""
    write_attribute(obj.data, INDEX_ATTRIBUTE, np.arange(point_count(obj.data), dtype=np.int32), "INT")


def shares_for(obj):
    """The solver's shares of the object's points (kept while neither the cache file nor the points change:
    moving the slider must not reload the file every time)."""
    path = bpy.path.abspath(obj.gsseg.accumulation_path)
    stat = os.stat(path) if obj.gsseg.accumulation_path and os.path.isfile(path) else None
    if stat is None:
        raise BadInputError(f"{path}: the cached segmentation is gone; run Segment again")
    index = read_attribute(obj.data, INDEX_ATTRIBUTE)
    points = hashlib.blake2b(index.tobytes() if index is not None else str(point_count(obj.data)).encode(),
                             digest_size=16).hexdigest()
    stamp = (stat.st_mtime_ns, stat.st_size, points)
    cached = _SHARES_CACHE.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    shares = Shares.from_accumulation(cached_accumulation(obj))
    if len(_SHARES_CACHE) >= 2:  # [L, N] floats each: keep only the most recent
        _SHARES_CACHE.pop(next(iter(_SHARES_CACHE)))
    _SHARES_CACHE[path] = (stamp, shares)
    return shares


def apply_gamma(obj, gamma=None, new_ids=()):
    """Solve the cached accumulation at ``gamma`` (default: the object's slider), apply the object's merges and
    manual labels, write the attributes and refresh the instance list (``new_ids``: labels to list even when
    no point takes them now, e.g. every label of a new segmentation).

    Returns (number of labels, number of unseen Gaussians)."""
    settings = obj.gsseg
    if not settings.accumulation_path:
        raise BadInputError(f"'{obj.name}' has no segmentation yet; run Segment first")
    gamma = settings.gamma if gamma is None else gamma
    with ObjectMode(obj):
        mesh = obj.data
        layout = label_list.layout_of(obj)
        if layout is not None and len(layout.bits) > 1:
            return _apply_gamma_levels(obj, layout, gamma)
        shares = shares_for(obj)
        labels, confidence = shares.solve(gamma)
        labels = label_list.apply_edits(obj, labels)
        write_attribute(mesh, LABEL_PROPERTY, labels, "INT")
        write_attribute(mesh, CONFIDENCE_ATTRIBUTE, confidence, "FLOAT")
        label_list.sync(obj, extra_ids=new_ids)
        label_list.refresh_display(obj)
        tag_update(mesh)
    return len(shares.label_ids), int(np.count_nonzero(~shares.seen))


class SegmentJob:
    """One segmentation: inputs gathered from Blender in the main thread (:meth:`prepare`), the accumulation
    (:meth:`run`, pure core, safe in a worker thread: it touches no bpy data), then :meth:`finish` in the main
    thread (cache file, solve, attributes)."""

    def __init__(self, obj, gaussians, views, backend, warnings_seen, choose_gamma=False):
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
        self.choose_gamma = choose_gamma  # cross-validate γ over folds of the views (core.lift.tune)
        self.on_progress = None  # called in the running thread after each step (the synchronous operator's bar)
        self.gamma_choice = None
        self.association = None  # with per-view ids: how the views' masks were matched into instances
        self.error = None

    @classmethod
    def prepare(cls, context, obj, *, collection, mask_dir, scale=1.0, backend="auto", choose_gamma=False,
                ids=None):
        """``ids``: None (the folder says: SAM's layout is per view, other folders consistent) or 'per-view'."""
        if not mask_dir or not os.path.isdir(bpy.path.abspath(mask_dir)):
            raise BadInputError(f"mask folder {mask_dir!r} does not exist")
        if collection is None:
            raise BadInputError("no camera collection chosen")
        pairs = cameras_in_collection(collection, context.scene)
        if not pairs:
            raise BadInputError(f"collection '{collection.name}' holds no cameras")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with ObjectMode(obj):
                gaussians = io_splat.gaussians_from_object(obj)
            views = build_views([camera for _, camera in pairs], bpy.path.abspath(mask_dir), scale=scale, ids=ids)
        return cls(obj, gaussians, views, backend, [str(w.message) for w in caught], choose_gamma)

    @classmethod
    def from_label_maps(cls, obj, cameras, label_maps, *, backend="auto", scale=1.0):
        """A job for label maps made in Blender (e.g. rendered from proxy objects): ``cameras`` (world space),
        ``label_maps`` int32 [H, W] at their resolution (ids, 0 = background, -1 = ignore), lifted at
        ``scale``."""
        with ObjectMode(obj):
            gaussians = io_splat.gaussians_from_object(obj)
        return cls(obj, gaussians, build_views(cameras, label_maps, scale=scale), backend, [])

    def _progress(self, done, total):
        self.done, self.total = done, total
        if self.on_progress is not None:
            self.on_progress()

    def _cancel(self):
        return self.cancel_requested

    def run(self):
        """Lift (and cross-validate γ when asked); exceptions are kept in ``self.error`` (re-raised by
        :meth:`finish`)."""
        try:
            lift = lift_views(self.gaussians, self.views, backend=self.backend, choose_gamma=self.choose_gamma,
                              progress=self._progress, cancel=self._cancel)
            self.accumulation, self.gamma_choice = lift.accumulation, lift.gamma_choice
            if lift.association is not None:  # the views with per-view ids made consistent (instance ids)
                self.views, self.association = lift.views, lift.association
        except BaseException as error:  # CancelledError included: finish() reports it
            self.error = error
        finally:
            self.gaussians = None  # free the inputs early

    def finish(self):
        """Cache the accumulation, solve at the object's gamma and write the attributes; returns figures."""
        if self.error is not None:
            raise self.error
        obj = bpy.data.objects.get(self.object_name)
        if not io_splat.is_splat_object(obj) or point_count(obj.data) != self.n_gaussians:
            raise BadInputError(f"'{self.object_name}' was deleted or changed during segmentation")
        path = cache_path_for(obj)
        save_accumulation(path, self.accumulation)
        obj.gsseg.accumulation_path = path
        write_point_index(obj)
        label_list.clear_edits(obj)  # a new segmentation: merges and manual labels referred to the old ids
        label_list.mark_table(obj)  # labels made here: export writes their names and colours, as the CLI does
        if self.gamma_choice is not None:  # the slider starts at the chosen γ (its update re-solves below anyway)
            obj.gsseg.gamma = self.gamma_choice.gamma["subset"]
        label_count, unseen = apply_gamma(obj, new_ids=self.accumulation.label_ids)
        if self.association is not None:  # named as the CLI names them
            label_list.name_labels(obj, {int(k): f"instance_{k}" for k in self.accumulation.label_ids if k > 0})
        return {
            "object": obj.name,
            "views": len(self.views),
            "labels": [int(v) for v in self.views.label_ids],
            "label_count": label_count,
            "unseen": unseen,
            "path": path,
            "warnings": self.warnings,
            "gamma": None if self.gamma_choice is None else self.gamma_choice.gamma,
            "association": None if self.association is None else self.association.report(
                [camera.image_name for camera in self.views.cameras]),
        }


# For run_plan, which the panel calls at every redraw: one entry each, replaced when what it depends on changes.
_ESTIMATE_SAMPLE = {}  # (object name, point count) -> a sample of its Gaussians
_ESTIMATE_SECONDS = {}  # (object name, point count, flavour, the cameras as they are) -> expected seconds


def lift_estimate(context):
    """(description of the backend the lift will run on, expected seconds or None, number of views) for the
    chosen splat, cameras and scale: what :func:`run_plan` says, and Masks from Proxies adds its renders to."""
    settings = context.scene.gsseg
    flavour, description = planned_backend(resolve_backend(context, settings.backend))
    obj, collection = settings.splat_object, settings.camera_collection
    if flavour == "none" or obj is None or collection is None or not io_splat.is_splat_object(obj):
        return description, None, 0
    key = (obj.name, point_count(obj.data))
    if key not in _ESTIMATE_SAMPLE:
        if obj.mode == "EDIT":  # the mesh is read once edit mode is left
            return description, None, 0
        _ESTIMATE_SAMPLE.clear()
        _ESTIMATE_SAMPLE[key] = estimate_sample(io_splat.gaussians_from_object(obj))
    to_world = np.array(obj.matrix_world, dtype=np.float64)
    cameras = [camera.scaled(settings.scale).moved(to_world)
               for _, camera in cameras_in_collection(collection, context.scene)]
    if not cameras:
        return description, None, 0
    # projecting the sample takes milliseconds: only when the scene, the backend or a camera changed
    seconds_key = (*key, flavour, *((c.width, c.height, c.fx, c.fy, c.cx, c.cy, c.world_to_camera.tobytes())
                                    for c in cameras))
    if seconds_key not in _ESTIMATE_SECONDS:
        _ESTIMATE_SECONDS.clear()
        _ESTIMATE_SECONDS[seconds_key] = expected_seconds(_ESTIMATE_SAMPLE[key], key[1], cameras, flavour)
    return description, _ESTIMATE_SECONDS[seconds_key], len(cameras)


def about(seconds):
    """'12 s', '3 min', '1.5 h'."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else \
        f"{seconds / 3600:.1f} h"


_SAM_LAYOUT = {}  # (mask folder, its mtime) -> whether it is in SAM's layout; run_plan asks at every redraw


def ids_per_view(settings) -> bool:
    """Whether Segment will lift the chosen masks as ids that differ per view: the panel's switch, or a mask
    folder in SAM's layout (always per view)."""
    if settings.mask_ids == "PER_VIEW":
        return True
    folder = bpy.path.abspath(settings.mask_dir) if settings.mask_dir else ""
    try:
        key = (folder, os.stat(folder).st_mtime_ns)
    except OSError:
        return False
    if key not in _SAM_LAYOUT:
        _SAM_LAYOUT.clear()
        try:
            _SAM_LAYOUT[key] = is_sam_layout(folder)
        except BadInputError:  # a folder mixing layouts: Segment says so; the plan does not
            _SAM_LAYOUT[key] = False
    return _SAM_LAYOUT[key]


def run_plan(context):
    """One line for the Segment panel: the backend the lift will run on (and why not a faster one), and about
    how long it takes for the chosen splat, cameras and scale (per-view ids: the association included)."""
    description, seconds, views = lift_estimate(context)
    if seconds is None:
        return description
    if ids_per_view(context.scene.gsseg):
        return f"{description}: about {about(seconds * PER_VIEW_COST)} for {views} views, ids matched across views"
    return f"{description}: about {about(seconds)} for {views} views"


def _apply_gamma_levels(obj, layout, gamma):
    """γ on a multi-level scene: every level re-solved by the core (each finer level within its parents), then
    gsseg_label and gsseg_code rewritten together. Needs the coarser levels' sidecars beside the finest one
    (OUT.level<k>.gsseg.npz, as `gsseg segment` writes them, with their parent ids); refused otherwise, so
    that the two attributes never disagree."""
    mesh = obj.data
    n = point_count(mesh)
    paths = level_sidecars(bpy.path.abspath(obj.gsseg.accumulation_path), len(layout.bits))
    try:
        level_labels, confidence, label_ids = solve_level_sidecars(paths, n, gamma)
    except (BadInputError, KeyError, OSError) as error:
        raise BadInputError(f"'{obj.name}' is a multi-level scene: re-solving needs the sidecars of every level "
                            f"for its {n:,} points ({error})") from None
    write_attribute(mesh, LABEL_PROPERTY, level_labels[-1], "INT")
    write_attribute(mesh, CODE_PROPERTY, layout.pack(level_labels), "INT")
    write_attribute(mesh, CONFIDENCE_ATTRIBUTE, confidence, "FLOAT")
    label_list.sync(obj)
    label_list.refresh_display(obj)
    tag_update(mesh)
    return len(label_ids), int(np.count_nonzero(level_labels[-1] < 0))


# ---------------------------------------------------------------------------------------------------------------
# The caches travel with the .blend

def keep_caches_beside(blend_path):
    """Before saving to ``blend_path``: every object's cached accumulation beside that .blend, referred to by a
    relative path. A cache elsewhere -- the temporary folder of a file not saved yet, or the folder of the .blend
    this one is being saved as a copy of -- is copied there (atomically); the original stays, since undo or the
    other .blend may still refer to it. Returns how many caches were copied."""
    from ..core.files.commit import output_path

    folder = os.path.dirname(os.path.abspath(blend_path))
    stem = os.path.splitext(os.path.basename(blend_path))[0]
    copied = 0
    for obj in bpy.data.objects:
        settings = getattr(obj, "gsseg", None)
        if settings is None or not settings.accumulation_path:
            continue
        source = os.path.abspath(bpy.path.abspath(settings.accumulation_path))  # as the current file reads it
        if not os.path.isfile(source):
            continue
        target = source
        if os.path.dirname(source) != folder:
            name = os.path.basename(source)
            target = os.path.join(folder, name if name.startswith(stem + ".") else f"{stem}.{name}")
            layout = label_list.layout_of(obj)
            levels = len(layout.bits) if layout is not None and len(layout.bits) > 1 else 1
            for old, new in zip(level_sidecars(source, levels), level_sidecars(target, levels), strict=True):
                if os.path.isfile(old) and not os.path.exists(new):
                    with output_path(new) as temp:
                        shutil.copy2(old, temp)
            copied += 1
        settings.accumulation_path = "//" + os.path.relpath(target, folder).replace(os.sep, "/")
    return copied


def remove_orphan_caches(blend_path):
    """Remove the caches the add-on made beside ``blend_path`` (named ``STEM.OBJECT-TAG.gsseg.npz``, bound to
    no PLY) that no object of the open file refers to. Called when a file is opened: no undo step can bring a
    reference back then. A sidecar written by the command line (bound to its PLY) is never touched. Returns the
    paths removed."""
    import re

    from ..core.lift.sidecar import sidecar_run_id

    folder = os.path.dirname(os.path.abspath(blend_path))
    stem = os.path.splitext(os.path.basename(blend_path))[0]
    made_here = re.compile(re.escape(stem) + r"\..+-[0-9a-f]{8}" + re.escape(SIDECAR_SUFFIX) + "$")
    referenced = {os.path.abspath(bpy.path.abspath(obj.gsseg.accumulation_path))
                  for obj in bpy.data.objects if getattr(obj, "gsseg", None) and obj.gsseg.accumulation_path}
    removed = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
        path = os.path.join(folder, name)
        if not made_here.match(name) or path in referenced:
            continue
        try:
            if sidecar_run_id(path) == "":  # made by the add-on, bound to no PLY
                os.remove(path)
                removed.append(path)
        except (OSError, BadInputError):
            continue
    return removed


def _on_blend_file(function, failure):
    """A save/load handler calling ``function(path of the .blend)``; a failure is printed, never raised into
    Blender (the save or load goes on)."""
    def handler(*args):
        path = next((arg for arg in args if isinstance(arg, str) and arg), None) or bpy.data.filepath
        if not path:
            return
        try:
            function(path)
        except Exception as error:
            print(f"gsseg: {failure} ({path}): {error}")
    return handler


HANDLERS = (("save_pre", _on_blend_file(keep_caches_beside, "the segmentation caches were not copied beside it")),
            ("load_post", _on_blend_file(remove_orphan_caches, "unused segmentation caches were not removed")))


_HANDLERS = []


def register():
    _HANDLERS[:] = register_handlers(HANDLERS)


def unregister():
    unregister_handlers(_HANDLERS)
    _HANDLERS.clear()
