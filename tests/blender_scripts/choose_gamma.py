"""Segment with 'Choose γ' on: the slider starts at the cross-validated γ, the labels are the cached
accumulation solved there. Run by tests/test_blender.py (test_segment_can_choose_gamma)."""

import bpy
import numpy as np

from blender_gsseg.blender import attributes
from blender_gsseg.core.lift.sidecar import load_accumulation
from blender_gsseg.core.lift.solver import Shares
from child import ARGS, RESULT

assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="SPLAT") == {"FINISHED"}
obj = bpy.context.active_object
assert bpy.ops.gsseg.import_cameras(filepath=ARGS["cameras"]) == {"FINISHED"}
settings = bpy.context.scene.gsseg
settings.splat_object = obj
settings.mask_dir = ARGS["masks"]
settings.scale = 1.0
settings.backend = "cpu"
settings.choose_gamma = True
bpy.context.view_layer.objects.active = obj
assert bpy.ops.gsseg.segment() == {"FINISHED"}
labels = attributes.read_attribute(obj.data, "gsseg_label")
shares = Shares.from_accumulation(load_accumulation(obj.gsseg.accumulation_path))
assert np.array_equal(labels, shares.solve(obj.gsseg.gamma)[0])
RESULT["gamma"] = obj.gsseg.gamma
