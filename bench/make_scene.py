"""Ground-truth scene maker (runs under bpy): meshes with known labels -> Gaussians, cameras, Cycles masks.

Builds a scene of primitives and Suzanne on a ground plane (background, label 0) -- a sphere resting on a cube
(touching), a cone against a cylinder (touching), a thin pole in the middle that occludes and is occluded, a
torus lying on the ground -- and writes, into the output folder:

    scene.ply                 Gaussians sampled on the mesh surfaces (INRIA PLY, SH degree 0 or 3): colour from
                              the material, tangent size from the local sampling spacing, flat along the normal,
                              opacity 0.85-0.98
    gt_labels.npy             int32 [N], each Gaussian's object label
    scene_trained.ply         the same Gaussians plus what a trained splat also has: large faint Gaussians
    gt_labels_trained.npy     (opacity 0.05-0.3) on the objects and floaters in the air (label 0)
    cameras.json              N lifting views on a hemisphere (INRIA cameras.json, names lift_000, ...)
    cameras_heldout.json      M held-out views at other places on the hemisphere (held_000, ...)
    masks/lift_*.png          Cycles object-index masks of the lifting views (8-bit label maps)
    masks_noisy/lift_*.png    the same with SAM-like noise (synthetic.mask_noise, seeded)
    truth/held_*.png          Cycles object-index masks of the held-out views
    scene_info.json           objects (label, name, colour, count), parameters, camera check figures

The Cycles masks are rendered with 1 sample and a 0.01 px box filter, so each pixel holds the object hit by
the ray through the pixel centre. The Blender camera is built from our OpenCV camera (flip y and z; horizontal
sensor fit, principal point at the centre); the script checks the match by ray casting through pixel centres
with our Camera and by projecting visible mesh vertices, and fails if they disagree with the Cycles masks.

Usage: python bench/make_scene.py -o OUT [--lift 24] [--heldout 12] [--width 256] [--height 192]
       [--density 1600] [--sh 0|3] [--seed 0] [--noise-seed 0] [--kinds clean trained]
The bundled demo scene (blender_gsseg/data/demo) is
       python bench/make_scene.py -o blender_gsseg/data/demo --lift 12 --heldout 6 --kinds trained
Takes about 5 seconds on two CPU cores at the defaults (Cycles: about 0.05 s per view).
"""

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time

import numpy as np

import bpy
import mathutils
from mathutils.kdtree import KDTree
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from blender_gsseg.core.cameras import Camera, look_at  # noqa: E402
from blender_gsseg.core.files.camera_files import load_cameras  # noqa: E402
from blender_gsseg.core.files.inria_cameras import write_cameras_json  # noqa: E402
from blender_gsseg.core.files.ply import write_gaussians  # noqa: E402
from blender_gsseg.core.gaussians import Gaussians  # noqa: E402
from synthetic.mask_noise import MaskNoise, noisy_masks  # noqa: E402
from synthetic.scene import inria_vertex, tangent_frames  # noqa: E402

GROUND_SIZE = 5.0
LOOK_AT = (0.0, 0.1, 0.45)

# label, name, constructor, keyword arguments, location (x, y), rotation z (degrees), base colour, density factor
OBJECTS = [
    (1, "cube", "cube", dict(size=0.8), (-0.9, -0.45), 20, (0.80, 0.18, 0.15), 1.0),
    (2, "sphere", "uv_sphere", dict(radius=0.38, segments=48, ring_count=24), (-0.9, -0.45), 0,
     (0.20, 0.65, 0.25), 1.0),  # rests on the cube (placed on top below)
    (3, "suzanne", "monkey", dict(size=0.9), (0.95, -0.75), -30, (0.85, 0.55, 0.20), 1.0),
    (4, "cylinder", "cylinder", dict(radius=0.32, depth=0.9, vertices=48), (0.30, 0.95), 0,
     (0.20, 0.35, 0.85), 1.0),
    (5, "cone", "cone", dict(radius1=0.35, depth=0.8, vertices=48), (0.97, 0.95), 0, (0.90, 0.80, 0.15), 1.0),
    (6, "pole", "cylinder", dict(radius=0.03, depth=1.5, vertices=16), (-0.15, 0.25), 0, (0.85, 0.85, 0.90), 3.0),
    (7, "torus", "torus", dict(major_radius=0.35, minor_radius=0.1), (-1.25, 1.05), 0, (0.15, 0.75, 0.80), 1.0),
]
GROUND_COLOUR = (0.50, 0.47, 0.42)
GROUND_DENSITY_FACTOR = 0.22


