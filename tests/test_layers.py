"""The package's layers, read from its source (AST), not from what happens to be imported at run time:
core <- cli/demo/cupy_install <- blender, no import cycle between modules (imports inside functions count),
bpy only in the Blender layer, and the file formats (core.files) below the rest of the core."""

import ast
import os

import pytest

PACKAGE = "blender_gsseg"
ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PACKAGE)


def _modules():
    """{module name: path} of every .py file of the package."""
    found = {}
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(("_", "."))]
        for name in names:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), os.path.dirname(ROOT))[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                found[".".join(rel)] = os.path.join(folder, name)
    return found


MODULES = _modules()


def _imports(module, path):
    """Every module named by an import statement anywhere in ``path`` (absolute names; for ``from X import y``
    also X.y when that is a module of the package)."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            submodules = {f"{target}.{alias.name}" for alias in node.names} & set(MODULES)
            names |= submodules
            if len(submodules) < len(node.names):  # names defined in the module itself
                names.add(target)
    return names


GRAPH = {module: {name for name in _imports(module, path) if name in MODULES and name != module}
         for module, path in MODULES.items()}
EXTERNAL = {module: {name.split(".")[0] for name in _imports(module, path)} for module, path in MODULES.items()}


def _layer(module):
    parts = module.split(".")
    if len(parts) == 1:
        return "entry"  # the package itself: register() is Blender's entry point
    return {"core": "core", "blender": "blender"}.get(parts[1], "tools")


def test_the_reader_sees_the_package():
    assert {"blender_gsseg.core.pipeline", "blender_gsseg.core.files.splats", "blender_gsseg.blender.ops",
            "blender_gsseg.cli", "blender_gsseg.cupy_install"} <= set(MODULES)
    assert "blender_gsseg.core.files.splats" in GRAPH["blender_gsseg.core.pipeline"]
    assert "bpy" in EXTERNAL["blender_gsseg.blender.ops"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_layer_order(module):
    # Anyone may read the package's own names (__version__, TESTED_BLENDER); its register() is Blender's entry.
    allowed = {"core": {"core", "entry"}, "tools": {"core", "tools", "entry"},
               "blender": {"core", "tools", "blender", "entry"}, "entry": {"core", "tools", "blender"}}[_layer(module)]
    wrong = sorted(name for name in GRAPH[module] if _layer(name) not in allowed)
    assert not wrong, f"{module} ({_layer(module)}) imports {wrong}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_bpy_only_in_the_blender_layer(module):
    if _layer(module) != "blender" and module != PACKAGE:
        assert not EXTERNAL[module] & {"bpy", "bpy_extras", "mathutils", "addon_utils"}, module


def test_files_sit_below_the_rest_of_the_core():
    below = {"blender_gsseg.core.errors", "blender_gsseg.core.gaussians", "blender_gsseg.core.cameras"}
    for module in MODULES:
        if module.startswith("blender_gsseg.core.files"):
            wrong = sorted(n for n in GRAPH[module] if not n.startswith("blender_gsseg.core.files") and n not in below)
            assert not wrong, f"{module} imports {wrong}"


def test_no_import_cycles():
    """Tarjan's strongly connected components over the module graph: every one must be a single module."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in GRAPH[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert not cycles, cycles
