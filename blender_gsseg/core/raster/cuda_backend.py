"""CUDA backend: the accumulator and two renders as CuPy RawKernels (blender_gsseg/cuda/gsseg_kernels.cu).

The kernels follow :mod:`.projection` and :mod:`.rasterize` operation by operation, in float32, compiled with
``--fmad=false`` so that no multiply-add is fused where numpy rounds twice; the CPU backend is the reference and
tests/test_cuda.py compares the two. Per camera:

1. ``gsseg_project``: 2D means, conics, radii, tile rectangles and a depth key ``depth bits << 32 | index`` per
   Gaussian (culled ones get the largest key);
2. the depth keys are sorted; they are unique, so equal depths keep Gaussian order without a stable sort;
3. tiles touched are gathered in depth order and scanned; ``gsseg_duplicate_keys*`` writes one key
   ``tile * V + depth rank`` per (tile, Gaussian) (V = visible Gaussians; 32-bit keys when they fit), again
   unique, and they are sorted: tile, then depth, then Gaussian index, as :func:`.rasterize.sorted_tile_pairs`;
4. ``gsseg_tile_ranges*`` finds each tile's run; the raster kernels run one 16x16 block per tile.

The accumulation keeps ``A[label chunk, N]`` on the device for all views and copies it to the host at the end;
labels are processed in chunks so that A stays within ``max_weight_bytes``. Importing this module never needs
CuPy; :class:`CudaBackend` raises :class:`.errors.CudaUnavailableError` when CuPy or a device is missing.
"""

import collections.abc
import dataclasses
import os
import weakref

import numpy as np

from . import projection
from ..errors import CancelledError, CudaUnavailableError, GssegError

KERNEL_FILE = "gsseg_kernels.cu"
KERNEL_NAMES = (
    "gsseg_cov3d", "gsseg_project", "gsseg_gather_touched", "gsseg_duplicate_keys32", "gsseg_duplicate_keys64",
    "gsseg_tile_ranges32", "gsseg_tile_ranges64", "gsseg_accumulate_f32", "gsseg_accumulate_f64",
    "gsseg_render_colour", "gsseg_render_alpha_depth",
)
THREADS_1D = 256
TILE = 16
# Default bound on the device-side weight matrix A (one label chunk x N); also at most a quarter of free memory.
DEFAULT_MAX_WEIGHT_BYTES = 2 << 30

_i32 = np.int32


def _import_cupy():
    import cupy

    return cupy


def cuda_device_count():
    """Number of CUDA devices CuPy sees; 0 when CuPy is missing or the driver/runtime fails. Never raises."""
    try:
        cupy = _import_cupy()
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # ImportError, CUDARuntimeError, a broken install: all mean "no device"
        return 0


def kernel_source_path():
    """The kernel source, shipped inside the package (``blender_gsseg/cuda/``) in every layout."""
    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(package, "cuda", KERNEL_FILE)
    if not os.path.isfile(path):
        raise CudaUnavailableError(f"CUDA kernel source {KERNEL_FILE} not found (looked in {path})")
    return path


def _float_literal(value):
    """A C float literal that rounds to exactly np.float32(value)."""
    return repr(float(np.float32(value))) + "f"


def compile_options():
    """NVRTC options: no fused multiply-add (numpy rounds every operation) and projection.py's constants."""
    if projection.TILE_SIZE != TILE:
        raise GssegError(f"the CUDA kernels are built for {TILE}x{TILE} tiles, projection uses {projection.TILE_SIZE}")
    constants = {
        "GSSEG_NEAR_PLANE": projection.NEAR_PLANE,
        "GSSEG_LOW_PASS": projection.LOW_PASS,
        "GSSEG_MIN_EIGEN_GAP": projection.MIN_EIGEN_GAP,
        "GSSEG_RADIUS_SIGMAS": projection.RADIUS_SIGMAS,
        "GSSEG_MAX_ALPHA": projection.MAX_ALPHA,
        "GSSEG_MIN_ALPHA": projection.MIN_ALPHA,
        "GSSEG_MIN_TRANSMITTANCE": projection.MIN_TRANSMITTANCE,
    }
    return ("--fmad=false",) + tuple(f"-D{name}={_float_literal(value)}" for name, value in constants.items())


