"""gsseg's Import Splat (Display 'Native') of every format it reads, each exported back as a PLY: run by
tests/test_blender_native.py, which compares the bytes with the core's own reading of the file written as a PLY.
ARGS: ``inputs`` [paths], ``outs`` [paths]. RESULT: ``types`` [object type / point cloud type per input]."""

import bpy

from blender_gsseg.blender import io_splat
from child import ARGS, RESULT

RESULT["types"] = []
for path, out in zip(ARGS["inputs"], ARGS["outs"], strict=True):
    assert bpy.ops.gsseg.import_splat(filepath=path, display="NATIVE") == {"FINISHED"}, path
    obj = bpy.context.active_object
    RESULT["types"].append(f"{obj.type}/{obj.data.type}")
    io_splat.export_splat(obj, out)
    bpy.data.objects.remove(obj)
