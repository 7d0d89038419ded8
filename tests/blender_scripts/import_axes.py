"""Import Splat's Forward / Up axes: Auto from the cameras beside the file or the file's convention, the demo left
as it is, explicit axes as Blender's axis_conversion, the turn recorded as the object's rotation (export in the
file's axes takes it off: byte for byte; the artist's moves are kept), Import Cameras turns the cameras with the
splat, Add View Cameras circles the splat's up, Stand Upright finds it upright. Run by tests/test_blender_bare.py
(test_import_axes)."""

import bpy
import numpy as np
from bpy_extras.io_utils import axis_conversion
from mathutils import Matrix

from child import ARGS, RESULT
from blender_gsseg.blender import camera_objects
from blender_gsseg.core.scene.up_axis import AXES

scene = bpy.context.scene
settings = scene.gsseg
scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 160, 120, 100


def matrix(obj):
    return np.array(obj.matrix_world, dtype=np.float64).tolist()


def rig_cameras():
    return [camera_objects.camera_from_object(o, scene).world_to_camera.tolist()
            for o in settings.camera_collection.all_objects if o.type == "CAMERA"]


def imported(path, **axes):
    assert bpy.ops.gsseg.import_splat(filepath=path, display="NONE", **axes) == {"FINISHED"}
    return bpy.context.active_object


# Auto with the cameras beside the file, and without them (the file's convention)
for key in ("beside", "bare"):
    splat = imported(ARGS[key])
    RESULT[key] = {"matrix": matrix(splat), "axes": splat.get(camera_objects.AXES_KEY)}
    settings.splat_object, settings.camera_collection = splat, None
    bpy.ops.object.select_all(action="DESELECT")
    assert bpy.ops.gsseg.add_view_cameras(count=8) == {"FINISHED"}  # circles the splat's up: Z
    RESULT[key]["rig"] = rig_cameras()
    settings.camera_collection = None
    bpy.context.view_layer.objects.active = splat
    assert bpy.ops.gsseg.stand_upright() == {"FINISHED"}  # already upright: nothing moves
    RESULT[key]["after_stand_upright"] = matrix(splat)

bare = splat
# the artist tips it a quarter turn about Y: the rig circles the splat's up, now along world X
tipped = imported(ARGS["bare"])
tipped.matrix_world = Matrix.Rotation(np.pi / 2, 4, "Y") @ tipped.matrix_world
settings.splat_object, settings.camera_collection = tipped, None
bpy.ops.object.select_all(action="DESELECT")
assert bpy.ops.gsseg.add_view_cameras(count=8) == {"FINISHED"}
RESULT["tipped"] = {"matrix": matrix(tipped), "rig": rig_cameras()}
# the demo scene: Auto leaves it alone
demo = imported(ARGS["demo"])
RESULT["demo"] = {"matrix": matrix(demo), "axes": demo.get(camera_objects.AXES_KEY)}

# explicit axes: Blender's axis_conversion
explicit = {}
for forward in AXES:
    for up in AXES:
        if forward[-1] != up[-1]:
            obj = imported(ARGS["bare"], forward_axis=forward, up_axis=up)
            reference = np.array(axis_conversion(from_forward=forward, from_up=up), dtype=np.float64)
            explicit[f"{forward} {up}"] = float(np.abs(np.array(obj.matrix_world)[:3, :3] - reference).max())
            bpy.data.objects.remove(obj)
RESULT["explicit"] = explicit
# two explicit axes on one line: the option's update moves the other one on (as Blender's orientation_helper)
RESULT["one_line"] = bpy.ops.gsseg.import_splat(filepath=ARGS["bare"], display="NONE", forward_axis="Z",
                                                 up_axis="-Z") == {"FINISHED"}
RESULT["one_line_matrix"] = matrix(bpy.context.active_object)

# export: in the file's axes (unedited: the same bytes), the artist's move kept; in Blender's axes
bpy.context.view_layer.objects.active = bare
assert bpy.ops.gsseg.export_splat(filepath=ARGS["out"]) == {"FINISHED"}
bare.location = (0.0, 0.0, 1.0)  # one up, in Blender
bpy.context.view_layer.update()
assert bpy.ops.gsseg.export_splat(filepath=ARGS["out_moved"]) == {"FINISHED"}
assert bpy.ops.gsseg.export_splat(filepath=ARGS["out_blender"], axes="BLENDER") == {"FINISHED"}
bare.location = (0.0, 0.0, 0.0)
bpy.context.view_layer.update()
# what was exported in Blender's axes says Z is up: Auto keeps it so (no cameras beside it, a -Y convention)
again = imported(ARGS["out_blender"])
RESULT["blender_again"] = {"matrix": matrix(again), "axes": again.get(camera_objects.AXES_KEY)}
bpy.data.objects.remove(again)

# Import Cameras (from another folder) after the splat: the cameras turn with it
settings.splat_object = bare
bpy.context.view_layer.objects.active = bare
assert bpy.ops.gsseg.import_cameras(filepath=ARGS["cameras"]) == {"FINISHED"}
RESULT["cameras"] = {o.get("gsseg_image_name"): camera_objects.camera_from_object(o, scene).world_to_camera.tolist()
                     for o in settings.camera_collection.all_objects}
RESULT["splat_matrix"] = matrix(bare)

# cameras imported before any splat: Auto takes their up, and they turn with the splat
settings.splat_object, settings.camera_collection = None, None
bpy.context.view_layer.objects.active = None  # no splat in sight (else the cameras take its turn)
assert bpy.ops.gsseg.import_cameras(filepath=ARGS["cameras"]) == {"FINISHED"}
first = imported(ARGS["bare"])
RESULT["cameras_first"] = {
    "axes": first.get(camera_objects.AXES_KEY), "splat_matrix": matrix(first),
    "record": list(settings.camera_collection[camera_objects.TURN_KEY]),
    "cameras": {o.get("gsseg_image_name"): camera_objects.camera_from_object(o, scene).world_to_camera.tolist()
                for o in settings.camera_collection.all_objects}}

# (last: undo makes every reference anew) the tipped splat: Stand Upright stands it up again and adds its turn to
# the record; undo gives both back
settings.camera_collection = None
bpy.context.view_layer.objects.active = tipped
bpy.ops.ed.undo_push(message="tipped")  # headless Blender starts without an undo stack
record = list(tipped[camera_objects.TURN_KEY])
assert bpy.ops.gsseg.stand_upright("EXEC_DEFAULT", True) == {"FINISHED"}
name = tipped.name
RESULT["tipped"]["stood"] = matrix(tipped)
RESULT["tipped"]["record_stood"] = list(tipped[camera_objects.TURN_KEY])
assert bpy.ops.ed.undo() == {"FINISHED"}
tipped = bpy.data.objects[name]  # undo made every reference to data anew
RESULT["tipped"]["undone"] = matrix(tipped)
RESULT["tipped"]["record"], RESULT["tipped"]["record_undone"] = record, list(tipped[camera_objects.TURN_KEY])

