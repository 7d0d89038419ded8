"""2D object masks: find them, match them to cameras, decode them into integer label maps.

A mask folder holds one image per view (searched recursively; hidden files and folders are skipped). A mask
is matched to a camera by its path relative to the folder, compared without the extension
(``images/IMG_0001.jpg`` <-> ``images/IMG_0001.png``); a camera with no such mask falls back to the file stem
(``IMG_0001.jpg`` <-> ``masks/IMG_0001.png``) among the masks no camera claimed by path, preferring the
candidate that shares the most trailing folders with the image name, and then to the stem ignoring case.
Two equally good candidates, or one mask claimed by two cameras by stem, is an error.

Each image is decoded on its own terms:

* grey (8/16/32-bit) with only the values 0 and 255 (16-bit: also 0 and 65535): a binary mask, foreground = 1;
* other grey images: label maps, 0 = background, ids kept as they are;
* palette images: the palette index is the label;
* colour images: black (and fully transparent pixels) is 0; every other colour gets an id, 1, 2, ... in
  ascending 0xRRGGBB order over all colour masks of the set, so one colour is one label in every view
  (:attr:`MaskSet.color_map`);
* JPEG files (lossy, so exact values are lost) are read as binary masks: grey level >= 128 is foreground.
  A JPEG with real colour in it is refused: colour or label masks must be saved losslessly (PNG, TIFF, ...).

Label maps are int32 arrays at the working resolution (nearest neighbour), with -1 for ignored pixels.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import os
import posixpath
import stat
import warnings

import numpy as np
from PIL import Image

from ..cameras import Camera
from ..errors import BadInputError
from ..read_on_use import ReadOnUse

MASK_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
# Extensions stripped from camera image names before matching (an image name may be of any image type, and
# transforms.json often has no extension at all; "frame.001" must keep its ".001").
_CAMERA_IMAGE_EXTENSIONS = MASK_EXTENSIONS + (
    ".exr", ".hdr", ".gif", ".jp2", ".j2k", ".avif", ".heic", ".heif", ".pgm", ".ppm", ".pnm", ".pbm", ".dng",
)
MAX_LABELS = 65535
_JPEG_FORMATS = ("JPEG", "MPO")
_JPEG_THRESHOLD = 128
# A JPEG whose channels differ by more than this somewhere is a colour image, not a grey mask.
_JPEG_GREY_TOLERANCE = 48
_NAMES_IN_WARNING = 5
_BINCOUNT_LIMIT = 1 << 20
_ANTI_ALIASED_MIN_LABELS = 20  # grey masks with at least this many grey levels, ...
_ANTI_ALIASED_MAIN = 0.9  # ... two of them on this share of the pixels ...
_ANTI_ALIASED_TINY = 0.001  # ... and the others' median below this share: anti-aliased

KIND_BINARY = "binary"
KIND_LABELS = "labels"
KIND_PALETTE = "palette"
KIND_COLOR = "color"


@dataclasses.dataclass
class MaskSet:
    """Decoded masks for the cameras that have one.

    ``camera_indices[k]`` is the index into the ``cameras`` list given to :func:`load_masks` of view ``k``
    (ascending); ``label_maps[k]`` its int32 [H, W] label map at the working resolution, -1 where ignored;
    ``files[k]`` the mask file. ``label_ids`` is the sorted int32 array of every label present in any map,
    always including 0 (background, the reference label). ``color_map`` maps '#rrggbb' to the id given to
    that colour (empty without colour masks). ``unmatched_masks`` lists the mask files (relative to the mask
    folder, '/'-separated) that no camera claimed. ``kinds[k]`` says how view ``k`` was decoded: 'binary',
    'labels', 'palette' or 'color'.
    """

    camera_indices: list[int]  # [V] ascending
    label_maps: collections.abc.Sequence  # [V] of int32 [H, W] label ids, -1 ignored (LabelMaps: decoded on access)
    label_ids: np.ndarray  # [L] int32, ascending, 0 first
    color_map: dict[str, int]  # '#rrggbb' -> label id
    unmatched_masks: list[str]
    files: list[str]  # [V]
    kinds: list[str] = dataclasses.field(default_factory=list)  # [V] 'binary', 'labels', 'palette' or 'color'

    def __len__(self) -> int:
        return len(self.camera_indices)


def label_index_maps(mask_set: MaskSet, dtype: np.dtype | type | None = None) -> IndexMaps:
    """Per view, the label map as indices into ``mask_set.label_ids`` (-1 stays -1), converted when a view is
    read (a sequence, like ``mask_set.label_maps``).

    ``dtype`` defaults to int16 when the indices fit (at most 32767 labels), else int32.
    """
    return IndexMaps(mask_set.label_maps, mask_set.label_ids, dtype)


class IndexMaps(ReadOnUse):
    """``label_maps`` (label ids) as indices into ``label_ids``, each converted when it is read."""

    def __init__(
        self,
        label_maps: collections.abc.Sequence,  # [V] of int [H, W] label ids, -1 ignored
        label_ids: np.ndarray,  # [L] int, ascending
        dtype: np.dtype | type | None = None,  # of the indices; default int16 when they fit, else int32
    ):
        self.label_maps = label_maps
        self.label_ids = np.asarray(label_ids, dtype=np.int64)
        if dtype is None:
            dtype = np.int16 if len(self.label_ids) <= np.iinfo(np.int16).max else np.int32
        self.dtype = np.dtype(dtype)
        if len(self.label_ids) - 1 > np.iinfo(self.dtype).max:
            raise ValueError(f"{len(self.label_ids)} labels do not fit in {self.dtype.name} indices")
        self._dense = None
        label_ids = self.label_ids
        if len(label_ids) and 0 <= label_ids[0] and label_ids[-1] < _BINCOUNT_LIMIT:
            # Lookup table by label; its last slot (max + 1, never a label) is -1, so -1 wraps around to it.
            # Values that are not in label_ids map to -1 too.
            self._dense = np.full(int(label_ids[-1]) + 2, -1, dtype=self.dtype)
            self._dense[label_ids] = np.arange(len(label_ids), dtype=self.dtype)

    def __len__(self) -> int:
        return len(self.label_maps)

    def _read(self, view: int) -> np.ndarray:  # [H, W] indices into label_ids
        label_map = np.asarray(self.label_maps[view])
        label_ids = self.label_ids
        if self._dense is not None and (label_map.size == 0 or (int(label_map.min()) >= -1
                                                                and int(label_map.max()) <= label_ids[-1])):
            return np.take(self._dense, label_map, mode="wrap")
        index = np.searchsorted(label_ids, label_map)
        np.minimum(index, max(len(label_ids) - 1, 0), out=index)
        found = label_ids[index] == label_map if len(label_ids) else np.zeros(label_map.shape, bool)
        return np.where(found, index, -1).astype(self.dtype)


def load_masks(
    mask_dir: str | os.PathLike,
    cameras: collections.abc.Iterable[Camera],
    *,
    ignore_label: int | str | None = None,  # a label id, or a colour '#rrggbb'
    sizes: collections.abc.Iterable[tuple[int, int]] | None = None,  # [len(cameras)] of (width, height)
    binary_threshold: int | None = None,  # read grey masks as binary: grey level >= it is the object
) -> MaskSet:
    """Find, match and decode the masks in ``mask_dir`` for ``cameras``; see the module docstring.

    ``ignore_label`` (optional): pixels whose decoded label equals it are stored as -1 ("count for nothing").
    It may also be a colour '#rrggbb', which marks that colour in colour masks as ignored (and gives it no id).
    ``sizes`` (optional): one (width, height) per camera, the working resolution; default the cameras' own.
    ``binary_threshold`` (optional): grey masks (and grey ones saved as RGB) are binary, foreground where the
    grey level reaches it: for anti-aliased masks, which otherwise read as one label per grey level (a warning
    says so when the labels look like that).
    Masks whose size differs from their camera's width/height are resized anyway, with one warning.
    Cameras without a mask are skipped with one warning. Raises :class:`BadInputError` for a missing folder,
    no mask matching any camera, an ambiguous match, an unreadable mask, or too many labels.
    """
    mask_dir = os.fspath(mask_dir)
    cameras = list(cameras)
    ignore_value, ignore_color = _parse_ignore_label(ignore_label)
    if sizes is None:
        sizes = [(int(camera.width), int(camera.height)) for camera in cameras]
    else:
        sizes = [(int(width), int(height)) for width, height in sizes]
        if len(sizes) != len(cameras):
            raise ValueError(f"sizes has {len(sizes)} entries for {len(cameras)} cameras")
        for width, height in sizes:
            if width <= 0 or height <= 0:
                raise ValueError(f"bad working size {width}x{height}")

    mask_files = _find_mask_files(mask_dir)
    assignment = assign_to_cameras(mask_dir, cameras, mask_files, "mask")
    used = set(assignment.values())
    unmatched = [rel for rel in mask_files if rel not in used]

    camera_indices = sorted(assignment)
    files, kinds, sizes_used = [], [], []
    resized = []
    color_views = []  # (view number, its colour table)
    present = []  # per view, the sorted labels in its map (colour views: filled in with the colour table)
    grey_pixels = np.zeros(256, dtype=np.int64)  # pixels per value over the 8-bit grey label masks
    # One pass decodes every mask to learn its labels (and colours); the maps themselves are decoded again
    # when a view is used (LabelMaps), so a long capture never holds every map in memory.
    for view, camera_index in enumerate(camera_indices):
        camera = cameras[camera_index]
        rel = assignment[camera_index]
        path = os.path.join(mask_dir, *rel.split("/"))
        kind, native, values = _decode(path, binary_threshold)
        height, width = native.shape
        if (width, height) != (int(camera.width), int(camera.height)):
            resized.append(f"{rel} ({width}x{height}, camera {int(camera.width)}x{int(camera.height)})")
        array = resize_nearest(native, *sizes[camera_index])
        if kind == KIND_COLOR:
            color_views.append((view, _unique_inverse(array)[0]))
        elif values is None or array is not native:
            values = _present_values(array)
        if kind == KIND_LABELS and native.dtype == np.uint8:  # the file as stored, before any resizing
            grey_pixels += np.bincount(native.ravel(), minlength=256)
        files.append(path)
        kinds.append(kind)
        sizes_used.append(sizes[camera_index])
        present.append(values)
    _warn_if_anti_aliased(mask_dir, grey_pixels)
    if resized:
        warnings.warn(f"{len(resized)} masks differ in size from their camera and were resized by nearest "
                      f"neighbour: {_name_list(resized)}", stacklevel=2)

    colors = np.zeros(0, dtype=np.uint32)
    if color_views:
        colors = np.unique(np.concatenate([table for _, table in color_views]))
        colors = colors[colors != 0]
        if ignore_color is not None:
            colors = colors[colors != ignore_color]
        for view, table in color_views:
            present[view] = np.sort(_color_lut(table, colors, ignore_color)).astype(np.int64)
            present[view] = present[view][present[view] >= 0]
        if len(set(kinds)) > 1:
            warnings.warn(f"{mask_dir}: colour masks are mixed with {', '.join(sorted(set(kinds) - {KIND_COLOR}))}"
                          " masks; their ids share one number space", stacklevel=2)
    color_map = {f"#{int(color):06x}": number for number, color in enumerate(colors.tolist(), start=1)}

    if ignore_value is not None:
        present = [values[values != ignore_value] for values in present]
    label_ids = np.unique(np.concatenate([np.zeros(1, np.int64)] + [np.asarray(v, np.int64) for v in present]))
    if len(label_ids) > MAX_LABELS:
        raise BadInputError(f"{mask_dir}: the masks hold {len(label_ids)} distinct labels; "
                            f"at most {MAX_LABELS} are supported")
    maps = LabelMaps(files, sizes_used, colors, ignore_value, ignore_color, binary_threshold)
    return MaskSet(camera_indices=camera_indices, label_maps=maps, label_ids=label_ids.astype(np.int32),
                   color_map=color_map, unmatched_masks=unmatched, files=files, kinds=kinds)


class LabelMaps(ReadOnUse):
    """The label maps of a mask folder's views, each decoded when it is read (int32 [H, W] at the working
    resolution, -1 where ignored), by the rules :func:`load_masks` scanned them with. The last map read is kept,
    so reading the same view twice in a row decodes it once."""

    def __init__(
        self,
        files: collections.abc.Iterable[str],  # [V]
        sizes: collections.abc.Iterable[tuple[int, int]],  # [V] of (width, height)
        colors: np.ndarray,  # [C] uint32 packed 0xRRGGBB, ascending
        ignore_value: int | None = None,  # a label stored as -1
        ignore_color: int | None = None,  # a packed 0xRRGGBB colour stored as -1
        binary_threshold: int | None = None,  # grey masks read as binary at this grey level
    ):
        self.files = list(files)
        self.sizes = list(sizes)  # (width, height) per view
        self.colors = colors  # uint32 [C]: the folder's colour table (colour k has id k + 1)
        self.ignore_value = ignore_value
        self.ignore_color = ignore_color
        self.binary_threshold = binary_threshold
        self._last = (None, None)

    def __getstate__(self):  # sent to another process (a cluster worker): without the map decoded last
        return {**self.__dict__, "_last": (None, None)}

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, view: int) -> np.ndarray:  # int32 [H, W]
        if self._last[0] == view:
            return self._last[1]
        kind, native, _values = _decode(self.files[view], self.binary_threshold)
        array = resize_nearest(native, *self.sizes[view])
        if kind == KIND_COLOR:
            table, local = _unique_inverse(array)
            array = np.take(_color_lut(table, self.colors, self.ignore_color), local)
        else:
            array = array.astype(np.int32)  # a copy: Pillow's arrays are read-only
        if self.ignore_value is not None:
            array[array == self.ignore_value] = -1
        self._last = (view, array)
        return array


# --- finding and matching -------------------------------------------------------------------------------


def read_label_image(path: str | os.PathLike) -> np.ndarray:  # int32 [H, W]
    """One label image as int32 [H, W], decoded by the same rules as a mask folder (binary {0,255} -> {0,1},
    grey label maps as stored, palette index). Colour images need a folder's shared colour table: refused."""
    kind, array, _values = _decode(os.fspath(path))
    if kind == KIND_COLOR:
        raise BadInputError(f"{path}: a colour image; save label images as grey or palette PNGs")
    return np.asarray(array, dtype=np.int32)


