"""Operators: import/export splats, import cameras, segment (from masks or proxies), re-solve, and the editing
operators on instances (all undoable: they register with UNDO and change only Blender data and new cache
files)."""

import os
import threading
import warnings

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..core.errors import CancelledError, GssegError
from ..core.files.formats import READ_FORMATS, WRITTEN_FORMATS, filter_endings, named_format
from ..core.lift.views import IDS_PER_VIEW
from ..core.scene.up_axis import AUTO, AXES, BLENDER_UP, choose_axes, with_up_comment
from . import camera_objects as camera_io
from . import editing, io_splat, proxies, segment, splat_display
from . import labels as label_list
from .attributes import ObjectMode
from .classes import register_classes, unregister_classes
from .prefs import resolve_backend


def _active_splat(context):
    obj = context.active_object
    return obj if io_splat.is_splat_object(obj) else None


NO_SPLAT = "Import a splat first (or make one the active object)"
ACTIVE_SPLAT = "Make a splat (an imported Gaussian splat object) the active object"


def _poll(cls, *checks):
    """An operator's poll: False with the message of the first (condition, message) that fails."""
    for passed, message in checks:
        if not passed:
            cls.poll_message_set(message)
            return False
    return True


def _error_text(error):
    return str(error) if isinstance(error, GssegError) else f"{type(error).__name__}: {error}"


AXIS_ITEMS = ((AUTO, "Auto", "Up from the cameras beside the file (the camera files Import Cameras reads: "
                "their mean up, to the nearest axis), else the file's convention (3DGS, COLMAP: -Y); forward from "
                "the smallest turn that stands it upright"),) + tuple((name, name, "") for name in AXES)


def _keep_axes_apart(changed, other):
    """An update of the Forward / Up options: two explicit axes along one line are not axes (as Blender's
    orientation_helper does, the other one moves on)."""
    def update(self, _context):
        first, second = getattr(self, changed), getattr(self, other)
        if AUTO in (first, second) or first[-1] != second[-1]:
            return
        setattr(self, other, AXES[(AXES.index(second) + 1) % len(AXES)])
    return update


class GSSEG_OT_import_splat(bpy.types.Operator, ImportHelper):
    bl_idname = "gsseg.import_splat"
    bl_label = "Import Gaussian Splat"
    bl_description = (f"Import Gaussian splats ({', '.join(f.ending for f in READ_FORMATS)}) as Blender's own "
                      "Gaussian splat point cloud (5.3+) or a point mesh, every vertex property kept as an attribute")
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default=";".join("*" + e for e in filter_endings(READ_FORMATS)), options={"HIDDEN"})
    directory: StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    display: EnumProperty(name="Display", default=io_splat.default_display(), items=(
        *((("NATIVE", "Native", "Blender's own Gaussian splat point cloud: Blender draws and renders it (5.3+)"),)
          if io_splat.native_splat.has_native() else ()),
        ("SPLAT", "Splat", "Each Gaussian as a splat: its shape, opacity and view-dependent colour (EEVEE, Cycles)"),
        ("POINTS", "Points", "One point per Gaussian in its base colour (fast for huge scenes)"),
        ("NONE", "None", "No display (a vertex-only mesh shows nothing in object mode)"),
    ))
    forward_axis: EnumProperty(name="Forward Axis", items=AXIS_ITEMS, default=AUTO,
                               description="The file's axis that becomes Blender's +Y",
                               update=_keep_axes_apart("forward_axis", "up_axis"))
    up_axis: EnumProperty(name="Up Axis", items=AXIS_ITEMS, default=AUTO,
                          description="The file's axis that becomes Blender's +Z (Y forward, Z up: the file as "
                          "it is). The turn is the object's rotation, recorded: export in the file's axes "
                          "takes it off, Import Cameras turns the cameras with it",
                          update=_keep_axes_apart("up_axis", "forward_axis"))

    def invoke(self, context, event):
        return self.invoke_popup(context)

    def _paths(self):
        if self.files and self.directory:
            return [os.path.join(self.directory, f.name) for f in self.files if f.name]
        return [self.filepath] if self.filepath else []

    def execute(self, context):
        paths = self._paths()
        if not paths:
            self.report({"ERROR"}, "No file given")
            return {"CANCELLED"}
        if context.view_layer.objects.active and context.view_layer.objects.active.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        imported, failed = [], []
        for path in paths:
            # cameras imported before any splat are in its file's frame: they say which way is up, and turn with it
            waiting = camera_io.cameras_waiting(context) if not imported else None
            cameras = [camera for _, camera in camera_io.cameras_in_collection(waiting, context.scene)] \
                if waiting is not None else []
            result = None
            try:
                result = io_splat.import_splat(
                    context, path, shown_as=None if self.display == "NONE" else self.display)
                comments = [text for kind, text in (io_splat.header_of(result.object) or {}).get("meta_lines", ())
                            if kind == "comment"]
                axes = choose_axes(path, self.forward_axis, self.up_axis,
                                   (cameras, f"'{waiting.name}'") if cameras else None, comments)
                turn = camera_io.apply_import_axes(result.object, axes)
                label_list.after_import(result.object)
            except Exception as error:
                if result is not None:  # imported, then refused: not left half done
                    bpy.data.objects.remove(result.object)
                failed.append(f"{os.path.basename(path)}: {_error_text(error)}")
                continue
            imported.append(result.object)
            text = f"{result.summary()}; {axes.describe()}"
            if cameras and not camera_io.is_identity_turn(turn):
                camera_io.turn_cameras(waiting, turn)
                text += f"; the cameras of '{waiting.name}' turned with it"
            self.report({"WARNING"} if result.refused else {"INFO"}, text)
        if not imported:
            self.report({"ERROR"}, "; ".join(failed))
            return {"CANCELLED"}
        for text in failed:  # the others are in: keep them (and the undo step)
            self.report({"WARNING"}, text)
        for obj in context.view_layer.objects:
            obj.select_set(False)
        for obj in imported:
            obj.select_set(True)
        context.view_layer.objects.active = imported[-1]
        if context.scene.gsseg.splat_object is None:
            context.scene.gsseg.splat_object = imported[-1]
        if self.display == "SPLAT":
            splat_display.show_materials(context)
        return {"FINISHED"}


