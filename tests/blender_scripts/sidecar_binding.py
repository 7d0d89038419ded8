"""Import two labelled PLYs through the operator: one beside its own sidecar (used), one beside a sidecar of
another run (not used, and the report says why). Run by tests/test_blender.py (test_import_uses_only_its_own_sidecar)."""

import bpy

from child import ARGS, RESULT

for key in ("own", "foreign"):
    assert bpy.ops.gsseg.import_splat(filepath=ARGS[key], display="SPLAT") == {"FINISHED"}
    RESULT[key] = bpy.context.active_object.gsseg.accumulation_path