def _find_mask_files(mask_dir):
    """Relative '/'-separated paths of the mask images under ``mask_dir``, sorted."""
    if not os.path.isdir(mask_dir):
        raise BadInputError(f"{mask_dir}: no such folder" if not os.path.exists(mask_dir)
                            else f"{mask_dir}: not a folder")
    found = []
    for root, dirs, names in os.walk(mask_dir):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        rel_root = os.path.relpath(root, mask_dir)
        for name in names:
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in MASK_EXTENSIONS:
                continue
            if not regular_file(os.path.join(root, name)):
                continue
            rel = name if rel_root == os.curdir else os.path.join(rel_root, name)
            found.append(rel.replace(os.sep, "/"))
    if not found:
        raise BadInputError(f"{mask_dir}: no mask images found (looked for {', '.join(MASK_EXTENSIONS)})")
    return sorted(found)


def regular_file(path) -> bool:
    """Whether ``path`` is a regular file (through links); anything else named like an image (a FIFO, which
    would block the read forever, a device, a socket, a broken link) is skipped with a warning."""
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        regular = False
    if not regular:
        warnings.warn(f"{path}: skipped, not a regular file")
    return regular


def _mask_key(rel):
    return posixpath.splitext(rel)[0]


def _camera_key(name):
    name = str(name).replace("\\", "/")
    if name:
        name = posixpath.normpath(name).lstrip("/")
    base, ext = posixpath.splitext(name)
    return base if ext.lower() in _CAMERA_IMAGE_EXTENSIONS else name