EXPORT_FORMATS = tuple((f.identifier, f"{f.label} ({f.ending})", f.description) for f in WRITTEN_FORMATS)


def _with_format_ending(path, file_format):
    """``path`` ending in the format's extension (any other written format's ending replaced)."""
    known = named_format(path, WRITTEN_FORMATS)
    stem = path[:-len(known.ending)] if known else path
    return stem + next(f.ending for f in WRITTEN_FORMATS if f.identifier == file_format)


def _with_blender_up(obj, gaussians):
    """The export's header comments in Blender's axes: the instance list's, and Z declared up."""
    return with_up_comment(label_list.with_label_comments(obj, gaussians), BLENDER_UP)


class GSSEG_OT_export_splat(bpy.types.Operator, ExportHelper):
    """Export the active splat object in the chosen format; a PLY keeps the properties, types, order and comments
    of the file it came from"""

    bl_idname = "gsseg.export_splat"
    bl_label = "Export Gaussian Splat"
    bl_options = {"REGISTER"}

    filename_ext = ".ply"
    filter_glob: StringProperty(default=";".join("*" + e for e in filter_endings(WRITTEN_FORMATS)),
                                options={"HIDDEN"})
    file_format: EnumProperty(name="Format", items=EXPORT_FORMATS, default="PLY",
                              description="File format (labels travel in "
                                          f"{', '.join(f.label for f in WRITTEN_FORMATS if f.keeps_labels)})")
    selected_only: BoolProperty(name="Selected Only", default=False,
                                description="Write only the selected points (edit-mode selection)")
    include_label: BoolProperty(name="Include gsseg_label", default=False,
                                description="Add the segmentation label as an int vertex property (with the "
                                "instance list's names and colours as header comments)")
    apply_transform: BoolProperty(name="Apply Object Transform", default=True,
                                  description="Bake the object's transform into positions, rotations, scales and "
                                  "SH colours (uniform scale only); off: write the splats in object space")
    axes: EnumProperty(name="Axes", default="FILE", items=(
        ("FILE", "File's", "The axes the file came in: the turn its import's Forward / Up axes gave the object is "
                           "taken off, the rest of the transform baked (an unedited splat is written as it was read)"),
        ("BLENDER", "Blender's", "Blender's world axes (Z up): the whole object transform baked, and the header "
                                 "says Z is up (gsseg_up Z: an import's Auto axes keep it as it is)"),
    ))
    undo_spz_axes: BoolProperty(name="Undo Blender's SPZ Axes", default=False,
                                description="The splat came from Blender's own .spz import (File > Import), "
                                "which turns the file to Z up: write it back in the file's axes")

    @classmethod
    def poll(cls, context):
        return _poll(cls, (_active_splat(context) is not None, ACTIVE_SPLAT))

    def check(self, context):
        """Keep the file name's ending in step with the chosen format (as Blender's glTF exporter does)."""
        path = _with_format_ending(self.filepath, self.file_format)
        changed = path != self.filepath
        self.filepath = path
        return changed

    def execute(self, context):
        obj = _active_splat(context)
        path = _with_format_ending(self.filepath, self.file_format)
        try:
            header = label_list.with_label_comments
            if self.apply_transform and self.axes == "BLENDER":  # what Blender shows: Z up, and the file says so
                header = _with_blender_up
            count, lost = io_splat.export_splat(obj, path, selected_only=self.selected_only,
                                                include_label=self.include_label,
                                                apply_transform=self.apply_transform, header=header,
                                                file_axes=self.axes == "FILE", undo_spz_axes=self.undo_spz_axes)
        except Exception as error:
            self.report({"ERROR"}, _error_text(error))
            return {"CANCELLED"}
        for problem in lost:
            self.report({"WARNING"}, problem)
        self.report({"INFO"}, f"Wrote {count:,} splats to {path}")
        return {"FINISHED"}


