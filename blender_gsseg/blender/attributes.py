"""Point attributes of a splat object (a vertex-only mesh, or a Blender 5.3 native ``GAUSSIAN_SPLAT`` point
cloud): read and write them in bulk (``foreach_get``/``foreach_set``), keep a subset of the points with every
attribute, and leave edit mode while doing it. The operators, the editing functions and the instance list all go
through here."""

import bpy
import numpy as np

from ..core.errors import BadInputError
from ..core.files.radiance import BASE as NATIVE_BASE
from ..core.files.radiance import POSITION as NATIVE_POSITION
from ..core.files.radiance import ROTATION as NATIVE_ROTATION
from ..core.files.radiance import SCALE as NATIVE_SCALE

# The point attributes gsseg gives a splat mesh, each name defined here once. The labels are the attribute
# ``gsseg_label``, named by the core's LABEL_PROPERTY (the file's vertex property of that name), not here.
COLOR_ATTRIBUTE = "Col"  # FLOAT_COLOR: the base colour (scene-linear), the opacity as alpha
LABEL_COLOR_ATTRIBUTE = "gsseg_label_col"  # FLOAT_COLOR: each point's label colour (the label display)
RADIUS_ATTRIBUTE = "gsseg_radius"  # FLOAT: the mean of the three scales (the point display's radius)
ROTATION_ATTRIBUTE = "gsseg_rotation"  # QUATERNION (w, x, y, z), normalised: derived, never exported
HIDDEN_ATTRIBUTE = "gsseg_hidden"  # BOOLEAN: hidden by the hide/isolate operators (both displays leave them out)
CONFIDENCE_ATTRIBUTE = "gsseg_confidence"
INDEX_ATTRIBUTE = "gsseg_index"  # each point's index in its cached accumulation (follows Blender's own edits)
MANUAL_ATTRIBUTE = "gsseg_manual"  # BOOLEAN: the label was assigned by hand (kept when gamma changes)
MANUAL_LABEL_ATTRIBUTE = "gsseg_manual_label"  # INT: that label
# Native splat point clouds (Blender 5.3+): Blender's own attribute names are the core's (core/files/radiance.py,
# with radiance:sh_k and the kept originals), with the Blender data type each must have to be read.
NATIVE_TYPES = {NATIVE_POSITION: ("FLOAT_VECTOR",), NATIVE_BASE: ("FLOAT4", "FLOAT_COLOR"),
                NATIVE_SCALE: ("FLOAT_VECTOR",), NATIVE_ROTATION: ("QUATERNION",)}
LABEL_RADIANCE_ATTRIBUTE = "gsseg_label_radiance"  # FLOAT_COLOR: label colour as SH DC + alpha (the label view)
MESH_SELECTION = ".select_vert"  # BOOLEAN: a mesh's edit-mode selection (absent: nothing selected)
POINTCLOUD_SELECTION = ".selection"  # BOOLEAN: a point cloud's selection (absent: everything selected)
MESH_HIDE = ".hide_vert"  # BOOLEAN: a mesh's edit-mode hide flags (point clouds have none: gsseg_hidden only)


def is_pointcloud(data):
    return isinstance(data, bpy.types.PointCloud)


def point_count(data):
    """The number of points of a mesh (its vertices) or a point cloud."""
    return len(data.points) if is_pointcloud(data) else len(data.vertices)


def tag_update(data):
    """Tell Blender the points' attributes changed (``Mesh.update``; a point cloud has ``update_tag`` only)."""
    if is_pointcloud(data):
        data.update_tag()
    else:
        data.update()


def read_attribute(mesh, name, kind="INT"):
    """The POINT attribute ``name`` of type ``kind`` ('INT' or 'BOOLEAN') as a numpy array, or None. An INT read
    also takes a FLOAT attribute (rounded): Blender's own PLY importer makes every extra property FLOAT, so
    ``gsseg_label`` of a point cloud it imported is FLOAT until gsseg first writes it (as INT)."""
    attribute = mesh.attributes.get(name)
    if attribute is None or attribute.domain != "POINT":
        return None
    if kind == "INT" and attribute.data_type == "FLOAT":
        values = np.empty(point_count(mesh), dtype=np.float32)
        attribute.data.foreach_get("value", values)
        return np.rint(values).astype(np.int32)
    if attribute.data_type != kind:
        return None
    values = np.empty(point_count(mesh), dtype=np.int32 if kind == "INT" else bool)
    attribute.data.foreach_get("value", values)
    return values


def srgb_to_linear(values):
    """Splat colours are display (sRGB) values; Blender colour attributes are scene-linear."""
    values = np.asarray(values, dtype=np.float32)
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4).astype(np.float32)


_ATTRIBUTE_DTYPES = {"INT": np.int32, "FLOAT": np.float32, "BOOLEAN": bool}