def _common_suffix(a, b):
    count = 0
    for x, y in zip(reversed(a), reversed(b)):
        if x != y:
            break
        count += 1
    return count


def _match(mask_dir, cameras, mask_files):
    """{camera index: mask rel path}: by relative path first, then by stem among the masks left over."""
    by_key, by_stem, by_folded_stem = {}, {}, {}
    for rel in mask_files:
        key = _mask_key(rel)
        stem = key.rsplit("/", 1)[-1]
        by_key.setdefault(key, []).append(rel)
        by_stem.setdefault(stem, []).append(rel)
        by_folded_stem.setdefault(stem.casefold(), []).append(rel)

    assignment = {}
    keys = [_camera_key(camera.image_name) for camera in cameras]
    for index, key in enumerate(keys):
        candidates = by_key.get(key, [])
        if len(candidates) > 1:
            raise BadInputError(f"{mask_dir}: camera image '{cameras[index].image_name}' matches two mask files: "
                                f"'{candidates[0]}' and '{candidates[1]}'; remove one")
        if candidates:
            assignment[index] = candidates[0]
    claimed = set(assignment.values())

    by_stem_claims = {}
    for index, key in enumerate(keys):
        if index in assignment:
            continue
        parts = key.split("/")
        candidates = [rel for rel in by_stem.get(parts[-1], []) if rel not in claimed]
        fold = str
        if not candidates:  # last resort: the stem ignoring case (IMG_0001.JPG <-> img_0001.png)
            fold = str.casefold
            parts = [fold(part) for part in parts]
            candidates = [rel for rel in by_folded_stem.get(parts[-1], []) if rel not in claimed]
        if not candidates:
            continue
        scores = [_common_suffix(parts, fold(_mask_key(rel)).split("/")) for rel in candidates]
        best = max(scores)
        tied = [rel for rel, score in zip(candidates, scores, strict=True) if score == best]
        if len(tied) > 1:
            raise BadInputError(f"{mask_dir}: camera image '{cameras[index].image_name}' matches two mask files by "
                                f"name: '{tied[0]}' and '{tied[1]}'; arrange the masks in the same folders as "
                                "the images, or remove one")
        assignment[index] = tied[0]
        by_stem_claims.setdefault(tied[0], []).append(index)
    for rel, indices in by_stem_claims.items():
        if len(indices) > 1:
            raise BadInputError(f"{mask_dir}: mask '{rel}' matches two camera images by name: "
                                f"'{cameras[indices[0]].image_name}' and '{cameras[indices[1]].image_name}'; "
                                "arrange the masks in the same folders as the images")
    users = {}
    for index, rel in assignment.items():
        users.setdefault(rel, []).append(index)
    for rel, indices in users.items():  # e.g. cameras 'a.jpg' and 'a.png': one mask cannot serve two views
        if len(indices) > 1:
            raise BadInputError(f"{mask_dir}: mask '{rel}' would be used for two cameras: "
                                f"'{cameras[indices[0]].image_name}' and '{cameras[indices[1]].image_name}'")
    return assignment


