"""Small random scenes for engine tests: behind the camera, straddling tile borders, huge and tiny."""

import numpy as np

from blender_gsseg.core.cameras import Camera
from blender_gsseg.core.gaussians import Gaussians

INRIA_NAMES = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
               "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]


def gaussians_from_arrays(means, log_scales, quats, opacity_logits, colours=None):
    n = len(means)
    vertex = np.zeros(n, dtype=[(name, "<f4") for name in INRIA_NAMES])
    for axis, name in enumerate("xyz"):
        vertex[name] = means[:, axis]
    for c in range(3):
        vertex[f"scale_{c}"] = log_scales[:, c]
        vertex[f"f_dc_{c}"] = 0 if colours is None else (colours[:, c] - 0.5) / 0.28209479177387814
    for c in range(4):
        vertex[f"rot_{c}"] = quats[:, c]
    vertex["opacity"] = opacity_logits
    return Gaussians(vertex)


def random_scene(seed, n=160, *, log_scale_mean=-2.2, huge=4, huge_scale=0.9, tiny_scale=0.003, arrays=False):
    """Gaussians in front of and behind a camera at z = -4 looking down +z, sizes from tiny to huge: the first
    ``huge`` of scale ``huge_scale`` (a number, or a (low, high) range drawn per axis), the next ``huge`` of scale
    ``tiny_scale``, the others log-normal around ``log_scale_mean``.

    A :class:`Gaussians` (float32 PLY columns), or with ``arrays`` the float64 draws (means, log-scales,
    unnormalised quaternions, opacity logits, colours) for a caller that builds its own scene from them."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1.2, (n, 3))
    means[:, 2] *= 2.0
    log_scales = rng.normal(log_scale_mean, 0.9, (n, 3))
    if np.ndim(huge_scale):
        log_scales[:huge] = np.log(rng.uniform(*huge_scale, (huge, 3)))
    else:
        log_scales[:huge] = np.log(huge_scale)
    log_scales[huge:2 * huge] = np.log(tiny_scale)
    quats = rng.normal(size=(n, 4))
    logits = rng.normal(0.5, 2.0, n)
    colours = rng.random((n, 3))
    if arrays:
        return means, log_scales, quats, logits, colours
    return gaussians_from_arrays(means, log_scales, quats, logits, colours)


def front_camera(width=75, height=58, cx=None, cy=None):
    w2c = np.eye(4)
    w2c[2, 3] = 4.0
    return Camera(w2c, 60.0, 55.0, width / 2 if cx is None else cx, height / 2 if cy is None else cy,
                  width, height, "test")


def rotated_camera(seed, width=64, height=48):
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = 0.4
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
    w2c = np.eye(4)
    w2c[:3, :3] = rot
    w2c[:3, 3] = [0.1, -0.2, 4.5]
    return Camera(w2c, 50.0, 52.0, width / 2, height / 2, width, height, f"rot{seed}")
