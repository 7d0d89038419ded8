"""Accumulation of per-label weights A[e, i] = sum over views and pixels with label e of alpha_i * T_i.

The backends share one signature: ``backend.accumulate(gaussians, views, n_labels, progress, cancel)`` where
``views`` is a list of ``(camera, label_index_map)`` pairs (label indices into ``label_ids``, -1 = ignore) and
the result is a float32 [L, N] array. The CPU backend here is the reference the CUDA backend is tested against.
"""

import dataclasses
import os

import numpy as np

from . import projection
from .errors import BadInputError, CancelledError, MemoryBudgetError
from .rasterize import DEFAULT_CHUNK_ENTRIES, iter_contributions, sorted_tile_pairs

SIDECAR_SUFFIX = ".gsseg.npz"
DENSE_FORMAT_VERSION = 1


@dataclasses.dataclass
class Accumulation:
    """``label_ids`` int32 [L] (ascending, 0 = background first) and ``weights`` float32 [L, N]."""

    label_ids: np.ndarray
    weights: np.ndarray

    @property
    def n_gaussians(self):
        return self.weights.shape[1]

    def save(self, path):
        """Write the sidecar (.gsseg.npz) atomically."""
        from .fileio import atomic_output

        with atomic_output(path) as handle:
            np.savez(handle, format_version=np.int32(DENSE_FORMAT_VERSION),
                     n_gaussians=np.int64(self.n_gaussians),
                     label_ids=self.label_ids.astype(np.int32), weights=self.weights.astype(np.float32))

    @classmethod
    def load(cls, path, n_gaussians=None):
        """Read a sidecar; check its version and that it belongs to a scene of ``n_gaussians``."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise BadInputError(f"{path}: no sidecar accumulation found (run 'gsseg segment' first)")
        try:
            with np.load(path) as data:
                version = int(data["format_version"])
                count = int(data["n_gaussians"])
                if version != DENSE_FORMAT_VERSION:
                    raise BadInputError(f"{path}: unsupported sidecar format_version {version}")
                label_ids = data["label_ids"].astype(np.int32)
                weights = data["weights"].astype(np.float32)
        except BadInputError:
            raise
        except Exception as error:  # zipfile, KeyError, ValueError: all mean a damaged sidecar
            raise BadInputError(f"{path}: unreadable sidecar ({error})") from None
        if weights.shape != (len(label_ids), count):
            raise BadInputError(f"{path}: sidecar weights have shape {weights.shape}, expected "
                                f"({len(label_ids)}, {count})")
        if n_gaussians is not None and count != n_gaussians:
            raise BadInputError(f"{path}: sidecar is for {count} Gaussians but the scene has {n_gaussians}")
        return cls(label_ids, weights)


def sidecar_path(ply_path):
    """OUT.ply -> OUT.gsseg.npz"""
    base = os.fspath(ply_path)
    if base.lower().endswith(".ply"):
        base = base[:-4]
    return base + SIDECAR_SUFFIX


def estimate_memory(n_gaussians, n_labels, max_view_pixels, chunk_entries=DEFAULT_CHUNK_ENTRIES):
    """Bytes the CPU accumulation needs at its peak: A in float64 while summing, per-Gaussian projection
    state, per-view contribution lists and the chunk temporaries."""
    weights = n_gaussians * n_labels * (8 + 8 + 4)  # running float64 sum, one view's bincount, float32 result
    per_gaussian = n_gaussians * 120  # covariances, projected state, depth order
    contributions = max(max_view_pixels * 8, chunk_entries // 4) * 24
    return weights + per_gaussian + contributions + chunk_entries * 40


class CpuBackend:
    """The CPU backend: numba's compiled per-pixel walk when numba is installed, else the numpy path."""

    name = "cpu"

    def __init__(self, chunk_entries=DEFAULT_CHUNK_ENTRIES, use_numba=None):
        from . import cpu_kernels

        self.chunk_entries = chunk_entries
        self.use_numba = cpu_kernels.available() if use_numba is None else use_numba
        if self.use_numba and not cpu_kernels.available():
            raise BadInputError("the compiled CPU path needs numba (pip install numba)")
        self.flavour = "numba" if self.use_numba else "numpy"

    def accumulate(self, gaussians, views, n_labels, progress=None, cancel=None):
        from . import cpu_kernels

        n = len(gaussians)
        covs = projection.covariances_3d(gaussians.scales, gaussians.rotations)
        if self.use_numba:
            total = np.zeros((cpu_kernels.group_count(), n_labels, n), dtype=np.float64)
        else:
            total = np.zeros(n_labels * n, dtype=np.float64)
        for done, (camera, index_map) in enumerate(views):
            if cancel is not None and cancel():
                raise CancelledError("cancelled")
            projected = projection.project_gaussians(gaussians.means, covs, gaussians.opacities, camera)
            if self.use_numba:
                pair_ids, pair_tiles = sorted_tile_pairs(projected)
                if len(pair_ids):
                    cpu_kernels.accumulate_view(projected, index_map, n_labels, total, pair_ids, pair_tiles)
            else:
                self._accumulate_view_numpy(projected, index_map, n, n_labels, total)
            if progress is not None:
                progress(done + 1, len(views))
        if self.use_numba:
            return total.sum(axis=0).astype(np.float32)
        return total.reshape(n_labels, n).astype(np.float32)

    def _accumulate_view_numpy(self, projected, index_map, n, n_labels, total):
        flat_labels = index_map.ravel()
        keys, values = [], []
        for gid, pixel, weight in iter_contributions(projected, pixel_mask=index_map >= 0,
                                                     chunk_entries=self.chunk_entries):
            keys.append(flat_labels[pixel].astype(np.int64) * n + gid)
            values.append(weight)
        if keys:
            total += np.bincount(np.concatenate(keys), weights=np.concatenate(values), minlength=n_labels * n)