def assign_to_cameras(mask_dir, cameras, keys, what, shown=lambda key: key):
    """{camera index: key} for the ``keys`` (paths of ``what``s in ``mask_dir``, shown to the user by ``shown``)
    that match a camera: refused in one line when none does, one warning naming the cameras that have none."""
    assignment = _match(mask_dir, cameras, keys)
    if not assignment:
        example = f" (e.g. camera image '{cameras[0].image_name}', {what.split()[-1]} '{shown(keys[0])}')" \
            if cameras and keys else ""
        raise BadInputError(f"{mask_dir}: no {what} matches any camera image name{example}")
    missing = [camera.image_name for index, camera in enumerate(cameras) if index not in assignment]
    if missing:
        warnings.warn(f"{len(missing)} of {len(cameras)} cameras have no {what} in {mask_dir} and are skipped: "
                      f"{_name_list(missing)}", stacklevel=3)
    return assignment


def _name_list(names):
    shown = ", ".join(names[:_NAMES_IN_WARNING])
    return shown + (f", ... ({len(names) - _NAMES_IN_WARNING} more)" if len(names) > _NAMES_IN_WARNING else "")


# --- decoding ---------------------------------------------------------------------------------------------


def _parse_ignore_label(ignore_label):
    """(integer label or None, packed 0xRRGGBB colour or None)."""
    if ignore_label is None:
        return None, None
    if isinstance(ignore_label, str):
        text = ignore_label.strip()
        if text.startswith("#") and len(text) == 7:
            try:
                return None, int(text[1:], 16)
            except ValueError:
                pass
        try:
            return _parse_ignore_label(int(text))
        except ValueError:
            raise BadInputError(f"ignore label {ignore_label!r}: expected an integer or a colour '#rrggbb'") from None
    if isinstance(ignore_label, (bool, np.bool_)) or not isinstance(ignore_label, (int, np.integer)):
        raise BadInputError(f"ignore label {ignore_label!r}: expected an integer or a colour '#rrggbb'")
    info = np.iinfo(np.int32)
    if not info.min <= int(ignore_label) <= info.max:
        raise BadInputError(f"ignore label {ignore_label}: outside the int32 range of label ids")
    return int(ignore_label), None


