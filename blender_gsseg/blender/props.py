"""Properties: ``Scene.gsseg`` (segmentation inputs) and ``Object.gsseg`` (per-splat state: gamma, cache,
instance list, level; per-mesh: the instance a proxy object stands for)."""

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, FloatVectorProperty,
                       IntProperty, PointerProperty, StringProperty)

from . import io_splat
from .classes import register_classes, unregister_classes


def _poll_splat(_self, obj):
    return io_splat.is_splat_object(obj)


def _gamma_update(self, context):
    obj = self.id_data
    if not self.accumulation_path or not io_splat.is_splat_object(obj):
        return
    from .segment import apply_gamma

    try:
        apply_gamma(obj)
    except Exception as error:  # an update callback cannot report: print, do not raise into the UI
        print(f"gsseg: gamma {self.gamma:.3f} on '{obj.name}' not applied: {error}")


def _display_update(self, context):
    from .splat_display import set_display_mode

    set_display_mode(self.id_data, self.display)


def _splat_setting_update(name, attribute):
    def update(self, context):
        from .modifiers import set_modifier_input
        from .splat_display import SPLAT_MODIFIER_NAME

        modifier = self.id_data.modifiers.get(SPLAT_MODIFIER_NAME)
        if modifier is not None and set_modifier_input(modifier, name, getattr(self, attribute)):
            self.id_data.update_tag()
    return update


def _refresh_labels(obj):
    from . import labels

    try:
        labels.refresh_display(obj)
    except Exception as error:
        print(f"gsseg: label colours of '{obj.name}' not updated: {error}")


def _color_update(self, context):
    from .labels import mark_table

    mark_table(self.id_data)
    _refresh_labels(self.id_data)


def _name_update(self, context):
    from .labels import clean_name, mark_table

    mark_table(self.id_data)
    cleaned = clean_name(self.name, self.id)
    if cleaned != self.name:
        self["name"] = cleaned


def _level_items(self, context):
    from .labels import level_items

    items = level_items(self.id_data)
    _level_items.cache = items  # Blender needs the strings kept alive
    return items


def _level_update(self, context):
    obj = self.id_data
    from .labels import level_number

    number = level_number(obj)
    for index, item in enumerate(self.labels):  # make an item of the new level the active one
        if item.level == number:
            self["labels_index"] = index
            self["instance"] = item.id
            break
    _refresh_labels(obj)


def _proxy_instance_update(self, context):
    if self.proxy_instance == 0:  # no longer a proxy: the display it had before segmenting comes back
        from .proxies import restore_display

        restore_display(self.id_data)


def _index_update(self, context):
    if 0 <= self.labels_index < len(self.labels):
        self["instance"] = self.labels[self.labels_index].id
        _refresh_labels(self.id_data)  # the label display highlights the active instance


def _instance_update(self, context):
    _refresh_labels(self.id_data)


class GSSEG_PG_label(bpy.types.PropertyGroup):
    """One row of the instance list."""

    name: StringProperty(name="Name", description="Name of the instance (written to the PLY header comments)",
                         update=_name_update)
    id: IntProperty(name="Id", description="The label id (gsseg_label, or the level's field of gsseg_code)")
    level: IntProperty(name="Level", default=-1, description="-1: gsseg_label; k: level k of gsseg_code")
    color: FloatVectorProperty(name="Colour", subtype="COLOR_GAMMA", size=3, min=0.0, max=1.0,
                               default=(0.5, 0.5, 0.5), update=_color_update,
                               description="Colour of the instance in the label display (written to the PLY "
                               "header comments)")
    count: IntProperty(name="Points", description="Number of points that have this label now")


def _relative_path_options():
    """The options of a file path that may start with Blender's "//" (relative to the .blend): Blender 5.3 warns
    at every "//" value of a path property without PATH_SUPPORTS_BLEND_RELATIVE; a release that does not know
    the flag (4.2: RNA has no Property.is_path_supports_blend_relative) gets no option, nor the warning."""
    if "is_path_supports_blend_relative" in bpy.types.Property.bl_rna.properties:
        return {"PATH_SUPPORTS_BLEND_RELATIVE"}
    return set()


