"""The jobs the CLI and the Blender add-on run, as plain functions over the core's data.

segment_scene    files in -> labelled scene + accumulation + report
write_labeled    labelled scene -> OUT.ply + OUT.gsseg.npz, both or neither
selection        which Gaussians a remove/extract/split picks
"""

import colorsys
import contextlib
import dataclasses
import os
import re
import time
import warnings

import numpy as np

from .accumulate import Accumulation, accumulate_weights, get_backend, sidecar_path
from .cameras import load_cameras
from .errors import BadInputError
from .gaussians import read_gaussians, write_gaussians
from .masks import label_index_maps, load_masks
from .solver import UNSEEN, Shares

LABEL_PROPERTY = "gsseg_label"
LABEL_COMMENT = "gsseg_label"
_LABEL_COMMENT_RE = re.compile(r"^gsseg_label (-?\d+) name=(.*?) color=#([0-9a-fA-F]{6})\s*$")


@dataclasses.dataclass
class SegmentResult:
    gaussians: object  # the input scene plus the gsseg_label property and label comments
    labels: np.ndarray  # int32 [N]
    confidence: np.ndarray  # float32 [N]
    accumulation: Accumulation
    report: dict


def default_memory_budget():
    """A quarter of physical RAM, in bytes."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def label_colour(label):
    """A stable, distinct colour per label id (0 = grey background)."""
    if label == 0:
        return (128, 128, 128)
    hue = (label * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return (int(r * 255), int(g * 255), int(b * 255))


def read_label_table(comments):
    """{id: (name, '#rrggbb')} from ``comment gsseg_label <id> name=<name> color=#rrggbb`` header lines."""
    table = {}
    for text in comments:
        match = _LABEL_COMMENT_RE.match(text)
        if match:
            table[int(match.group(1))] = (match.group(2), "#" + match.group(3).lower())
    return table


def label_table_comments(label_ids, existing=None):
    """Header comments naming every label; names and colours already in ``existing`` are kept."""
    existing = existing or {}
    lines = []
    for label in sorted(int(x) for x in label_ids):
        name, colour = existing.get(label, ("background" if label == 0 else f"label_{label}",
                                            "#%02x%02x%02x" % label_colour(label)))
        lines.append(f"{LABEL_COMMENT} {label} name={name} color={colour}")
    return lines


def select_views(cameras, every=1):
    """Cameras whose index in image-name order is a multiple of ``every``."""
    if every < 1:
        raise BadInputError(f"--every {every}: must be at least 1")
    ordered = sorted(cameras, key=lambda camera: camera.image_name)
    return ordered[::every]


