"""The splat display's cost and order for a sequence of scene-camera positions: import, first evaluation, then
for each camera position the Geometry Nodes re-evaluation (re-sort, view-dependent colours, boxes), timed by the
modifier's own execution_time, and the depth order of the boxes drawn (back to front). Run by
tests/test_blender_display.py (the order, at a small size) and bench/display.py (the timings, at 1M).

``import_s`` is the import alone (io_splat.import_splat: read, attributes, the display's modifier), ``setup_s``
the display's first evaluation.

ARGS: ``ply``, ``positions`` (camera locations, looking at ``target``), ``target``, ``sort_only`` (also time a
group that only copies the positions into a point cloud and sorts it by depth: the re-sort alone). RESULT:
``import_s``, ``setup_s``, ``evaluate_s`` [per position], ``sort_s`` [per position], ``depth_order_ok`` [per
position], ``drawn``, ``faces``, ``rss_mb`` (process resident memory after the last evaluation, and before the
import)."""

import time

import bpy
import numpy as np
from mathutils import Vector

import blender_gsseg
from child import ARGS, RESULT

display = blender_gsseg.blender.splat_display


def rss_mb():
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


scene = bpy.context.scene
for obj in list(scene.objects):
    bpy.data.objects.remove(obj)
camera = bpy.data.objects.new("timing camera", bpy.data.cameras.new("timing camera"))
scene.collection.objects.link(camera)
scene.camera = camera
target = Vector(ARGS["target"])


def aim(location):
    camera.location = location
    camera.rotation_euler = (target - camera.location).to_track_quat("-Z", "Y").to_euler()


aim(ARGS["positions"][0])
RESULT["rss_mb_before"] = rss_mb()
start = time.perf_counter()
splat = blender_gsseg.blender.io_splat.import_splat(bpy.context, ARGS["ply"]).object  # without the evaluation
RESULT["import_s"] = time.perf_counter() - start
start = time.perf_counter()
depsgraph = bpy.context.evaluated_depsgraph_get()  # the display's first evaluation
splat.evaluated_get(depsgraph)
RESULT["setup_s"] = time.perf_counter() - start

sorter = None
if ARGS.get("sort_only"):  # the re-sort alone: a group that sorts the points by depth for the camera
    group = bpy.data.node_groups.new("sort only", "GeometryNodeTree")
    group.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    group.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    b = display._Nodes(group)
    info = b.node("GeometryNodeObjectInfo", {"Object": b.out(b.node("GeometryNodeInputActiveCamera"))},
                  transform_space="RELATIVE")
    forward = b.out(b.node("FunctionNodeRotateVector", {"Vector": (0.0, 0.0, -1.0),
                                                        "Rotation": b.out(info, "Rotation")}))
    depth = b.vector("DOT_PRODUCT", b.vector("SUBTRACT", b.out(b.node("GeometryNodeInputPosition")),
                                             b.out(info, "Location")), forward)
    # on a point cloud of the positions alone, as the display sorts its lean points (not the 62 attributes)
    source = b.out(b.node("NodeGroupInput"))
    count = b.out(b.node("GeometryNodeAttributeDomainSize", (source,), component="MESH"), "Point Count")
    points = b.out(b.node("GeometryNodePoints", {"Count": count, "Position": display._sample(
        b, source, b.out(b.node("GeometryNodeInputPosition")), "FLOAT_VECTOR")}))
    sort = b.node("GeometryNodeSortElements", {"Geometry": points,
                                               "Sort Weight": b.math("MULTIPLY", depth, -1.0)}, domain="POINT")
    b.links.new(b.out(sort), b.node("NodeGroupOutput").inputs[0])
    sorter = bpy.data.objects.new("sort only", splat.data)
    scene.collection.objects.link(sorter)
    sorter.modifiers.new("sort", "NODES").node_group = group

depsgraph.update()


def modifier_seconds(obj, name):
    return obj.evaluated_get(depsgraph).modifiers[name].execution_time


RESULT["evaluate_s"], RESULT["sort_s"], RESULT["depth_order_ok"] = [], [], []
for location in ARGS["positions"]:
    aim(location)
    depsgraph.update()
    evaluated = splat.evaluated_get(depsgraph)
    RESULT["evaluate_s"].append(modifier_seconds(splat, display.SPLAT_MODIFIER_NAME))
    if sorter is not None:
        RESULT["sort_s"].append(modifier_seconds(sorter, "sort"))
    mesh = evaluated.data
    corners = np.empty(3 * len(mesh.vertices), np.float32)
    mesh.vertices.foreach_get("co", corners)
    centres = corners.reshape(-1, 8, 3).mean(axis=1)  # one box (8 corners) per Gaussian, in drawing order
    forward = np.array(camera.matrix_world.to_3x3() @ Vector((0.0, 0.0, -1.0)))
    depths = (centres - np.array(camera.location)) @ forward
    RESULT["depth_order_ok"].append(bool(np.all(np.diff(depths) <= 1e-4 * (1.0 + np.abs(depths[1:])))))
RESULT["drawn"] = len(evaluated.data.polygons) // 6
RESULT["faces"] = len(evaluated.data.polygons)
RESULT["rss_mb"] = rss_mb()
