"""Import a PLY segmented with --gamma auto: the γ slider starts at the chosen γ and the labels stay those of the
file. Run by tests/test_blender.py (test_gamma_slider_starts_at_the_chosen_gamma)."""

import bpy
import numpy as np

from blender_gsseg.blender import attributes
from child import ARGS, RESULT

assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="SPLAT") == {"FINISHED"}
obj = bpy.context.active_object
RESULT["gamma"] = obj.gsseg.gamma
RESULT["path"] = obj.gsseg.accumulation_path
RESULT["labels"] = np.asarray(attributes.read_attribute(obj.data, "gsseg_label")).tolist()
