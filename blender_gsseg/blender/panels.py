"""The sidebar panel (3D View > Sidebar > gsseg) and the instance list."""

import bpy

from . import io_splat, point_display, segment, splat_display
from . import labels as label_list
from .classes import register_classes, unregister_classes


class GSSEG_UL_instances(bpy.types.UIList):
    """Instances of the splat's current level: id, editable name, colour, number of points."""

    bl_idname = "GSSEG_UL_instances"

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0, flt_flag=0):
        row = layout.row(align=True)
        split = row.split(factor=0.18, align=True)
        split.label(text=str(item.id))
        split.prop(item, "name", text="", emboss=False)
        sub = row.row(align=True)
        sub.ui_units_x = 1.5
        sub.prop(item, "color", text="")
        count = row.row(align=True)
        count.alignment = "RIGHT"
        count.label(text=f"{item.count:,}")

    def draw_filter(self, context, layout):
        layout.prop(self, "filter_name", text="", icon="VIEWZOOM")

    def filter_items(self, context, data, propname):
        """Only the rows of the object's current level, matching the name filter (a name part or the id)."""
        items = getattr(data, propname)
        number = label_list.level_number(data.id_data)
        pattern = self.filter_name.lower()
        flags = [self.bitflag_filter_item
                 if item.level == number and (not pattern or pattern in item.name.lower() or pattern == str(item.id))
                 else 0 for item in items]
        return flags, []


def next_step(context):
    """One line: what the artist does next in the state the scene is in (None once there are labels)."""
    settings = context.scene.gsseg
    splat = settings.splat_object
    if splat is None and io_splat.is_splat_object(context.active_object):
        splat = context.active_object
    if splat is None:
        return "Next: Import Splat"
    if label_list.has_labels(splat):
        return None
    if settings.camera_collection is None:
        return "Next: Import Cameras, or put a box around each object and Segment from Proxies"
    if not settings.mask_dir:
        return "Next: choose the Masks folder, or Masks from Proxies"
    return "Next: Segment"


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
        row.operator("gsseg.add_view_cameras", text="Add View Cameras", icon="CON_CAMERASOLVER")
        if context.active_object is not None and context.active_object.type == "CAMERA":
            row.operator("gsseg.use_camera", text="", icon="RESTRICT_RENDER_OFF")
        step = next_step(context)
        if step:
            layout.label(text=step, icon="INFO")

        box = layout.box()
        box.label(text="Segment", icon="GROUP_VERTEX")
        box.prop(settings, "splat_object")
        box.prop(settings, "camera_collection")
        box.prop(settings, "mask_dir")
        row = box.row(align=True)
        row.prop(settings, "scale")
        row.prop(settings, "backend", text="")
        box.prop(settings, "choose_gamma")
        box.label(text=segment.run_plan(context), icon="TIME")
        row = box.row(align=True)
        row.operator("gsseg.segment", icon="PLAY")
        row.operator("gsseg.masks_from_proxies", text="Masks from Proxies", icon="MESH_CUBE")
        box.operator("gsseg.segment_proxies", text="Segment from Proxies (no cameras)", icon="MOD_BOOLEAN")
        box.prop(settings, "proxy_mask_dir")

        active = context.active_object
        if (active is not None and active.type in {"MESH", "CURVE", "SURFACE", "META", "FONT"}
                and not io_splat.is_splat_object(active)):
            proxy = layout.box()
            proxy.label(text=f"Proxy: {active.name}", icon="MESH_CUBE")
            proxy.prop(active.gsseg, "proxy_instance")

        obj = settings.splat_object
        if obj is None and io_splat.is_splat_object(active):
            obj = active
        if obj is None:
            return
        state = obj.gsseg
        box = layout.box()
        box.label(text=obj.name, icon="OUTLINER_OB_POINTCLOUD")
        if obj.modifiers.get(splat_display.SPLAT_MODIFIER_NAME) is not None or \
                obj.modifiers.get(point_display.MODIFIER_NAME) is not None:
            box.row().prop(state, "display", expand=True)
        if obj.modifiers.get(splat_display.SPLAT_MODIFIER_NAME) is not None and state.display != "POINTS":
            column = box.column(align=True)
            column.prop(state, "sh_degree")
            column.prop(state, "opacity_threshold", slider=True)
            column.prop(state, "display_percentage", slider=True)
            column.prop(state, "splat_size")
        if state.accumulation_path:
            problem = segment.cache_problem(obj)
            row = box.row(align=True)
            row.enabled = problem is None  # a slider that could not re-solve is greyed, with the reason below
            row.prop(state, "gamma", slider=True)
            row.operator("gsseg.apply_gamma", text="", icon="FILE_REFRESH")
            if problem is not None:
                box.label(text=problem, icon="ERROR")
            elif segment.cache_is_temporary(obj):
                box.label(text="The cache is kept beside the .blend once it is saved", icon="INFO")
        else:
            box.label(text="Not segmented yet", icon="INFO")
        if len(label_list.level_items(obj)) > 1:
            box.prop(state, "level")
        box.template_list("GSSEG_UL_instances", "", state, "labels", state, "labels_index", rows=4)
        row = box.row(align=True)
        row.prop(state, "instance")
        editable = active is obj
        column = box.column(align=True)
        column.enabled = editable
        row = column.row(align=True)
        row.operator("gsseg.select_instance", text="Select", icon="RESTRICT_SELECT_OFF")
        row.operator("gsseg.deselect_instance", text="Deselect")
        row.operator("gsseg.invert_selection", text="Invert")
        row.operator("gsseg.select_unseen", text="Unseen")
        row = column.row(align=True)
        row.operator("gsseg.hide_instance", text="Hide", icon="HIDE_ON")
        row.operator("gsseg.isolate_instance", text="Isolate")
        row.operator("gsseg.reveal", text="Reveal", icon="HIDE_OFF")
        row = column.row(align=True)
        row.operator("gsseg.delete_instance", text="Delete", icon="TRASH")
        row.prop(state, "delete_halo", toggle=True)
        row.operator("gsseg.separate_instance", text="Separate", icon="MOD_EXPLODE")
        row = column.row(align=True)
        row.operator("gsseg.assign_instance", text="Assign Selection", icon="ADD")
        row.operator("gsseg.assign_instance", text="New Instance").new_instance = True
        row.operator("gsseg.merge_instances", text="Merge Into...", icon="AUTOMERGE_ON")
        if not editable:
            box.label(text="Make the splat active to edit it", icon="INFO")


CLASSES = (GSSEG_UL_instances, GSSEG_PT_main)


def register():
    register_classes(CLASSES)


def unregister():
    unregister_classes(CLASSES)