def camera_params(camera):
    """float32 [20]: rotation (row-major), translation, fx, fy, cx, cy and the four clamp limits, each rounded
    exactly as :func:`.projection.project_gaussians` rounds it (layout: CAM_* in the kernel source)."""
    f32 = np.float32
    view = np.asarray(camera.world_to_camera).astype(f32)
    width, height = camera.width, camera.height
    tan_fovx, tan_fovy = f32(0.5 * width / camera.fx), f32(0.5 * height / camera.fy)
    slack = projection.FRUSTUM_CLAMP - 1.0
    lim_x_pos = f32((width - camera.cx) / camera.fx) + f32(slack) * tan_fovx
    lim_x_neg = f32(camera.cx / camera.fx) + f32(slack) * tan_fovx
    lim_y_pos = f32((height - camera.cy) / camera.fy) + f32(slack) * tan_fovy
    lim_y_neg = f32(camera.cy / camera.fy) + f32(slack) * tan_fovy
    params = np.empty(20, dtype=f32)
    params[0:9] = view[:3, :3].ravel()
    params[9:12] = view[:3, 3]
    params[12:16] = [f32(camera.fx), f32(camera.fy), f32(camera.cx), f32(camera.cy)]
    params[16:20] = [lim_x_neg, lim_x_pos, lim_y_neg, lim_y_pos]
    return params


