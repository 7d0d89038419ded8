"""The lifting views: which cameras are used, at which working resolution, with which masks.

:func:`build_views` is the one step from cameras and a mask source to the views every lift uses (`gsseg
segment`, the refinements, the Blender add-on): select every ``every``-th camera (in image-name order), scale
them, match and scan the masks at that resolution. The label maps are decoded when a view is used
(:class:`~.masks.LabelMaps`), so a long capture is never held in memory whole.
"""

from __future__ import annotations

import collections
import collections.abc
import dataclasses
import os

import numpy as np

from .accumulate import accumulate_weights, check_view_memory
from ..cameras import Camera
from ..errors import BadInputError
from ..files.camera_files import load_cameras
from ..read_on_use import ReadOnUse
from ..files.masks import MaskSet, label_index_maps, load_masks, resize_nearest
from ..files.sam_masks import is_sam_layout, load_sam_masks

IDS_CONSISTENT = "consistent"  # an id means the same object in every view (0 background)
IDS_PER_VIEW = "per-view"  # ids mean nothing across views (SAM): associated before the lift (.associate)


@dataclasses.dataclass
class Views:
    """The views that have a mask, ready to accumulate.

    ``cameras`` are at the working resolution; ``masks.label_maps[k]`` (label ids, -1 ignored) belongs to
    ``cameras[k]``; ``source`` is where the masks came from (a folder, or None for maps made in memory);
    ``selected`` are all the cameras chosen (``every``), masked or not, at their own resolution."""

    cameras: list[Camera]  # [V] at the working resolution
    masks: MaskSet  # label maps of those views (decoded on access), label ids, colour map
    source: str | None  # the mask folder
    scale: float = 1.0
    selected: list[Camera] = dataclasses.field(default_factory=list)
    ids: str = IDS_CONSISTENT  # IDS_PER_VIEW: the label maps' ids are per view (a SAM folder, --ids per-view)

    def __len__(self) -> int:
        return len(self.cameras)

    @property
    def label_ids(self) -> np.ndarray:  # [L] int32, ascending, 0 first
        return self.masks.label_ids

    @property
    def label_maps(self) -> collections.abc.Sequence:  # [V] of int32 [H, W] label ids, -1 ignored
        return self.masks.label_maps

    def index_maps(self) -> collections.abc.Sequence:  # [V] of int16/int32 [H, W] indices into label_ids
        return label_index_maps(self.masks)

    def accumulate(self, gaussians, **options):
        """:func:`~.accumulate.accumulate_weights` over these views (``options``: backend, progress, cancel,
        memory_budget, mode)."""
        return accumulate_weights(gaussians, self.cameras, self.index_maps(), self.label_ids, **options)

    @property
    def without_mask(self) -> list[str]:
        """Image names of the selected cameras that have no mask."""
        used = set(self.masks.camera_indices)
        return [camera.image_name for index, camera in enumerate(self.selected) if index not in used]

    def subset(self, indices: collections.abc.Sequence[int]) -> Views:
        """The views ``indices`` (positions in this list), their masks still read when used."""
        indices = list(indices)
        masks = self.masks
        picked = MaskSet([masks.camera_indices[k] for k in indices], Picked(masks.label_maps, indices),
                         masks.label_ids, masks.color_map, masks.unmatched_masks,
                         [masks.files[k] for k in indices],
                         [masks.kinds[k] for k in indices] if masks.kinds else [])
        return dataclasses.replace(self, cameras=[self.cameras[k] for k in indices], masks=picked)

    def moved(self, to_world: np.ndarray) -> Views:
        """The same views of a scene stored in a local frame: ``to_world`` [4, 4] maps it to world space
        (e.g. a Blender object's matrix_world)."""
        return dataclasses.replace(self, cameras=[camera.moved(to_world) for camera in self.cameras])


class Picked(ReadOnUse):
    """Some items of a sequence (by position), each read from it when used."""

    def __init__(self, items: collections.abc.Sequence, indices: list[int]):
        self.items = items
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def _read(self, position):
        return self.items[self.indices[position]]


def select_views(cameras: list[Camera], every: int = 1) -> list[Camera]:
    """Cameras whose index in image-name order is a multiple of ``every``."""
    if every < 1:
        raise BadInputError(f"--every {every}: must be at least 1")
    ordered = sorted(cameras, key=lambda camera: camera.image_name)
    return ordered[::every]


