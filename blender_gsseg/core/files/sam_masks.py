"""Mask folders in the layout of SAM / SAM 2's automatic mask generator, read as per-view label maps.

SAM's ``amg.py`` writes, for each image, a folder ``<image stem>/`` holding one binary PNG per mask, ``0.png,
1.png, ...`` (any integers), and optionally ``metadata.csv`` (``id, area, bbox_*, point_input_*, predicted_iou,
stability_score, crop_box_*``). The ids are drawn anew in every image: they mean nothing across views, so such a
folder is always lifted with per-view ids (:mod:`..lift.associate`).

**Detection.** A mask folder is in SAM layout when it holds no mask image of its own, every folder under it that
holds images holds only integer-named ones (``<k>.png``), and at least one such folder holds ``metadata.csv`` or
is named like a camera image. A folder mixing the two layouts (plain masks beside SAM folders) is refused.

**Matching.** Each folder is matched to a camera by the folder's path as a plain mask file is (path first, then
stem; see :mod:`.masks`), e.g. ``IMG_0001/`` <-> ``images/IMG_0001.jpg``.

**One label map per view.** SAM's masks overlap (a whole object and its parts; masks of neighbouring objects
sharing a few boundary pixels). Each pixel takes the **largest** mask that covers it (the coarsest reading: an
object given whole and in parts is read whole, as one object; its parts are still each their own mask where the
whole is not given). A pixel in no mask is **unlabelled: ignored** (-1), not background: SAM leaves a pixel out
because no mask there passed its quality thresholds, and large regions (the ground, a wall) are a mask in some
views only; counting them as background would vote those Gaussians out of the instance they belong to in the
views that do mask them. (Once the instances are known, the association counts a view's unmasked pixels for the
instance they show when no mask of that view gives it: core/lift/associate.py, step 4.) Masks are read as binary (non-zero = inside); a mask covering at least
``WHOLE_IMAGE_SHARE`` of the image carries no boundary and would swallow every other mask under the
largest-wins rule: it is dropped, with one warning. Where ``metadata.csv`` gives ``predicted_iou`` and
``stability_score``, a mask whose either score is below ``MIN_QUALITY`` is dropped (SAM's own defaults keep only
masks above 0.88 / 0.95, so this only removes masks another tool let through).

In the label map a mask ``<k>.png`` has the value k + 1 (0 stays free: there is no background in this layout).
"""

from __future__ import annotations

import collections.abc
import csv
import os
import re
import warnings

import numpy as np

from ..cameras import Camera
from ..errors import BadInputError
from ..read_on_use import ReadOnUse
from .masks import MASK_EXTENSIONS, MaskSet, _decode, _name_list, assign_to_cameras, resize_nearest

KIND_SAM = "sam"
METADATA_FILE = "metadata.csv"
WHOLE_IMAGE_SHARE = 0.98  # a mask covering this share of its image is dropped
MIN_QUALITY = 0.5  # predicted_iou and stability_score floor (when metadata.csv gives them)
MAX_MASKS_PER_VIEW = 65535  # values k + 1 must stay distinct in int32 and in the per-view pass
_INTEGER_STEM = re.compile(r"^[0-9]+$")
_FAKE_EXTENSION = ".sam-folder"  # folders are matched as if they were files with this extension


def _scan(mask_dir):
    """(top-level image names, {folder rel path: [integer-named image names]}, {folder rel: other images})."""
    top, integer_named, other = [], {}, {}
    for root, dirs, names in os.walk(mask_dir):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        rel = os.path.relpath(root, mask_dir).replace(os.sep, "/")
        images = sorted(name for name in names if not name.startswith(".")
                        and os.path.splitext(name)[1].lower() in MASK_EXTENSIONS)
        if rel == os.curdir:
            top = images
            continue
        ints = [name for name in images if _INTEGER_STEM.match(os.path.splitext(name)[0])]
        rest = [name for name in images if name not in ints]
        if ints or METADATA_FILE in names:
            integer_named[rel] = ints
        if rest:
            other[rel] = rest
    return top, integer_named, other