def point_attribute(data, name, data_type):
    """The POINT attribute ``name`` of ``data`` (a mesh or a point cloud) with type ``data_type``: the one there, or
    a new one replacing an attribute of that name with another type or domain."""
    attribute = data.attributes.get(name)
    if attribute is not None and (attribute.data_type != data_type or attribute.domain != "POINT"):
        data.attributes.remove(attribute)
        attribute = None
    return attribute if attribute is not None else data.attributes.new(name, data_type, "POINT")


def write_attribute(mesh, name, values, kind="INT"):
    """Write ``values`` into the POINT attribute ``name`` of type ``kind`` ('INT', 'FLOAT' or 'BOOLEAN'),
    replacing an attribute of that name with another type or domain."""
    point_attribute(mesh, name, kind).data.foreach_set("value",
                                                       np.ascontiguousarray(values, dtype=_ATTRIBUTE_DTYPES[kind]))


# foreach_get/foreach_set property, numpy dtype and values per point of each attribute data type
FOREACH_LAYOUTS = {
    "FLOAT": ("value", np.float32, 1), "INT": ("value", np.int32, 1), "BOOLEAN": ("value", bool, 1),
    "FLOAT_VECTOR": ("vector", np.float32, 3), "FLOAT_COLOR": ("color", np.float32, 4),
    "BYTE_COLOR": ("color", np.float32, 4), "FLOAT2": ("vector", np.float32, 2),
    "INT8": ("value", np.int32, 1), "QUATERNION": ("value", np.float32, 4),
    "INT32_2D": ("value", np.int32, 2), "FLOAT4": ("vector", np.float32, 4),
    "FLOAT4X4": ("value", np.float32, 16),
}


def attribute_buffers(mesh):
    """Every generic POINT attribute of a vertex-only mesh or a point cloud as (name, data_type, numpy array,
    prop)."""
    n = point_count(mesh)
    buffers = []
    for attribute in mesh.attributes:
        if attribute.domain != "POINT":
            continue
        layout = FOREACH_LAYOUTS.get(attribute.data_type)
        if layout is None:
            raise BadInputError(f"attribute {attribute.name!r} of type {attribute.data_type} is not supported")
        prop, dtype, width = layout
        values = np.empty(n * width, dtype=dtype)
        attribute.data.foreach_get(prop, values)
        buffers.append((attribute.name, attribute.data_type, values.reshape(n, width), prop))
    return buffers


def keep_points(obj, keep):
    """Rebuild ``obj``'s vertex-only mesh (or point cloud) with the points where ``keep`` is true (all attributes
    kept)."""
    mesh = obj.data
    if is_pointcloud(mesh):
        return _keep_cloud_points(mesh, keep)
    if len(mesh.edges) or len(mesh.polygons):
        raise BadInputError(f"'{obj.name}' has edges or faces; deleting by label works on point meshes only")
    buffers = attribute_buffers(mesh)
    active_color = mesh.color_attributes.active_color_name
    render_index = mesh.color_attributes.render_color_index
    render_name = mesh.color_attributes[render_index].name if 0 <= render_index < len(mesh.color_attributes) else None
    mesh.clear_geometry()
    count = int(np.count_nonzero(keep))
    mesh.vertices.add(count)
    for name, data_type, values, prop in buffers:
        attribute = mesh.attributes.get(name)
        if attribute is None:
            attribute = mesh.attributes.new(name, data_type, "POINT")
        attribute.data.foreach_set(prop, np.ascontiguousarray(values[keep]).ravel())
    if active_color and active_color in mesh.color_attributes:
        mesh.color_attributes.active_color_name = active_color
    if render_name and render_name in mesh.color_attributes:
        names = [a.name for a in mesh.color_attributes]
        mesh.color_attributes.render_color_index = names.index(render_name)
    mesh.update()
    return count


def _keep_cloud_points(cloud, keep):
    """A point cloud keeps the points where ``keep`` is true: every attribute read, the cloud resized (which
    keeps the datablock, its type, materials and users) and the kept rows written back."""
    buffers = attribute_buffers(cloud)
    count = int(np.count_nonzero(keep))
    cloud.resize(count)
    for name, _data_type, values, prop in buffers:
        cloud.attributes[name].data.foreach_set(prop, np.ascontiguousarray(values[keep]).ravel())
    cloud.update_tag()
    return count


class ObjectMode:
    """Leave edit mode for the duration (mesh data written in edit mode is overwritten on exit).

    ``stay=True``: do not go back to edit mode. Operators that change object-level state (the cache path,
    the instance list, custom properties) use it: an undo step pushed in edit mode restores only the mesh,
    one pushed in object mode restores everything."""

    def __init__(self, obj, stay=False):
        self.obj = obj
        self.was_edit = obj.mode == "EDIT"
        self.stay = stay

    def __enter__(self):
        if self.was_edit:
            self._set_mode("OBJECT")
        return self

    def __exit__(self, *exc):
        if self.was_edit and not self.stay:
            self._set_mode("EDIT")
        return False

    def _set_mode(self, mode):
        context = bpy.context
        with context.temp_override(active_object=self.obj, object=self.obj):
            bpy.ops.object.mode_set(mode=mode)