def _warn_if_anti_aliased(mask_dir, grey_pixels):
    """Grey masks where two grey levels hold nearly every pixel and many others share the rest, each on a few
    pixels (region borders), are anti-aliased binary masks, not label maps."""
    present = np.flatnonzero(grey_pixels)
    if len(present) < _ANTI_ALIASED_MIN_LABELS:
        return
    counts = np.sort(grey_pixels[present])[::-1]
    total = counts.sum()
    if counts[:2].sum() >= _ANTI_ALIASED_MAIN * total and np.median(counts[2:]) < _ANTI_ALIASED_TINY * total:
        warnings.warn(f"{mask_dir}: the grey masks hold {len(present) - 1} labels besides 0, all but one of them "
                      f"on a few pixels along region borders: they look like anti-aliased binary masks; to read "
                      f"them as binary give --binary-threshold 128", stacklevel=3)


def _decode(path, binary_threshold=None):
    """(kind, array, values): 'binary'/'labels' -> uint8/uint16/int32 labels, 'palette' -> uint8 indices,
    'color' -> uint32 packed 0xRRGGBB (0 for black and fully transparent pixels). ``values`` is the sorted
    array of distinct labels in ``array`` where decoding found it anyway, else None."""
    try:
        with Image.open(path) as image:
            image.load()  # the first frame of a multi-frame file
            return _decode_image(path, image, binary_threshold)
    except BadInputError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        raise BadInputError(f"{path}: cannot read the mask image ({error})") from None


