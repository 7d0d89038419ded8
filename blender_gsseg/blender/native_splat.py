"""Blender 5.3's own Gaussian splats: a point cloud of type ``GAUSSIAN_SPLAT`` that Blender draws and renders
itself (Workbench, EEVEE, Cycles). gsseg makes one on import (:func:`build_pointcloud`), reads one back -- its own or
one Blender's PLY/SPZ importer made -- for segmenting and exporting (:func:`gaussians_from_pointcloud`), and gives it
a display modifier for what Blender has no place for: hidden points and the label view (:func:`update_display`).

The values and their float32 round trip are the core's (:mod:`..core.files.radiance`); this module only moves
arrays in and out with foreach_get/foreach_set. Selection is the point cloud's own ``.selection`` attribute, which
Blender's point-cloud edit mode and operators use (absent: every point selected).

Feature-detected (:func:`has_native`): 4.2-5.2 have no ``PointCloud.type``; there gsseg keeps its mesh path.
"""

import bpy
import numpy as np

from ..core.errors import BadInputError
from ..core.files import radiance
from ..core.files.labels import CODE_PROPERTY, LABEL_PROPERTY
from ..core.gaussians import SH_C0
from .attributes import (FOREACH_LAYOUTS, HIDDEN_ATTRIBUTE, LABEL_RADIANCE_ATTRIBUTE, NATIVE_BASE, NATIVE_TYPES,
                         POINTCLOUD_SELECTION, point_attribute, point_count, read_attribute, write_attribute)
from .modifiers import get_modifier_input, set_modifier_input

SPLAT_TYPE = "GAUSSIAN_SPLAT"
DISPLAY_MODIFIER_NAME = "gsseg Native Display"
DISPLAY_GROUP_NAME = "gsseg Native Display"
DISPLAY_GROUP_MARK = "gsseg native display 1"  # a node of this name marks groups made by this version
SHOW_LABELS = "Show Labels"
# the data types the native objects use, with their foreach_get/foreach_set layout (property, dtype, width)
LAYOUTS = {data_type: FOREACH_LAYOUTS[data_type]
           for data_type in ("FLOAT", "INT", "BOOLEAN", "FLOAT_VECTOR", "FLOAT4", "FLOAT_COLOR", "QUATERNION")}


def has_native():
    """Whether this Blender has native Gaussian splat point clouds (5.3+)."""
    properties = bpy.types.PointCloud.bl_rna.properties
    return "type" in properties and SPLAT_TYPE in {item.identifier for item in properties["type"].enum_items}


def is_native_splat(obj):
    return (obj is not None and obj.type == "POINTCLOUD" and obj.data is not None
            and getattr(obj.data, "type", None) == SPLAT_TYPE)


def build_pointcloud(gaussians, name, reserved=()):
    """A new ``GAUSSIAN_SPLAT`` point cloud holding ``gaussians`` (with the file's opacity and log-scales kept, for
    bit-exact export); returns (point cloud, :class:`~..core.files.radiance.NativeSplat`)."""
    native = radiance.to_radiance(gaussians, reserved=reserved)
    cloud = bpy.data.pointclouds.new(name)
    cloud.resize(len(gaussians))
    cloud.type = SPLAT_TYPE
    for attribute_name, (data_type, values) in native.attributes.items():
        attribute = cloud.attributes.get(attribute_name)
        if attribute is None:
            attribute = cloud.attributes.new(attribute_name, data_type, "POINT")
        attribute.data.foreach_set(LAYOUTS[data_type][0], np.ascontiguousarray(values).ravel())
    return cloud, native


def read_values(cloud, attribute):
    """An attribute's values as a numpy array ([points] or [points, width])."""
    prop, dtype, width = LAYOUTS[attribute.data_type]
    values = np.empty(point_count(cloud) * width, dtype=dtype)
    attribute.data.foreach_get(prop, values)
    return values.reshape(-1, width) if width > 1 else values