# ----- Blender scene


def reset_scene(width, height):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    cycles = scene.cycles
    cycles.device = "CPU"
    cycles.samples = 1
    cycles.use_adaptive_sampling = False
    cycles.use_denoising = False
    cycles.pixel_filter_type = "BOX"
    cycles.filter_width = 0.01  # one sample at the pixel centre
    cycles.max_bounces = 0
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    scene.render.threads_mode = "FIXED"
    scene.render.threads = 2
    scene.view_layers[0].use_pass_object_index = True
    settings = scene.render.image_settings
    settings.media_type = "MULTI_LAYER_IMAGE"
    settings.file_format = "OPEN_EXR_MULTILAYER"
    settings.exr_codec = "NONE"
    settings.color_depth = "32"
    return scene


def material(name, colour):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes.get("Principled BSDF")
    bsdf.inputs["Base Color"].default_value = (*colour, 1.0)
    return mat


def material_colour(obj):
    """The base colour of the object's first material (what the Gaussians take)."""
    bsdf = obj.active_material.node_tree.nodes.get("Principled BSDF")
    return np.array(bsdf.inputs["Base Color"].default_value[:3], dtype=np.float64)


def add_object(kind, kwargs):
    adders = {"cube": bpy.ops.mesh.primitive_cube_add, "uv_sphere": bpy.ops.mesh.primitive_uv_sphere_add,
              "monkey": bpy.ops.mesh.primitive_monkey_add, "cylinder": bpy.ops.mesh.primitive_cylinder_add,
              "cone": bpy.ops.mesh.primitive_cone_add, "torus": bpy.ops.mesh.primitive_torus_add,
              "plane": bpy.ops.mesh.primitive_plane_add}
    adders[kind](**kwargs)
    return bpy.context.active_object


def build_objects():
    """Create the meshes; returns [(label, object, density factor)], ground first (label 0)."""
    ground = add_object("plane", dict(size=GROUND_SIZE))
    ground.name = "ground"
    ground.pass_index = 0
    ground.data.materials.append(material("ground", GROUND_COLOUR))
    made = [(0, ground, GROUND_DENSITY_FACTOR)]
    by_name = {}
    for label, name, kind, kwargs, (x, y), rot_z, colour, factor in OBJECTS:
        obj = add_object(kind, kwargs)
        obj.name = name
        obj.rotation_euler = (0.0, 0.0, math.radians(rot_z))
        if name == "suzanne":
            obj.rotation_euler = (math.radians(-10), 0.0, math.radians(rot_z))
        obj.location = (x, y, 0.0)
        bpy.context.view_layer.update()
        corners = np.array([obj.matrix_world @ mathutils.Vector(c) for c in obj.bound_box])
        bottom = corners[:, 2].min()
        if name == "sphere":  # rest on the cube's top face: touching
            cube_top = np.array([by_name["cube"].matrix_world @ mathutils.Vector(c)
                                 for c in by_name["cube"].bound_box])[:, 2].max()
            obj.location.z = cube_top - bottom
        else:
            obj.location.z = -bottom  # rest on the ground
        obj.pass_index = label
        obj.data.materials.append(material(name, colour))
        bpy.context.view_layer.update()
        by_name[name] = obj
        made.append((label, obj, factor))
    return made


