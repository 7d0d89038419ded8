"""Import a PLY with a double property (rounded to float32, and said so) and export it (a double again). Run by
tests/test_blender.py (test_float64_properties_are_rounded_and_said)."""

import bpy

from blender_gsseg.blender import io_splat
from blender_gsseg.core.files.splats import read_gaussians
from child import ARGS, RESULT

imported = io_splat.import_splat(bpy.context, ARGS["ply"])
RESULT["rounded"] = imported.rounded
RESULT["summary"] = imported.summary()
bpy.context.view_layer.objects.active = imported.object
assert bpy.ops.gsseg.export_splat(filepath=ARGS["out"]) == {"FINISHED"}
back = read_gaussians(ARGS["out"])
assert back.property_types["precise"] == "double"
RESULT["precise"] = back.vertex["precise"].tolist()