class GSSEG_OT_import_cameras(bpy.types.Operator, ImportHelper):
    """Import cameras (INRIA cameras.json, COLMAP cameras/images .bin/.txt, transforms.json) as camera objects
    in a new collection"""

    bl_idname = "gsseg.import_cameras"
    bl_label = "Import Splat Cameras"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.json;*.bin;*.txt", options={"HIDDEN"})
    collection_name: StringProperty(name="Collection", default="",
                                    description="Name of the new collection (default: from the file name)")
    set_resolution: BoolProperty(name="Set Render Size", default=True,
                                 description="When all images share one size, make it the scene's render size "
                                 "(the camera frames and lens shifts are drawn relative to it)")

    def execute(self, context):
        path = self.filepath
        if not os.path.basename(path):  # a folder chosen in the file browser
            path = os.path.dirname(path)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                splat = _segment_target(context)
                turn = camera_io.recorded_turn(splat) if io_splat.is_splat_object(splat) else None
                collection, cameras = camera_io.import_cameras(context, path, self.collection_name or None, turn)
        except Exception as error:
            self.report({"ERROR"}, _error_text(error))
            return {"CANCELLED"}
        for warning in caught:  # e.g. COLMAP lens distortion ignored
            self.report({"WARNING"}, str(warning.message))
        settings = context.scene.gsseg
        previous = settings.camera_collection
        settings.camera_collection = collection
        text = f"Imported {len(cameras)} cameras into '{collection.name}'"
        if turn is not None and not camera_io.is_identity_turn(turn):
            text += f", turned with '{splat.name}' ({splat.get(camera_io.AXES_KEY, 'its import axes')})"
        if previous is not None and previous != collection:
            text += f", now the cameras to segment with (instead of '{previous.name}')"
        sizes = {(c.width, c.height, c.fy / c.fx) for c in cameras}
        if self.set_resolution and len(sizes) == 1 and collection.objects:
            scene_camera = context.scene.camera
            first = sorted(collection.objects, key=lambda o: o.name)[0]
            camera = camera_io.apply_render_settings(context.scene, first)
            if scene_camera is not None:
                context.scene.camera = scene_camera
            text += f"; render size {camera.width}x{camera.height}"
        self.report({"INFO"}, text)
        return {"FINISHED"}


class GSSEG_OT_add_view_cameras(bpy.types.Operator):
    """Add a rig of cameras around the selected proxy objects (or the whole splat) for a splat that came without
    its cameras"""

    bl_idname = "gsseg.add_view_cameras"
    bl_label = "Add View Cameras"
    bl_options = {"REGISTER", "UNDO"}

    count: IntProperty(name="Views", default=24, min=1, max=512, description="Number of cameras")
    elevation_low: FloatProperty(name="Lowest Elevation", default=10.0, min=-89.0, max=89.0,
                                 description="Degrees above the horizon of the lowest views")
    elevation_high: FloatProperty(name="Highest Elevation", default=55.0, min=-89.0, max=89.0,
                                  description="Degrees above the horizon of the highest views")
    fov: FloatProperty(name="Field of View", default=60.0, min=5.0, max=150.0,
                       description="Horizontal field of view in degrees")

    @classmethod
    def poll(cls, context):
        return _poll(cls, (_segment_target(context) is not None, NO_SPLAT))

    def execute(self, context):
        splat = _segment_target(context)
        proxies = [obj for obj in context.selected_objects
                   if obj.type == "MESH" and not io_splat.is_splat_object(obj)]
        try:
            up, _ = camera_io.cameras_up_in(context)  # the rig circles the chosen cameras' up,
            if up is None:  # else the splat's, by the turn its import's axes gave it, else Z
                up = camera_io.object_up(splat)
            collection, cameras = camera_io.add_view_cameras(
                context, io_splat.in_world(splat, io_splat.gaussians_from_object(splat)), proxies, count=self.count,
                elevations=(self.elevation_low, self.elevation_high), fov_x=self.fov, up=up)
        except Exception as error:
            self.report({"ERROR"}, _error_text(error))
            return {"CANCELLED"}
        around = f"{len(proxies)} proxies" if proxies else f"'{splat.name}'"
        self.report({"INFO"}, f"Added {len(cameras)} cameras around {around} into '{collection.name}' "
                    f"({cameras[0].width}x{cameras[0].height}); chosen for segmentation")
        return {"FINISHED"}