def cuda_available():
    try:
        from .cuda_backend import cuda_device_count
    except ImportError:
        return False
    return cuda_device_count() > 0


def get_backend(name="auto"):
    """'cpu', 'cuda' or 'auto' (CUDA when CuPy finds a device, else CPU)."""
    if name == "cpu":
        return CpuBackend()
    if name in ("cuda", "auto"):
        try:
            from .cuda_backend import CudaBackend
            return CudaBackend()
        except Exception as error:  # ImportError, no device, driver too old: all mean "no CUDA here"
            if name == "cuda":
                from .errors import CudaUnavailableError
                raise CudaUnavailableError(f"CUDA backend unavailable: {error}") from None
            return CpuBackend()
    raise BadInputError(f"unknown backend {name!r} (choose auto, cpu or cuda)")


def accumulate_weights(gaussians, cameras, index_maps, label_ids, *, backend="auto", progress=None, cancel=None,
                       memory_budget=None):
    """Accumulate A over the views ``zip(cameras, index_maps)``; returns an :class:`Accumulation`.

    ``memory_budget`` (bytes): refuse with :class:`MemoryBudgetError` before allocating when the estimate
    exceeds it.
    """
    label_ids = np.asarray(label_ids, dtype=np.int32)
    for camera, index_map in zip(cameras, index_maps):
        if index_map.shape != (camera.height, camera.width):
            raise ValueError(f"{camera.image_name}: label map {index_map.shape} does not match the camera "
                             f"{camera.height}x{camera.width}")
    if memory_budget is not None:
        max_pixels = max((c.width * c.height for c in cameras), default=0)
        need = estimate_memory(len(gaussians), len(label_ids), max_pixels)
        if need > memory_budget:
            raise MemoryBudgetError(
                f"accumulating {len(label_ids)} labels for {len(gaussians)} Gaussians needs about "
                f"{need / 2**20:.0f} MB, over the memory budget of {memory_budget / 2**20:.0f} MB "
                f"(raise --memory-budget or use fewer labels)")
    if isinstance(backend, str):
        backend = get_backend(backend)
    weights = backend.accumulate(gaussians, list(zip(cameras, index_maps)), len(label_ids), progress, cancel)
    return Accumulation(label_ids, np.asarray(weights, dtype=np.float32))