def _decode_image(path, image, binary_threshold=None):
    mode = image.mode
    lossy = image.format in _JPEG_FORMATS
    if mode == "1":
        return KIND_BINARY, np.asarray(image).astype(np.uint8), None
    if mode in ("P", "PA"):
        array = np.asarray(image)
        return KIND_PALETTE, np.ascontiguousarray(array[..., 0] if array.ndim == 3 else array), None
    if mode in ("L", "LA", "La") or mode.startswith("I") or mode == "F":
        array = np.asarray(image)
        if array.ndim == 3:
            array = array[..., 0]
        return _decode_grey(path, array, lossy, binary_threshold)
    if mode not in ("RGB", "RGBA", "RGBX", "RGBa"):
        image = image.convert("RGBA" if "A" in mode else "RGB")
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] < 3:
        raise BadInputError(f"{path}: unsupported image mode {mode!r} for a mask")
    rgb = array[..., :3]
    if binary_threshold is not None:
        return KIND_BINARY, (rgb.max(axis=2) >= binary_threshold).astype(np.uint8), None
    if lossy:
        spread = (rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)).max() if rgb.size else 0
        if spread > _JPEG_GREY_TOLERANCE:
            raise BadInputError(f"{path}: colour JPEG masks cannot be decoded exactly (JPEG is lossy); "
                                "save colour or label masks as PNG")
        return KIND_BINARY, (rgb.max(axis=2) >= _JPEG_THRESHOLD).astype(np.uint8), None
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    if image.mode in ("RGBA", "RGBa"):
        packed[array[..., 3] == 0] = 0
    return KIND_COLOR, packed, None