class GSSEG_OT_use_camera(bpy.types.Operator):
    """Make the active camera the scene camera and set the render resolution and pixel aspect to its image's"""

    bl_idname = "gsseg.use_camera"
    bl_label = "Use Camera Image Size"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        camera = context.active_object
        return _poll(cls, (camera is not None and camera.type == "CAMERA", "Make a camera the active object"))

    def execute(self, context):
        camera = camera_io.apply_render_settings(context.scene, context.active_object)
        self.report({"INFO"}, f"Render size {camera.width}x{camera.height}")
        return {"FINISHED"}


class _JobModal:
    """Run a job interactively: prepared in the main thread (:meth:`_prepare_job`), run in a worker thread,
    finished in the main thread; progress in the status bar, Esc cancels. Without a window (scripts) the
    operator's ``execute`` runs instead."""

    bl_options = {"REGISTER", "UNDO"}
    _job = None
    _thread = None
    _timer = None
    working = "working"  # the status bar's words

    def _prepare_job(self, context):
        raise NotImplementedError

    def _report_result(self, context, result):
        raise NotImplementedError

    def execute(self, context):
        """Synchronous (scripts, the redo panel): the same job, every step in this thread."""
        window_manager = context.window_manager
        try:
            job = self._prepare_job(context)
            window_manager.progress_begin(0, 1)
            if hasattr(job, "on_progress"):
                job.on_progress = lambda: window_manager.progress_update(job.done / max(job.total, 1))
            try:
                while getattr(job, "step_in_main_thread", lambda: False)():
                    window_manager.progress_update(job.done / max(job.total, 1))
                job.run()
                result = job.finish()
            finally:
                window_manager.progress_end()
        except Exception as error:
            self.report({"ERROR"}, _error_text(error))
            return {"CANCELLED"}
        self._report_result(context, result)
        return {"FINISHED"}

    def invoke(self, context, event):
        if context.window is None:
            return self.execute(context)
        try:
            self._job = self._prepare_job(context)
        except Exception as error:
            self.report({"ERROR"}, _error_text(error))
            return {"CANCELLED"}
        if not hasattr(self._job, "step_in_main_thread"):
            self._start_thread()
        window_manager = context.window_manager
        self._timer = window_manager.event_timer_add(0.2, window=context.window)
        window_manager.progress_begin(0, 1)
        window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _start_thread(self):
        self._thread = threading.Thread(target=self._job.run, name=f"gsseg-{self.working}", daemon=True)
        self._thread.start()

    def _end(self, context):
        window_manager = context.window_manager
        if self._timer is not None:
            window_manager.event_timer_remove(self._timer)
            self._timer = None
        window_manager.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)

    def modal(self, context, event):
        job = self._job
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel_requested = True
        if event.type != "TIMER":
            return {"RUNNING_MODAL"} if event.type == "ESC" else {"PASS_THROUGH"}
        context.window_manager.progress_update(job.done / max(job.total, 1))
        if context.workspace is not None:
            state = "cancelling" if job.cancel_requested else f"step {job.done}/{job.total}"
            context.workspace.status_text_set(f"gsseg: {self.working}, {state} (Esc to cancel)")
        try:
            if self._thread is None:  # steps that need the main thread (Blender's renderer) come first
                if job.step_in_main_thread():
                    return {"RUNNING_MODAL"}
                self._start_thread()
            if self._thread.is_alive():
                return {"RUNNING_MODAL"}
            self._end(context)
            result = job.finish()
        except CancelledError:
            self._end(context)
            self.report({"WARNING"}, f"{self.bl_label} cancelled")
            return {"CANCELLED"}
        except Exception as error:
            self._end(context)
            self.report({"ERROR"}, _error_text(error))
            return {"CANCELLED"}
        self._report_result(context, result)
        return {"FINISHED"}

    def cancel(self, context):
        if self._job is not None:
            self._job.cancel_requested = True
        self._end(context)