def segment_scene(scene, cameras, masks_dir, *, gamma=0.0, target=None, scale=1.0, every=1, backend="auto",
                  memory_budget=None, ignore_label=None, progress=None, cancel=None):
    """Lift the masks in ``masks_dir`` onto ``scene`` (a path or :class:`Gaussians`) seen by ``cameras``
    (a path or a list of :class:`Camera`). Returns a :class:`SegmentResult`; writes nothing."""
    timings = {}
    start = time.perf_counter()
    gaussians = read_gaussians(scene) if isinstance(scene, (str, os.PathLike)) else scene
    if len(gaussians) == 0:
        raise BadInputError(f"{gaussians.path or 'scene'}: the scene holds 0 Gaussians")
    if isinstance(cameras, (str, os.PathLike)):
        cameras = load_cameras(cameras)
    if not scale > 0:
        raise BadInputError(f"--scale {scale}: must be positive")
    views = select_views(cameras, every)
    sizes = [(round(scale * c.width), round(scale * c.height)) for c in views]
    masks = load_masks(masks_dir, views, ignore_label=ignore_label, sizes=sizes)
    if not np.any(masks.label_ids > 0):
        raise BadInputError(f"{masks_dir}: the masks hold only background (label 0): nothing to segment")
    used = [views[i].scaled(scale) for i in masks.camera_indices]
    timings["load_s"] = time.perf_counter() - start

    start = time.perf_counter()
    backend = get_backend(backend) if isinstance(backend, str) else backend
    accumulation = accumulate_weights(
        gaussians, used, label_index_maps(masks), masks.label_ids, backend=backend, progress=progress,
        cancel=cancel, memory_budget=default_memory_budget() if memory_budget is None else memory_budget)
    timings["accumulate_s"] = time.perf_counter() - start
    if not accumulation.seen_any:
        raise BadInputError(f"{masks_dir}: no camera sees any Gaussian of the scene (check the camera file "
                            f"and the scene's coordinate frame)")

    start = time.perf_counter()
    shares = Shares.from_accumulation(accumulation, target)
    labels, confidence = shares.solve(gamma)
    timings["solve_s"] = time.perf_counter() - start

    out = with_labels(gaussians, labels, shares.label_ids)
    ids, counts = np.unique(labels, return_counts=True)
    report = {
        "scene": str(gaussians.path) if gaussians.path else None,
        "n_gaussians": len(gaussians),
        "backend": backend.name,
        "accumulation_form": "dense" if isinstance(accumulation, Accumulation) else "bounded",
        "gamma": gamma,
        "target": target,
        "scale": scale,
        "views_used": [camera.image_name for camera in used],
        "cameras_without_mask": [c.image_name for i, c in enumerate(views) if i not in set(masks.camera_indices)],
        "masks_without_camera": list(masks.unmatched_masks),
        "label_ids": [int(x) for x in masks.label_ids],
        "gaussians_per_label": {str(int(i)): int(c) for i, c in zip(ids, counts) if i != UNSEEN},
        "unseen": int(np.count_nonzero(labels == UNSEEN)),
        "color_map": dict(masks.color_map or {}),
        "timings": timings,
    }
    return SegmentResult(out, labels, confidence, accumulation, report)


def with_labels(gaussians, labels, label_ids):
    """The scene with the int32 ``gsseg_label`` property and the label-table comments."""
    if LABEL_PROPERTY in gaussians.property_names:
        warnings.warn(f"{gaussians.path or 'scene'}: replacing its existing '{LABEL_PROPERTY}' property")
    table = read_label_table(gaussians.comments)
    return gaussians.with_int_property(LABEL_PROPERTY, labels).with_comments(
        label_table_comments(label_ids, table), drop_prefix=LABEL_COMMENT + " ")


def write_labeled(path, gaussians, accumulation=None):
    """Write OUT.ply and, with an accumulation, OUT.gsseg.npz: both land, or neither does."""
    sidecar = sidecar_path(path)
    if accumulation is None:
        write_gaussians(path, gaussians)
        return
    accumulation.save(sidecar)
    try:
        write_gaussians(path, gaussians)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(sidecar)
        raise


def read_labeled(path):
    """A scene that carries ``gsseg_label``; a clear error otherwise."""
    gaussians = read_gaussians(path)
    if LABEL_PROPERTY not in gaussians.property_names:
        raise BadInputError(f"{path}: no '{LABEL_PROPERTY}' property (run 'gsseg segment' first)")
    return gaussians


def load_shares(path, gaussians):
    """Shares from the sidecar beside ``path``."""
    return Shares.from_accumulation(Accumulation.load(sidecar_path(path), len(gaussians)))


def selection(gaussians, labels_to_pick, *, shares=None, gamma=None, include_unseen=False):
    """bool [N]: the Gaussians a remove/extract picks.

    Without ``gamma``: those whose ``gsseg_label`` is listed. With ``gamma`` (needs ``shares``): every member
    of a listed instance at that bias. Unseen Gaussians are picked only with ``include_unseen``.
    """
    current = np.asarray(gaussians.vertex[LABEL_PROPERTY])
    if gamma is None:
        picked = np.isin(current, np.asarray(labels_to_pick, dtype=np.int64))
    else:
        picked = np.zeros(len(gaussians), dtype=bool)
        for label in labels_to_pick:
            picked |= shares.members(int(label), gamma)
    if include_unseen:
        picked |= current == UNSEEN
    else:
        picked &= current != UNSEEN
    return picked
