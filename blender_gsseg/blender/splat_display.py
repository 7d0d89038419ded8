"""The splat display, the default display of a splat object: each Gaussian drawn as the rasterizer draws it, a
Geometry Nodes modifier and its material, both built from code (below). Also the choice between it and the point
display (:mod:`.point_display`) per object, and the handler that keeps it in step with the scene camera."""

import bpy
import numpy as np

from .classes import register_handlers, unregister_handlers
from .attributes import (COLOR_ATTRIBUTE, HIDDEN_ATTRIBUTE, LABEL_COLOR_ATTRIBUTE, ROTATION_ATTRIBUTE,
                         point_attribute)
from .modifiers import get_modifier_input, set_modifier_input
from .native_splat import is_native_splat, update_display
from .point_display import MATERIAL_SOCKET, MODIFIER_NAME, add_point_display, label_material, splat_material

# Geometry Nodes (group "gsseg Splats") turns the points into one mesh: a box around each Gaussian (its rotation,
# its dilated scales times the radius where its alpha falls to 1/255), sorted back to front for the scene camera,
# realised in that order so EEVEE blends the faces in it. The box is inside out, so that with back-face culling
# each Gaussian draws its far faces only: one layer per Gaussian, also when the camera is inside the box.
# The material ("gsseg Splat Shading") evaluates the Gaussian along the viewing ray, which needs no camera: in
# the Gaussian's own frame (rows of (R S)^-1 as attributes) the ray's squared distance to the centre, minimised
# along the ray, is r^2, and alpha = min(0.99, opacity * exp(-r^2 / 2)), 0 below 1/255 (the INRIA kernel).
# The INRIA kernel also widens every projected Gaussian by 0.3 px^2; adding s^2 to each 3D variance (s the
# width of sqrt(0.3) pixels at the Gaussian's depth) does the same for the scene camera (``Pixel Angle``: one
# pixel's angle, kept up to date from the scene camera by :func:`sync_pixel_angle`).
# Colours: SH bands up to ``SH Degree`` for the direction from the scene camera (the INRIA convention), or the
# label colours; converted to scene-linear, so the view transform "Standard" shows the splat's own colours.

SPLAT_NODE_GROUP_NAME = "gsseg Splats"
SPLAT_MODIFIER_NAME = "gsseg Splats"
SPLAT_MATERIAL_NAME = "gsseg Splat Shading"
SPLAT_GROUP_MARK = "gsseg splats 1"  # a node of this name marks groups made by this version
SH_MAX_DEGREE = 3
# Attributes of the realised splat mesh, read by the material
CORNER = "gsseg_splat_corner"
SPLAT_COLOUR = "gsseg_splat_colour"
SPLAT_OPACITY = "gsseg_splat_opacity"
SPLAT_CUT = "gsseg_splat_cut"
SPLAT_AXES = ("gsseg_splat_axis_0", "gsseg_splat_axis_1", "gsseg_splat_axis_2")
SPLAT_ROTATION = "gsseg_splat_rotation"  # per point only (not propagated to the mesh)
SPLAT_SIGMA = "gsseg_splat_sigma"  # per point only
SPLAT_INPUTS = {  # name: (socket type, default, min, max, description)
    "SH Degree": ("NodeSocketInt", SH_MAX_DEGREE, 0, SH_MAX_DEGREE,
                  "Spherical harmonics bands used for the colour (0: the base colour)"),
    "Opacity Threshold": ("NodeSocketFloat", 0.0, 0.0, 1.0, "Hide Gaussians fainter than this (floaters)"),
    "Display Percentage": ("NodeSocketFloat", 100.0, 0.0, 100.0, "Show this share of the Gaussians"),
    "Splat Size": ("NodeSocketFloat", 1.0, 0.0, 10.0, "Scale every Gaussian by this"),
    "Show Labels": ("NodeSocketBool", False, None, None, "Label colours instead of the splat colours"),
    "Pixel Angle": ("NodeSocketFloat", 1.0 / 1000.0, 0.0, 1.0,
                    "One pixel's angle (1 / focal length in pixels) of the scene camera"),
}


