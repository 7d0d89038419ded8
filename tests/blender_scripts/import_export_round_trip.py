"""Import a hand-made PLY (every property an attribute, header kept, point display), export it byte for byte,
export the selected points with labels, refuse transforms a Gaussian cannot represent. Run by
tests/test_blender.py (test_import_export_round_trip_is_bit_exact)."""

import os
import time

import bpy
import numpy as np

from blender_gsseg.blender import io_splat
from blender_gsseg.blender.attributes import srgb_to_linear
from blender_gsseg.core.files.splats import read_gaussians
from child import ARGS, RESULT, refused

start = time.perf_counter()
assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="SPLAT") == {"FINISHED"}
RESULT["import_s"] = time.perf_counter() - start
obj = bpy.context.active_object
mesh = obj.data
source = read_gaussians(ARGS["ply"])
n = len(source)
assert len(mesh.vertices) == n and len(mesh.edges) == 0 and len(mesh.polygons) == 0
# every property is an attribute of its own name, values exact
for name in source.vertex.dtype.names:
    if name in "xyz":
        continue
    attribute = mesh.attributes[name]
    assert attribute.domain == "POINT"
    column = source.vertex[name]
    if column.dtype.kind == "f":
        assert attribute.data_type == "FLOAT", name
        values = np.empty(n, np.float32)
        attribute.data.foreach_get("value", values)
        assert values.tobytes() == column.astype("<f4").tobytes(), name
    else:
        assert attribute.data_type == "INT", name
        values = np.empty(n, np.int32)
        attribute.data.foreach_get("value", values)
        expected = column.view(np.int32) if column.dtype == np.uint32 else column.astype(np.int32)
        assert (values == expected).all(), name
positions = np.empty(3 * n, np.float32)
mesh.attributes["position"].data.foreach_get("vector", positions)
assert (positions.reshape(n, 3) == source.means).all()
# colour for display and render
assert mesh.color_attributes.active_color_name == "Col"
assert mesh.color_attributes[mesh.color_attributes.render_color_index].name == "Col"
colors = np.empty(4 * n, np.float32)
mesh.color_attributes["Col"].data.foreach_get("color", colors)
assert np.allclose(colors.reshape(n, 4)[:, :3], srgb_to_linear(source.base_colors), atol=1e-6)
assert np.allclose(colors.reshape(n, 4)[:, 3], source.opacities, atol=1e-6)
assert "gsseg_radius" in mesh.attributes
# header kept on the object
header = io_splat.header_of(obj)
assert [p[0] for p in header["properties"]] == list(source.vertex.dtype.names)
assert dict((p[0], p[1]) for p in header["properties"])["tag"] == "uint"
assert header["meta_lines"] == [["comment", "made by hand"], ["obj_info", "scanner v2"],
                                ["comment", "second comment"]]
assert obj["gsseg_elements"]
assert obj["gsseg_sidecar"] == ARGS["sidecar"] and obj.gsseg.accumulation_path == ARGS["sidecar"]
# splat display (the default): one box per Gaussian, oriented by gsseg_rotation (the normalised quaternions)
from blender_gsseg.blender import splat_display as display
from drawn import splats_drawn

assert obj.gsseg.display == "SPLAT"
rotations = np.empty(4 * n, np.float32)
mesh.attributes[display.ROTATION_ATTRIBUTE].data.foreach_get("value", rotations)
assert np.allclose(rotations.reshape(n, 4), source.rotations, atol=1e-7)
visible = int(np.count_nonzero(source.opacities > 1.0 / 255.0))
assert splats_drawn(obj) == visible, (splats_drawn(obj), visible)
splat_mesh = next(inst.object.data for inst in bpy.context.evaluated_depsgraph_get().object_instances
                  if inst.object.type == "MESH" and inst.object.original == obj)
assert [m.original for m in splat_mesh.materials if m is not None] == [display.splat_shading()]
assert display.splat_shading().surface_render_method == "BLENDED"
# point display on request: Geometry Nodes Mesh to Points + material reading Col
obj.gsseg.display = "POINTS"
modifier = obj.modifiers["gsseg Points"]
assert modifier.type == "NODES"
idnames = {node.bl_idname for node in modifier.node_group.nodes}
assert {"GeometryNodeMeshToPoints", "GeometryNodeSetMaterial"} <= idnames
material = mesh.materials[0]
assert any(n.bl_idname == "ShaderNodeAttribute" and n.attribute_name == "Col"
           for n in material.node_tree.nodes)
depsgraph = bpy.context.evaluated_depsgraph_get()
clouds = [inst.object.data for inst in depsgraph.object_instances
          if inst.object.type == "POINTCLOUD"]
assert clouds and len(clouds[0].points) == n, [inst.object.type for inst in depsgraph.object_instances]
assert "Col" in clouds[0].attributes and clouds[0].materials[0].original == material

# export: byte for byte
start = time.perf_counter()
assert bpy.ops.gsseg.export_splat(filepath=ARGS["out"]) == {"FINISHED"}
RESULT["export_s"] = time.perf_counter() - start

# selected only (edit-mode selection attribute) and the label
selection = np.zeros(n, bool)
selection[::3] = True
attribute = mesh.attributes.get(".select_vert") or mesh.attributes.new(".select_vert", "BOOLEAN", "POINT")
attribute.data.foreach_set("value", selection)
labels = mesh.attributes.new("gsseg_label", "INT", "POINT")
labels.data.foreach_set("value", np.arange(n, dtype=np.int32) % 7)
assert bpy.ops.gsseg.export_splat(filepath=ARGS["out_selected"], selected_only=True,
                                  include_label=True) == {"FINISHED"}
subset = read_gaussians(ARGS["out_selected"])
assert len(subset) == selection.sum()
assert subset.vertex.dtype.names == source.vertex.dtype.names + ("gsseg_label",)
assert subset.property_types["gsseg_label"] == "int"
assert (subset.vertex["gsseg_label"] == (np.arange(n) % 7)[selection]).all()
for name in source.vertex.dtype.names:
    assert subset.vertex[name].tobytes() == source.vertex[name][selection].tobytes(), name
assert [e.name for e in subset.elements] == ["info", "extra"]

# a transform a Gaussian cannot represent is refused with a clear error, and nothing is written
obj.scale = (1.0, 2.0, 1.0)
RESULT["transform_error"] = refused(bpy.ops.gsseg.export_splat, "export with a non-uniform scale",
                                    filepath=ARGS["out_moved"])
assert not os.path.exists(ARGS["out_moved"])
obj.scale = (-1.0, -1.0, -1.0)
RESULT["mirror_error"] = refused(bpy.ops.gsseg.export_splat, "export with a negative scale",
                                 filepath=ARGS["out_moved"])
assert not os.path.exists(ARGS["out_moved"])
