"""Select Inside Object (a rotated, scaled cube over a splat) and Select Linked Instance (a few points grown to
their instances), clicked from object mode: both end in edit mode showing the selection, as every selecting
operator does when invoked; run from a script they leave the mode alone. Run by tests/test_blender_bare.py."""

import bpy
import numpy as np

from child import ARGS, RESULT
from snapshot import bool_attr

from blender_gsseg.blender import ops


def click(operator, **properties):
    """Run an operator as a click in the UI does, through its invoke (background bpy has no window events, so
    bpy.ops(..., "INVOKE_DEFAULT") would run its execute)."""
    class Click(operator):
        bl_idname = "gsseg.test_click"

        def execute(self, context):
            return operator.invoke(self, context, None)

    bpy.utils.register_class(Click)
    try:
        return bpy.ops.gsseg.test_click(**properties)
    finally:
        bpy.utils.unregister_class(Click)


scene = bpy.context.scene
for obj in list(scene.objects):
    bpy.data.objects.remove(obj)
assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="SPLAT") == {"FINISHED"}
splat = bpy.context.active_object
splat.location = ARGS["splat_location"]
assert bpy.ops.gsseg.select_inside.poll() is False  # no mesh to select inside
bpy.ops.mesh.primitive_cube_add(size=2.0, location=ARGS["box_location"], rotation=ARGS["box_rotation"])
box = bpy.context.active_object
box.scale = ARGS["box_scale"]  # the object's transform, as an artist scales a proxy
splat.select_set(True)
bpy.context.view_layer.objects.active = splat
assert click(ops.GSSEG_OT_select_inside) == {"FINISHED"}
assert splat.mode == "EDIT"
RESULT["box_world"] = [list(row) for row in box.matrix_world]
RESULT["splat_world"] = [list(row) for row in splat.matrix_world]
RESULT["inside"] = np.flatnonzero(bool_attr(splat, ".select_vert")).tolist()

# grow a few selected points to their whole instances
bpy.ops.object.mode_set(mode="OBJECT")
seed = np.zeros(len(splat.data.vertices), bool)
seed[ARGS["seed_points"]] = True
splat.data.attributes[".select_vert"].data.foreach_set("value", seed)
assert click(ops.GSSEG_OT_select_linked_instance) == {"FINISHED"}
assert splat.mode == "EDIT"
RESULT["linked"] = np.flatnonzero(bool_attr(splat, ".select_vert")).tolist()

# the instance list's buttons: executed (a script) they stay in object mode, invoked (a click) they show the selection
RESULT["modes"] = {}
for name, kwargs in (("select_instance", {"label": 1}), ("deselect_instance", {"label": 1}),
                     ("select_unseen", {}), ("invert_selection", {})):
    bpy.ops.object.mode_set(mode="OBJECT")
    assert getattr(bpy.ops.gsseg, name)(**kwargs) == {"FINISHED"}
    executed = splat.mode
    assert click(getattr(ops, "GSSEG_OT_" + name), **kwargs) == {"FINISHED"}
    RESULT["modes"][name] = [executed, splat.mode]
RESULT["invoked_selection"] = np.flatnonzero(bool_attr(splat, ".select_vert")).tolist()
RESULT["menus"] = {name: [f.__name__ for f in getattr(bpy.types, name).draw._draw_funcs]
                   for name in ("VIEW3D_MT_select_edit_mesh", "VIEW3D_MT_edit_mesh_context_menu", "VIEW3D_MT_add")}