class _Nodes:
    """Builds a node tree from expressions: every method returns an output socket; arguments are sockets
    (linked) or plain values (set as the input's default)."""

    def __init__(self, tree):
        self.tree = tree
        self.nodes, self.links = tree.nodes, tree.links

    def node(self, kind, inputs=(), name=None, **properties):
        node = self.nodes.new(kind)
        if name:
            node.name = node.label = name
        for key, value in properties.items():
            setattr(node, key, value)
        sockets = _available(node.inputs)  # after the properties, which decide the sockets
        items = inputs.items() if isinstance(inputs, dict) else enumerate(inputs)
        for key, value in items:
            socket = _pick(sockets, key)
            if value is None:
                continue
            if isinstance(value, bpy.types.NodeSocket):
                self.links.new(value, socket)
            else:
                socket.default_value = value
        return node

    def out(self, node, key=0):
        return _pick(_available(node.outputs), key)

    def math(self, operation, *values):
        return self.out(self.node("ShaderNodeMath", values, operation=operation))

    def vector(self, operation, *values):
        node = self.node("ShaderNodeVectorMath", values, operation=operation)
        return self.out(node, "Value" if operation in ("DOT_PRODUCT", "LENGTH", "DISTANCE") else "Vector")

    def scale(self, vector, factor):
        return self.out(self.node("ShaderNodeVectorMath", {0: vector, "Scale": factor}, operation="SCALE"))

    def combine(self, x, y, z):
        return self.out(self.node("ShaderNodeCombineXYZ", (x, y, z)))

    def separate(self, vector):
        node = self.node("ShaderNodeSeparateXYZ", (vector,))
        return [self.out(node, axis) for axis in range(3)]

    def sum(self, values, operation="ADD"):
        total = values[0]
        for value in values[1:]:
            total = (self.vector if operation == "VECTOR" else self.math)("ADD", total, value)
        return total


def _available(sockets):
    return [socket for socket in sockets if getattr(socket, "enabled", True)]


def _pick(sockets, key):
    if isinstance(key, int):
        return sockets[key]
    for socket in sockets:
        if socket.name == key or socket.identifier == key:
            return socket
    raise KeyError(key)


def splat_node_group(sh_degree):
    """The Geometry Nodes group of the splat display for scenes of SH degree ``sh_degree`` (made once per file:
    the f_rest layout depends on the degree)."""
    mark = f"{SPLAT_GROUP_MARK} sh{sh_degree}"
    for group in bpy.data.node_groups:
        if group.bl_idname == "GeometryNodeTree" and mark in group.nodes:
            return group
    group = bpy.data.node_groups.new(f"{SPLAT_NODE_GROUP_NAME} (SH {sh_degree})", "GeometryNodeTree")
    if hasattr(group, "is_modifier"):
        group.is_modifier = True
    interface = group.interface
    interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    for name, (socket_type, default, low, high, description) in SPLAT_INPUTS.items():
        socket = interface.new_socket(name, in_out="INPUT", socket_type=socket_type)
        socket.default_value = default
        socket.description = description
        if low is not None:
            socket.min_value, socket.max_value = low, high
        if name == "SH Degree":
            socket.default_value = socket.max_value = min(sh_degree, SH_MAX_DEGREE)
    interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    _build_splat_nodes(_Nodes(group), mark, sh_degree)
    return group


def _named(b, name, data_type):
    node = b.node("GeometryNodeInputNamedAttribute", {"Name": name}, data_type=data_type)
    return b.out(node, "Attribute")


def _store(b, geometry, name, data_type, value, domain="POINT"):
    node = b.node("GeometryNodeStoreNamedAttribute", {0: geometry, "Name": name, "Value": value},
                  data_type=data_type, domain=domain)
    return b.out(node, 0)


def _sample(b, geometry, value, data_type):
    index = b.out(b.node("GeometryNodeInputIndex"))
    node = b.node("GeometryNodeSampleIndex", {0: geometry, "Value": value, "Index": index}, data_type=data_type,
                  domain="POINT")
    return b.out(node, "Value")


def _switch(b, input_type, condition, false, true):
    return b.out(b.node("GeometryNodeSwitch", (condition, false, true), input_type=input_type), 0)


