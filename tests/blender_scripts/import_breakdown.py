"""Where gsseg's Import Splat (display 'SPLAT') spends its time, to the first evaluation: one import through the
operator with gsseg's own stages timed (wrappers around the module functions, which run unchanged), then the
Geometry Nodes display cut short at each of its stages in a throwaway copy of the group (the modifier's own
execution_time). Run by bench/import_breakdown.py.

ARGS: ``ply``, ``rounds`` (evaluations per cut). RESULT: ``stages`` {name: seconds}, ``evaluate_s`` (the first
evaluation: the modifier's execution_time), ``total_s``, ``cuts`` {cut: [seconds]}, ``floats_per_point``
(written by the import), ``attributes`` (imported POINT attributes), ``vertices``, ``faces``."""

import inspect
import time

import bpy

import blender_gsseg
from child import ARGS, RESULT

io_splat = blender_gsseg.blender.io_splat
display = blender_gsseg.blender.splat_display
stages = {}


def timed(module, name, label):
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            stages[label] = stages.get(label, 0.0) + time.perf_counter() - start

    def generator_wrapper(*args, **kwargs):  # the time spent making each item, not the caller's use of it
        items = original(*args, **kwargs)
        while True:
            start = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                stages[label] = stages.get(label, 0.0) + time.perf_counter() - start
            yield item

    setattr(module, name, generator_wrapper if inspect.isgeneratorfunction(original) else wrapper)


for module, name, label in ((io_splat, "read_gaussians", "read the file (core)"),
                            (io_splat, "build_mesh", "mesh and its attributes"),
                            (io_splat, "_new_attribute", "  of which: attributes.new"),
                            (io_splat, "_column_chunks", "  of which: columns transposed"),
                            (io_splat, "srgb_to_linear", "  of which: colour sRGB to linear"),
                            (io_splat, "import_splat", "import_splat"),
                            (display, "add_splat_display", "display modifier"),
                            (display, "splat_node_group", "  of which: node group built"),
                            (display, "write_rotations", "  of which: rotations attribute")):
    timed(module, name, label)

scene = bpy.context.scene
for obj in list(scene.objects):
    bpy.data.objects.remove(obj)
start = time.perf_counter()
assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="SPLAT") == {"FINISHED"}
RESULT["total_s"] = time.perf_counter() - start
splat = bpy.context.selected_objects[0]
depsgraph = bpy.context.evaluated_depsgraph_get()
RESULT["evaluate_s"] = splat.evaluated_get(depsgraph).modifiers[display.SPLAT_MODIFIER_NAME].execution_time
RESULT["stages"] = stages
mesh = splat.data
RESULT["attributes"] = sum(1 for a in mesh.attributes if a.domain == "POINT" and not a.name.startswith("."))
sizes = {"FLOAT": 1, "INT": 1, "FLOAT_VECTOR": 3, "FLOAT_COLOR": 4, "QUATERNION": 4, "BOOLEAN": 0}
RESULT["floats_per_point"] = sum(sizes.get(a.data_type, 0) for a in mesh.attributes
                                 if a.domain == "POINT" and not a.name.startswith("."))
evaluated = splat.evaluated_get(depsgraph).data
RESULT["vertices"], RESULT["faces"] = len(evaluated.vertices), len(evaluated.polygons)

modifier = splat.modifiers[display.SPLAT_MODIFIER_NAME]
base = modifier.node_group


def cut(name):
    """A copy of the display group whose output is the geometry after stage ``name``."""
    group = base.copy()
    nodes = group.nodes
    output = next(n for n in nodes if n.bl_idname == "NodeGroupOutput").inputs[0]

    def node(idname):
        return next(n for n in nodes if n.bl_idname == idname)

    source = {
        "input passed through": lambda: next(n for n in nodes if n.bl_idname == "NodeGroupInput").outputs[0],
        "lean points + SH colour": lambda: node("GeometryNodeDeleteGeometry").inputs[0].links[0].from_socket,
        "hidden deleted": lambda: node("GeometryNodeDeleteGeometry").outputs[0],
        "sorted": lambda: node("GeometryNodeSortElements").outputs[0],
        "box attributes": lambda: node("GeometryNodeInstanceOnPoints").inputs["Points"].links[0].from_socket,
        "instances": lambda: node("GeometryNodeRealizeInstances").inputs[0].links[0].from_socket,
        "realized": lambda: node("GeometryNodeRealizeInstances").outputs[0],
        "full (material set)": None,
    }[name]
    if source is not None:
        group.links.new(source(), output)
    return group


RESULT["cuts"] = {}
previous = None
for _ in range(ARGS.get("rounds", 1)):
    for name in ("input passed through", "lean points + SH colour", "hidden deleted", "sorted", "box attributes",
                 "instances", "realized", "full (material set)"):
        group = cut(name)
        modifier.node_group = group
        depsgraph.update()
        seconds = splat.evaluated_get(depsgraph).modifiers[display.SPLAT_MODIFIER_NAME].execution_time
        RESULT["cuts"].setdefault(name, []).append(seconds)
        if previous is not None:
            bpy.data.node_groups.remove(previous)
        previous = group
modifier.node_group = base