class GSSEG_PG_object(bpy.types.PropertyGroup):
    gamma: FloatProperty(
        name="Gamma", description="Background bias: a point belongs to instance t when "
        "share_t - (1 - share_t) > gamma. Negative keeps more points in objects, positive fewer",
        default=0.0, min=-1.0, max=1.0, step=1, precision=3, update=_gamma_update)
    accumulation_path: StringProperty(
        name="Cached Accumulation", description="The .gsseg.npz file holding this splat's accumulated mask "
        "weights (re-solving for a new gamma reads it)", subtype="FILE_PATH",
        options=_relative_path_options())
    display: EnumProperty(name="Display", items=(  # numbers kept from the two-mode list (0 points, 1 labels)
        ("SPLAT", "Splat", "Each Gaussian as a splat (its shape, opacity and view-dependent colour)", 2),
        ("POINTS", "Points", "One point per Gaussian in its base colour (fast for huge scenes)", 0),
        ("LABELS", "Labels", "Splats in one colour per segmentation label (the instance list's colours)", 1),
    ), default="SPLAT", update=_display_update)
    sh_degree: IntProperty(name="SH Degree", default=3, min=0, max=3,
                           description="Spherical harmonics bands of the splat colours (0: the base colour; "
                           "view-dependent colour is computed for the scene camera)",
                           update=_splat_setting_update("SH Degree", "sh_degree"))
    opacity_threshold: FloatProperty(name="Opacity Threshold", default=0.0, min=0.0, max=1.0,
                                     description="Hide Gaussians fainter than this while editing (floaters)",
                                     update=_splat_setting_update("Opacity Threshold", "opacity_threshold"))
    display_percentage: FloatProperty(name="Display Percentage", default=100.0, min=0.0, max=100.0,
                                      subtype="PERCENTAGE", description="Show this share of the Gaussians "
                                      "(a fixed random subset: faster viewport for huge scenes)",
                                      update=_splat_setting_update("Display Percentage", "display_percentage"))
    splat_size: FloatProperty(name="Splat Size", default=1.0, min=0.0, soft_max=4.0,
                              description="Scale every Gaussian of the display by this (1: as rendered)",
                              update=_splat_setting_update("Splat Size", "splat_size"))
    instance: IntProperty(name="Instance", description="Label of the instance to edit (the active row of the "
                          "instance list)", default=1, min=-1, update=_instance_update)
    labels: CollectionProperty(type=GSSEG_PG_label, name="Instances")
    labels_index: IntProperty(name="Active Instance", default=0, update=_index_update)
    level: EnumProperty(name="Level", items=_level_items, update=_level_update,
                        description="Label level: a coarse label covers all its parts")
    delete_halo: BoolProperty(name="With Halo", default=False,
                              description="Delete also the points that belong to the instance at the gamma "
                              "slider's value (share > (1 + gamma) / 2), not only those labelled with it")
    proxy_instance: IntProperty(
        name="Proxy of Instance", default=0, min=0, max=32767,
        description="Mark this mesh as a stand-in for instance N: 'Masks from Proxies' renders its silhouette "
        "with this id (0: not a proxy; its display before segmenting comes back)",
        update=_proxy_instance_update)


class GSSEG_PG_scene(bpy.types.PropertyGroup):
    splat_object: PointerProperty(name="Splat", type=bpy.types.Object, poll=_poll_splat,
                                  description="The imported Gaussian splat to segment")
    camera_collection: PointerProperty(name="Cameras", type=bpy.types.Collection,
                                       description="Collection of the cameras the masks were taken from")
    mask_dir: StringProperty(
        name="Masks", subtype="DIR_PATH",
        description="Folder of 2D mask images, one per camera image, or SAM's automatic-mask output "
        "(<image stem>/<k>.png): ids that differ per image are matched into 3D instances first")
    mask_ids: EnumProperty(name="Ids", items=(
        ("CONSISTENT", "Same in Every View",
         "An object has the same id (or colour) in every view: object-index passes, hand-painted masks, a video "
         "tracker's output. A folder in SAM's layout is read per view whatever this says"),
        ("PER_VIEW", "Differ per View",
         "The ids mean nothing across views (0 is still background): each view's masks are matched into 3D "
         "instances, named instance_1, instance_2, ... by size"),
    ), default="CONSISTENT")
    scale: FloatProperty(name="Scale", description="Working resolution as a fraction of the camera images",
                         default=0.5, min=0.01, max=1.0, soft_min=0.1, precision=2)
    choose_gamma: BoolProperty(
        name="Choose γ", default=False,
        description="Choose the background bias by cross-validation over the cameras (3 folds: lift from two "
        "thirds, score the rendered masks at the rest); the γ slider starts there. Favours clean rendered masks "
        "over per-point accuracy")
    backend: EnumProperty(name="Backend", items=(
        ("DEFAULT", "Default", "The default backend set in the add-on preferences"),
        ("auto", "Auto", "CUDA when CuPy finds a GPU, else CPU"),
        ("cpu", "CPU", "The compiled walk (numba, bundled), else the numpy path"),
        ("cuda", "CUDA", "CuPy kernels (needs an NVIDIA GPU and CuPy)"),
    ), default="DEFAULT")
    proxy_mask_dir: StringProperty(
        name="Save Proxy Masks", subtype="DIR_PATH",
        description="Optional folder where 'Masks from Proxies' also writes its label maps (PNG, one per "
        "camera, usable with the command line)")


CLASSES = (GSSEG_PG_label, GSSEG_PG_object, GSSEG_PG_scene)


def register():
    register_classes(CLASSES)
    bpy.types.Object.gsseg = PointerProperty(type=GSSEG_PG_object)
    bpy.types.Scene.gsseg = PointerProperty(type=GSSEG_PG_scene)


def unregister():
    del bpy.types.Scene.gsseg
    del bpy.types.Object.gsseg
    unregister_classes(CLASSES)