def _sh_colour(b, direction, degree, scene_degree):
    """sRGB colour field: C0 * f_dc + the bands up to ``degree`` (of the scene's ``scene_degree``) along
    ``direction`` + 0.5, clipped to [0, 1]."""
    from ..core.raster.sh import SH_POLYNOMIALS

    x, y, z = b.separate(direction)
    axes = (x, y, z)
    monomials = {}

    def monomial(exponents):
        if exponents not in monomials:
            factors = [axes[axis] for axis, power in enumerate(exponents) for _ in range(power)]
            value = factors[0] if factors else 1.0
            for factor in factors[1:]:
                value = b.math("MULTIPLY", value, factor)
            monomials[exponents] = value
        return monomials[exponents]

    def coefficient_vector(index):  # f_dc (index 0) or f_rest, channel-major: f_rest[c * K + index - 1]
        if index == 0:
            return b.combine(*(_named(b, f"f_dc_{c}", "FLOAT") for c in range(3)))
        count = (scene_degree + 1) ** 2 - 1
        return b.combine(*(_named(b, f"f_rest_{c * count + index - 1}", "FLOAT") for c in range(3)))

    colour = b.scale(coefficient_vector(0), SH_POLYNOMIALS[0][0][0])
    for band in range(1, min(scene_degree, SH_MAX_DEGREE) + 1):
        terms = []
        for index in range(band * band, (band + 1) * (band + 1)):
            basis = b.sum([b.math("MULTIPLY", coefficient, monomial(exponents))
                           for coefficient, exponents in SH_POLYNOMIALS[index]])
            terms.append(b.scale(coefficient_vector(index), basis))
        used = b.math("GREATER_THAN", degree, band - 0.5)
        colour = b.vector("ADD", colour, b.scale(b.sum(terms, "VECTOR"), used))
    colour = b.vector("ADD", colour, (0.5, 0.5, 0.5))
    return b.vector("MINIMUM", b.vector("MAXIMUM", colour, (0.0, 0.0, 0.0)), (1.0, 1.0, 1.0))


def _srgb_to_linear(b, colour):
    """Per channel: c / 12.92 below 0.04045, ((c + 0.055) / 1.055) ** 2.4 above (as :func:`srgb_to_linear`)."""
    channels = []
    for c in b.separate(colour):
        low = b.math("DIVIDE", c, 12.92)
        high = b.math("POWER", b.math("DIVIDE", b.math("ADD", c, 0.055), 1.055), 2.4)
        above = b.math("GREATER_THAN", c, 0.04045)
        channels.append(b.math("ADD", b.math("MULTIPLY", high, above),
                               b.math("MULTIPLY", low, b.math("SUBTRACT", 1.0, above))))
    return b.combine(*channels)


