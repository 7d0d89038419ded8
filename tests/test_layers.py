"""The package's layers, read from its source (AST), not from what happens to be imported at run time:
core <- cli/demo/cupy_install <- blender, no import cycle between modules (imports inside functions count),
bpy only in the Blender layer, and the core's floors (CORE_FLOORS) imported upward only."""

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
    assert "blender_gsseg.core.raster.backends" in GRAPH["blender_gsseg.core.lift.accumulate"]
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


# The core's floors, lowest first: a core module imports from its own floor or the ones below, never above, so the
# data flows one way (files -> scene -> raster -> lift -> refine -> jobs). The data types every floor speaks
# (Gaussians with the PLY tables it carries, Camera, errors) sit at the bottom; the format readers build them.
CORE_FLOORS = (
    ("types", ("core.errors", "core.gaussians", "core.cameras", "core.read_on_use", "core.files.ply_elements")),
    ("files", ("core.files",)),
    ("scene", ("core.scene", "core.metrics")),
    ("raster", ("core.raster",)),
    ("lift", ("core.lift",)),
    ("refine", ("core.refine",)),
    ("jobs", ("core.pipeline", "core.cluster", "core")),
)


def _floor(module):
    """(index, name) of a core module's floor: the longest matching prefix decides."""
    name = module[len(PACKAGE) + 1:]
    best = None
    for index, (floor, prefixes) in enumerate(CORE_FLOORS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > best[2]):
                best = (index, floor, len(prefix))
    return best[:2]


def test_every_core_module_has_a_floor():
    core = [m for m in MODULES if _layer(m) == "core"]
    assert {_floor(m)[1] for m in core} == {floor for floor, _ in CORE_FLOORS}
    # a new module at the core's top level must be placed on purpose, not fall into "jobs" by default
    top = {m for m in core if m.count(".") == 2 and MODULES[m].endswith(m.rsplit(".", 1)[1] + ".py")}
    named = {f"{PACKAGE}.{p}" for _, prefixes in CORE_FLOORS for p in prefixes}
    assert top <= named, sorted(top - named)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) == "core"))
def test_core_floor_order(module):
    index, floor = _floor(module)
    wrong = sorted(f"{name} ({_floor(name)[1]})" for name in GRAPH[module]
                   if _layer(name) == "core" and _floor(name)[0] > index)
    assert not wrong, f"{module} ({floor}) imports from a floor above: {wrong}"


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
