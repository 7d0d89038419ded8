"""Rendering with the same rasterization rules: colour (SH degree 0) and novel-view label masks.

Two mask rules:

* ``subset`` (FlashSplat, :func:`render_label_mask`): each foreground label's Gaussians are rendered alone; a
  pixel takes a label whose own alpha reaches 0.5, the nearest when several do. Background Gaussians never
  occlude, and faint Gaussians (opacity well below 0.5) vanish unless many overlap.
* ``argmax`` (:func:`render_label_mask_argmax`): the whole scene is rendered once, as a viewer shows it; a pixel
  whose total alpha reaches 0.5 takes the label with the largest summed weight ``sum_i w_i(p) [label_i = e]``
  (background included, ties to the smaller id), else 0. Unseen Gaussians (label -1) occlude and count toward
  the alpha, but take no part in the vote: they have no label to give.

Each function takes ``backend``: None or "cpu" renders here with numpy; "cuda", "auto" or a backend object from
:func:`.backends.get_backend` renders on that backend (the CUDA one: same rules, float32 sums).
"""

from __future__ import annotations

import collections.abc
from typing import TYPE_CHECKING

import numpy as np

from ..files.labels import label_colour
from .backends import BackendOrName, get_backend
from .rasterize import group_weights
from .sh import view_colours

if TYPE_CHECKING:
    from ..cameras import Camera
    from ..gaussians import Gaussians
    from .projection import Projected

MASK_ALPHA_THRESHOLD = 0.5  # a label covers a pixel where its Gaussians alone reach this accumulated alpha
RENDER_MODES = ("subset", "argmax")


def render_colour(
    gaussians: Gaussians,
    camera: Camera,
    background: collections.abc.Sequence[float] = (0.0, 0.0, 0.0),  # RGB
    backend: BackendOrName = None,
    sh_degree: int | None = 0,  # SH bands used (None: all the scene has); 0: the base colour
) -> tuple[np.ndarray, np.ndarray]:  # RGB [H, W, 3] float32, alpha [H, W] float32
    """RGB [H, W, 3] float32 in [0, 1] over ``background``, and alpha [H, W]; each Gaussian's colour from its
    SH bands up to ``sh_degree`` seen from this camera (:func:`.sh.view_colours`)."""
    colours = None if sh_degree == 0 else view_colours(gaussians, camera.centre, sh_degree)
    return get_backend(backend).render_colour(gaussians, camera, background, colours)


def check_render_memory(cameras, n_gaussians: int, memory_budget: int | None = None, where: str = "cameras"):
    """Refuse (:class:`MemoryBudgetError`) views too large to render within ``memory_budget`` (bytes; default
    a quarter of RAM) before rendering any: per-Gaussian projection state, the largest view's contribution
    lists and its images (labels, colour, alpha, depth)."""
    from ..errors import MemoryBudgetError
    from ..errors import default_memory_budget
    from .rasterize import DEFAULT_CHUNK_ENTRIES

    if not cameras:
        return
    budget = default_memory_budget() if memory_budget is None else memory_budget
    camera = max(cameras, key=lambda c: int(c.width) * int(c.height))
    pixels = int(camera.width) * int(camera.height)
    need = n_gaussians * 120 + max(pixels * 8, DEFAULT_CHUNK_ENTRIES // 4) * 24 + DEFAULT_CHUNK_ENTRIES * 40 \
        + pixels * (4 + 12 + 4 + 4 + 12)
    if need > budget:
        raise MemoryBudgetError(f"{where}: rendering a view of {camera.width}x{camera.height} pixels needs about "
                                f"{need / 2**20:.0f} MB, over the memory budget of {budget / 2**20:.0f} MB "
                                f"(lower --scale or raise --memory-budget)")


def render_view(
    camera: Camera,
    gaussians: Gaussians,
    labels: np.ndarray,  # [N] int
    mode: str = "subset",
    colour_scene: Gaussians | None = None,  # also render this scene in colour, every SH band it has
    backend: BackendOrName = None,
) -> tuple[np.ndarray, np.ndarray | None]:  # label image [H, W] int32, RGB [H, W, 3] float32 or None
    """What ``render-masks`` writes for one view: its label image by ``mode`` and, with ``colour_scene``, its
    colour render (one function, so a cluster worker renders a view as the client would)."""
    backend = get_backend(backend)  # one for both renders: the view is projected once
    mask = render_labels(gaussians, labels, camera, mode, backend=backend)
    rgb = None if colour_scene is None else render_colour(colour_scene, camera, backend=backend, sh_degree=None)[0]
    return mask, rgb


def colour_label_image(
    label_image: np.ndarray,  # [H, W] int: label ids, as render_labels gives them
    table: collections.abc.Mapping[int, tuple[str, str]] | None = None,  # {id: (name, '#rrggbb')}
) -> np.ndarray:  # RGB [H, W, 3] uint8
    """A label image in colour, for a person to look at: each pixel the colour of its label in ``table`` (a scene's
    label table, :func:`..files.labels.read_label_table`), else the fixed palette
    (:func:`..files.labels.label_colour`, the colours ``segment`` gives labels it has no colour for; 0 grey)."""
    label_image = np.asarray(label_image)
    table = table or {}
    ids, inverse = np.unique(label_image, return_inverse=True)
    palette = np.array([_hex_colour(table[int(i)][1]) if int(i) in table else label_colour(int(i)) for i in ids],
                       dtype=np.uint8).reshape(-1, 3)
    return palette[inverse.reshape(label_image.shape)]


def _hex_colour(text: str) -> tuple[int, int, int]:  # '#rrggbb' -> (r, g, b)
    return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)


