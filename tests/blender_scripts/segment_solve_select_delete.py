"""Segment an imported synthetic scene with its masks and check it against the core; the worker-thread job,
gamma re-solves, selection, deletion with the cache following, export with labels, and the panel's drawing.
Run by tests/test_blender.py (test_segment_solve_select_delete)."""

import time

import bpy
import numpy as np

from blender_gsseg.blender import labels as label_list
from blender_gsseg.blender import segment
from blender_gsseg.core.lift.accumulate import accumulate_weights
from blender_gsseg.core.files.camera_files import load_cameras
from blender_gsseg.core.files.splats import read_gaussians
from blender_gsseg.core.files.masks import label_index_maps, load_masks
from blender_gsseg.core.lift.solver import Shares
from child import ARGS, RESULT

def labels_of(mesh):
    values = np.empty(len(mesh.vertices), np.int32)
    mesh.attributes["gsseg_label"].data.foreach_get("value", values)
    return values

settings = bpy.context.scene.gsseg
assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="SPLAT") == {"FINISHED"}
obj = bpy.context.active_object
assert settings.splat_object == obj
assert bpy.ops.gsseg.import_cameras(filepath=ARGS["cameras"]) == {"FINISHED"}
settings.mask_dir = ARGS["masks"]
settings.scale = 0.5
settings.backend = "cpu"
bpy.context.view_layer.objects.active = obj
start = time.perf_counter()
assert bpy.ops.gsseg.segment() == {"FINISHED"}
RESULT["segment_s"] = time.perf_counter() - start
mesh = obj.data
labels = labels_of(mesh)
confidence = np.empty(len(labels), np.float32)
mesh.attributes["gsseg_confidence"].data.foreach_get("value", confidence)

# the label display: one colour per label, shown through the modifier's material
from blender_gsseg.blender import splat_display as display
from blender_gsseg.blender.modifiers import get_modifier_input
assert obj.gsseg.display == "LABELS"
modifier = obj.modifiers[display.SPLAT_MODIFIER_NAME]
assert get_modifier_input(modifier, "Show Labels") is True
label_colors = np.empty(4 * len(labels), np.float32)
mesh.color_attributes["gsseg_label_col"].data.foreach_get("color", label_colors)
label_colors = label_colors.reshape(-1, 4)
assert len({tuple(c) for c in label_colors}) == len(set(labels.tolist()))
assert mesh.color_attributes.active_color_name == "Col"
obj.gsseg.display = "SPLAT"
assert get_modifier_input(modifier, "Show Labels") is False
# the display controls of the panel drive the modifier: faint Gaussians hidden, a share of them shown
from drawn import splats_drawn
from blender_gsseg.core.files.splats import read_gaussians as _read

opacities = _read(ARGS["ply"]).opacities
assert splats_drawn(obj) == int(np.count_nonzero(opacities > 1 / 255))
threshold = float(np.median(opacities))
obj.gsseg.opacity_threshold = threshold
assert get_modifier_input(modifier, "Opacity Threshold") == np.float32(threshold)
assert splats_drawn(obj) == int(np.count_nonzero(opacities > threshold))
obj.gsseg.opacity_threshold = 0.0
obj.gsseg.display_percentage = 25.0
assert abs(splats_drawn(obj) / len(opacities) - 0.25) < 0.05, splats_drawn(obj)
obj.gsseg.display_percentage = 100.0
obj.gsseg.sh_degree = 0
assert get_modifier_input(modifier, "SH Degree") == 0
obj.gsseg.sh_degree = 3

# the same through the core alone
gaussians = read_gaussians(ARGS["ply"])
cameras = load_cameras(ARGS["cameras"])
scaled = [c.scaled(0.5) for c in cameras]
mask_set = load_masks(ARGS["masks"], cameras, sizes=[(c.width, c.height) for c in scaled])
accumulation = accumulate_weights(gaussians, [scaled[i] for i in mask_set.camera_indices],
                                  label_index_maps(mask_set), mask_set.label_ids, backend="cpu")
shares = Shares.from_accumulation(accumulation)
core_labels, core_confidence = shares.solve(0.0)
assert (labels == core_labels).all()
assert np.array_equal(confidence, core_confidence)
truth = np.load(ARGS["truth"])
seen = labels >= 0
RESULT["accuracy"] = float((labels[seen] == truth[seen]).mean())
RESULT["seen"] = float(seen.mean())