def is_sam_layout(mask_dir: str | os.PathLike, cameras: collections.abc.Iterable[Camera] = ()) -> bool:
    """Whether ``mask_dir`` is a SAM-layout folder (see the module docstring); a folder mixing the layouts
    raises :class:`BadInputError`."""
    mask_dir = os.fspath(mask_dir)
    if not os.path.isdir(mask_dir):
        return False
    top, sam_like, other = _scan(mask_dir)
    if not sam_like:
        return False
    with_metadata = [rel for rel in sam_like if os.path.isfile(os.path.join(mask_dir, *rel.split("/"),
                                                                             METADATA_FILE))]
    stems = {os.path.splitext(str(camera.image_name).replace("\\", "/").rsplit("/", 1)[-1])[0].casefold()
             for camera in cameras}
    named_like_camera = [rel for rel in sam_like if rel.rsplit("/", 1)[-1].casefold() in stems]
    if not with_metadata and not named_like_camera:
        return False  # e.g. plain masks named 0001.png in a folder 'masks/': the ordinary layout
    if top or other:
        plain = top[:1] or [f"{rel}/{names[0]}" for rel, names in list(other.items())[:1]]
        raise BadInputError(f"{mask_dir}: mixes mask layouts: SAM folders (e.g. '{next(iter(sam_like))}/') "
                            f"beside plain mask images (e.g. '{plain[0]}'); keep one layout per folder")
    return True


def read_metadata(path: str) -> dict[int, dict[str, float]]:
    """{mask id: {column: value}} from a SAM ``metadata.csv`` (numbers only; unreadable rows are skipped)."""
    rows = {}
    try:
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                try:
                    key = int(float(row.get("id", "")))
                except ValueError:
                    continue
                values = {}
                for column, text in row.items():
                    try:
                        values[str(column).strip()] = float(text)
                    except (TypeError, ValueError):
                        pass
                rows[key] = values
    except (OSError, csv.Error, UnicodeDecodeError) as error:
        raise BadInputError(f"{path}: cannot read SAM metadata ({error})") from None
    return rows


def load_sam_masks(
    mask_dir: str | os.PathLike,
    cameras: collections.abc.Iterable[Camera],
    *,
    sizes: collections.abc.Iterable[tuple[int, int]] | None = None,  # [len(cameras)] of (width, height)
) -> MaskSet:
    """The SAM folders of ``mask_dir`` matched to ``cameras`` and read as per-view label maps (decoded when a
    view is used): value k + 1 for mask ``<k>.png`` where it is the largest mask covering the pixel, -1 where no
    mask does. ``label_ids`` lists every value present in any view (ids that mean nothing across views);
    ``kinds`` are all 'sam'. Warns about cameras without a folder, views without masks, resized and dropped masks.
    """
    mask_dir = os.fspath(mask_dir)
    cameras = list(cameras)
    if sizes is None:
        sizes = [(int(camera.width), int(camera.height)) for camera in cameras]
    sizes = [(int(width), int(height)) for width, height in sizes]
    _top, folders, _other = _scan(mask_dir)
    keys = sorted(rel + _FAKE_EXTENSION for rel in folders)
    assignment = assign_to_cameras(mask_dir, cameras, keys, "SAM mask folder",
                                   lambda key: key[:-len(_FAKE_EXTENSION)])
    used = set(assignment.values())
    unmatched = [key[:-len(_FAKE_EXTENSION)] + "/" for key in keys if key not in used]

    camera_indices = sorted(assignment)
    view_files, present, empty, resized, dropped = [], [], [], [], []
    maps = SamLabelMaps([], [])
    for camera_index in camera_indices:
        rel = assignment[camera_index][:-len(_FAKE_EXTENSION)]
        folder = os.path.join(mask_dir, *rel.split("/"))
        entries = _folder_entries(folder, folders[rel])
        if len(entries) > MAX_MASKS_PER_VIEW:
            raise BadInputError(f"{folder}: {len(entries)} masks in one view; at most {MAX_MASKS_PER_VIEW}")
        maps.views.append(entries)
        maps.sizes.append(sizes[camera_index])
        camera = cameras[camera_index]
        label_map, info = maps.read_view(len(maps.views) - 1, (int(camera.width), int(camera.height)))
        resized += info["resized"]
        dropped += info["dropped"]
        values = np.unique(label_map[label_map > 0])
        if len(values) == 0:
            empty.append(rel)
        view_files.append(folder)
        present.append(values.astype(np.int64))
    if resized:
        warnings.warn(f"{len(resized)} SAM masks differ in size from their camera and were resized by nearest "
                      f"neighbour: {_name_list(resized)}", stacklevel=2)
    if dropped:
        warnings.warn(f"{len(dropped)} SAM masks dropped: {_name_list(dropped)}", stacklevel=2)
    if empty:
        warnings.warn(f"{len(empty)} SAM views hold no usable mask (their pixels count for nothing): "
                      f"{_name_list(empty)}", stacklevel=2)
    label_ids = np.unique(np.concatenate([np.zeros(1, np.int64)] + present)).astype(np.int32)
    return MaskSet(camera_indices=camera_indices, label_maps=maps, label_ids=label_ids, color_map={},
                   unmatched_masks=unmatched, files=view_files, kinds=[KIND_SAM] * len(camera_indices))


