"""Viewport and render display of splat objects: a Geometry Nodes modifier (Mesh to Points, radius from the
``gsseg_radius`` attribute times a scale, Set Material with the material given to the modifier) and two
materials whose shaders read a colour attribute through an Attribute node: ``Col`` (the splat colours) or
``gsseg_label_col`` (one colour per segmentation label). A vertex-only mesh draws nothing in object mode;
points do, in the viewport and in Cycles.

Hidden points: Geometry Nodes cannot read the edit-mode ``.hide_vert`` flags, so the hide/isolate operators
also write the BOOLEAN attribute ``gsseg_hidden``, and the node group leaves those points out."""

import bpy
import numpy as np

from ..core.pipeline import label_colour

NODE_GROUP_NAME = "gsseg Splat Points"
MATERIAL_NAME = "gsseg Splat Colour"
LABEL_MATERIAL_NAME = "gsseg Splat Labels"
MODIFIER_NAME = "gsseg Points"
COLOR_ATTRIBUTE = "Col"
LABEL_COLOR_ATTRIBUTE = "gsseg_label_col"
RADIUS_ATTRIBUTE = "gsseg_radius"
HIDDEN_ATTRIBUTE = "gsseg_hidden"
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
                and _input_identifier(group, MATERIAL_SOCKET) is not None and HIDDEN_NODE in group.nodes):
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


def _input_identifier(group, name):
    for item in group.interface.items_tree:
        if getattr(item, "in_out", None) == "INPUT" and item.name == name:
            return item.identifier
    return None


def _modifier_input(modifier, name):
    """(inputs, identifier) of the modifier input called ``name`` in its node group's interface, or None.
    ``inputs`` is ``modifier.properties.inputs`` where Blender has it (5.3, which no longer accepts ID-property
    subscripting of the modifier), else None (4.2-5.0: ``modifier[identifier]``)."""
    if modifier.node_group is None:
        return None
    identifier = _input_identifier(modifier.node_group, name)
    if identifier is None:
        return None
    return getattr(getattr(modifier, "properties", None), "inputs", None), identifier


def set_modifier_input(modifier, name, value):
    """Set the Geometry Nodes modifier input called ``name`` to ``value``, the supported way in each Blender
    version. Returns False when the modifier has no node group or no such input."""
    found = _modifier_input(modifier, name)
    if found is None:
        return False
    inputs, identifier = found
    if inputs is not None:
        getattr(inputs, identifier).value = value
    else:
        modifier[identifier] = value
    return True


def get_modifier_input(modifier, name):
    """The value of the Geometry Nodes modifier input called ``name`` (None when there is no such input)."""
    found = _modifier_input(modifier, name)
    if found is None:
        return None
    inputs, identifier = found
    return getattr(inputs, identifier).value if inputs is not None else modifier[identifier]


def add_point_display(obj):
    """Give ``obj`` the point display modifier (once) and the splat material; returns the modifier."""
    modifier = obj.modifiers.get(MODIFIER_NAME)
    if modifier is None:
        modifier = obj.modifiers.new(MODIFIER_NAME, "NODES")
    modifier.node_group = point_node_group()
    for material in (splat_material(), label_material()):
        if material.name not in obj.data.materials:
            obj.data.materials.append(material)
    set_display(obj, "COLOR")
    return modifier


def set_display(obj, mode):
    """Show the splat colours ('COLOR') or the label colours ('LABELS') on a splat with the point display."""
    modifier = obj.modifiers.get(MODIFIER_NAME)
    if modifier is None:
        return False
    material = label_material() if mode == "LABELS" else splat_material()
    if not set_modifier_input(modifier, MATERIAL_SOCKET, material):
        return False
    obj.update_tag()
    return True


def srgb_to_linear(values):
    """Splat colours are display (sRGB) values; Blender colour attributes are scene-linear."""
    values = np.asarray(values, dtype=np.float32)
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4).astype(np.float32)


UNSEEN_COLOUR = (20, 20, 20)  # sRGB 8-bit, for points no view saw


def write_label_colors(mesh, labels, colours=None):
    """``gsseg_label_col``: each label's colour (``colours``: {id: (r, g, b) sRGB in [0, 1]}, e.g. the instance
    list's; else the CLI's label colours), for the label display."""
    colours = colours or {}
    labels = np.asarray(labels, dtype=np.int64)
    low = int(labels.min(initial=0))
    if len(labels) and int(labels.max()) - low < (1 << 22):  # a lookup table by label: O(N)
        present = np.flatnonzero(np.bincount(labels - low))
        lookup = np.zeros(int(present[-1]) + 1, dtype=np.int64)
        lookup[present] = np.arange(len(present))
        ids, inverse = present + low, lookup[labels - low]
    else:
        ids, inverse = np.unique(labels, return_inverse=True)
    table = np.array([np.asarray(UNSEEN_COLOUR) / 255.0 if i < 0 else
                      colours.get(int(i), np.asarray(label_colour(int(i))) / 255.0) for i in ids],
                     dtype=np.float32).reshape(-1, 3)
    rgba = np.ones((len(labels), 4), dtype=np.float32)
    rgba[:, :3] = srgb_to_linear(table)[inverse.ravel()]
    attribute = mesh.color_attributes.get(LABEL_COLOR_ATTRIBUTE)
    if attribute is not None and (attribute.data_type != "FLOAT_COLOR" or attribute.domain != "POINT"):
        mesh.color_attributes.remove(attribute)
        attribute = None
    if attribute is None:
        active = mesh.color_attributes.active_color_name
        attribute = mesh.color_attributes.new(LABEL_COLOR_ATTRIBUTE, "FLOAT_COLOR", "POINT")
        if active and active in mesh.color_attributes:
            mesh.color_attributes.active_color_name = active
    attribute.data.foreach_set("color", rgba.ravel())
