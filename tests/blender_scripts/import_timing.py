"""One import of a splat file, timed to its first evaluation (headless there is no viewport: the evaluated object
the viewport would draw stands for the first drawn frame). Run by bench/import_timing.py, one process per import
so that every one starts cold in Blender (the file itself is in the page cache).

ARGS: ``ply``, ``how``: 'blender' (Blender's own PLY import, ``wm.ply_import``), or one of gsseg's Import Splat
displays ('NATIVE': Blender's own splat point cloud, 5.3+; 'SPLAT': a mesh with gsseg's Geometry Nodes display).
RESULT: ``import_s``, ``evaluate_s``, ``total_s``, ``type`` (object type / point cloud type), ``points``,
``blender``."""

import time

import bpy

from child import ARGS, RESULT

scene = bpy.context.scene
for obj in list(scene.objects):
    bpy.data.objects.remove(obj)
start = time.perf_counter()
if ARGS["how"] == "blender":
    assert bpy.ops.wm.ply_import(filepath=ARGS["ply"]) == {"FINISHED"}
else:
    assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display=ARGS["how"]) == {"FINISHED"}
obj = bpy.context.selected_objects[0]
imported = time.perf_counter()
evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
data = evaluated.data
RESULT["points"] = len(data.points) if obj.type == "POINTCLOUD" else len(data.vertices)
done = time.perf_counter()
RESULT.update(import_s=imported - start, evaluate_s=done - imported, total_s=done - start,
              type=f"{obj.type}/{getattr(obj.data, 'type', '-')}", blender=bpy.app.version_string)