# the interactive path: accumulation in a worker thread, cancellable
import threading
from blender_gsseg.core.errors import CancelledError
inputs = dict(collection=settings.camera_collection, mask_dir=ARGS["masks"], scale=0.5, backend="cpu")
job = segment.SegmentJob.prepare(bpy.context, obj, **inputs)
job.cancel_requested = True
worker = threading.Thread(target=job.run)
worker.start()
worker.join()
try:
    job.finish()
    raise AssertionError("a cancelled job finished")
except CancelledError:
    pass
job = segment.SegmentJob.prepare(bpy.context, obj, **inputs)
worker = threading.Thread(target=job.run)
worker.start()
worker.join()
assert job.finish()["views"] == 8 and (job.done, job.total) == (8, 8)
assert (labels_of(mesh) == labels).all()

# gamma slider re-solves from the cache
obj.gsseg.gamma = 0.6
assert (labels_of(mesh) == shares.solve(0.6)[0]).all()
RESULT["changed_by_gamma"] = int((labels_of(mesh) != labels).sum())
bpy.ops.object.mode_set(mode="EDIT")
obj.gsseg.gamma = -0.4
assert obj.mode == "EDIT"
bpy.ops.object.mode_set(mode="OBJECT")
assert (labels_of(mesh) == shares.solve(-0.4)[0]).all()
obj.gsseg.gamma = 0.0

# select an instance (edit-mode selection), from object and from edit mode
assert bpy.ops.gsseg.select_instance(label=1) == {"FINISHED"}
selected = np.zeros(len(labels), bool)
mesh.attributes[".select_vert"].data.foreach_get("value", selected)
assert (selected == (labels == 1)).all()
bpy.ops.object.mode_set(mode="EDIT")
assert bpy.ops.gsseg.select_instance(label=2, extend=True) == {"FINISHED"}
bpy.ops.object.mode_set(mode="OBJECT")
mesh = obj.data
mesh.attributes[".select_vert"].data.foreach_get("value", selected)
assert (selected == np.isin(labels, [1, 2])).all()

# delete an instance: points go, every attribute follows, the cache follows
colors_before = np.empty(4 * len(labels), np.float32)
mesh.color_attributes["Col"].data.foreach_get("color", colors_before)
obj.gsseg.instance = 1
assert bpy.ops.gsseg.delete_instance() == {"FINISHED"}
mesh = obj.data
keep = labels != 1
assert len(mesh.vertices) == keep.sum()
assert (labels_of(mesh) == labels[keep]).all()
colors_after = np.empty(4 * keep.sum(), np.float32)
mesh.color_attributes["Col"].data.foreach_get("color", colors_after)
assert (colors_after.reshape(-1, 4) == colors_before.reshape(-1, 4)[keep]).all()
assert mesh.color_attributes.active_color_name == "Col"
obj.gsseg.gamma = 0.3
assert (labels_of(mesh) == shares.solve(0.3)[0][keep]).all()

# the cache subset follows deletions in both accumulation forms
bounded = accumulate_weights(gaussians, [scaled[i] for i in mask_set.camera_indices],
                             label_index_maps(mask_set), mask_set.label_ids, backend="cpu", mode="bounded")
for full in (accumulation, bounded):
    part = full.subset(keep)
    assert part.n_gaussians == keep.sum()
    assert (Shares.from_accumulation(part).solve(0.2)[0]
            == Shares.from_accumulation(full).solve(0.2)[0][keep]).all()

# export with labels: the remaining splats, bit for bit, plus gsseg_label
assert bpy.ops.gsseg.export_splat(filepath=ARGS["out"], include_label=True) == {"FINISHED"}
back = read_gaussians(ARGS["out"])
for name in gaussians.vertex.dtype.names:
    assert back.vertex[name].tobytes() == gaussians.vertex[name][keep].tobytes(), name
assert (back.vertex["gsseg_label"] == shares.solve(0.3)[0][keep]).all()
RESULT["n"] = len(labels)
RESULT["removed"] = int((~keep).sum())

# the sidebar draws, every section (a recording layout checks every property and operator it names)
icons = set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())
class Layout:
    def __init__(self):
        self.props, self.operators, self.lists = [], [], []
    def __getattr__(self, name):
        return lambda *args, **kwargs: self._check(kwargs)
    def _check(self, kwargs):
        assert kwargs.get("icon", "NONE") in icons, kwargs["icon"]
        return self
    def template_list(self, listtype, list_id, data, propname, active_data, active_propname, **kwargs):
        assert hasattr(bpy.types, listtype), listtype
        assert propname in data.bl_rna.properties and active_propname in active_data.bl_rna.properties
        self.lists.append((listtype, propname, active_propname))
        return self
    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, name
        self.props.append(name)
        return self._check(kwargs)
    def operator(self, idname, **kwargs):
        module, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, module), name), idname
        self.operators.append(idname)
        return self._check(kwargs)
