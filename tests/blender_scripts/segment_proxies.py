"""A bare splat file, one box proxy around each object, Segment from Proxies (no cameras, no masks): a cache as
after Segment (the panel's γ slider, Re-solve), then an object removed with its halo, the file saved and reopened
and γ moved again. Run by tests/test_blender_bare.py."""

import shutil
import types

import bpy

from child import ARGS, RESULT
from snapshot import int_attr
from blender_gsseg.blender import panels, segment


class Texts:
    """A layout that records the texts of its labels (and accepts every other call)."""

    def __init__(self):
        self.texts = []

    def label(self, text="", **kwargs):
        self.texts.append(text)
        return self

    def __getattr__(self, name):
        return lambda *args, **kwargs: self


def instances_panel_texts():
    layout = Texts()
    panels.GSSEG_PT_instances.draw(types.SimpleNamespace(layout=layout), bpy.context)
    return layout.texts


scene = bpy.context.scene
for obj in list(scene.objects):
    bpy.data.objects.remove(obj)
assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="SPLAT") == {"FINISHED"}
splat = bpy.context.active_object
assert bpy.ops.gsseg.segment_proxies.poll() is False  # no proxies yet
boxes = []
for name, (centre, size) in ARGS["boxes"].items():
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=centre)
    box = bpy.context.active_object
    box.name = name
    box.scale = size
    boxes.append(box)
bpy.ops.object.select_all(action="DESELECT")
for box in boxes:
    box.select_set(True)
bpy.context.view_layer.objects.active = splat
assert scene.gsseg.camera_collection is None
assert bpy.ops.gsseg.segment_proxies() == {"FINISHED"}
assert scene.gsseg.camera_collection is None  # no cameras were needed
RESULT["labels"] = int_attr(splat, "gsseg_label").tolist()
RESULT["items"] = {item.id: item.name for item in splat.gsseg.labels}
# the boxes: marked as the instances' proxies, drawn as wire, out of renders (issue 28, item 3)
RESULT["boxes"] = {box.name: [box.gsseg.proxy_instance, box.display_type, box.hide_render] for box in boxes}
# one stops being a proxy: its own display comes back; undo takes that back
bpy.ops.ed.undo_push(message="segmented")
boxes[0].gsseg.proxy_instance = 0
RESULT["unmarked"] = [boxes[0].display_type, boxes[0].hide_render, "gsseg_proxy_display" in boxes[0]]
bpy.ops.ed.undo_push(message="unmarked")
splat_name = splat.name  # undo reloads the data: the Python objects of before are gone, their names stay
bpy.ops.ed.undo()
boxes = [bpy.data.objects[box_name] for box_name in ARGS["boxes"]]
splat = bpy.data.objects[splat_name]
RESULT["undone"] = [boxes[0].gsseg.proxy_instance, boxes[0].display_type, boxes[0].hide_render]
assert splat.gsseg.display == "LABELS"
# the cache as after Segment: the panel offers γ, which re-solves
assert splat.gsseg.accumulation_path and segment.cache_problem(splat) is None
shutil.copy(bpy.path.abspath(splat.gsseg.accumulation_path), ARGS["cache_copy"])
RESULT["panel"] = instances_panel_texts()
splat.gsseg.gamma = ARGS["gamma"]
RESULT["labels_gamma"] = int_attr(splat, "gsseg_label").tolist()
splat.gsseg["gamma"] = 0.0  # without its update: Re-solve does it
assert bpy.ops.gsseg.apply_gamma() == {"FINISHED"}
assert int_attr(splat, "gsseg_label").tolist() == RESULT["labels"]
for box in boxes:
    box.hide_set(True)
# remove one object with its halo at the slider's γ
splat.gsseg.gamma = ARGS["halo_gamma"]
splat.gsseg.instance = ARGS["remove"]
assert bpy.ops.gsseg.delete_instance(halo="ON") == {"FINISHED"}
name = splat.name
RESULT["after"] = len(bpy.data.objects[name].data.vertices)
# saved and reopened: the cache beside the .blend, γ still re-solves
bpy.ops.wm.save_as_mainfile(filepath=ARGS["blend"])
bpy.ops.wm.open_mainfile(filepath=ARGS["blend"])
splat = bpy.data.objects[name]
RESULT["reopened_path"] = splat.gsseg.accumulation_path
assert segment.cache_problem(splat) is None and not segment.cache_is_temporary(splat)
splat.gsseg.gamma = 0.0
RESULT["labels_reopened"] = int_attr(splat, "gsseg_label").tolist()
RESULT["index_reopened"] = int_attr(splat, "gsseg_index").tolist()
