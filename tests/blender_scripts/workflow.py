"""An artist's first session, run by tests/test_blender_versions.py in each tested Blender release: install the
extension zip, import the demo splat and its cameras, segment with its masks, select an instance, delete it,
undo, redo and export. On 5.3+ the import makes Blender's own Gaussian splat point cloud (the default there);
before, a point mesh with gsseg's splat display. Runs in a child process of blender_harness.run_bpy (ARGS in,
RESULT out: child.py)."""

import hashlib
import sys

import bpy
import numpy as np

from child import ARGS, RESULT
from drawn import splats_drawn

outcome = bpy.ops.extensions.package_install_files(filepath=ARGS["zip"], repo="user_default",
                                                    enable_on_install=True)
assert outcome == {"FINISHED"}, outcome
assert "bl_ext.user_default.gsseg" in bpy.context.preferences.addons.keys()
import bl_ext.user_default.gsseg as gsseg  # noqa: E402  (exists only once installed)

RESULT["blender"] = bpy.app.version_string
RESULT["python"] = "%d.%d" % sys.version_info[:2]
display = gsseg.blender.splat_display
get_modifier_input = gsseg.blender.modifiers.get_modifier_input


NATIVE = gsseg.blender.native_splat.has_native()


def points(data):
    return len(data.points) if NATIVE else len(data.vertices)


def attribute(obj, name, data_type="INT"):
    mesh = obj.data
    values = np.empty(points(mesh), bool if data_type == "BOOLEAN" else np.int32)
    mesh.attributes[name].data.foreach_get("value", values)
    return values


def state(obj):
    """A digest of every attribute of the splat mesh (bit for bit) and its point count."""
    mesh = obj.data
    digest = hashlib.sha1()
    for attr in sorted(mesh.attributes, key=lambda a: a.name):
        if attr.name.startswith(".") or attr.domain != "POINT":
            continue
        field = "vector" if attr.data_type in ("FLOAT_VECTOR", "FLOAT4") else \
            "color" if "COLOR" in attr.data_type else "value"
        width = {"FLOAT_VECTOR": 3, "FLOAT_COLOR": 4, "BYTE_COLOR": 4, "QUATERNION": 4, "FLOAT4": 4}.get(
            attr.data_type, 1)
        dtype = {"INT": np.int32, "BOOLEAN": bool, "INT8": np.int8}.get(attr.data_type, np.float32)
        values = np.empty(width * points(mesh), dtype)
        attr.data.foreach_get(field, values)
        digest.update(attr.name.encode() + values.tobytes())
    return points(mesh), digest.hexdigest()


def op(name, **kwargs):
    result = getattr(bpy.ops.gsseg, name)("EXEC_DEFAULT", True, **kwargs)  # True: push an undo step
    assert result == {"FINISHED"}, (name, result)


# import the splat: Blender's own splat point cloud (5.3+), or a point mesh with every property shown as splats
assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"]) == {"FINISHED"}
obj = bpy.context.active_object
NAME = obj.name
n = points(obj.data)
assert n == ARGS["n"], n
assert obj.gsseg.display == "SPLAT"
assert splats_drawn(obj) == n, splats_drawn(obj)
if NATIVE:
    assert obj.type == "POINTCLOUD" and obj.data.type == "GAUSSIAN_SPLAT" and not obj.modifiers
else:
    modifier = obj.modifiers[display.SPLAT_MODIFIER_NAME]
    assert get_modifier_input(modifier, "Show Labels") is False
    obj.gsseg.display = "POINTS"  # the point display on request, and back
    point_modifier = obj.modifiers[gsseg.blender.point_display.MODIFIER_NAME]
    assert point_modifier.show_viewport and not modifier.show_viewport and splats_drawn(obj) == n
    obj.gsseg.display = "SPLAT"
    assert modifier.show_viewport and modifier.show_render and not point_modifier.show_viewport

# its cameras, its masks: segment
assert bpy.ops.gsseg.import_cameras(filepath=ARGS["cameras"]) == {"FINISHED"}
settings = bpy.context.scene.gsseg
settings.splat_object = obj
settings.mask_dir = ARGS["masks"]
settings.scale = ARGS["scale"]
settings.backend = "cpu"
bpy.context.view_layer.objects.active = obj
RESULT["plan"] = gsseg.blender.segment.run_plan(bpy.context)  # what the Segment panel says will run
import numba  # noqa: E402  (the bundled wheel where the release's Python has none)
RESULT["numba"] = numba.__file__
assert bpy.ops.gsseg.segment() == {"FINISHED"}
labels = attribute(obj, "gsseg_label")
RESULT["labels"] = labels.tolist()
# the label display: the splats in label colours, and back
assert obj.gsseg.display == "LABELS"
if NATIVE:
    modifier = obj.modifiers[gsseg.blender.native_splat.DISPLAY_MODIFIER_NAME]
assert get_modifier_input(modifier, "Show Labels") is True
obj.gsseg.display = "SPLAT"
assert get_modifier_input(modifier, "Show Labels") is False
assert splats_drawn(obj) == n

# select an instance
target = ARGS["instance"]
op("select_instance", label=target)
assert (attribute(obj, ".selection" if NATIVE else ".select_vert", "BOOLEAN") == (labels == target)).all()
bpy.ops.ed.undo_push(message="selected")  # headless Blender starts without an undo stack
before = state(obj)

# delete it, undo, redo
obj.gsseg.instance = target
op("delete_instance")
obj = bpy.data.objects[NAME]
after = state(obj)
assert after[0] == n - (labels == target).sum(), after[0]
assert (attribute(obj, "gsseg_label") == labels[labels != target]).all()
assert splats_drawn(obj) == after[0]
assert bpy.ops.ed.undo() == {"FINISHED"}
obj = bpy.data.objects[NAME]
assert state(obj) == before, "undo did not bring back the deleted instance exactly"
assert bpy.ops.ed.redo() == {"FINISHED"}
obj = bpy.data.objects[NAME]
assert state(obj) == after, "redo did not delete it again"

# export the edited splat with its labels
assert bpy.ops.gsseg.export_splat(filepath=ARGS["out"], include_label=True) == {"FINISHED"}
RESULT["exported"] = points(obj.data)