def _build_splat_nodes(b, mark, sh_degree):
    from ..core.raster.projection import LOW_PASS, MIN_ALPHA

    b.node("NodeFrame", name=mark)
    group_in = b.node("NodeGroupInput")
    mesh = b.out(group_in, "Geometry")
    setting = {name: b.out(group_in, name) for name in SPLAT_INPUTS}
    camera = b.node("GeometryNodeObjectInfo", {"Object": b.out(b.node("GeometryNodeInputActiveCamera"))},
                    transform_space="RELATIVE")  # the camera in the splat object's own frame
    camera_location = b.out(camera, "Location")
    forward = b.out(b.node("FunctionNodeRotateVector", {"Vector": (0.0, 0.0, -1.0),
                                                        "Rotation": b.out(camera, "Rotation")}))
    position = b.out(b.node("GeometryNodeInputPosition"))
    index = b.out(b.node("GeometryNodeInputIndex"))

    # Fields of the imported points
    opacity = b.out(b.node("FunctionNodeSeparateColor", (_named(b, COLOR_ATTRIBUTE, "FLOAT_COLOR"),)), "Alpha")
    threshold = b.math("MAXIMUM", setting["Opacity Threshold"], MIN_ALPHA)
    random = b.out(b.node("FunctionNodeRandomValue", {"ID": index, "Seed": 0}))
    shown = b.math("LESS_THAN", random, b.math("DIVIDE", setting["Display Percentage"], 100.0))
    visible = b.math("MULTIPLY", b.math("MULTIPLY", b.math("GREATER_THAN", opacity, threshold), shown),
                     b.math("SUBTRACT", 1.0, _named(b, HIDDEN_ATTRIBUTE, "BOOLEAN")))
    sigma = b.combine(*(b.math("EXPONENT", _named(b, f"scale_{axis}", "FLOAT")) for axis in range(3)))
    direction = b.vector("NORMALIZE", b.vector("SUBTRACT", position, camera_location))
    splat_colour = _srgb_to_linear(b, _sh_colour(b, direction, setting["SH Degree"], sh_degree))
    label_colour = _named(b, LABEL_COLOR_ATTRIBUTE, "FLOAT_COLOR")
    colour = _switch(b, "VECTOR", setting["Show Labels"], splat_colour, label_colour)

    # A lean point cloud of what the display needs (the imported attributes stay behind), the hidden dropped
    count = b.out(b.node("GeometryNodeAttributeDomainSize", (mesh,), component="MESH"), "Point Count")
    points = b.out(b.node("GeometryNodePoints", {"Count": count,
                                                 "Position": _sample(b, mesh, position, "FLOAT_VECTOR")}))
    for name, data_type, value in ((SPLAT_ROTATION, "QUATERNION", _named(b, ROTATION_ATTRIBUTE, "QUATERNION")),
                                   (SPLAT_SIGMA, "FLOAT_VECTOR", sigma),
                                   (SPLAT_COLOUR, "FLOAT_VECTOR", colour),
                                   (SPLAT_OPACITY, "FLOAT", opacity)):
        points = _store(b, points, name, data_type, _sample(b, mesh, value, data_type))
    hide = b.math("LESS_THAN", _sample(b, mesh, visible, "FLOAT"), 0.5)
    points = b.out(b.node("GeometryNodeDeleteGeometry", {"Geometry": points, "Selection": hide}, domain="POINT"))

    # Back to front for the scene camera: the INRIA order (view-space depth of the centre)
    depth = b.vector("DOT_PRODUCT", b.vector("SUBTRACT", position, camera_location), forward)
    far_first = b.math("MULTIPLY", depth, -1.0)
    points = b.out(b.node("GeometryNodeSortElements", {"Geometry": points, "Sort Weight": far_first},
                          domain="POINT"))

    # Dilated scales (the 0.3 px^2 low-pass filter at this depth), the cut radius, the rows of (R S)^-1
    pixel = b.math("MULTIPLY", b.math("MAXIMUM", depth, 0.0), setting["Pixel Angle"])
    widening = b.math("MULTIPLY", b.math("MULTIPLY", pixel, pixel), LOW_PASS)
    sigmas = [b.math("SQRT", b.math("ADD", b.math("MULTIPLY", s, s), widening))
              for s in b.separate(b.scale(_named(b, SPLAT_SIGMA, "FLOAT_VECTOR"), setting["Splat Size"]))]
    point_opacity = _named(b, SPLAT_OPACITY, "FLOAT")
    # alpha >= 1/255 where r^2 <= 2 ln(255 opacity)
    log_ratio = b.math("LOGARITHM", b.math("MULTIPLY", point_opacity, 1.0 / MIN_ALPHA), 2.718281828459045)
    cut = b.math("SQRT", b.math("MAXIMUM", b.math("MULTIPLY", log_ratio, 2.0), 1e-6))
    rotation = _named(b, SPLAT_ROTATION, "QUATERNION")
    for axis, (name, s) in enumerate(zip(SPLAT_AXES, sigmas, strict=True)):
        unit = [0.0, 0.0, 0.0]
        unit[axis] = 1.0
        column = b.out(b.node("FunctionNodeRotateVector", {"Vector": tuple(unit), "Rotation": rotation}))
        points = _store(b, points, name, "FLOAT_VECTOR", b.scale(column, b.math("DIVIDE", 1.0, s)))
    points = _store(b, points, SPLAT_CUT, "FLOAT", cut)

    # One inside-out box per Gaussian, realised in the sorted order
    box = b.out(b.node("GeometryNodeMeshCube", {"Size": (2.0, 2.0, 2.0), "Vertices X": 2, "Vertices Y": 2,
                                                "Vertices Z": 2}))
    box = b.out(b.node("GeometryNodeFlipFaces", (box,)))
    box = _store(b, box, CORNER, "FLOAT_VECTOR", position)
    instances = b.out(b.node("GeometryNodeInstanceOnPoints", {
        "Points": points, "Instance": box, "Rotation": rotation,
        "Scale": b.scale(b.combine(*sigmas), cut)}))
    for name in (SPLAT_ROTATION, SPLAT_SIGMA):
        instances = b.out(b.node("GeometryNodeRemoveAttribute", {"Geometry": instances, "Name": name}))
    splats = b.out(b.node("GeometryNodeRealizeInstances", (instances,)))
    splats = b.out(b.node("GeometryNodeSetMaterial", {"Geometry": splats, "Material": splat_shading()}))
    b.links.new(splats, b.node("NodeGroupOutput").inputs[0])