class GSSEG_OT_segment(_JobModal, bpy.types.Operator):
    """Lift the 2D masks onto the splat: accumulate each Gaussian's weight per label over the cameras, then
    solve for labels at the current gamma (Esc cancels)"""

    bl_idname = "gsseg.segment"
    bl_label = "Segment"

    working = "accumulating masks"

    @classmethod
    def poll(cls, context):
        settings = context.scene.gsseg
        return _poll(cls, (_segment_target(context) is not None, NO_SPLAT),
                     (settings.camera_collection is not None,
                      "Choose the cameras: Import Cameras, or Add View Cameras"),
                     (bool(settings.mask_dir), "Choose the mask folder (no masks: Segment from Proxies)"))

    def _inputs(self, context):
        settings = context.scene.gsseg
        obj = settings.splat_object or _active_splat(context)
        if obj is None:
            raise GssegError("Choose a splat object (import one first)")
        if settings.camera_collection is None:
            raise GssegError("Choose the camera collection (import cameras first)")
        return obj, dict(collection=settings.camera_collection, mask_dir=settings.mask_dir, scale=settings.scale,
                         backend=resolve_backend(context, settings.backend), choose_gamma=settings.choose_gamma,
                         ids=IDS_PER_VIEW if settings.mask_ids == "PER_VIEW" else None)

    def _report_result(self, context, result):
        obj = bpy.data.objects.get(result["object"])
        if obj is not None:
            obj.gsseg.display = "LABELS"
        for text in result["warnings"]:
            self.report({"WARNING"}, text)
        chosen = "" if not result.get("gamma") else (
            f"; γ chosen by cross-validation: {result['gamma']['subset']:+.2f} (argmax rule "
            f"{result['gamma']['argmax']:+.2f})")
        association = result.get("association")
        matched = "" if association is None else (
            f"; per-view ids matched into {association['n_instances']} instances ({association['masks_merges']} "
            f"merge and {association['masks_unmatched']} unmatched masks ignored)")
        self.report({"INFO"}, f"Segmented from {result['views']} views: {result['label_count']} labels, "
                              f"{result['unseen']:,} points unseen{chosen}{matched}")

    def _prepare_job(self, context):
        obj, inputs = self._inputs(context)
        return segment.SegmentJob.prepare(context, obj, **inputs)


class GSSEG_OT_segment_proxies(_JobModal, bpy.types.Operator):
    """Label the splat from proxy objects alone (no cameras, no masks): the selected meshes, or the meshes with
    an instance id, each standing for one object (Esc cancels)"""

    bl_idname = "gsseg.segment_proxies"
    bl_label = "Segment from Proxies"

    working = "segmenting from proxies"

    @classmethod
    def poll(cls, context):
        return _poll(cls, (_segment_target(context) is not None, NO_SPLAT),
                     (bool(_proxies_for(context)),
                      "Select the proxy meshes (one around each object), or give meshes an instance id"))

    def _prepare_job(self, context):
        obj = _segment_target(context)
        return proxies.ProxyJob.prepare(context, obj, _proxies_for(context))

    def _report_result(self, context, result):
        obj = bpy.data.objects[result["object"]]
        obj.gsseg.display = "LABELS"
        context.view_layer.objects.active = obj
        counts = ", ".join(f"{label}: {count:,}" for label, count in sorted(result["counts"].items()))
        self.report({"INFO"}, f"Segmented '{obj.name}' from {result['proxies']} proxies ({counts} points)")


def _segment_target(context):
    settings = context.scene.gsseg
    return settings.splat_object or _active_splat(context)


def _proxies_for(context):
    """The selected meshes that are not splats, else the scene's meshes with an instance id."""
    selected = [obj for obj in context.selected_objects
                if obj.type in proxies.RENDERABLE_TYPES and not io_splat.is_splat_object(obj)]
    return selected or proxies.proxy_objects(context.scene)


