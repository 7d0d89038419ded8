"""The child side of blender_harness.run_bpy, for the scripts of this folder: ``from child import ARGS, RESULT``.

- ``ARGS``: the JSON-able dict the test passed to run_bpy as ``args``;
- ``RESULT``: a dict the script fills; runner.py prints it as JSON when the script is done and run_bpy returns it
  (with the child's output added as ``_output``);
- ``refused(operator, what, **properties)``: the message of an operator call that must fail.
"""

import json
import os

ARGS = json.loads(os.environ.get("GSSEG_TEST_ARGS", "{}"))
RESULT = {}


def refused(operator, what, **properties):
    """The error message of ``operator(**properties)``, which must fail (``what`` names it if it does not)."""
    try:
        operator(**properties)
    except RuntimeError as error:
        return str(error)
    raise AssertionError(f"{what} did not fail")
