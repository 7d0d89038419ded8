"""The preferences' CuPy choices, the install operator refused offline, Check with a stubbed driver, the
'Default' backend and the install folder. Run by tests/test_blender_scene.py
(test_preferences_and_cuda_install_plan)."""

import sys

import bpy

from blender_gsseg import cupy_install
from blender_gsseg.blender import prefs
from child import RESULT

# the preferences offer the planner's choices of CuPy wheel, 'Detect' first
assert prefs.GSSEG_AP_preferences.is_registered
choice = prefs.GSSEG_AP_preferences.bl_rna.properties["cuda_choice"]
RESULT["choices"] = [item.identifier for item in choice.enum_items]
RESULT["choice_default"] = choice.default
# offline (Blender's default): the install button is refused with a clear reason, nothing runs
assert not bpy.app.online_access
assert not bpy.ops.gsseg.install_cuda.poll()
try:
    bpy.ops.gsseg.install_cuda()
    raise AssertionError("install ran offline")
except RuntimeError as error:
    RESULT["offline"] = str(error)
# Check reports the driver and CuPy (driver detection stubbed: CUDA 12.4 from the driver library)
real = cupy_install.detect_cuda
cupy_install.detect_cuda = lambda: (12, 4, "driver")
try:
    assert bpy.ops.gsseg.check_cuda() == {"FINISHED"}
finally:
    cupy_install.detect_cuda = real
RESULT["cupy_status"] = cupy_install.cupy_status()
# the scene's 'Default' backend is the preferences' (auto without the add-on system)
assert prefs.resolve_backend(bpy.context, "DEFAULT") == "auto"
assert prefs.resolve_backend(bpy.context, "cpu") == "cpu"
RESULT["site"] = prefs.site_packages()
RESULT["site_on_path"] = RESULT["site"] in sys.path