def _decode_grey(path, array, lossy, binary_threshold=None):
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise BadInputError(f"{path}: floating-point mask with non-integer values; expected label ids")
        array = array.astype(np.int64)
    if array.dtype.kind == "i" and array.size and int(array.min()) < 0:
        raise BadInputError(f"{path}: negative values in a label mask")
    if array.dtype.kind == "i" and array.size and int(array.max()) > np.iinfo(np.int32).max:
        raise BadInputError(f"{path}: label ids above {np.iinfo(np.int32).max}")
    if binary_threshold is not None or lossy:
        threshold = _JPEG_THRESHOLD if binary_threshold is None else binary_threshold
        return KIND_BINARY, (array >= threshold).astype(np.uint8), None
    values = _present_values(array)
    top = values[-1] if len(values) else 0
    # 65535 is the white of 16-bit files (which older Pillow reads as 32-bit 'I').
    binary_tops = (255,) if array.dtype == np.uint8 else (255, 65535)
    if len(values) <= 2 and top in binary_tops and (len(values) == 1 or values[0] == 0):
        return KIND_BINARY, (array == top).astype(np.uint8), (values == top).astype(np.int64)
    if array.dtype.kind not in "u" and array.dtype != np.int32:
        array = array.astype(np.int32)
    return KIND_LABELS, array, values


def _present_values(array):
    """Sorted distinct values of a non-negative integer array."""
    flat = array.ravel()
    if flat.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.itemsize <= 2 or int(flat.max()) < _BINCOUNT_LIMIT:
        return np.flatnonzero(np.bincount(flat))
    return np.unique(flat).astype(np.int64)


def _unique_inverse(packed):
    """(sorted distinct values, int32 map of indices into them); faster than np.unique(return_inverse) on masks
    with few colours: the table is guessed from a sample, then completed with whatever the sample missed."""
    flat = packed.ravel()
    if flat.size == 0:
        return np.zeros(0, dtype=packed.dtype), np.zeros(packed.shape, dtype=np.int32)
    table = np.unique(flat[::61])
    index = np.searchsorted(table, flat)
    np.minimum(index, len(table) - 1, out=index)
    missing = table[index] != flat
    if missing.any():
        table = np.union1d(table, flat[missing])
        index = np.searchsorted(table, flat)
    return table, index.astype(np.int32).reshape(packed.shape)


def _color_lut(table, colors, ignore_color):
    """int32 id of each colour of ``table``: 0 for black, k + 1 for ``colors[k]``, -1 for the ignored colour."""
    lut = (np.searchsorted(colors, table) + 1).astype(np.int32)
    lut[table == 0] = 0
    if ignore_color is not None:
        lut[table == ignore_color] = -1
    return lut


def _nearest_indices(source, target):
    """Source index of each target pixel: floor((t + 0.5) * source / target), pixel centres to pixel centres."""
    t = np.arange(target, dtype=np.int64)
    return np.minimum((2 * t + 1) * source // (2 * target), source - 1)


def resize_nearest(array, width, height):
    if array.shape == (height, width):
        return array
    rows = _nearest_indices(array.shape[0], height)
    cols = _nearest_indices(array.shape[1], width)
    return array[rows[:, None], cols[None, :]]
