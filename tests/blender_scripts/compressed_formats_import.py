"""Import the .splat, .spz and compressed-PLY fixtures in one operator call and compare each with the core's
reader. Run by tests/test_blender.py (test_compressed_formats_import)."""

import os

import bpy
import numpy as np

from blender_gsseg.blender import io_splat
from blender_gsseg.core.files.splats import read_gaussians
from child import ARGS, RESULT

RESULT["names"] = []
# several files in one call, as a drop or a multi-selection in the file browser gives them
assert bpy.ops.gsseg.import_splat(directory=ARGS["folder"],
                                  files=[{"name": name} for name in ARGS["inputs"]], display="SPLAT") == {"FINISHED"}
objects = sorted(bpy.context.selected_objects, key=lambda o: o.name)
assert len(objects) == len(ARGS["inputs"])
for name in ARGS["inputs"]:
    path = os.path.join(ARGS["folder"], name)
    obj = next(o for o in objects if io_splat.header_of(o)["source"] == path)
    source = read_gaussians(path)
    assert len(obj.data.vertices) == len(source), name
    values = np.empty(len(source), np.float32)
    obj.data.attributes["opacity"].data.foreach_get("value", values)
    assert values.tobytes() == source.vertex["opacity"].astype(np.float32).tobytes(), name
    RESULT["names"].append(obj.name)
