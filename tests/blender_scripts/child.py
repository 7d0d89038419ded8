"""The child side of blender_harness.run_bpy, for the scripts of this folder: ``from child import ARGS, RESULT``.

- ``ARGS``: the JSON-able dict the test passed to run_bpy as ``args``;
- ``RESULT``: a dict the script fills; runner.py prints it as JSON when the script is done and run_bpy returns it
  (with the child's output added as ``_output``).
"""

import json
import os

ARGS = json.loads(os.environ.get("GSSEG_TEST_ARGS", "{}"))
RESULT = {}
