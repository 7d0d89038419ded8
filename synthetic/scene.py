"""A small synthetic scene with known labels, for tests, benchmarks and docs (not shipped).

Spheres (labels 1..K) on a ground plane (background 0), covered by flat Gaussians sampled on their surfaces.
Masks come from exact ray casting against the analytic spheres and plane, not from our rasterizer, so they
are an independent ground truth for what the lifted labels should render to.
"""

import dataclasses

import os

import numpy as np

from blender_gsseg.core.cameras import ring_cameras
from blender_gsseg.core.gaussians import SH_C0, Gaussians

SPHERE_COLOURS = np.array([[0.85, 0.2, 0.2], [0.2, 0.7, 0.25], [0.2, 0.35, 0.9], [0.9, 0.75, 0.1],
                           [0.7, 0.2, 0.8], [0.1, 0.8, 0.8], [0.95, 0.5, 0.1], [0.5, 0.5, 0.5]])
GROUND_COLOUR = np.array([0.55, 0.5, 0.45])
GROUND_HALF_SIZE = 3.0


@dataclasses.dataclass
class SyntheticScene:
    gaussians: Gaussians
    labels: np.ndarray  # int32 [N] ground-truth label per Gaussian
    centres: np.ndarray  # [K, 3] sphere centres (label k + 1)
    radii: np.ndarray  # [K]
    cameras: list

    @property
    def part_labels(self):
        """Two-level truth: each sphere split into a lower (2k + 1) and an upper (2k + 2) half; ground 0."""
        parts = np.zeros(len(self.labels), dtype=np.int32)
        on_sphere = self.labels > 0
        k = self.labels[on_sphere] - 1
        upper = self.gaussians.means[on_sphere, 2] > self.centres[k, 2]
        parts[on_sphere] = 2 * k + 1 + upper
        return parts

    def mask(self, camera, parts=False):
        """Exact label image for ``camera``: the first surface hit by the ray through each pixel centre.
        With ``parts``, sphere k's lower half is 2k + 1 and its upper half 2k + 2."""
        cam_to_world = np.linalg.inv(camera.world_to_camera)
        j, i = np.meshgrid(np.arange(camera.width) + 0.5, np.arange(camera.height) + 0.5)
        dirs_cam = np.stack([(j - camera.cx) / camera.fx, (i - camera.cy) / camera.fy, np.ones_like(j)], -1)
        dirs = dirs_cam @ cam_to_world[:3, :3].T
        dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
        origin = cam_to_world[:3, 3]
        best = np.full(j.shape, np.inf)
        label = np.zeros(j.shape, dtype=np.int32)
        # ground plane z = 0, |x|, |y| <= half size
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -origin[2] / dirs[..., 2]
        hit = origin + t[..., None] * dirs
        on_plane = (t > 0) & (np.abs(hit[..., 0]) <= GROUND_HALF_SIZE) & (np.abs(hit[..., 1]) <= GROUND_HALF_SIZE)
        best[on_plane] = t[on_plane]
        for k, (centre, radius) in enumerate(zip(self.centres, self.radii)):
            oc = origin - centre
            b = dirs @ oc
            disc = b * b - (oc @ oc - radius * radius)
            t = -b - np.sqrt(np.maximum(disc, 0))
            closer = (disc > 0) & (t > 0) & (t < best)
            best[closer] = t[closer]
            if parts:
                upper = origin[2] + t * dirs[..., 2] > centre[2]
                label[closer] = (2 * k + 1 + upper)[closer]
            else:
                label[closer] = k + 1
        return label


def tangent_frames(normals):
    """Rotation matrices [N, 3, 3] whose third column is the (unit) normal."""
    helper = np.where(np.abs(normals[:, 2:3]) < 0.9, [[0, 0, 1.0]], [[1.0, 0, 0]])
    t1 = np.cross(normals, helper)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    t2 = np.cross(normals, t1)
    return np.stack([t1, t2, normals], axis=2)


def _flat_gaussians_on_surface(points, normals, spacing, rng):
    """Scales (linear) and rotation matrices for discs tangent to the surface."""
    n = len(points)
    scales = np.empty((n, 3))
    scales[:, 0] = spacing * rng.uniform(0.6, 0.9, n)
    scales[:, 1] = spacing * rng.uniform(0.6, 0.9, n)
    scales[:, 2] = spacing * 0.05
    return scales, tangent_frames(normals)


def inria_vertex(points, scales, rotations, opacity, colour, sh_degree=0, rng=None, sh_noise=0.0):
    """INRIA vertex table (float32) from linear scales, rotation matrices, opacities in (0, 1) and RGB; the
    higher SH coefficients are ``sh_noise``-scaled normal noise (0 without ``rng``)."""
    rest = 3 * ((sh_degree + 1) ** 2 - 1)
    names = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
             + [f"f_rest_{i}" for i in range(rest)]
             + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])
    vertex = np.zeros(len(points), dtype=[(name, "<f4") for name in names])
    quats = matrix_to_quaternion(rotations)
    for axis, name in enumerate("xyz"):
        vertex[name] = points[:, axis]
    for c in range(3):
        vertex[f"f_dc_{c}"] = (colour[:, c] - 0.5) / SH_C0
        vertex[f"scale_{c}"] = np.log(scales[:, c])
    for i in range(rest):
        vertex[f"f_rest_{i}"] = sh_noise * rng.normal(size=len(points)) if rng is not None else 0.0
    vertex["opacity"] = np.log(opacity / (1 - opacity))
    for c in range(4):
        vertex[f"rot_{c}"] = quats[:, c]
    return vertex


