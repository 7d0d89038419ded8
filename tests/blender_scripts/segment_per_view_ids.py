"""Segment a splat in Blender from masks whose ids differ per view: a folder in SAM's layout (read per view
whatever the switch says) and per-view label maps with the panel's switch set to 'Differ per View'. Run by
tests/test_blender.py (test_segment_per_view_ids), on the default release (a mesh, ARGS["display"] 'SPLAT') and on
5.3 ('NATIVE': Blender's own splat point cloud, Import Splat's default there)."""

import bpy
import numpy as np

from blender_gsseg.blender.segment import run_plan
from child import ARGS, RESULT

settings = bpy.context.scene.gsseg
assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display=ARGS["display"]) == {"FINISHED"}
obj = bpy.context.active_object
RESULT["kind"] = [obj.type, getattr(obj.data, "type", "")]
assert bpy.ops.gsseg.import_cameras(filepath=ARGS["cameras"]) == {"FINISHED"}
settings.scale = 0.5
settings.backend = "cpu"


def segment(mask_dir, ids):
    settings.mask_dir = mask_dir
    settings.mask_ids = ids
    bpy.context.view_layer.objects.active = obj
    RESULT.setdefault("plans", []).append(run_plan(bpy.context))  # the panel's line
    assert bpy.ops.gsseg.segment() == {"FINISHED"}
    labels = obj.data.attributes["gsseg_label"]  # on a mesh or, on 5.3, Blender's own splat point cloud
    values = np.empty(len(labels.data), np.int32)
    labels.data.foreach_get("value", values)
    names = {item.id: item.name for item in obj.gsseg.labels if item.level == -1}
    return values.tolist(), names


RESULT["sam"], RESULT["sam_names"] = segment(ARGS["sam"], "CONSISTENT")  # the layout says per view
RESULT["per_view"], RESULT["per_view_names"] = segment(ARGS["per_view"], "PER_VIEW")
settings.mask_dir, settings.mask_ids = ARGS["consistent"], "CONSISTENT"
RESULT["plans"].append(run_plan(bpy.context))
