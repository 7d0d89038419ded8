"""How many Gaussians a splat object draws, read from the evaluated depsgraph (only bpy: usable with the installed
extension as with the package)."""

import bpy

SPLAT_FACES = 6  # one box per Gaussian in the splat display


def splats_drawn(obj):
    """Gaussians drawn by ``obj``: boxes of the splat display (a realised mesh with ``gsseg_splat_corner``) or
    points of the point display; None when it draws neither."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for instance in depsgraph.object_instances:
        evaluated = instance.object
        if evaluated.original != obj and evaluated.name != obj.name:
            continue
        if evaluated.type == "POINTCLOUD":
            return len(evaluated.data.points)
        if evaluated.type == "MESH" and "gsseg_splat_corner" in evaluated.data.attributes:
            faces = len(evaluated.data.polygons)
            assert faces % SPLAT_FACES == 0, faces
            return faces // SPLAT_FACES
    return None