def read_native(obj, names):
    """{name: array} of the attributes ``names`` a point cloud has on the POINT domain (types checked: a wrongly
    typed native attribute is refused, naming it)."""
    cloud = obj.data
    arrays = {}
    for name in names:
        attribute = cloud.attributes.get(name)
        if attribute is None or attribute.domain != "POINT":
            continue
        allowed = NATIVE_TYPES.get(name, ("FLOAT_VECTOR",) if name.startswith(radiance.SH_PREFIX) else None)
        if allowed is not None and attribute.data_type not in allowed:
            raise BadInputError(f"'{obj.name}': attribute {name!r} is {attribute.data_type}, not "
                                f"{' or '.join(allowed)}: not a Gaussian splat gsseg can read")
        if attribute.data_type not in LAYOUTS:
            continue
        arrays[name] = read_values(cloud, attribute)
    return arrays


def gaussians_from_pointcloud(obj, header=None, *, elements=(), selected_only=False, include_label=False,
                              exclude=()):
    """The scene a native splat object holds and what could not be recovered exactly (sentences).

    ``header``: gsseg's header of the object (its import), None for one Blender imported itself: then every
    other FLOAT/INT point attribute (but ``exclude``, gsseg's own, and ``gsseg_label`` unless ``include_label``)
    becomes a property after the standard ones. ``selected_only``: the points of ``.selection``."""
    cloud = obj.data
    where = f"'{obj.name}'"
    count = 0
    while radiance.sh_name(count) in cloud.attributes:
        count += 1
    names = [radiance.POSITION, radiance.BASE, radiance.SCALE, radiance.ROTATION]
    names += [radiance.sh_name(k) for k in range(count)]
    properties = None
    if header is not None:
        properties = [tuple(p) for p in header["properties"]]
        if include_label and LABEL_PROPERTY not in [p[0] for p in properties] and LABEL_PROPERTY in cloud.attributes:
            properties.append((LABEL_PROPERTY, "int", LABEL_PROPERTY))
        names += [radiance.KEPT_OPACITY, radiance.KEPT_LOG_SCALE] + [p[2] for p in properties if p[2]]
    else:
        skip = set(exclude) | ({LABEL_PROPERTY} if not include_label else set())
        names += [a.name for a in cloud.attributes
                  if a.domain == "POINT" and a.data_type in ("FLOAT", "INT") and not a.name.startswith(".")
                  and not radiance.is_native_name(a.name) and a.name not in skip]
    arrays = read_native(obj, names)
    for name in (LABEL_PROPERTY, CODE_PROPERTY):  # a FLOAT label from Blender's importer is read as int
        if name in arrays and arrays[name].dtype != np.int32:
            arrays[name] = read_attribute(cloud, name)
    if selected_only:
        picked = selection(obj)
        arrays = {name: values[picked] for name, values in arrays.items()}
    meta = header.get("meta_lines", []) if header is not None else []
    position = int(header.get("vertex_position", 0)) if header is not None else 0
    return radiance.from_radiance(arrays, properties, where=where, meta_lines=meta, elements=elements,
                                  vertex_position=position)


# ---------------------------------------------------------------------------------------------------------------
# Selection (Blender's own: the .selection attribute; absent means every point is selected)

def selection(obj):
    cloud = obj.data
    values = read_attribute(cloud, POINTCLOUD_SELECTION, "BOOLEAN")
    return np.ones(point_count(cloud), dtype=bool) if values is None else values


def write_selection(obj, selected):
    write_attribute(obj.data, POINTCLOUD_SELECTION, selected, "BOOLEAN")


# ---------------------------------------------------------------------------------------------------------------
# The display modifier: hidden points left out, and the label view (label colours written into the evaluated
# radiance:base, the view-dependent radiance:sh_* removed); the stored radiance is never touched.

def label_radiance(cloud, rgba):
    """``gsseg_label_radiance`` (FLOAT_COLOR): the label colours ``rgba`` (scene-linear, [N, 4]) as the SH DC
    coefficient Blender's renderer reads from radiance:base, with each splat's own alpha."""
    base = cloud.attributes.get(NATIVE_BASE)
    values = np.empty((point_count(cloud), 4), dtype=np.float32)
    values[:, :3] = (np.asarray(rgba, dtype=np.float32)[:, :3] - 0.5) / SH_C0
    if base is not None and base.data_type in NATIVE_TYPES[NATIVE_BASE]:
        values[:, 3] = read_values(cloud, base)[:, 3]
    else:
        values[:, 3] = 1.0
    point_attribute(cloud, LABEL_RADIANCE_ATTRIBUTE, "FLOAT_COLOR").data.foreach_set("color", values.ravel())