def world_triangles(obj):
    """World-space triangles [T, 3, 3] of the evaluated mesh, and its vertices [V, 3]. Polygons are split as
    fans from their first corner and the triangles sorted by their coordinates: Blender may list the faces
    of a primitive (the UV sphere) in another order from one run to the next, and the sampled scene must not
    change with it."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    start = np.empty(len(mesh.polygons), dtype=np.int64)
    total = np.empty(len(mesh.polygons), dtype=np.int64)
    mesh.polygons.foreach_get("loop_start", start)
    mesh.polygons.foreach_get("loop_total", total)
    corner = np.empty(len(mesh.loops), dtype=np.int64)
    mesh.loops.foreach_get("vertex_index", corner)
    evaluated.to_mesh_clear()
    fans = total - 2
    polygon = np.repeat(np.arange(len(start)), fans)
    step = np.arange(int(fans.sum())) - np.repeat(np.cumsum(fans) - fans, fans)
    tris = np.stack([corner[start[polygon]], corner[start[polygon] + step + 1], corner[start[polygon] + step + 2]],
                    axis=1)
    matrix = np.array(obj.matrix_world, dtype=np.float64)
    co = co.reshape(-1, 3).astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
    triangles = co[tris]
    flat = np.round(triangles.reshape(len(triangles), 9), 6)
    return triangles[np.lexsort(flat.T[::-1])], co


# ----- Gaussians


def sample_surface(triangles, density, rng):
    """Points and unit normals sampled uniformly (by area) on the triangles, about ``density`` per unit area."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    cross = np.cross(b - a, c - a)
    area = 0.5 * np.linalg.norm(cross, axis=1)
    counts = np.floor(area * density + rng.random(len(area))).astype(np.int64)
    owner = np.repeat(np.arange(len(area)), counts)
    r1, r2 = rng.random(len(owner)), rng.random(len(owner))
    s = np.sqrt(r1)
    points = (1 - s)[:, None] * a[owner] + (s * (1 - r2))[:, None] * b[owner] + (s * r2)[:, None] * c[owner]
    normals = cross[owner] / np.maximum(np.linalg.norm(cross[owner], axis=1, keepdims=True), 1e-30)
    return points, normals


def local_spacing(points, nominal, k=6):
    """Per point, 1/sqrt(local density) from the distance to its k-th nearest neighbour (clipped to
    [0.5, 2] x the nominal spacing)."""
    tree = KDTree(len(points))
    for index, point in enumerate(points):
        tree.insert(point, index)
    tree.balance()
    radii = np.array([tree.find_n(point, k + 1)[-1][2] for point in points]) if len(points) > k else \
        np.full(len(points), nominal)
    spacing = radii * math.sqrt(math.pi / k)
    return np.clip(spacing, 0.5 * nominal, 2.0 * nominal)


def make_gaussians(objects, density, rng):
    """Surface Gaussians of every object: dict of arrays (points, scales, rotations, opacity, colour, label),
    plus the per-object sample sets (for the trained-like extras)."""
    nominal = 1.0 / math.sqrt(density)
    parts = []
    surfaces = []
    for label, obj, factor in objects:
        triangles, _ = world_triangles(obj)
        points, normals = sample_surface(triangles, density * factor, rng)
        spacing = local_spacing(points, nominal / math.sqrt(factor))
        n = len(points)
        scales = np.stack([spacing * rng.uniform(0.6, 0.9, n), spacing * rng.uniform(0.6, 0.9, n),
                           spacing * 0.05], axis=1)
        # a random spin about the normal, so the discs are not all aligned
        spin = rng.uniform(0, 2 * np.pi, n)
        frames = tangent_frames(normals)
        cos, sin = np.cos(spin), np.sin(spin)
        about = np.zeros((n, 3, 3))
        about[:, 0, 0], about[:, 0, 1], about[:, 1, 0], about[:, 1, 1], about[:, 2, 2] = cos, -sin, sin, cos, 1
        rotations = frames @ about
        base = material_colour(obj)
        colour = np.clip(base + 0.04 * rng.normal(size=(n, 3)), 0.02, 0.98)
        parts.append(dict(points=points, scales=scales, rotations=rotations,
                          opacity=rng.uniform(0.85, 0.98, n), colour=colour, label=np.full(n, label)))
        surfaces.append((label, triangles, base, factor))
    return parts, surfaces, nominal