def tile_grid(camera):
    return ((camera.width + TILE - 1) // TILE, (camera.height + TILE - 1) // TILE)


def _blocks(count):
    return (max(1, (int(count) + THREADS_1D - 1) // THREADS_1D),)


class DeviceScene:
    """The Gaussians on the device (means, 3D covariances, opacities, optionally base colours) and the per-camera
    work buffers, reused from view to view."""

    def __init__(self, backend, gaussians, colours=False):
        cp = backend.cp
        f32 = np.float32
        n = len(gaussians)
        self.n = n
        self.means = cp.asarray(np.ascontiguousarray(gaussians.means, dtype=f32))
        self.opacities = cp.asarray(np.ascontiguousarray(gaussians.opacities, dtype=f32))
        self.cov6 = cp.empty((n, 6), dtype=f32)
        if n:
            scales = cp.asarray(np.ascontiguousarray(gaussians.scales, dtype=f32))
            rotations = cp.asarray(np.ascontiguousarray(gaussians.rotations, dtype=f32))
            backend.kernels["gsseg_cov3d"](_blocks(n), (THREADS_1D,), (_i32(n), scales, rotations, self.cov6))
            del scales, rotations
        self.colours = None
        if colours:
            self.add_colours(backend, gaussians)
        self.means2d = cp.empty((n, 2), dtype=f32)
        self.conic_opacity = cp.empty((n, 4), dtype=f32)
        self.depths = cp.empty(n, dtype=f32)
        self.rects = cp.empty((n, 4), dtype=np.int32)
        self.touched = cp.empty(n, dtype=np.int32)
        self.depth_keys = cp.empty(n, dtype=np.uint64)
        self.touched_sorted = cp.empty(n, dtype=np.int32)
        self.counts = cp.zeros(2, dtype=np.int64)

    def add_colours(self, backend, gaussians):
        if self.colours is None:
            self.colours = backend.cp.asarray(np.ascontiguousarray(gaussians.base_colors, dtype=np.float32))


@dataclasses.dataclass
class BinnedView:
    """One camera's sorted (tile, Gaussian) list: ``ranges`` int32 [tiles, 2], ``pair_gid`` int32 [pairs]."""

    ranges: object
    pair_gid: object
    n_pairs: int
    n_visible: int
    grid: tuple
    width: int
    height: int


# How the accumulation kernel sums a tile's weights before the global atomics (the kernel's `aggregate`).
AGGREGATION = {"none": 0, "warp": 1, "shared": 2}
# Measured by bench/gpu.py on an H200 (README): aggregation issues 11-22x fewer global atomics but runs 1.1-1.5x
# longer, since Hopper's fire-and-forget global reductions are not the bottleneck of the walk; so none is the
# default, and the others stay selectable for GPUs whose atomics cost more.
DEFAULT_AGGREGATION = "none"


def aggregation_mode(aggregate):
    """The kernel's code for ``aggregate``: a name of AGGREGATION, True (the default kind) or False ("none")."""
    if aggregate is True:
        aggregate = DEFAULT_AGGREGATION
    elif aggregate is False:
        aggregate = "none"
    if aggregate not in AGGREGATION:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATION)} (or True/False), not {aggregate!r}")
    return AGGREGATION[aggregate]


class CudaBackend:
    """CUDA accumulation and renders. ``aggregate``: how weights are summed per (label, Gaussian) in shared memory
    before the global atomics: "warp" (warp shuffles), "shared" (shared-memory atomics) or "none" (one global
    atomicAdd per contribution, as FlashSplat); True means the default. ``accum_dtype``: float32 (as the CPU
    backend returns) or float64 for the device-side sums. ``max_weight_bytes``: bound on A's device memory."""

    name = "cuda"

    def __init__(self, aggregate=True, accum_dtype=np.float32, max_weight_bytes=None, device=None):
        try:
            cp = _import_cupy()
        except Exception as error:
            raise CudaUnavailableError(
                f"CuPy is not available ({error}); install cupy-cuda12x or cupy-cuda13x") from None
        try:
            count = int(cp.cuda.runtime.getDeviceCount())
        except Exception as error:
            raise CudaUnavailableError(f"no usable CUDA driver/device ({error})") from None
        if count == 0:
            raise CudaUnavailableError("CuPy found no CUDA device")
        self.cp = cp
        self.device = device
        self.aggregate = aggregation_mode(aggregate)
        self.accum_dtype = np.dtype(accum_dtype)
        if self.accum_dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError("accum_dtype must be float32 or float64")
        self.max_weight_bytes = max_weight_bytes
        path = kernel_source_path()
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
        try:
            with self._device_context():
                self.module = cp.RawModule(code=source, options=compile_options())
                self.kernels = {name: self.module.get_function(name) for name in KERNEL_NAMES}
        except GssegError:
            raise
        except Exception as error:
            raise CudaUnavailableError(f"the CUDA kernels ({path}) failed to compile or load: {error}") from None
        self._scene_cache = None
        self.force_wide_keys = False  # 64-bit tile keys even where 32 bits suffice (tests both kernel variants)

    # ----- plumbing
    def _device_context(self):
        if self.device is None:
            return _NullContext()
        return self.cp.cuda.Device(self.device)

    def upload(self, gaussians, colours=False):
        """The scene on the device (cached for the last Gaussians object seen, while it is alive)."""
        cached = self._scene_cache
        if cached is not None and cached[0]() is gaussians and cached[1].n == len(gaussians):
            scene = cached[1]
            if colours:
                scene.add_colours(self, gaussians)
            return scene
        self._scene_cache = None
        scene = DeviceScene(self, gaussians, colours)
        try:
            self._scene_cache = (weakref.ref(gaussians), scene)
        except TypeError:  # not weak-referenceable: no caching
            pass
        return scene

    def clear_cache(self):
        self._scene_cache = None

    def bin_view(self, scene, camera, include=None):
        """Project, sort and bin the scene for ``camera``; ``include`` (bool [N]) limits the Gaussians drawn."""
        cp, k = self.cp, self.kernels
        n = scene.n
        grid = tile_grid(camera)
        n_tiles = grid[0] * grid[1]
        ranges = cp.zeros((n_tiles, 2), dtype=np.int32)
        empty = BinnedView(ranges, cp.zeros(0, dtype=np.int32), 0, 0, grid, camera.width, camera.height)
        if n == 0:
            return empty
        params = cp.asarray(camera_params(camera))
        include_dev = None
        if include is not None:
            include = np.asarray(include)
            if include.shape != (n,):
                raise ValueError(f"include mask has shape {include.shape}, expected ({n},)")
            include_dev = cp.asarray(np.ascontiguousarray(include, dtype=np.uint8))
        k["gsseg_project"](_blocks(n), (THREADS_1D,), (
            _i32(n), scene.means, scene.cov6, scene.opacities, include_dev, params, _i32(grid[0]), _i32(grid[1]),
            scene.means2d, scene.conic_opacity, scene.depths, scene.rects, scene.touched, scene.depth_keys))
        sorted_depth_keys = cp.sort(scene.depth_keys)
        scene.counts.fill(0)
        k["gsseg_gather_touched"](_blocks(n), (THREADS_1D,), (
            _i32(n), sorted_depth_keys, scene.touched, scene.touched_sorted, scene.counts))
        offsets = cp.cumsum(scene.touched_sorted, dtype=np.int64)
        scene.counts[1:2] = offsets[-1:]
        n_visible, n_pairs = (int(value) for value in cp.asnumpy(scene.counts))
        if n_pairs == 0:
            return empty
        if n_pairs >= 2**31:
            raise GssegError(f"{camera.image_name}: {n_pairs} tile/Gaussian pairs, over the kernels' int32 range "
                             f"(render at a lower resolution)")
        wide = self.force_wide_keys or n_tiles * n_visible > 2**32
        keys = cp.empty(n_pairs, dtype=np.uint64 if wide else np.uint32)
        suffix = "64" if wide else "32"
        k["gsseg_duplicate_keys" + suffix](_blocks(n_visible), (THREADS_1D,), (
            _i32(n_visible), sorted_depth_keys, scene.rects, offsets, _i32(grid[0]), keys))
        del offsets
        keys = cp.sort(keys)
        pair_gid = cp.empty(n_pairs, dtype=np.int32)
        k["gsseg_tile_ranges" + suffix](_blocks(n_pairs), (THREADS_1D,), (
            _i32(n_pairs), keys, _i32(n_visible), sorted_depth_keys, ranges, pair_gid))
        return BinnedView(ranges, pair_gid, n_pairs, n_visible, grid, camera.width, camera.height)

    def _upload_labels(self, index_map):
        """The label-index map as a device int32 [H, W]; small integer maps travel as they are and widen there."""
        index_map = np.ascontiguousarray(index_map)
        if index_map.dtype.kind in "iu" and index_map.dtype.itemsize <= 2:
            device = self.cp.asarray(index_map)
            return device.astype(np.int32) if device.dtype != np.int32 else device
        return self.cp.asarray(index_map.astype(np.int32, copy=False))

    def _label_chunk(self, n_labels, n_gaussians):
        limit = self.max_weight_bytes
        if limit is None:
            limit = DEFAULT_MAX_WEIGHT_BYTES
            try:
                free, _total = self.cp.cuda.runtime.memGetInfo()
                limit = min(limit, free // 4)
            except Exception:
                pass
        per_label = max(1, n_gaussians) * self.accum_dtype.itemsize
        return int(max(1, min(n_labels, limit // per_label)))

    # ----- the backend interface
    def accumulate(self, gaussians, views, n_labels, progress=None, cancel=None, dtype=np.float32, *, aggregate=None,
                   stats=None):
        """float32 [n_labels, N]: A[e, i] = sum over views and pixels with label index e of w_i(pixel).

        ``progress(done, total)`` after each view (per label chunk), ``cancel()`` before each: True raises
        :class:`.errors.CancelledError`. ``aggregate`` overrides the backend's setting; ``stats`` (a dict) receives
        ``global_atomics`` (atomicAdds to A issued), ``overflow_tiles`` (tile-views with more distinct labels than
        the aggregation's slots, done the naive way), ``pairs`` (tile/Gaussian pairs) and ``label_chunks``.
        """
        cp = self.cp
        aggregate = self.aggregate if aggregate is None else aggregation_mode(aggregate)
        if not isinstance(views, collections.abc.Sequence):
            views = list(views)  # a sequence (e.g. ViewPairs) reads each view's map only when it is used
        n, n_labels = len(gaussians), int(n_labels)
        result = np.zeros((n_labels, n), dtype=np.float32)
        with self._device_context():
            chunk = self._label_chunk(n_labels, n)
            chunks = [(lo, min(chunk, n_labels - lo)) for lo in range(0, n_labels, chunk)] or [(0, 0)]
            total = len(views) * len(chunks)
            scene = self.upload(gaussians) if n and n_labels else None
            kernel = self.kernels["gsseg_accumulate_f64" if self.accum_dtype == np.float64 else "gsseg_accumulate_f32"]
            counter = cp.zeros(2, dtype=np.uint64) if stats is not None else None
            pairs = 0
            done = 0
            for lo, count in chunks:
                weights = cp.zeros((count, n), dtype=self.accum_dtype) if scene is not None else None
                for camera, index_map in views:
                    if cancel is not None and cancel():
                        raise CancelledError("cancelled")
                    if weights is not None and _has_labels(index_map, lo, count, len(chunks) > 1):
                        if index_map.shape != (camera.height, camera.width):
                            raise ValueError(f"{camera.image_name}: label map {index_map.shape} does not match the "
                                             f"camera {camera.height}x{camera.width}")
                        binned = self.bin_view(scene, camera)
                        pairs += binned.n_pairs
                        if binned.n_pairs:
                            labels = self._upload_labels(index_map)
                            kernel(binned.grid, (TILE, TILE), (
                                binned.ranges, binned.pair_gid, scene.means2d, scene.conic_opacity, labels,
                                _i32(camera.width), _i32(camera.height), _i32(binned.grid[0]), _i32(lo),
                                _i32(count), _i32(n), weights, _i32(aggregate), counter))
                    done += 1
                    if progress is not None:
                        progress(done, total)
                if weights is not None:
                    host = cp.asnumpy(weights if weights.dtype == np.float32 else weights.astype(np.float32))
                    result[lo:lo + count] = host
                    del weights
            if stats is not None:
                counts = cp.asnumpy(counter)
                stats["global_atomics"] = int(counts[0])
                stats["overflow_tiles"] = int(counts[1])
                stats["pairs"] = pairs
                stats["label_chunks"] = len(chunks) if n_labels else 0
        return result.astype(dtype, copy=False)

    # ----- renders
    def render_colour_device(self, scene, camera, colours=None):
        """Device arrays (sum w * colour float32 [H, W, 3], sum w float32 [H, W]) for a scene uploaded with
        colours, or for ``colours`` (device float32 [N, 3]) in their place; no background, no clipping (the
        benchmark's yardstick: nothing leaves the device)."""
        if colours is None:
            colours = scene.colours
        if colours is None:
            raise ValueError("the scene was uploaded without colours (upload(gaussians, colours=True))")
        return self._render_binned_colour(scene, self.bin_view(scene, camera), colours)

    def _render_binned_colour(self, scene, binned, colours):
        """The colour kernel over a view binned by :meth:`bin_view` (the scene's projection for that view)."""
        cp = self.cp
        # every pixel is written by the kernel (tiles without Gaussians too: empty ranges)
        rgb = cp.empty((binned.height, binned.width, 3), dtype=np.float32)
        alpha = cp.empty((binned.height, binned.width), dtype=np.float32)
        self.kernels["gsseg_render_colour"](binned.grid, (TILE, TILE), (
            binned.ranges, binned.pair_gid, scene.means2d, scene.conic_opacity, colours,
            _i32(binned.width), _i32(binned.height), _i32(binned.grid[0]), rgb, alpha))
        return rgb, alpha

    def render_colour(self, gaussians, camera, background=(0.0, 0.0, 0.0), colours=None):
        """As :func:`.render.render_colour`: (RGB float32 [H, W, 3] in [0, 1] = sum w * colour over
        ``background``, alpha float32 [H, W] = sum w); ``colours`` [N, 3] (default: the base colours)."""
        with self._device_context():
            scene = self.upload(gaussians, colours=colours is None)
            device_colours = None if colours is None else self.cp.asarray(np.ascontiguousarray(colours, np.float32))
            rgb, alpha = self.render_colour_device(scene, camera, device_colours)
            rgb, alpha = self.cp.asnumpy(rgb), self.cp.asnumpy(alpha)
        rgb = rgb + (1.0 - alpha)[..., None] * np.asarray(background, dtype=np.float32)
        return np.clip(rgb, 0, 1).astype(np.float32), alpha

    def render_label_weights(self, gaussians, camera, groups, n_groups):
        """(summed weights float32 [n_groups, H, W], alpha float32 [H, W]) over the whole scene: sums[g, p] =
        sum of w_i(p) over the Gaussians with ``groups[i] == g`` (groups int [N]; -1 counts in alpha only).
        As :meth:`.backends.CpuBackend.render_label_weights`; the colour kernel carries three groups per pass as
        one-hot colours."""
        groups = np.asarray(groups)
        sums = np.zeros((n_groups, camera.height, camera.width), dtype=np.float32)
        with self._device_context():
            scene = self.upload(gaussians)
            binned = self.bin_view(scene, camera)  # once: every pass walks the same sorted lists
            alpha = None
            for first in range(0, max(n_groups, 1), 3):
                one_hot = (groups[:, None] == np.arange(first, first + 3)[None, :]).astype(np.float32)
                rgb, alpha_device = self._render_binned_colour(scene, binned, self.cp.asarray(one_hot))
                count = min(3, n_groups - first)
                if count > 0:
                    sums[first:first + count] = np.moveaxis(self.cp.asnumpy(rgb), -1, 0)[:count]
                if alpha is None:
                    alpha = self.cp.asnumpy(alpha_device)
        return sums, alpha

    def render_alpha_depth_device(self, scene, camera, include_mask=None):
        cp = self.cp
        alpha = cp.empty((camera.height, camera.width), dtype=np.float32)
        depth = cp.empty((camera.height, camera.width), dtype=np.float32)
        binned = self.bin_view(scene, camera, include_mask)
        self.kernels["gsseg_render_alpha_depth"](binned.grid, (TILE, TILE), (
            binned.ranges, binned.pair_gid, scene.means2d, scene.conic_opacity, scene.depths,
            _i32(camera.width), _i32(camera.height), _i32(binned.grid[0]), alpha, depth))
        return alpha, depth

    def render_alpha_depth(self, gaussians, camera, include_mask=None):
        """(alpha = sum w, weighted depth = sum w * view depth), both float32 [H, W], drawing only the Gaussians
        where ``include_mask`` (bool [N]) is true; the others are absent, not merely transparent."""
        with self._device_context():
            scene = self.upload(gaussians)
            alpha, depth = self.render_alpha_depth_device(scene, camera, include_mask)
            return self.cp.asnumpy(alpha), self.cp.asnumpy(depth)


def _has_labels(index_map, lo, count, check):
    """Whether the map holds any label index of the chunk [lo, lo + count) (only checked when there are chunks)."""
    if not check:
        return True
    index_map = np.asarray(index_map)
    return bool(np.any((index_map >= lo) & (index_map < lo + count)))


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
