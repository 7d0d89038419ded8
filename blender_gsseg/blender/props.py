"""Properties: ``Scene.gsseg`` (segmentation inputs) and ``Object.gsseg`` (per-splat state: gamma, cache)."""

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from . import io_splat


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
    from . import display

    display.set_display(self.id_data, self.display)


class GSSEG_PG_object(bpy.types.PropertyGroup):
    gamma: FloatProperty(
        name="Gamma", description="Background bias: a point belongs to instance t when "
        "share_t - (1 - share_t) > gamma. Negative keeps more points in objects, positive fewer",
        default=0.0, min=-1.0, max=1.0, step=1, precision=3, update=_gamma_update)
    accumulation_path: StringProperty(
        name="Cached Accumulation", description="The .gsseg.npz file holding this splat's accumulated mask "
        "weights (re-solving for a new gamma reads it)", subtype="FILE_PATH")
    display: EnumProperty(name="Display", items=(
        ("COLOR", "Colours", "Show the splat colours"),
        ("LABELS", "Labels", "Show one colour per segmentation label"),
    ), default="COLOR", update=_display_update)
    instance: IntProperty(name="Instance", description="Label of the instance to select or delete", default=1,
                          min=-1)


class GSSEG_PG_scene(bpy.types.PropertyGroup):
    splat_object: PointerProperty(name="Splat", type=bpy.types.Object, poll=_poll_splat,
                                  description="The imported Gaussian splat to segment")
    camera_collection: PointerProperty(name="Cameras", type=bpy.types.Collection,
                                       description="Collection of the cameras the masks were taken from")
    mask_dir: StringProperty(name="Masks", description="Folder of 2D mask images, one per camera image",
                             subtype="DIR_PATH")
    scale: FloatProperty(name="Scale", description="Working resolution as a fraction of the camera images",
                         default=0.5, min=0.01, max=1.0, soft_min=0.1, precision=2)
    backend: EnumProperty(name="Backend", items=(
        ("auto", "Auto", "CUDA when CuPy finds a GPU, else CPU"),
        ("cpu", "CPU", "Vectorised numpy rasterisation"),
        ("cuda", "CUDA", "CuPy kernels (needs an NVIDIA GPU and CuPy)"),
    ), default="auto")


CLASSES = (GSSEG_PG_object, GSSEG_PG_scene)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Object.gsseg = PointerProperty(type=GSSEG_PG_object)
    bpy.types.Scene.gsseg = PointerProperty(type=GSSEG_PG_scene)


def unregister():
    del bpy.types.Scene.gsseg
    del bpy.types.Object.gsseg
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
