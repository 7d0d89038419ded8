"""Import a labeled PLY: the instance list from its header comments, an unchanged export, a renamed and a
recoloured instance. Run by tests/test_blender_editing.py (test_instance_list_names_colours_and_header)."""

import bpy
import numpy as np

from blender_gsseg.blender import labels as label_list
from blender_gsseg.blender.attributes import srgb_to_linear
from child import ARGS, RESULT
from snapshot import int_attr

assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"], display="SPLAT") == {"FINISHED"}
obj = bpy.context.active_object
items = [(i.level, i.id, i.name, label_list.hex_colour(i.color), i.count) for i in obj.gsseg.labels]
RESULT["items"] = items
assert obj.gsseg.accumulation_path == ARGS["ply"][:-4] + ".gsseg.npz"
# unchanged: the same bytes
assert bpy.ops.gsseg.export_splat(filepath=ARGS["same"]) == {"FINISHED"}
# rename and recolour; the label display follows the colours
item2 = label_list.find_item(obj, 2)
item2.name = "red\nchair"  # a line break cannot go into a header comment
RESULT["cleaned"] = item2.name
item3 = label_list.find_item(obj, 3)
item3.color = (1.0, 0.0, 0.0)
colours = np.empty(4 * len(obj.data.vertices), np.float32)
obj.data.color_attributes["gsseg_label_col"].data.foreach_get("color", colours)
colours = colours.reshape(-1, 4)
ids = int_attr(obj, "gsseg_label")
assert np.allclose(colours[ids == 3, :3], [1.0, 0.0, 0.0]), colours[ids == 3][:2]
assert not np.allclose(colours[ids == 2, :3], [1.0, 0.0, 0.0])
# selecting a list row makes it the instance the buttons act on, highlighted in the label display
obj.gsseg.labels_index = [i.id for i in obj.gsseg.labels].index(2)
assert obj.gsseg.instance == 2
obj.data.color_attributes["gsseg_label_col"].data.foreach_get("color", colours.ravel())
list_colour = srgb_to_linear(np.asarray(item2.color))
lighter = srgb_to_linear(np.asarray(item2.color) + label_list.HIGHLIGHT * (1 - np.asarray(item2.color)))
assert np.allclose(colours[ids == 2, :3], lighter, atol=1e-6) and (lighter > list_colour).all()
assert np.allclose(colours[ids == 3, :3], [1.0, 0.0, 0.0])
assert bpy.ops.gsseg.export_splat(filepath=ARGS["edited"]) == {"FINISHED"}