def working_sizes(cameras: list[Camera], scale: float) -> list[tuple[int, int]]:
    """(width, height) of each camera at ``scale``; a clear error when a view would vanish."""
    if not 0 < scale < float("inf"):
        raise BadInputError(f"--scale {scale}: must be a positive finite number")
    sizes = [(round(scale * camera.width), round(scale * camera.height)) for camera in cameras]
    for camera, (width, height) in zip(cameras, sizes, strict=True):
        if width < 1 or height < 1:
            raise BadInputError(f"--scale {scale}: camera '{camera.image_name}' ({camera.width}x{camera.height}) "
                                f"would be {width}x{height} pixels")
    return sizes


def build_views(cameras, masks, *, scale: float = 1.0, every: int = 1, ignore_label=None,
                binary_threshold: int | None = None, ids: str | None = None, n_gaussians: int | None = None,
                memory_budget: int | None = None) -> Views:
    """The views of ``cameras`` (a camera file or folder, or a list of :class:`Camera`) with ``masks``.

    ``masks`` is a mask folder (matched to the cameras by image name, decoded as :mod:`..files.masks` says), or a list
    of label maps made in memory, one int32 [H, W] per camera at its own or at the working resolution (ids,
    0 background, -1 ignored), e.g. rendered from Blender proxy objects. ``binary_threshold``: read grey masks as binary
    (grey level >= threshold is foreground), e.g. anti-aliased ones. ``ids``: 'consistent' (default) or 'per-view'
    (ids mean nothing across views: :mod:`.associate` makes them consistent); a folder in SAM's layout
    (:mod:`..files.sam_masks`) is always per-view. Raises :class:`BadInputError` when the
    masks hold only background, or when two cameras share an image name; with ``n_gaussians``,
    :class:`MemoryBudgetError` before any mask is read when the views are too large to lift within
    ``memory_budget`` (bytes, default a quarter of RAM).
    """
    camera_file = os.fspath(cameras) if isinstance(cameras, (str, os.PathLike)) else None
    if camera_file is not None:
        cameras = load_cameras(cameras)
    twice = sorted(name for name, count in collections.Counter(c.image_name for c in cameras).items() if count > 1)
    if twice:
        raise BadInputError(f"{camera_file or 'cameras'}: two cameras have the image name "
                            f"{', '.join(repr(n) for n in twice[:5])}; each view needs its own name")
    selected = select_views(list(cameras), every)
    sizes = working_sizes(selected, scale)
    if ids not in (None, IDS_CONSISTENT, IDS_PER_VIEW):
        raise BadInputError(f"--ids {ids}: choose {IDS_CONSISTENT} or {IDS_PER_VIEW}")
    if n_gaussians is not None:
        check_view_memory(sizes, n_gaussians, memory_budget, camera_file or "the cameras", scale)
    if isinstance(masks, (str, os.PathLike)) and is_sam_layout(masks, selected):
        source = os.fspath(masks)
        if ids == IDS_CONSISTENT:
            raise BadInputError(f"--ids {IDS_CONSISTENT}: {source} is in SAM's layout (<image stem>/<k>.png), whose "
                                f"ids are drawn anew in every image; leave --ids out or give --ids {IDS_PER_VIEW}")
        mask_set = load_sam_masks(source, selected, sizes=sizes)
        ids = IDS_PER_VIEW
    elif isinstance(masks, (str, os.PathLike)):
        source = os.fspath(masks)
        mask_set = load_masks(source, selected, ignore_label=ignore_label, sizes=sizes,
                              binary_threshold=binary_threshold)
        ids = ids or IDS_CONSISTENT
    else:
        source = None
        mask_set = _masks_in_memory(masks, sizes)
        ids = ids or IDS_CONSISTENT
    if not np.any(mask_set.label_ids > 0):
        raise BadInputError(f"{source or 'the label maps'}: the masks hold only background (label 0): "
                            "nothing to segment")
    used = [selected[index].scaled(scale) for index in mask_set.camera_indices]
    return Views(used, mask_set, source, scale, selected, ids)


def _masks_in_memory(label_maps, sizes):
    """Label maps at the cameras' own resolution (or already at the working one), taken to the working size by
    nearest neighbour, as mask files are."""
    maps = [np.asarray(label_map, dtype=np.int32) for label_map in label_maps]
    if len(maps) != len(sizes):
        raise ValueError(f"{len(maps)} label maps for {len(sizes)} cameras")
    maps = [label_map if label_map.shape == (height, width) else resize_nearest(label_map, width, height)
            for label_map, (width, height) in zip(maps, sizes, strict=True)]
    present = {0}
    for label_map in maps:
        present |= {int(value) for value in np.unique(label_map) if value >= 0}
    label_ids = np.array(sorted(present), dtype=np.int32)
    return MaskSet(list(range(len(maps))), maps, label_ids, {}, [], [""] * len(maps))
