"""Export a splat in each format the exporter offers (the file name's ending follows the chosen format). Run by
tests/test_blender.py (test_export_formats); the test reads the files back with the core."""

import bpy

from child import ARGS, RESULT

assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="SPLAT") == {"FINISHED"}
RESULT["written"] = {}
for file_format in ("PLY", "COMPRESSED_PLY", "GLB", "SOG", "SPZ", "SPLAT"):
    # the name given ends in .ply: the operator writes the format's own ending
    assert bpy.ops.gsseg.export_splat(filepath=ARGS["stem"] + ".ply", file_format=file_format) == {"FINISHED"}