def splat_shading():
    """The material of the splat display: alpha of the Gaussian along the viewing ray (see above), emission of
    its colour; blended in EEVEE, back faces culled; in Cycles the culled faces are made transparent."""
    from ..core.raster.projection import MAX_ALPHA, MIN_ALPHA

    material = bpy.data.materials.get(SPLAT_MATERIAL_NAME)
    if material is not None:
        return material
    material = bpy.data.materials.new(SPLAT_MATERIAL_NAME)
    if not material.node_tree:
        material.use_nodes = True
    material.surface_render_method = "BLENDED"
    material.use_backface_culling = True
    material.use_transparency_overlap = True
    b = _Nodes(material.node_tree)
    b.nodes.clear()

    def attribute(name, output="Vector"):
        return b.out(b.node("ShaderNodeAttribute", attribute_type="GEOMETRY", attribute_name=name), output)

    geometry = b.node("ShaderNodeNewGeometry")
    ray = b.out(b.node("ShaderNodeVectorTransform", (b.out(geometry, "Incoming"),), vector_type="VECTOR",
                       convert_from="WORLD", convert_to="OBJECT"))
    local_ray = b.combine(*(b.vector("DOT_PRODUCT", attribute(axis), ray) for axis in SPLAT_AXES))
    corner = attribute(CORNER)
    along = b.vector("DOT_PRODUCT", corner, local_ray)
    squared = b.math("SUBTRACT", b.vector("DOT_PRODUCT", corner, corner),
                     b.math("DIVIDE", b.math("MULTIPLY", along, along),
                            b.math("MAXIMUM", b.vector("DOT_PRODUCT", local_ray, local_ray), 1e-30)))
    cut = attribute(SPLAT_CUT, "Fac")
    radius2 = b.math("MULTIPLY", b.math("MAXIMUM", squared, 0.0), b.math("MULTIPLY", cut, cut))
    alpha = b.math("MINIMUM", b.math("MULTIPLY", attribute(SPLAT_OPACITY, "Fac"),
                                     b.math("EXPONENT", b.math("MULTIPLY", radius2, -0.5))), MAX_ALPHA)
    alpha = b.math("MULTIPLY", alpha, b.math("GREATER_THAN", alpha, MIN_ALPHA - 1e-7))
    alpha = b.math("MULTIPLY", alpha, b.math("SUBTRACT", 1.0, b.out(geometry, "Backfacing")))
    emission = b.node("ShaderNodeEmission", {"Color": b.out(b.node("ShaderNodeAttribute", attribute_type="GEOMETRY",
                                                                   attribute_name=SPLAT_COLOUR), "Color"),
                                             "Strength": 1.0})
    transparent = b.node("ShaderNodeBsdfTransparent")
    mix = b.node("ShaderNodeMixShader", (alpha, b.out(transparent), b.out(emission)))
    b.links.new(b.out(mix), b.node("ShaderNodeOutputMaterial").inputs["Surface"])
    return material


def write_rotations(mesh, rotations):
    """``gsseg_rotation``: the normalised quaternions (w, x, y, z) the splat display orients each box by."""
    point_attribute(mesh, ROTATION_ATTRIBUTE, "QUATERNION").data.foreach_set(
        "value", np.ascontiguousarray(rotations, dtype=np.float32).ravel())


def add_splat_display(obj, gaussians):
    """Give ``obj`` (made from ``gaussians``) the splat display modifier (once); returns the modifier."""
    write_rotations(obj.data, gaussians.rotations)
    modifier = obj.modifiers.get(SPLAT_MODIFIER_NAME)
    if modifier is None:
        modifier = obj.modifiers.new(SPLAT_MODIFIER_NAME, "NODES")
    modifier.node_group = splat_node_group(gaussians.sh_degree)
    # The splat's light is in its colours: casting shadows would only add the boxes' shadows (and EEVEE's
    # shadow maps would draw every box again: a software-GL render takes 40 times longer)
    obj.visible_shadow = False
    scene = bpy.context.scene
    if scene is not None:
        set_modifier_input(modifier, "Pixel Angle", pixel_angle(scene))
    return modifier