def _folder_entries(folder, names):
    """[(mask id, path, predicted_iou or None, stability_score or None)] sorted by id."""
    metadata_path = os.path.join(folder, METADATA_FILE)
    metadata = read_metadata(metadata_path) if os.path.isfile(metadata_path) else {}
    entries = []
    seen = {}
    for name in names:
        key = int(os.path.splitext(name)[0])
        if key in seen:
            raise BadInputError(f"{folder}: two masks with id {key}: '{seen[key]}' and '{name}'")
        seen[key] = name
        row = metadata.get(key, {})
        entries.append((key, os.path.join(folder, name), row.get("predicted_iou"), row.get("stability_score")))
    return sorted(entries)


class SamLabelMaps(ReadOnUse):
    """Per view, the label map made from its SAM folder (int32 [H, W] at the working size: mask id + 1 where that
    mask is the largest covering the pixel, -1 where none does), decoded when read."""

    def __init__(self, views, sizes):
        self.views = views  # [V] of [(id, path, predicted_iou, stability_score)]
        self.sizes = sizes  # [V] of (width, height)
        self._last = (None, None)

    def __getstate__(self):
        return {**self.__dict__, "_last": (None, None)}

    def __len__(self):
        return len(self.views)

    def _read(self, view):
        if self._last[0] == view:
            return self._last[1]
        label_map = self.read_view(view)[0]
        self._last = (view, label_map)
        return label_map

    def read_view(self, view, camera_size=None):
        """(label map int32 [H, W], {'resized': [...], 'dropped': [...]})."""
        width, height = self.sizes[view]
        masks, areas, info = [], [], {"resized": [], "dropped": []}
        for key, path, predicted_iou, stability in self.views[view]:
            _kind, native, _values = _decode(path, None)  # any kind: non-zero is inside (an empty mask is all 0)
            if camera_size is not None and native.shape != (camera_size[1], camera_size[0]):
                info["resized"].append(f"{path} ({native.shape[1]}x{native.shape[0]}, camera "
                                       f"{camera_size[0]}x{camera_size[1]})")
            inside = resize_nearest(native, width, height) > 0
            area = int(np.count_nonzero(inside))
            quality = [q for q in (predicted_iou, stability) if q is not None]
            if any(q < MIN_QUALITY for q in quality):
                info["dropped"].append(f"{path} (predicted_iou/stability_score below {MIN_QUALITY})")
                continue
            if area >= WHOLE_IMAGE_SHARE * width * height:
                info["dropped"].append(f"{path} (covers the whole image)")
                continue
            if area == 0:
                continue
            masks.append((key, inside))
            areas.append(area)
        label_map = np.full((height, width), -1, dtype=np.int32)
        # largest wins: paint the smallest first, each larger mask over it (ties: the smaller id wins, painted last)
        order = sorted(range(len(masks)), key=lambda k: (areas[k], -masks[k][0]))
        for k in order:
            key, inside = masks[k]
            label_map[inside] = key + 1
        return label_map, info


IGNORED_IN_FILES = 65535  # what write_label_maps stores for an ignored pixel (re-lift with --ignore-label 65535)


def write_label_maps(
    folder,  # a StagingFolder (Commit.folder) the files are written into
    image_names: collections.abc.Sequence[str],  # [V] the cameras' image names
    label_maps: collections.abc.Sequence,  # [V] of int [H, W]: ids >= 0, -1 ignored
) -> list[str]:
    """One 16-bit grey PNG label map per view, ``<image name without extension>.png`` (the image's folders
    kept), ids as they are and ignored pixels as ``IGNORED_IN_FILES``; a folder ``gsseg segment --masks`` reads
    back (with ``--ignore-label 65535``). Returns the files' paths relative to the folder."""
    from PIL import Image

    from .commit import output_file
    from .masks import _camera_key

    written = []
    for name, label_map in zip(image_names, label_maps):
        label_map = np.asarray(label_map)
        if label_map.size and int(label_map.max()) >= IGNORED_IN_FILES:
            raise BadInputError(f"{name}: label id {int(label_map.max())} does not fit a 16-bit mask")
        array = np.where(label_map < 0, IGNORED_IN_FILES, label_map).astype(np.uint16)
        rel = _camera_key(name) + ".png"
        path = os.path.join(folder.path, *rel.split("/"))
        with output_file(path, "wb", folder) as handle:
            Image.fromarray(array).save(handle, format="PNG")
        written.append(rel)
    return written