class GSSEG_OT_apply_gamma(bpy.types.Operator):
    """Re-solve the labels of the active splat from its cached accumulation at its gamma"""

    bl_idname = "gsseg.apply_gamma"
    bl_label = "Re-solve Labels"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        obj = _active_splat(context)
        return _poll(cls, (obj is not None, ACTIVE_SPLAT),
                     (obj is not None and bool(obj.gsseg.accumulation_path), "Segment the splat first (no cache)"))

    def execute(self, context):
        obj = _active_splat(context)
        try:
            labels, unseen = segment.apply_gamma(obj)
        except Exception as error:
            self.report({"ERROR"}, _error_text(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{labels} labels at gamma {obj.gsseg.gamma:.3f}; {unseen:,} points unseen")
        return {"FINISHED"}


class _SplatOperator:
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return _poll(cls, (_active_splat(context) is not None, ACTIVE_SPLAT))

    def run(self, context, obj):
        raise NotImplementedError

    def execute(self, context):
        obj = _active_splat(context)
        try:
            label_list.ensure_listed(obj)
            text = self.run(context, obj)
        except Exception as error:
            self.report({"ERROR"}, _error_text(error))
            return {"CANCELLED"}
        if text:
            self.report({"INFO"}, text)
        return {"FINISHED"}


class GSSEG_OT_stand_upright(_SplatOperator, bpy.types.Operator):
    """Turn the active splat so that its up is Blender's Z (up from the chosen cameras, else the up its import's axes
    recorded, else the file's -Y), with the chosen cameras"""

    bl_idname = "gsseg.stand_upright"
    bl_label = "Stand Upright"

    def run(self, context, obj):
        with ObjectMode(obj, stay=True):  # the turn's record is a custom property: an object-mode undo step
            angle, source, cameras = camera_io.stand_upright(context, obj)
        if angle == 0.0:
            return f"'{obj.name}' already stands upright (up from {source})"
        with_cameras = f", with {cameras} cameras" if cameras else ""
        return f"Turned '{obj.name}' by {angle:.1f}° to stand upright (up from {source}){with_cameras}"


class _InstanceOperator(_SplatOperator):
    label: IntProperty(name="Instance", default=-2, min=-2,
                       description="Label of the instance (-2: the active row of the instance list)")
    level: StringProperty(name="Level", default="", options={"SKIP_SAVE"},
                          description="Label level ('LABEL' or a gsseg_code level number; empty: the object's)")

    def _label(self, obj):
        return obj.gsseg.instance if self.label == -2 else self.label

    def _level(self, obj):
        return self.level or obj.gsseg.level

    def _name(self, obj, label):
        item = label_list.find_item(obj, label, label_list.level_number(obj, self._level(obj)))
        return f"instance {label}" + (f" ({item.name})" if item is not None else "")


class _ShowsSelection:
    """A selection is seen in edit mode: clicked from object mode (invoked), the operator goes there. Run from a
    script (executed), it leaves the mode to the script, whose reads and undo steps then stay in object mode."""

    def invoke(self, context, event):
        result = _SplatOperator.execute(self, context)
        obj = _active_splat(context)
        if "FINISHED" in result and obj.mode != "EDIT":
            with context.temp_override(active_object=obj, object=obj):
                bpy.ops.object.mode_set(mode="EDIT")
        return result


class GSSEG_OT_select_instance(_ShowsSelection, _InstanceOperator, bpy.types.Operator):
    """Select the points of one instance (edit-mode selection); at a coarse level, all its parts"""

    bl_idname = "gsseg.select_instance"
    bl_label = "Select Instance"

    extend: BoolProperty(name="Extend", default=False, description="Add to the current selection")

    def run(self, context, obj):
        label = self._label(obj)
        count = editing.select_instance(obj, label, self.extend, self._level(obj))
        return f"Selected {count:,} points of {self._name(obj, label)}"


class GSSEG_OT_select_inside(_ShowsSelection, _SplatOperator, bpy.types.Operator):
    """Select the points inside the selected mesh objects (no cameras needed)"""

    bl_idname = "gsseg.select_inside"
    bl_label = "Select Inside Object"

    extend: BoolProperty(name="Extend", default=False, description="Add to the current selection")

    @classmethod
    def poll(cls, context):
        return _poll(cls, (_active_splat(context) is not None, ACTIVE_SPLAT),
                     (bool(_volumes(context)), "Select the mesh object(s) to select inside, then the splat"))

    def run(self, context, obj):
        volumes = _volumes(context)
        count = editing.select_inside(obj, volumes, self.extend)
        return f"Selected {count:,} points inside {', '.join(v.name for v in volumes)}"


def _volumes(context):
    return [obj for obj in context.selected_objects if obj.type == "MESH" and not io_splat.is_splat_object(obj)]


class GSSEG_OT_select_linked_instance(_ShowsSelection, _SplatOperator, bpy.types.Operator):
    """Grow the selection to whole instances: every point of an instance a selected point belongs to"""

    bl_idname = "gsseg.select_linked_instance"
    bl_label = "Select Linked Instance"

    @classmethod
    def poll(cls, context):
        obj = _active_splat(context)
        return _poll(cls, (obj is not None and label_list.has_labels(obj),
                           "Segment the splat first: instances come from its labels"))

    def run(self, context, obj):
        labels, count = editing.select_linked_instance(obj, obj.gsseg.level)
        return f"Selected {count:,} points of {len(labels)} instance{'s' if len(labels) != 1 else ''}"


class GSSEG_OT_deselect_instance(_ShowsSelection, _InstanceOperator, bpy.types.Operator):
    """Deselect the points of one instance"""

    bl_idname = "gsseg.deselect_instance"
    bl_label = "Deselect Instance"

    def run(self, context, obj):
        label = self._label(obj)
        count = editing.deselect_instance(obj, label, self._level(obj))
        return f"Deselected the {count:,} points of {self._name(obj, label)}"


class GSSEG_OT_select_unseen(_ShowsSelection, _SplatOperator, bpy.types.Operator):
    """Select the points no camera saw (label -1)"""

    bl_idname = "gsseg.select_unseen"
    bl_label = "Select Unseen"

    extend: BoolProperty(name="Extend", default=False, description="Add to the current selection")

    def run(self, context, obj):
        return f"Selected {editing.select_unseen(obj, self.extend):,} unseen points"


class GSSEG_OT_invert_selection(_ShowsSelection, _SplatOperator, bpy.types.Operator):
    """Invert the point selection (hidden points stay unselected)"""

    bl_idname = "gsseg.invert_selection"
    bl_label = "Invert Selection"

    def run(self, context, obj):
        return f"{editing.invert_selection(obj):,} points selected"


class GSSEG_OT_hide_instance(_InstanceOperator, bpy.types.Operator):
    """Hide the points of one instance (in edit mode and in the display)"""

    bl_idname = "gsseg.hide_instance"
    bl_label = "Hide Instance"

    def run(self, context, obj):
        label = self._label(obj)
        return f"Hid {editing.hide_instance(obj, label, self._level(obj)):,} points of {self._name(obj, label)}"


class GSSEG_OT_isolate_instance(_InstanceOperator, bpy.types.Operator):
    """Hide every point but those of one instance"""

    bl_idname = "gsseg.isolate_instance"
    bl_label = "Isolate Instance"

    def run(self, context, obj):
        label = self._label(obj)
        count = editing.isolate_instance(obj, label, self._level(obj))
        return f"Showing only {self._name(obj, label)} ({count:,} points)"


class GSSEG_OT_reveal(_SplatOperator, bpy.types.Operator):
    """Show every hidden point again"""

    bl_idname = "gsseg.reveal"
    bl_label = "Reveal All"

    def run(self, context, obj):
        return f"Revealed {editing.reveal(obj):,} points"


class GSSEG_OT_delete_instance(_InstanceOperator, bpy.types.Operator):
    """Delete the points of one instance (by label); with halo, also its members at the gamma slider's value"""

    bl_idname = "gsseg.delete_instance"
    bl_label = "Delete Instance"

    halo: EnumProperty(name="With Halo", items=(
        ("OBJECT", "Object Setting", "Use the 'With Halo' setting of the splat"),
        ("ON", "With Halo", "Also delete every member at the slider's gamma"),
        ("OFF", "Label Only", "Delete the points labelled with the instance"),
    ), default="OBJECT", options={"SKIP_SAVE"})

    def run(self, context, obj):
        label = self._label(obj)
        halo = obj.gsseg.delete_halo if self.halo == "OBJECT" else self.halo == "ON"
        name = self._name(obj, label)
        count = editing.delete_instance(obj, label, halo=halo, level=self._level(obj))
        extra = f" (with halo at gamma {obj.gsseg.gamma:.3f})" if halo else ""
        return f"Deleted {count:,} points of {name}{extra}"


class GSSEG_OT_separate_instance(_InstanceOperator, bpy.types.Operator):
    """Move the points of one instance into a new object that keeps every attribute and the header"""

    bl_idname = "gsseg.separate_instance"
    bl_label = "Separate Instance"

    def run(self, context, obj):
        label = self._label(obj)
        count, new = editing.separate_instance(context, obj, label, self._level(obj))
        return f"Moved {count:,} points of instance {label} into '{new.name}'"


class GSSEG_OT_assign_instance(_InstanceOperator, bpy.types.Operator):
    """Give the selected points an instance label (a manual fix, kept when gamma changes)"""

    bl_idname = "gsseg.assign_instance"
    bl_label = "Assign Selection to Instance"

    new_instance: BoolProperty(name="New Instance", default=False, options={"SKIP_SAVE"},
                               description="Assign to a new label (one above the largest id)")

    def run(self, context, obj):
        label, count = editing.assign_selection(obj, None if self.new_instance else self._label(obj))
        return f"Assigned {count:,} points to instance {label}"


class GSSEG_OT_merge_instances(_SplatOperator, bpy.types.Operator):
    """Merge one instance into another (kept when gamma changes)"""

    bl_idname = "gsseg.merge_instances"
    bl_label = "Merge Instances"

    source: IntProperty(name="Merge", default=-2, min=-2,
                        description="Instance to merge away (-2: the active row of the instance list)")
    target: IntProperty(name="Into", default=0, min=0, description="Instance that receives its points")

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)

    def run(self, context, obj):
        source = obj.gsseg.instance if self.source == -2 else self.source
        count = editing.merge_instances(obj, source, self.target)
        return f"Merged instance {source} into {self.target} ({count:,} points)"


class GSSEG_OT_masks_from_proxies(_JobModal, bpy.types.Operator):
    """Render the proxy objects' instance ids from the cameras at their full resolution (Cycles object-index
    pass, the splat and every non-proxy hidden) and lift these label maps onto the splat (Esc cancels)"""

    bl_idname = "gsseg.masks_from_proxies"
    bl_label = "Masks from Proxies"

    working = "masks from proxies"

    @classmethod
    def poll(cls, context):
        return _poll(cls, (_segment_target(context) is not None, NO_SPLAT))

    def _prepare_job(self, context):
        settings = context.scene.gsseg
        return proxies.ProxyMaskJob(context, _segment_target(context), collection=settings.camera_collection,
                                    scale=settings.scale, backend=resolve_backend(context, settings.backend),
                                    save_dir=settings.proxy_mask_dir)

    def _report_result(self, context, result):
        bpy.data.objects[result["object"]].gsseg.display = "LABELS"
        self.report({"INFO"}, f"Rendered proxy masks for {result['views']} views (ids "
                              f"{', '.join(map(str, result['labels_rendered']))}); {result['label_count']} labels, "
                              f"{result['unseen']:,} points unseen")


class GSSEG_FH_splat(bpy.types.FileHandler):
    bl_idname = "GSSEG_FH_splat"
    bl_label = "Gaussian Splat"
    bl_import_operator = "gsseg.import_splat"
    # .glb is left to Blender's own glTF importer, which claims it too: most .glb files are meshes, and two handlers
    # of one ending make Blender ask at every drop. A splat .glb comes in through File > Import. (Blender's PLY
    # importer claims .ply as well; a dropped .ply is most often a splat scene here, so that one asks.) An unbundled
    # SOG's meta.json is listed too: releases whose handlers match the end of the name take a dropped meta.json;
    # those that compare the last extension (".json") never match it, and it comes in through File > Import.
    bl_file_extensions = ";".join(e for e in filter_endings(READ_FORMATS) if e != ".glb")

    @classmethod
    def poll_drop(cls, context):
        """Drops import in the 3D Viewport only (Blender's own importers call bpy_extras.io_utils'
        poll_file_object_drop here, which also takes drops on the Outliner)."""
        return context.area is not None and context.area.type == "VIEW_3D"


CLASSES = (
    GSSEG_OT_import_splat,
    GSSEG_OT_export_splat,
    GSSEG_OT_import_cameras,
    GSSEG_OT_add_view_cameras,
    GSSEG_OT_stand_upright,
    GSSEG_OT_use_camera,
    GSSEG_OT_segment,
    GSSEG_OT_segment_proxies,
    GSSEG_OT_apply_gamma,
    GSSEG_OT_select_instance,
    GSSEG_OT_select_inside,
    GSSEG_OT_select_linked_instance,
    GSSEG_OT_deselect_instance,
    GSSEG_OT_select_unseen,
    GSSEG_OT_invert_selection,
    GSSEG_OT_hide_instance,
    GSSEG_OT_isolate_instance,
    GSSEG_OT_reveal,
    GSSEG_OT_delete_instance,
    GSSEG_OT_separate_instance,
    GSSEG_OT_assign_instance,
    GSSEG_OT_merge_instances,
    GSSEG_OT_masks_from_proxies,
    GSSEG_FH_splat,
)


def menu_import(self, context):
    self.layout.operator(GSSEG_OT_import_splat.bl_idname,
                         text=f"Gaussian Splat ({'/'.join(filter_endings(READ_FORMATS))})")
    self.layout.operator(GSSEG_OT_import_cameras.bl_idname, text="Splat Cameras (cameras.json/COLMAP/transforms)")


def menu_export(self, context):
    self.layout.operator(GSSEG_OT_export_splat.bl_idname,
                         text=f"Gaussian Splat ({'/'.join(filter_endings(WRITTEN_FORMATS))})")


def menu_select(self, context):
    if io_splat.is_splat_object(context.active_object):
        self.layout.separator()
        self.layout.operator("gsseg.select_inside", icon="MESH_CUBE")
        self.layout.operator("gsseg.select_linked_instance", icon="GROUP_VERTEX")


def menu_add(self, context):
    self.layout.operator("gsseg.import_splat", text="Gaussian Splat", icon="OUTLINER_OB_POINTCLOUD")


MENUS = (("TOPBAR_MT_file_import", menu_import), ("TOPBAR_MT_file_export", menu_export),
         ("VIEW3D_MT_select_edit_mesh", menu_select), ("VIEW3D_MT_edit_mesh_context_menu", menu_select),
         ("VIEW3D_MT_add", menu_add))


def register():
    register_classes(CLASSES)
    for menu, function in MENUS:
        getattr(bpy.types, menu).append(function)


def unregister():
    for menu, function in reversed(MENUS):
        getattr(bpy.types, menu).remove(function)
    unregister_classes(CLASSES)