def render_labels(
    gaussians: Gaussians,
    labels: np.ndarray,  # [N] int
    camera: Camera,
    mode: str = "subset",
    backend: BackendOrName = None,
) -> np.ndarray:  # [H, W] int32
    """Label image [H, W] int32 for ``camera`` by ``mode`` ('subset': FlashSplat's rule, the default; 'argmax')."""
    if mode == "subset":
        return render_label_mask(gaussians, labels, camera, backend=backend)
    if mode == "argmax":
        return render_label_mask_argmax(gaussians, labels, camera, backend=backend)
    raise ValueError(f"unknown render mode {mode!r} (choose {', '.join(RENDER_MODES)})")


def render_label_mask(
    gaussians: Gaussians,
    labels: np.ndarray,  # [N] int
    camera: Camera,
    backend: BackendOrName = None,
) -> np.ndarray:  # [H, W] int32
    """Label image [H, W] int32 for ``camera`` by the subset rule (see the module docstring)."""
    backend = get_backend(backend)
    shape = (camera.height, camera.width)
    result = np.zeros(shape, dtype=np.int32)
    nearest = np.full(shape, np.inf)
    for label in np.unique(labels[labels > 0]):
        alpha, depth_sum = backend.render_alpha_depth(gaussians, camera, labels == label)
        covered = alpha >= MASK_ALPHA_THRESHOLD
        mean_depth = np.where(covered, depth_sum / np.maximum(alpha, 1e-12), np.inf)
        closer = covered & (mean_depth < nearest)
        result[closer] = label
        nearest[closer] = mean_depth[closer]
    return result


def render_label_mask_argmax(
    gaussians: Gaussians,
    labels: np.ndarray,  # [N] int, -1 occludes but does not vote
    camera: Camera,
    threshold: float = MASK_ALPHA_THRESHOLD,
    backend: BackendOrName = None,
) -> np.ndarray:  # [H, W] int32
    """Label image [H, W] int32 for ``camera`` by the whole-scene argmax rule (see the module docstring)."""
    ids, group = label_groups(labels)
    sums, alpha = get_backend(backend).render_label_weights(gaussians, camera, group, len(ids))
    return label_argmax(ids.astype(np.int32), sums, alpha, threshold=threshold)


def label_groups(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # [N] int -> ids [K], group [N] int64
    """(label ids [K] ascending, group index [N] into them; -1 for Gaussians labelled -1)."""
    labels = np.asarray(labels)
    ids = np.unique(labels[labels >= 0])
    group = np.full(len(labels), -1, dtype=np.int64)
    group[labels >= 0] = np.searchsorted(ids, labels[labels >= 0])
    return ids, group


def render_label_weights(
    projected: Projected,
    labels: np.ndarray,  # [N] int
    contributions=None,  # the walk of ``projected`` (iter_contributions), kept to sum several labellings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # ids [K] int32, sums [K, H, W] float64, alpha [H, W] float64
    """(label ids [K] ascending, summed weights [K, H, W] per label, total alpha [H, W]) over the whole scene
    projected in ``projected``; ``labels`` int [N], Gaussians labelled -1 count in the alpha only."""
    ids, group = label_groups(labels)
    sums, alpha = group_weights(projected, group, len(ids), contributions)
    return ids.astype(np.int32), sums, alpha


def label_argmax(
    ids: np.ndarray,  # [K] int32
    sums: np.ndarray,  # [K, H, W]
    alpha: np.ndarray,  # [H, W]
    threshold: float = MASK_ALPHA_THRESHOLD,
) -> np.ndarray:  # [H, W] int32
    """The argmax rule over per-label weight images: label [H, W] int32."""
    if len(ids) == 0:
        return np.zeros(alpha.shape, dtype=np.int32)
    best = np.argmax(sums, axis=0)  # first maximum: ties go to the smaller id
    result = ids[best].astype(np.int32)
    result[(alpha < threshold) | (sums.max(axis=0) <= 0)] = 0
    return result