def trained_extras(surfaces, nominal, density, rng, faint_share=0.05, n_floaters=80):
    """What a trained splat has beyond the surface: large faint Gaussians on the objects (and a few on the
    ground), and floaters in the air (label 0)."""
    parts = []
    for label, triangles, base, factor in surfaces:
        share = faint_share if label > 0 else faint_share * 0.3
        points, normals = sample_surface(triangles, density * factor * share, rng)
        n = len(points)
        spacing = nominal / math.sqrt(factor)
        scales = np.stack([spacing * rng.uniform(2.0, 5.0, n), spacing * rng.uniform(2.0, 5.0, n),
                           spacing * rng.uniform(0.5, 1.5, n)], axis=1)
        # on thin parts the faint blobs are as wide as the part, not the default
        if label > 0 and factor > 1.5:
            scales[:, :2] = np.minimum(scales[:, :2], 0.06)
        colour = np.clip(base + 0.06 * rng.normal(size=(n, 3)), 0.02, 0.98)
        parts.append(dict(points=points, scales=scales, rotations=tangent_frames(normals),
                          opacity=rng.uniform(0.05, 0.3, n), colour=colour, label=np.full(n, label)))
    n = n_floaters
    points = np.c_[rng.uniform(-2.0, 2.0, (n, 2)), rng.uniform(0.1, 2.2, n)]
    scales = np.exp(rng.uniform(np.log(0.02), np.log(0.12), (n, 3)))
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    from blender_gsseg.core.raster.projection import quaternion_to_matrix
    grey = rng.uniform(0.3, 0.8, (n, 1))
    parts.append(dict(points=points, scales=scales, rotations=quaternion_to_matrix(q).astype(np.float64),
                      opacity=rng.uniform(0.1, 0.6, n), colour=np.clip(grey + 0.1 * rng.normal(size=(n, 3)), 0, 1),
                      label=np.zeros(n, dtype=np.int64)))
    return parts


def concat_parts(parts):
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def to_gaussians(arrays, sh_degree, rng, comment):
    vertex = inria_vertex(arrays["points"], arrays["scales"], arrays["rotations"], arrays["opacity"],
                            arrays["colour"], sh_degree, rng, sh_noise=0.01)
    return Gaussians(vertex, meta_lines=[("comment", comment)], source_format="synthetic")


# ----- cameras


def hemisphere_cameras(count, width, height, prefix, phase, rng, radius=5.0, fov_x_deg=50.0,
                       elevation=(15.0, 65.0)):
    """``count`` cameras spread on a hemisphere band (a Fibonacci spiral; ``phase`` shifts it so held-out
    views fall between the lifting views), looking at the scene centre."""
    fx = 0.5 * width / math.tan(math.radians(fov_x_deg) / 2)
    lo, hi = (math.sin(math.radians(e)) for e in elevation)
    golden = math.pi * (3 - math.sqrt(5))
    cameras = []
    for k in range(count):
        sin_e = lo + (hi - lo) * ((k + phase) % count) / count
        cos_e = math.sqrt(1 - sin_e * sin_e)
        azimuth = k * golden + 2 * math.pi * phase
        r = radius * rng.uniform(0.92, 1.08)
        eye = (r * cos_e * math.cos(azimuth), r * cos_e * math.sin(azimuth), r * sin_e)
        cameras.append(Camera(look_at(eye, LOOK_AT), fx, fx, width / 2, height / 2, width, height,
                              f"{prefix}_{k:03d}"))
    return cameras


