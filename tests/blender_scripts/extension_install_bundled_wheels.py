"""Install the built extension zip into an empty Blender user folder with plyfile and PIL importable only from its
wheels (preamble bundled_only): the extension enables, imports an ASCII PLY through the bundled plyfile, lifts
on the compiled walk of the bundled numba, and its preferences and CuPy install folder work. Run by tests/test_blender.py
(test_extension_installs_enables_and_uses_bundled_wheels) with register="none"."""

import importlib
import os
import sys

import bpy

from child import ARGS, RESULT

try:
    importlib.import_module("plyfile")
    raise AssertionError("plyfile importable before the extension is installed")
except ModuleNotFoundError:
    pass
outcome = bpy.ops.extensions.package_install_files(filepath=ARGS["zip"], repo="user_default",
                                                    enable_on_install=True)
assert outcome == {"FINISHED"}, outcome
assert "bl_ext.user_default.gsseg" in bpy.context.preferences.addons.keys()
assert hasattr(bpy.ops.gsseg, "import_splat") and hasattr(bpy.types, "GSSEG_PT_main")
assert hasattr(bpy.types, "GSSEG_FH_splat")  # drag and drop of .ply/.splat/.spz into the 3D View
import bl_ext.user_default.gsseg as ext
assert ext.blender.io_splat.__name__ == "bl_ext.user_default.gsseg.blender.io_splat"
# The ASCII PLY goes through plyfile: the import proves the bundled wheel works.
assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="SPLAT") == {"FINISHED"}
obj = bpy.context.active_object
RESULT["count"] = len(obj.data.vertices)
# The export goes through the commit, which locks the folder with filelock: the bundled wheel again.
assert bpy.ops.gsseg.export_splat(filepath=ARGS["out"]) == {"FINISHED"}
import filelock, plyfile, PIL  # noqa: E401,E402  (only importable once the extension is installed)
RESULT["plyfile"] = plyfile.__file__
RESULT["PIL"] = PIL.__file__
RESULT["filelock"] = filelock.__file__
RESULT["extension_dir"] = os.path.dirname(ext.__file__)
# SPZ version 4 through the bundled Zstandard: export one and read it back
assert bpy.ops.gsseg.export_splat(filepath=ARGS["out"], file_format="SPZ") == {"FINISHED"}
import zstandard  # noqa: E402
RESULT["zstandard"] = zstandard.__file__
RESULT["spz_count"] = len(ext.core.files.splats.read_gaussians(ARGS["out"][:-len(".ply")] + ".spz"))
# The compiled CPU walk: numba from the bundled wheels, and the lift runs on it (numba compiles it here).
import numba  # noqa: E402
import numpy as np  # noqa: E402
RESULT["numba"] = numba.__file__
RESULT["plan"] = ext.core.raster.backends.planned_backend("cpu")
backend = ext.core.raster.backends.CpuBackend()
RESULT["flavour"] = backend.flavour
gaussians = ext.blender.io_splat.gaussians_from_object(obj)
camera = ext.core.cameras.ring_cameras(1, width=64, height=48)[0]
weights = backend.accumulate(gaussians, [(camera, np.zeros((48, 64), np.int32))], 1)
RESULT["compiled_weights"] = weights[0].tolist()
RESULT["numpy_weights"] = ext.core.raster.backends.CpuBackend(use_numba=False).accumulate(
    gaussians, [(camera, np.zeros((48, 64), np.int32))], 1)[0].tolist()
# preferences: the default backend, and CuPy's install folder in the extension's user folder
prefs = bpy.context.preferences.addons["bl_ext.user_default.gsseg"].preferences
assert prefs.default_backend == "auto"
prefs.default_backend = "cpu"
assert ext.blender.prefs.resolve_backend(bpy.context, "DEFAULT") == "cpu"
site = ext.blender.prefs.site_packages(create=True)
RESULT["site"] = site
assert ext.blender.prefs.add_site_packages() == site and site in sys.path
bpy.ops.preferences.addon_disable(module="bl_ext.user_default.gsseg")
assert site not in sys.path
assert not hasattr(bpy.types, "GSSEG_PT_main")
