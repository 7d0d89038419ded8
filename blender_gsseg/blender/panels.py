"""The sidebar panel (3D View > Sidebar > gsseg) with its sub-panels (Segment, Proxy, Splat, Instances) and the
instance list."""

import bpy

from . import io_splat, native_splat, point_display, proxies, segment, splat_display
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


def splat_shown(context):
    """The splat the panels show: the scene's splat object, else the active object when it is a splat."""
    obj = context.scene.gsseg.splat_object
    if obj is None and io_splat.is_splat_object(context.active_object):
        obj = context.active_object
    return obj


def proxy_shown(context):
    """The active object when it can stand for an instance (a renderable object that is not a splat)."""
    active = context.active_object
    if (active is not None and active.type in {"MESH", "CURVE", "SURFACE", "META", "FONT"}
            and not io_splat.is_splat_object(active)):
        return active
    return None


def next_step(context):
    """One line: what the artist does next in the state the scene is in (None once there are labels)."""
    settings = context.scene.gsseg
    splat = splat_shown(context)
    if splat is None:
        return "Next: Import Splat"
    if label_list.has_labels(splat):
        return None
    if settings.camera_collection is None:
        return "Next: Import Cameras, or put a box around each object and Segment from Proxies"
    if not settings.mask_dir:
        return "Next: choose the Masks folder, or Masks from Proxies"
    return "Next: Segment"


class _SidebarPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "gsseg"


class GSSEG_PT_main(_SidebarPanel, bpy.types.Panel):  # import/export, cameras, the next step; parent of the rest
    bl_idname = "GSSEG_PT_main"
    bl_label = "gsseg"

    def draw(self, context):
        layout = self.layout
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


class GSSEG_PT_segment(_SidebarPanel, bpy.types.Panel):  # the inputs of a segmentation and the operators that run it
    bl_idname = "GSSEG_PT_segment"
    bl_label = "Segment"
    bl_parent_id = "GSSEG_PT_main"

    def draw_header(self, context):
        self.layout.label(icon="GROUP_VERTEX")

    def draw(self, context):
        layout = self.layout
        settings = context.scene.gsseg
        layout.prop(settings, "splat_object")
        layout.prop(settings, "camera_collection")
        layout.prop(settings, "mask_dir")
        layout.prop(settings, "mask_ids")
        row = layout.row(align=True)
        row.prop(settings, "scale")
        row.prop(settings, "backend", text="")
        layout.prop(settings, "choose_gamma")
        layout.label(text=segment.run_plan(context), icon="TIME")
        masks_plan = proxies.masks_plan(context)
        if masks_plan:
            layout.label(text=masks_plan, icon="TIME")
        row = layout.row(align=True)
        row.operator("gsseg.segment", icon="PLAY")
        row.operator("gsseg.masks_from_proxies", text="Masks from Proxies", icon="MESH_CUBE")
        layout.operator("gsseg.segment_proxies", text="Segment from Proxies (no cameras)", icon="MOD_BOOLEAN")
        layout.prop(settings, "proxy_mask_dir")


class GSSEG_PT_proxy(_SidebarPanel, bpy.types.Panel):  # the instance the active (non-splat) mesh stands for
    bl_idname = "GSSEG_PT_proxy"
    bl_label = "Proxy"
    bl_parent_id = "GSSEG_PT_main"

    @classmethod
    def poll(cls, context):
        return proxy_shown(context) is not None

    def draw(self, context):
        active = proxy_shown(context)
        self.layout.label(text=f"Proxy: {active.name}", icon="MESH_CUBE")
        self.layout.prop(active.gsseg, "proxy_instance")


class _SplatSection(_SidebarPanel):
    """A sub-panel about the splat the panels show: drawn only when there is one."""

    bl_parent_id = "GSSEG_PT_main"

    @classmethod
    def poll(cls, context):
        return splat_shown(context) is not None


class GSSEG_PT_splat(_SplatSection, bpy.types.Panel):  # the splat's display (splats, points, labels), its settings
    bl_idname = "GSSEG_PT_splat"
    bl_label = "Splat"

    def draw(self, context):
        layout = self.layout
        obj = splat_shown(context)
        state = obj.gsseg
        row = layout.row(align=True)
        row.label(text=obj.name, icon="OUTLINER_OB_POINTCLOUD")
        row.operator("gsseg.stand_upright", text="Stand Upright", icon="EMPTY_SINGLE_ARROW")
        if obj.modifiers.get(splat_display.SPLAT_MODIFIER_NAME) is not None or \
                obj.modifiers.get(point_display.MODIFIER_NAME) is not None:
            layout.row().prop(state, "display", expand=True)
        elif native_splat.is_native_splat(obj):  # Blender draws it: its colours, or the label view
            row = layout.row(align=True)
            row.prop_enum(state, "display", "SPLAT", text="Colours")
            row.prop_enum(state, "display", "LABELS")
        if obj.modifiers.get(splat_display.SPLAT_MODIFIER_NAME) is not None and state.display != "POINTS":
            column = layout.column(align=True)
            column.prop(state, "sh_degree")
            column.prop(state, "opacity_threshold", slider=True)
            column.prop(state, "display_percentage", slider=True)
            column.prop(state, "splat_size")


class GSSEG_PT_instances(_SplatSection, bpy.types.Panel):  # gamma, level, the instance list, the editing operators
    bl_idname = "GSSEG_PT_instances"
    bl_label = "Instances"

    def draw(self, context):
        layout = self.layout
        obj = splat_shown(context)
        state = obj.gsseg
        if state.accumulation_path:
            problem = segment.cache_problem(obj)
            row = layout.row(align=True)
            row.enabled = problem is None  # a slider that could not re-solve is greyed, with the reason below
            row.prop(state, "gamma", slider=True)
            row.operator("gsseg.apply_gamma", text="", icon="FILE_REFRESH")
            if problem is not None:
                layout.label(text=problem, icon="ERROR")
            elif segment.cache_is_temporary(obj):
                layout.label(text="The cache is kept beside the .blend once it is saved", icon="INFO")
        else:
            layout.label(text="Not segmented yet", icon="INFO")
        if len(label_list.level_items(obj)) > 1:
            layout.prop(state, "level")
        layout.template_list("GSSEG_UL_instances", "", state, "labels", state, "labels_index", rows=4)
        row = layout.row(align=True)
        row.prop(state, "instance")
        editable = context.active_object is obj
        column = layout.column(align=True)
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
            layout.label(text="Make the splat active to edit it", icon="INFO")


# The sidebar's sections in their order: the main panel, then its sub-panels (each registered after its parent)
CLASSES = (GSSEG_UL_instances, GSSEG_PT_main, GSSEG_PT_segment, GSSEG_PT_proxy, GSSEG_PT_splat, GSSEG_PT_instances)


def register():
    register_classes(CLASSES)


def unregister():
    unregister_classes(CLASSES)