def blender_camera(scene):
    data = bpy.data.cameras.new("gsseg_camera")
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = 36.0
    data.shift_x = data.shift_y = 0.0
    data.clip_start, data.clip_end = 0.05, 100.0
    obj = bpy.data.objects.new("gsseg_camera", data)
    scene.collection.objects.link(obj)
    scene.camera = obj
    return obj


def place_camera(obj, camera):
    """Put Blender's camera where our OpenCV ``camera`` is: camera-to-world with the y and z axes flipped
    (Blender cameras look down -Z with +Y up), focal length in mm for a 36 mm horizontal sensor."""
    c2w = np.linalg.inv(camera.world_to_camera)
    c2w[:3, :3] = c2w[:3, :3] @ np.diag([1.0, -1.0, -1.0])
    obj.matrix_world = mathutils.Matrix(c2w.tolist())
    obj.data.lens = camera.fx / camera.width * obj.data.sensor_width
    assert abs(camera.fx - camera.fy) < 1e-9 and abs(camera.cx - camera.width / 2) < 1e-9


# ----- Cycles object-index masks


def read_exr_parts(path):
    """{part name: {channel: float32 [H, W]}} of an uncompressed scanline OpenEXR file (single or multi-part),
    which is what Blender writes with exr_codec='NONE'. Rows top to bottom."""
    import struct

    with open(path, "rb") as handle:
        data = handle.read()
    if data[:4] != b"v/1\x01":
        raise ValueError(f"{path}: not an OpenEXR file")
    multipart = bool(struct.unpack_from("<I", data, 4)[0] & 0x1000)
    pos = 8
    headers = []
    while True:
        header = {}
        while data[pos] != 0:
            end = data.index(b"\0", pos)
            end2 = data.index(b"\0", end + 1)
            size = struct.unpack_from("<i", data, end2 + 1)[0]
            header[data[pos:end].decode()] = data[end2 + 5:end2 + 5 + size]
            pos = end2 + 5 + size
        pos += 1
        headers.append(header)
        if not multipart:
            break
        if data[pos] == 0:
            pos += 1
            break
    parts = {}
    for header in headers:
        x0, y0, x1, y1 = struct.unpack("<4i", header["dataWindow"])
        width, height = x1 - x0 + 1, y1 - y0 + 1
        if header["compression"] != b"\0":
            raise ValueError(f"{path}: compressed EXR (write it with exr_codec='NONE')")
        chlist, channels, k = header["channels"], [], 0
        while chlist[k] != 0:
            end = chlist.index(b"\0", k)
            channels.append((chlist[k:end].decode(), struct.unpack_from("<i", chlist, end + 1)[0]))
            k = end + 17
        offsets = np.frombuffer(data, "<u8", height, pos)
        pos += 8 * height
        arrays = {name: np.zeros((height, width), np.float32) for name, _ in channels}
        for offset in offsets:
            p = int(offset) + (4 if multipart else 0)
            y, _size = struct.unpack_from("<ii", data, p)
            p += 8
            for name, ptype in channels:
                row = np.frombuffer(data, {0: "<u4", 1: "<f2", 2: "<f4"}[ptype], width, p)
                arrays[name][y - y0] = row
                p += row.nbytes
        parts[header.get("name", b"").decode()] = arrays
    return parts


def render_index_mask(scene, camera_obj, camera, folder):
    place_camera(camera_obj, camera)
    path = os.path.join(folder, camera.image_name + ".exr")
    scene.render.filepath = path
    bpy.ops.render.render(write_still=True)
    parts = read_exr_parts(path)
    os.unlink(path)
    for name, channels in parts.items():
        if name.endswith("Object Index") or name.endswith("IndexOB"):
            index = next(iter(channels.values()))
            return np.rint(index).astype(np.int32)
    raise RuntimeError(f"no object index pass in {path}: {sorted(parts)}")


# ----- the camera check


