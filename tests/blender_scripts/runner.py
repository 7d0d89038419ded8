"""The program of the child process of blender_harness.run_bpy (not a test script):

    python runner.py SCRIPT REGISTER [PREAMBLE]

imports the module PREAMBLE of this folder if given (before ``import bpy``: it may prepare the import system),
with REGISTER ``package`` imports bpy and registers the ``blender_gsseg`` package (the pip layout), runs the
script SCRIPT of this folder as ``__main__``, then unregisters and prints child.RESULT after RESULT_MARKER.

Python puts this folder first on sys.path (it holds the program), so the scripts import child.py and the other
helper modules here by name. An exception in the script leaves with a traceback and a non-zero exit code.
"""

import importlib
import json
import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULT_MARKER = "GSSEG_RESULT "  # blender_harness.RESULT_MARKER


def main():
    script, register, *preamble = sys.argv[1:]
    for name in preamble:
        importlib.import_module(name)
    package = None
    if register == "package":
        importlib.import_module("bpy")  # bpy first, as in Blender
        import blender_gsseg as package
        package.register()
    elif register != "none":
        raise ValueError(f"register={register!r}: 'package' or 'none'")
    import child

    runpy.run_path(os.path.join(HERE, script), run_name="__main__")
    # Unregister as Blender does when it quits (wm_exit: addon_utils.disable_all()), so unregister code runs in
    # every test; then leave without Python's finalisation: bpy 4.2 as a module crashes there (SIGSEGV) once any
    # Python callback (an operator, an update function) has been registered, even after it was unregistered.
    if "bpy" in sys.modules:  # addon_utils comes with bpy
        import addon_utils

        addon_utils.disable_all()
    if package is not None:
        package.unregister()
    print(RESULT_MARKER + json.dumps(child.RESULT), flush=True)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