import types
from blender_gsseg.blender import panels as sidebar

PANELS = [cls for cls in sidebar.CLASSES if issubclass(cls, bpy.types.Panel)]


def draw_sidebar():
    """Draw every section of the sidebar whose poll passes, as Blender does (header, then body), into one
    recording layout; returns it and the ids of the sections drawn."""
    layout, registered, drawn = Layout(), [], []
    for cls in PANELS:
        assert getattr(bpy.types, cls.bl_idname) is cls and cls.bl_category == "gsseg", cls
        parent = getattr(cls, "bl_parent_id", "")
        assert not parent or parent in registered, (cls, parent)  # a sub-panel is registered after its parent
        registered.append(cls.bl_idname)
        poll = getattr(cls, "poll", None)
        if (parent and parent not in drawn) or (poll is not None and not poll(bpy.context)):
            continue
        panel = types.SimpleNamespace(layout=layout)
        if hasattr(cls, "draw_header"):
            cls.draw_header(panel, bpy.context)
        cls.draw(panel, bpy.context)
        drawn.append(cls.bl_idname)
    return layout, drawn


panel = types.SimpleNamespace()
bpy.context.view_layer.objects.active = obj
panel.layout, drawn = draw_sidebar()
assert drawn == ["GSSEG_PT_main", "GSSEG_PT_segment", "GSSEG_PT_splat", "GSSEG_PT_instances"], drawn
assert {"splat_object", "camera_collection", "mask_dir", "scale", "backend", "gamma", "display",
        "instance", "delete_halo", "proxy_mask_dir", "sh_degree", "opacity_threshold", "display_percentage",
        "splat_size"} <= set(panel.layout.props), panel.layout.props
assert {"gsseg.segment", "gsseg.masks_from_proxies", "gsseg.select_instance", "gsseg.deselect_instance",
        "gsseg.select_unseen", "gsseg.invert_selection", "gsseg.hide_instance", "gsseg.isolate_instance",
        "gsseg.reveal", "gsseg.delete_instance", "gsseg.separate_instance", "gsseg.assign_instance",
        "gsseg.merge_instances"} <= set(panel.layout.operators), panel.layout.operators
assert panel.layout.lists == [("GSSEG_UL_instances", "labels", "labels_index")]
# the list rows: the labels of the segmentation but the deleted one, default names, the CLI's colours,
# point counts
from blender_gsseg.core.files.labels import label_colour
rows = [(i.level, i.id, i.name, i.count) for i in obj.gsseg.labels]
counts = dict(zip(*np.unique(labels_of(obj.data), return_counts=True), strict=True))
assert rows == [(-1, k, "background" if k == 0 else f"label_{k}", int(counts.get(k, 0)))
                for k in (0, 2)], rows
assert label_list.hex_colour(obj.gsseg.labels[1].color) == "#%02x%02x%02x" % label_colour(2)
# a mesh object shows its proxy setting
bpy.ops.mesh.primitive_cube_add()
panel.layout, drawn = draw_sidebar()
assert "GSSEG_PT_proxy" in drawn and "proxy_instance" in panel.layout.props, drawn
# every operator has a one-line tooltip
for name in dir(bpy.ops.gsseg):
    description = getattr(bpy.ops.gsseg, name).get_rna_type().description
    assert description and "\n" not in description, (name, description)
# files dropped on Blender import as splats in the 3D Viewport only (the FileHandler's poll_drop)
handler = bpy.types.GSSEG_FH_splat
assert handler.poll_drop(types.SimpleNamespace(area=types.SimpleNamespace(type="VIEW_3D")))
for area_type in ("OUTLINER", "PROPERTIES", "IMAGE_EDITOR", "NODE_EDITOR", "TEXT_EDITOR", "FILE_BROWSER"):
    assert not handler.poll_drop(types.SimpleNamespace(area=types.SimpleNamespace(type=area_type))), area_type
assert not handler.poll_drop(types.SimpleNamespace(area=None))
assert not handler.poll_drop(bpy.context)  # no area in a background Blender
