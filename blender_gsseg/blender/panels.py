"""The sidebar panel (3D View > Sidebar > gsseg)."""

import bpy

from . import display, io_splat


class GSSEG_PT_main(bpy.types.Panel):
    bl_idname = "GSSEG_PT_main"
    bl_label = "gsseg"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "gsseg"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.gsseg

        row = layout.row(align=True)
        row.operator("gsseg.import_splat", text="Import Splat", icon="IMPORT")
        row.operator("gsseg.export_splat", text="Export", icon="EXPORT")
        row = layout.row(align=True)
        row.operator("gsseg.import_cameras", text="Import Cameras", icon="OUTLINER_OB_CAMERA")
        if context.active_object is not None and context.active_object.type == "CAMERA":
            row.operator("gsseg.use_camera", text="", icon="RESTRICT_RENDER_OFF")

        box = layout.box()
        box.label(text="Segment", icon="GROUP_VERTEX")
        box.prop(settings, "splat_object")
        box.prop(settings, "camera_collection")
        box.prop(settings, "mask_dir")
        row = box.row(align=True)
        row.prop(settings, "scale")
        row.prop(settings, "backend", text="")
        box.operator("gsseg.segment", icon="PLAY")

        obj = settings.splat_object
        if obj is None and io_splat.is_splat_object(context.active_object):
            obj = context.active_object
        if obj is None:
            return
        state = obj.gsseg
        box = layout.box()
        box.label(text=obj.name, icon="OUTLINER_OB_POINTCLOUD")
        if obj.modifiers.get(display.MODIFIER_NAME) is not None:
            box.row().prop(state, "display", expand=True)
        if state.accumulation_path:
            row = box.row(align=True)
            row.prop(state, "gamma", slider=True)
            row.operator("gsseg.apply_gamma", text="", icon="FILE_REFRESH")
        else:
            box.label(text="Not segmented yet", icon="INFO")
        row = box.row(align=True)
        row.prop(state, "instance")
        active = context.active_object is obj
        sub = row.row(align=True)
        sub.enabled = active
        sub.operator("gsseg.select_instance", text="", icon="RESTRICT_SELECT_OFF")
        sub.operator("gsseg.delete_instance", text="", icon="TRASH")
        if not active:
            box.label(text="Make the splat active to edit it", icon="INFO")


CLASSES = (GSSEG_PT_main,)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