def matrix_to_quaternion(rot):
    """Unit quaternions (w first) from proper rotation matrices [N, 3, 3]."""
    m = rot
    w = np.sqrt(np.maximum(0, 1 + m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2])) / 2
    x = np.sqrt(np.maximum(0, 1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2])) / 2
    y = np.sqrt(np.maximum(0, 1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2])) / 2
    z = np.sqrt(np.maximum(0, 1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2])) / 2
    x = np.copysign(x, m[:, 2, 1] - m[:, 1, 2])
    y = np.copysign(y, m[:, 0, 2] - m[:, 2, 0])
    z = np.copysign(z, m[:, 1, 0] - m[:, 0, 1])
    q = np.stack([w, x, y, z], axis=1)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def make_scene(n_spheres=3, points_per_unit_area=900, n_cameras=24, width=160, height=120, seed=0,
               sh_degree=0):
    """Build the scene; ``points_per_unit_area`` sets the Gaussian density (and so the Gaussian count)."""
    rng = np.random.default_rng(seed)
    spacing = 1.0 / np.sqrt(points_per_unit_area)
    angles = np.linspace(0, 2 * np.pi, n_spheres, endpoint=False) + 0.3
    radii = 0.45 + 0.25 * rng.random(n_spheres)
    ring = 1.2 + 0.3 * rng.random(n_spheres)
    centres = np.stack([ring * np.cos(angles), ring * np.sin(angles), radii], axis=1)
    parts, normals, colours, labels = [], [], [], []
    for k in range(n_spheres):
        count = int(4 * np.pi * radii[k] ** 2 * points_per_unit_area)
        normal = rng.normal(size=(count, 3))
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        points = centres[k] + radii[k] * normal
        keep = points[:, 2] > 0.02  # below the ground: never visible
        parts.append(points[keep])
        normals.append(normal[keep])
        colours.append(np.repeat(SPHERE_COLOURS[k % len(SPHERE_COLOURS)][None], keep.sum(), 0))
        labels.append(np.full(keep.sum(), k + 1))
    count = int((2 * GROUND_HALF_SIZE) ** 2 * points_per_unit_area)
    ground = np.c_[rng.uniform(-GROUND_HALF_SIZE, GROUND_HALF_SIZE, (count, 2)), np.zeros(count)]
    inside_any = np.zeros(count, dtype=bool)
    for centre, radius in zip(centres, radii):
        inside_any |= np.linalg.norm(ground[:, :2] - centre[:2], axis=1) < radius * 0.3
    ground = ground[~inside_any]
    parts.append(ground)
    normals.append(np.repeat([[0.0, 0.0, 1.0]], len(ground), 0))
    colours.append(GROUND_COLOUR + 0.08 * rng.normal(size=(len(ground), 3)))
    labels.append(np.zeros(len(ground)))

    points = np.concatenate(parts)
    normal = np.concatenate(normals)
    colour = np.clip(np.concatenate(colours) + 0.03 * rng.normal(size=(len(points), 3)), 0.02, 0.98)
    scales, rotations = _flat_gaussians_on_surface(points, normal, spacing, rng)
    opacity = rng.uniform(0.8, 0.98, len(points))
    vertex = inria_vertex(points, scales, rotations, opacity, colour, sh_degree, rng, sh_noise=0.02)
    gaussians = Gaussians(vertex, meta_lines=[("comment", "gsseg synthetic scene")], source_format="synthetic")
    cameras = ring_cameras(n_cameras, width, height)
    return SyntheticScene(gaussians, np.concatenate(labels).astype(np.int32), centres, radii, cameras)


def write_inputs(root, scene, masks, cameras_name="cameras.json"):
    """What ``gsseg segment`` reads, written under ``root``: scene.ply, the cameras file and one folder of PNG
    masks per entry of ``masks`` ({folder name: function camera -> label image})."""
    from PIL import Image

    from blender_gsseg.core.files.inria_cameras import write_cameras_json
    from blender_gsseg.core.files.ply import write_gaussians

    root = os.fspath(root)
    write_gaussians(os.path.join(root, "scene.ply"), scene.gaussians)
    write_cameras_json(os.path.join(root, cameras_name), scene.cameras)
    for folder, mask_of in masks.items():
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        for camera in scene.cameras:
            image = Image.fromarray(np.asarray(mask_of(camera)).astype(np.uint8))
            image.save(os.path.join(root, folder, f"{camera.image_name}.png"))
