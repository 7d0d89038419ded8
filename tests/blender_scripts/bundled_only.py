"""A preamble (``run_bpy(..., preamble="bundled_only")``, imported before bpy): make plyfile, PIL, filelock, zstandard
and numba (with llvmlite) importable only from Blender's extension site-packages, as in a Blender that does not ship them
(the test environments have them installed)."""

import importlib.abc
import importlib.machinery
import os
import sys

BUNDLED = ("plyfile", "PIL", "filelock", "numba", "llvmlite", "zstandard")


class OnlyBundled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name not in BUNDLED:
            return None
        marker = os.sep + os.path.join("extensions", ".local") + os.sep
        spec = importlib.machinery.PathFinder.find_spec(name, [p for p in sys.path if marker in p])
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r} (outside the extension's wheels)", name=name)
        return spec


assert not any(m in sys.modules for m in BUNDLED)
sys.meta_path.insert(0, OnlyBundled())
