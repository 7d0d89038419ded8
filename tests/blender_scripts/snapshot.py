"""Helpers of the editing scripts (tests/test_blender_editing.py): the whole state of a splat object, for exact
undo comparisons, attribute readers, the point count drawn, and operators run with an undo step."""

import hashlib

import bpy
import numpy as np

from blender_gsseg.blender import attributes as point_attributes
from drawn import splats_drawn  # noqa: F401  (the scripts import it from here)


def snapshot(name):
    obj = bpy.data.objects[name]
    if obj.mode == "EDIT":  # attribute data is only readable in object mode
        bpy.ops.object.mode_set(mode="OBJECT")
        try:
            return snapshot(name)
        finally:
            bpy.ops.object.mode_set(mode="EDIT")
    mesh = obj.data
    attributes = {}
    for attr_name, data_type, values, _ in point_attributes.attribute_buffers(mesh):
        attributes[attr_name] = (data_type, hashlib.sha1(np.ascontiguousarray(values).tobytes()).hexdigest())
    return {
        "n": len(mesh.vertices),
        "attributes": attributes,
        "props": {k: str(obj[k]) for k in obj.keys() if k.startswith("gsseg_")},
        "path": obj.gsseg.accumulation_path,
        "gamma": round(obj.gsseg.gamma, 6),
        "list": [(i.level, i.id, i.name, tuple(round(c, 6) for c in i.color), i.count) for i in obj.gsseg.labels],
        "objects": sorted(o.name for o in bpy.data.objects),
    }

def int_attr(obj, name):
    return point_attributes.read_attribute(obj.data, name)

def bool_attr(obj, name):
    if obj.mode == "EDIT":
        name_ = obj.name
        bpy.ops.object.mode_set(mode="OBJECT")
        try:
            return bool_attr(bpy.data.objects[name_], name)
        finally:
            bpy.ops.object.mode_set(mode="EDIT")
    values = point_attributes.read_attribute(obj.data, name, "BOOLEAN")
    return np.zeros(len(obj.data.vertices), bool) if values is None else values

def op(name, **kwargs):
    result = getattr(bpy.ops.gsseg, name)("EXEC_DEFAULT", True, **kwargs)  # True: push an undo step
    assert result == {"FINISHED"}, (name, result)