def pixel_angle(scene):
    """One pixel's angle (1 / focal length in pixels) of the scene camera at the render resolution."""
    camera = scene.camera
    if camera is None or camera.type != "CAMERA":
        return SPLAT_INPUTS["Pixel Angle"][1]
    from .camera_objects import camera_from_object

    return 1.0 / camera_from_object(camera, scene).fx


def sync_pixel_angle(scene):
    """Keep every splat display's ``Pixel Angle`` equal to the scene camera's (set only where it differs, so
    that calling it from a depsgraph handler settles). Returns how many displays it changed.

    The input holds a float32: the comparison is at that precision. (Compared as doubles, the stored value
    never equalled the camera's, so every depsgraph update tagged the display again and Blender evaluated it
    a second time -- at 1M Gaussians, seconds per update, the first evaluation after an import included.)"""
    value = np.float32(pixel_angle(scene))
    changed = 0
    for obj in scene.objects:
        modifier = obj.modifiers.get(SPLAT_MODIFIER_NAME) if obj.type == "MESH" else None
        if modifier is None or modifier.node_group is None:
            continue
        current = get_modifier_input(modifier, "Pixel Angle")
        if current is not None and np.float32(current) != value:
            set_modifier_input(modifier, "Pixel Angle", float(value))
            obj.update_tag()
            changed += 1
    return changed


DISPLAY_MODES = ("SPLAT", "POINTS", "LABELS")


def show_materials(context):
    """Switch the 3D Views of the current screen from Solid to Material Preview shading: Solid draws the splat
    display's boxes opaque. Returns how many views were switched (none headless)."""
    switched = 0
    screen = getattr(context, "screen", None)
    for area in screen.areas if screen is not None else ():
        if area.type != "VIEW_3D":
            continue
        for space in area.spaces:
            if space.type == "VIEW_3D" and space.shading.type == "SOLID":
                space.shading.type = "MATERIAL"
                switched += 1
    return switched


def eevee_engine():
    """The render engine id of EEVEE in this Blender ('BLENDER_EEVEE_NEXT' in 4.2-4.5, 'BLENDER_EEVEE' from 5.0)."""
    engines = bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items.keys()
    return "BLENDER_EEVEE_NEXT" if "BLENDER_EEVEE_NEXT" in engines else "BLENDER_EEVEE"


def set_display_mode(obj, mode):
    """Show ``obj`` as splats ('SPLAT'), as points ('POINTS') or as splats in label colours ('LABELS'; points in
    label colours when the object has only the point display). Returns False when it has no display."""
    if mode not in DISPLAY_MODES:
        raise ValueError(f"unknown display mode {mode!r}")
    if is_native_splat(obj):  # Blender draws it: the native display modifier only for labels and hidden points
        update_display(obj, labels=mode == "LABELS")
        return True
    splats = obj.modifiers.get(SPLAT_MODIFIER_NAME)
    points = obj.modifiers.get(MODIFIER_NAME)
    if splats is None and points is None:
        return False
    if mode == "POINTS" and points is None:
        points = add_point_display(obj)
    use_splats = splats is not None and mode != "POINTS"
    if splats is not None:
        splats.show_viewport = splats.show_render = use_splats
        set_modifier_input(splats, "Show Labels", mode == "LABELS")
    if points is not None:
        points.show_viewport = points.show_render = not use_splats
        set_modifier_input(points, MATERIAL_SOCKET, label_material() if mode == "LABELS" else splat_material())
    obj.update_tag()
    return True


def _on_depsgraph_update(scene, _depsgraph=None):
    try:
        sync_pixel_angle(scene)
    except Exception as error:  # a handler must not raise into Blender
        print(f"gsseg: splat display not updated for the camera: {error}")


_HANDLERS = []


def register():
    _HANDLERS[:] = register_handlers([("depsgraph_update_post", _on_depsgraph_update)])


def unregister():
    unregister_handlers(_HANDLERS)
    _HANDLERS.clear()
