"""The point display: a Geometry Nodes modifier (Mesh to Points, radius from the ``gsseg_radius`` attribute times
a scale, Set Material with the material given to the modifier) and two materials whose shaders read a colour
attribute through an Attribute node: ``Col`` (the splat colours) or ``gsseg_label_col`` (one colour per
segmentation label). A vertex-only mesh draws nothing in object mode; points do, in the viewport and in Cycles.
The splat display (:mod:`.splat_display`) is the default; this one is fast for huge scenes.

Hidden points: Geometry Nodes cannot read the edit-mode ``.hide_vert`` flags, so the hide/isolate operators
also write the BOOLEAN attribute ``gsseg_hidden``, and the node group leaves those points out."""

import bpy

from .attributes import COLOR_ATTRIBUTE, HIDDEN_ATTRIBUTE, LABEL_COLOR_ATTRIBUTE, RADIUS_ATTRIBUTE
from .modifiers import input_identifier, set_modifier_input

NODE_GROUP_NAME = "gsseg Splat Points"
MATERIAL_NAME = "gsseg Splat Colour"
LABEL_MATERIAL_NAME = "gsseg Splat Labels"
MODIFIER_NAME = "gsseg Points"
MATERIAL_SOCKET = "Material"
HIDDEN_NODE = "gsseg hidden"  # marks groups made by this version (older ones lack the hidden-points filter)


def splat_material():
    """The material showing the splat colours (attribute ``Col``)."""
    return _attribute_material(MATERIAL_NAME, COLOR_ATTRIBUTE)


def label_material():
    """The material showing one colour per label (attribute ``gsseg_label_col``)."""
    return _attribute_material(LABEL_MATERIAL_NAME, LABEL_COLOR_ATTRIBUTE)


def _attribute_material(name, attribute_name):
    material = bpy.data.materials.get(name)
    if material is not None:
        return material
    material = bpy.data.materials.new(name)
    if not material.node_tree:  # Blender < 5 creates the tree on request
        material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    attribute = tree.nodes.new("ShaderNodeAttribute")
    attribute.attribute_type = "GEOMETRY"
    attribute.attribute_name = attribute_name
    attribute.location = (-400, 0)
    emission = tree.nodes.new("ShaderNodeEmission")
    emission.location = (-150, 0)
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    output.location = (100, 0)
    tree.links.new(attribute.outputs["Color"], emission.inputs["Color"])
    tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return material


def point_node_group():
    for group in bpy.data.node_groups:
        if (group.name.startswith(NODE_GROUP_NAME) and group.bl_idname == "GeometryNodeTree"
                and input_identifier(group, MATERIAL_SOCKET) is not None and HIDDEN_NODE in group.nodes):
            return group
    group = bpy.data.node_groups.new(NODE_GROUP_NAME, "GeometryNodeTree")
    if hasattr(group, "is_modifier"):
        group.is_modifier = True
    interface = group.interface
    interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    scale = interface.new_socket("Radius Scale", in_out="INPUT", socket_type="NodeSocketFloat")
    scale.default_value = 1.0
    scale.min_value = 0.0
    material = interface.new_socket(MATERIAL_SOCKET, in_out="INPUT", socket_type="NodeSocketMaterial")
    material.default_value = splat_material()
    interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    nodes, links = group.nodes, group.links
    group_in = nodes.new("NodeGroupInput")
    group_in.location = (-700, 0)
    radius = nodes.new("GeometryNodeInputNamedAttribute")
    radius.data_type = "FLOAT"
    radius.inputs["Name"].default_value = RADIUS_ATTRIBUTE
    radius.location = (-700, -200)
    multiply = nodes.new("ShaderNodeMath")
    multiply.operation = "MULTIPLY"
    multiply.location = (-450, -150)
    hidden = nodes.new("GeometryNodeInputNamedAttribute")
    hidden.name = HIDDEN_NODE
    hidden.data_type = "BOOLEAN"
    hidden.inputs["Name"].default_value = HIDDEN_ATTRIBUTE
    hidden.location = (-700, 200)
    visible = nodes.new("FunctionNodeBooleanMath")
    visible.operation = "NOT"
    visible.location = (-450, 200)
    to_points = nodes.new("GeometryNodeMeshToPoints")
    to_points.mode = "VERTICES"
    to_points.location = (-200, 0)
    links.new(hidden.outputs["Attribute"], visible.inputs[0])
    links.new(visible.outputs[0], to_points.inputs["Selection"])
    set_material = nodes.new("GeometryNodeSetMaterial")
    set_material.location = (50, 0)
    group_out = nodes.new("NodeGroupOutput")
    group_out.location = (300, 0)
    links.new(group_in.outputs[0], to_points.inputs["Mesh"])
    links.new(radius.outputs["Attribute"], multiply.inputs[0])
    links.new(group_in.outputs[1], multiply.inputs[1])
    links.new(multiply.outputs[0], to_points.inputs["Radius"])
    links.new(group_in.outputs[2], set_material.inputs["Material"])
    links.new(to_points.outputs[0], set_material.inputs["Geometry"])
    links.new(set_material.outputs[0], group_out.inputs[0])
    return group


def add_point_display(obj):
    """Give ``obj`` the point display modifier (once) and the splat material; returns the modifier."""
    modifier = obj.modifiers.get(MODIFIER_NAME)
    if modifier is None:
        modifier = obj.modifiers.new(MODIFIER_NAME, "NODES")
    modifier.node_group = point_node_group()
    for material in (splat_material(), label_material()):
        if material.name not in obj.data.materials:
            obj.data.materials.append(material)
    set_modifier_input(modifier, MATERIAL_SOCKET, splat_material())
    return modifier
