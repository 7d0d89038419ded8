"""Render the label map of two overlapping proxy cubes (and a non-proxy blocker and the splat, which must not
show) through one camera, leaving the file's data as it was. Run by tests/test_blender_scene.py
(test_proxy_label_maps_match_the_core_projection)."""

import bpy
import numpy as np

from blender_gsseg.blender import proxies
from blender_gsseg.core.cameras import Camera
from child import ARGS, RESULT

assert bpy.ops.gsseg.import_splat(filepath=ARGS["splat"], display="SPLAT") == {"FINISHED"}  # must not show
made = []
for centre, size, label in ARGS["cubes"]:
    bpy.ops.mesh.primitive_cube_add(size=size, location=centre)
    cube = bpy.context.active_object
    cube.gsseg.proxy_instance = label
    made.append(cube)
made[0].hide_render = True  # proxies often are hidden in renders: they render here anyway
made[1].pass_index = 42
bpy.ops.mesh.primitive_plane_add(size=0.6, location=(0.3, -4.0, 0.3), rotation=(1.5708, 0, 0))
blocker = bpy.context.active_object  # not a proxy: hidden from the label render
assert [o.name for o in proxies.proxy_objects(bpy.context.scene)] == sorted(o.name for o in made)
c = ARGS["camera"]
camera = Camera(np.array(c["w2c"]), c["fx"], c["fy"], c["cx"], c["cy"], c["w"], c["h"], "cam.png")
counts = (len(bpy.data.scenes), len(bpy.data.objects), len(bpy.data.images), len(bpy.data.node_groups),
          len(bpy.data.cameras))
maps = proxies.render_label_maps(bpy.context, [camera])
assert counts == (len(bpy.data.scenes), len(bpy.data.objects), len(bpy.data.images),
                  len(bpy.data.node_groups), len(bpy.data.cameras))
assert made[0].hide_render and made[1].pass_index == 42 and made[0].pass_index == 0
RESULT["map"] = maps[0].tolist()