def display_node_group():
    for group in bpy.data.node_groups:
        if group.bl_idname == "GeometryNodeTree" and DISPLAY_GROUP_MARK in group.nodes:
            return group
    group = bpy.data.node_groups.new(DISPLAY_GROUP_NAME, "GeometryNodeTree")
    if hasattr(group, "is_modifier"):
        group.is_modifier = True
    interface = group.interface
    interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    show = interface.new_socket(SHOW_LABELS, in_out="INPUT", socket_type="NodeSocketBool")
    show.default_value = False
    interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    nodes, links = group.nodes, group.links
    group_in, group_out = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    hidden = nodes.new("GeometryNodeInputNamedAttribute")
    hidden.name = DISPLAY_GROUP_MARK
    hidden.data_type = "BOOLEAN"
    hidden.inputs["Name"].default_value = HIDDEN_ATTRIBUTE
    delete = nodes.new("GeometryNodeDeleteGeometry")
    delete.domain = "POINT"
    links.new(group_in.outputs[0], delete.inputs["Geometry"])
    links.new(hidden.outputs["Attribute"], delete.inputs["Selection"])
    colour = nodes.new("GeometryNodeInputNamedAttribute")
    colour.data_type = "FLOAT_COLOR"
    colour.inputs["Name"].default_value = LABEL_RADIANCE_ATTRIBUTE
    store = nodes.new("GeometryNodeStoreNamedAttribute")
    store.data_type = "FLOAT_COLOR"  # FLOAT4 would take a 3-D socket and write alpha 0 (measured)
    store.domain = "POINT"
    store.inputs["Name"].default_value = NATIVE_BASE
    links.new(delete.outputs[0], store.inputs["Geometry"])
    links.new(colour.outputs["Attribute"], store.inputs["Value"])
    remove = nodes.new("GeometryNodeRemoveAttribute")
    if "Pattern Mode" in remove.inputs:  # a menu socket in 5.3 (a node property in some releases)
        remove.inputs["Pattern Mode"].default_value = "Wildcard"
    elif hasattr(remove, "pattern_mode"):
        remove.pattern_mode = "WILDCARD"
    remove.inputs["Name"].default_value = radiance.SH_PREFIX + "*"
    links.new(store.outputs[0], remove.inputs["Geometry"])
    switch = nodes.new("GeometryNodeSwitch")
    switch.input_type = "GEOMETRY"
    links.new(group_in.outputs[1], switch.inputs["Switch"])
    links.new(delete.outputs[0], switch.inputs["False"])
    links.new(remove.outputs[0], switch.inputs["True"])
    links.new(switch.outputs[0], group_out.inputs[0])
    for x, node in enumerate((group_in, hidden, delete, colour, store, remove, switch, group_out)):
        node.location = (200 * x, 0)
    return group


def update_display(obj, labels=None):
    """Give the native splat object the display modifier when it needs one (hidden points, or the label view:
    ``labels``, default: its Display is 'LABELS'), and switch it off when it does not: the modifier copies the
    geometry, which a plain splat should not pay for. Returns the modifier or None."""
    labels = obj.gsseg.display == "LABELS" if labels is None else labels
    hidden = read_attribute(obj.data, HIDDEN_ATTRIBUTE, "BOOLEAN")
    needed = labels or (hidden is not None and bool(hidden.any()))
    modifier = obj.modifiers.get(DISPLAY_MODIFIER_NAME)
    if modifier is None and not needed:
        return None
    if modifier is None:
        modifier = obj.modifiers.new(DISPLAY_MODIFIER_NAME, "NODES")
        modifier.node_group = display_node_group()
    if get_modifier_input(modifier, SHOW_LABELS) != bool(labels):
        set_modifier_input(modifier, SHOW_LABELS, bool(labels))
    if modifier.show_viewport != needed or modifier.show_render != needed:
        modifier.show_viewport = modifier.show_render = needed
    obj.update_tag()
    return modifier