def check_camera(scene, camera, mask, objects, rng, n_rays=4000):
    """(ray agreement, vertex agreement): our Camera's ray through random pixel centres hits (in Blender's
    ray cast) the object the Cycles mask shows there; visible mesh vertices projected with our Camera land on
    pixels of their object (or a neighbouring pixel: a vertex on a silhouette lies on the pixel edge)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    c2w = np.linalg.inv(camera.world_to_camera)
    origin = mathutils.Vector(c2w[:3, 3].tolist())
    rows = rng.integers(0, camera.height, n_rays)
    cols = rng.integers(0, camera.width, n_rays)
    agree = 0
    for i, j in zip(rows, cols):
        d_cam = np.array([(j + 0.5 - camera.cx) / camera.fx, (i + 0.5 - camera.cy) / camera.fy, 1.0])
        d = c2w[:3, :3] @ d_cam
        hit, _loc, _n, _idx, obj, _m = scene.ray_cast(depsgraph, origin, mathutils.Vector(d.tolist()))
        label = obj.pass_index if hit else 0
        agree += int(label == mask[i, j])
    ray_agreement = agree / n_rays

    good = total = 0
    for label, obj, _ in objects:
        if label == 0:
            continue
        _, vertices = world_triangles(obj)
        uv, depth = camera.project(vertices)
        inside = (depth > 0) & (uv[:, 0] >= 1) & (uv[:, 0] < camera.width - 1) & (uv[:, 1] >= 1) & \
            (uv[:, 1] < camera.height - 1)
        for v, (u, vv) in zip(vertices[inside], uv[inside]):
            direction = mathutils.Vector(v.tolist()) - origin
            distance = direction.length
            hit, location, _n, _idx, hit_obj, _m = scene.ray_cast(depsgraph, origin, direction.normalized(),
                                                                    distance=distance + 1e-3)
            if not hit or hit_obj != obj or (location - origin).length < distance - 1e-3:
                continue  # hidden behind something else
            total += 1
            j, i = int(u), int(vv)
            window = mask[i - 1:i + 2, j - 1:j + 2]
            good += int(mask[i, j] == label or np.any(window == label))
    return ray_agreement, (good / total if total else float("nan")), total


# ----- main


def save_label_png(path, label_map):
    Image.fromarray(label_map.astype(np.uint8), mode="L").save(path, format="PNG", optimize=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--lift", type=int, default=24, help="lifting views")
    parser.add_argument("--heldout", type=int, default=12, help="held-out views")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--density", type=float, default=1600.0, help="Gaussians per unit area on objects")
    parser.add_argument("--sh", type=int, choices=(0, 3), default=0, help="SH degree of the PLY")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise-seed", type=int, default=0, help="seed of the SAM-like mask noise")
    parser.add_argument("--check-views", type=int, default=2, help="views whose camera match is checked")
    parser.add_argument("--kinds", nargs="+", choices=("clean", "trained"), default=["clean", "trained"],
                        help="which scenes to write (scene.ply, scene_trained.ply)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.output, exist_ok=True)
    scene = reset_scene(args.width, args.height)
    objects = build_objects()
    parts, surfaces, nominal = make_gaussians(objects, args.density, rng)
    clean = concat_parts(parts)
    extras = concat_parts(trained_extras(surfaces, nominal, args.density, np.random.default_rng(args.seed + 1)))
    trained = concat_parts([clean, extras])
    if "clean" in args.kinds:
        write_gaussians(os.path.join(args.output, "scene.ply"),
                        to_gaussians(clean, args.sh, np.random.default_rng(args.seed + 2),
                                     "gsseg bench scene (clean)"))
        np.save(os.path.join(args.output, "gt_labels.npy"), clean["label"].astype(np.int32))
    if "trained" in args.kinds:
        write_gaussians(os.path.join(args.output, "scene_trained.ply"),
                        to_gaussians(trained, args.sh, np.random.default_rng(args.seed + 2),
                                     "gsseg bench scene (trained-like: faint Gaussians and floaters)"))
        np.save(os.path.join(args.output, "gt_labels_trained.npy"), trained["label"].astype(np.int32))
    gauss_s = time.perf_counter() - start

    camera_rng = np.random.default_rng(args.seed + 3)
    lift = hemisphere_cameras(args.lift, args.width, args.height, "lift", 0.0, camera_rng)
    held = hemisphere_cameras(args.heldout, args.width, args.height, "held", 0.5, camera_rng)
    write_cameras_json(os.path.join(args.output, "cameras.json"), lift)
    write_cameras_json(os.path.join(args.output, "cameras_heldout.json"), held)
    # Render from the cameras as a user reads them back, so the check covers cameras.json too.
    lift = load_cameras(os.path.join(args.output, "cameras.json"))
    held = load_cameras(os.path.join(args.output, "cameras_heldout.json"))

    camera_obj = blender_camera(scene)
    tmp = tempfile.mkdtemp(prefix="gsseg_exr_")
    render_start = time.perf_counter()
    masks = {}
    try:
        for camera in lift + held:
            masks[camera.image_name] = render_index_mask(scene, camera_obj, camera, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    render_s = time.perf_counter() - render_start

    checks = []
    check_rng = np.random.default_rng(args.seed + 4)
    for camera in (lift[:1] + held[:1] + lift[1:])[:args.check_views]:
        rays, vertices, n_vertices = check_camera(scene, camera, masks[camera.image_name], objects, check_rng)
        checks.append({"view": camera.image_name, "ray_agreement": rays, "vertex_agreement": vertices,
                       "visible_vertices": n_vertices})
        print(f"camera check {camera.image_name}: rays {rays:.4f}, visible vertices {vertices:.4f} "
              f"({n_vertices})", file=sys.stderr)
        if rays < 0.995 or vertices < 0.98:
            raise SystemExit(f"camera check failed for {camera.image_name}: our Camera and Blender's disagree")

    for folder, cameras, noisy in (("masks", lift, False), ("truth", held, False), ("masks_noisy", lift, True)):
        os.makedirs(os.path.join(args.output, folder), exist_ok=True)
        maps = [masks[c.image_name] for c in cameras]
        if noisy:
            maps = noisy_masks(maps, seed=args.noise_seed, noise=MaskNoise())
        for camera, label_map in zip(cameras, maps):
            save_label_png(os.path.join(args.output, folder, camera.image_name + ".png"), label_map)

    info = {
        "objects": [{"label": 0, "name": "ground", "colour": list(GROUND_COLOUR), "background": True}]
        + [{"label": o[0], "name": o[1], "colour": list(o[6])} for o in OBJECTS],
        "gaussians": {name: {"count": int(len(arrays["label"])),
                             "per_label": {str(int(l)): int(c) for l, c in
                                           zip(*np.unique(arrays["label"], return_counts=True))}}
                      for kind, name, arrays in (("clean", "scene.ply", clean), ("trained", "scene_trained.ply",
                                                                                  trained)) if kind in args.kinds},
        "trained_extras": {"opacity_at_most_0.3": int(np.sum(extras["opacity"] <= 0.3)),
                           "total": int(len(extras["label"]))},
        "views": {"lift": len(lift), "heldout": len(held), "width": args.width, "height": args.height},
        "args": vars(args),
        "noise": dataclasses.asdict(MaskNoise()),
        "camera_checks": checks,
        "seconds": {"gaussians": round(gauss_s, 2), "cycles": round(render_s, 2),
                    "total": round(time.perf_counter() - start, 2)},
    }
    with open(os.path.join(args.output, "scene_info.json"), "w") as handle:
        json.dump(info, handle, indent=1, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))
    print(json.dumps({k: info[k] for k in ("gaussians", "views", "camera_checks", "seconds")}, indent=1))


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else None
    main(argv)
