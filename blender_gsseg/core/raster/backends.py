"""The backends: one interface (:class:`Backend`), a CPU implementation here (the reference the others are tested
against), a CUDA one in :mod:`.cuda_backend` and a Dask cluster's in :mod:`..cluster`. :func:`get_backend` turns
a name into a backend.
"""

from __future__ import annotations

import collections.abc
from typing import TYPE_CHECKING, Protocol

import numpy as np

from . import projection
from ..errors import BadInputError, CancelledError, CudaUnavailableError
from .rasterize import DEFAULT_CHUNK_ENTRIES, group_weights, iter_contributions, render_sums, sorted_tile_pairs

if TYPE_CHECKING:
    from ..cameras import Camera
    from ..gaussians import Gaussians


class Backend(Protocol):
    """What every backend has (:class:`CpuBackend`, :class:`.cuda_backend.CudaBackend`,
    :class:`..cluster.ClusterBackend`): the same rules and shapes; "float" results are float32 or float64, as each
    backend sums."""

    name: str  # "cpu", "cuda", "cluster": what the report names

    def accumulate(
        self,
        gaussians: Gaussians,
        views: collections.abc.Sequence[tuple[Camera, np.ndarray]],  # (camera, label indices int [H, W], -1 ignored)
        n_labels: int,
        progress: collections.abc.Callable[[int, int], None] | None = None,  # (views done, views)
        cancel: collections.abc.Callable[[], bool] | None = None,  # True: CancelledError
        dtype=np.float32,  # of the result
    ) -> np.ndarray:  # [n_labels, N]
        """A[e, i] = sum over ``views`` and pixels with label index e of w_i(pixel)."""
        ...

    def render_colour(
        self,
        gaussians: Gaussians,
        camera: Camera,
        background: collections.abc.Sequence[float] = (0.0, 0.0, 0.0),  # RGB
        colours: np.ndarray | None = None,  # [N, 3] per Gaussian (default: the base colours)
    ) -> tuple[np.ndarray, np.ndarray]:  # RGB [H, W, 3] float32 in [0, 1], alpha [H, W] float32
        """The scene's colours over ``background``, and its alpha."""
        ...

    def render_alpha_depth(
        self,
        gaussians: Gaussians,
        camera: Camera,
        include_mask: np.ndarray | None = None,  # [N] bool: only these are drawn (the others are absent)
    ) -> tuple[np.ndarray, np.ndarray]:  # alpha [H, W] float, sum of w * view depth [H, W] float
        """Alpha and the weighted view depth of the Gaussians of ``include_mask``."""
        ...

    def render_label_weights(
        self,
        gaussians: Gaussians,
        camera: Camera,
        groups: np.ndarray,  # [N] int, -1 in the alpha only
        n_groups: int,
    ) -> tuple[np.ndarray, np.ndarray]:  # sums [n_groups, H, W] float, alpha [H, W] float
        """Over the whole scene: sums[g] = the summed w of the Gaussians of group g, and the alpha of all."""
        ...


# A backend, or what get_backend takes for one: "auto", "cpu", "cuda", or None for "cpu".
BackendOrName = str | Backend | None


class CpuBackend:
    """The CPU backend: numba's compiled per-pixel walk when numba is installed, else the numpy path (renders
    always use the numpy path)."""

    name = "cpu"

    def __init__(self, chunk_entries: int = DEFAULT_CHUNK_ENTRIES, use_numba: bool | None = None):
        from . import cpu_kernels

        self.chunk_entries = chunk_entries
        self.use_numba = cpu_kernels.available() if use_numba is None else use_numba
        if self.use_numba and not cpu_kernels.available():
            raise BadInputError("the compiled CPU path needs numba (pip install numba)")
        self.flavour = "numba" if self.use_numba else "numpy"
        self._covariances = (None, None)  # (gaussians, [N, 6]) of the last scene drawn
        self._projection = (None, None, None)  # (gaussians, camera, projected) of the last view drawn

    def _covariances_of(self, gaussians):
        if self._covariances[0] is not gaussians:
            self._covariances = (gaussians, projection.covariances_3d(gaussians.scales, gaussians.rotations))
        return self._covariances[1]

    def project(self, gaussians, camera):
        """The scene projected into ``camera``; kept, since a label mask renders the same view per label."""
        scene, last_camera, projected = self._projection
        if scene is not gaussians or last_camera is not camera:
            projected = projection.project_gaussians(gaussians.means, self._covariances_of(gaussians),
                                                     gaussians.opacities, camera)
            self._projection = (gaussians, camera, projected)
        return projected

    def accumulate(
        self,
        gaussians: Gaussians,
        views: collections.abc.Sequence[tuple[Camera, np.ndarray]],  # (camera, label indices int [H, W], -1 ignored)
        n_labels: int,
        progress: collections.abc.Callable[[int, int], None] | None = None,  # (views done, views)
        cancel: collections.abc.Callable[[], bool] | None = None,
        dtype=np.float32,  # of the result; the sum is float64 (a cluster worker returns it as it is)
    ) -> np.ndarray:  # [n_labels, N] float32
        from . import cpu_kernels

        n = len(gaussians)
        covs = self._covariances_of(gaussians)
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
            return total.sum(axis=0).astype(dtype)
        return total.reshape(n_labels, n).astype(dtype)

    def _accumulate_view_numpy(self, projected, index_map, n, n_labels, total):
        flat_labels = index_map.ravel()
        keys, values = [], []
        for gid, pixel, weight in iter_contributions(projected, pixel_mask=index_map >= 0,
                                                     chunk_entries=self.chunk_entries):
            keys.append(flat_labels[pixel].astype(np.int64) * n + gid)
            values.append(weight)
        if keys:
            total += np.bincount(np.concatenate(keys), weights=np.concatenate(values), minlength=n_labels * n)

    def render_colour(
        self,
        gaussians: Gaussians,
        camera: Camera,
        background: collections.abc.Sequence[float] = (0.0, 0.0, 0.0),  # RGB
        colours: np.ndarray | None = None,  # [N, 3] per Gaussian (default: the base colours)
    ) -> tuple[np.ndarray, np.ndarray]:  # RGB [H, W, 3] float32 in [0, 1], alpha [H, W] float32
        colours = gaussians.base_colors if colours is None else colours
        alpha, rgb = render_sums(self.project(gaussians, camera), colours)
        rgb = rgb + (1.0 - alpha)[..., None] * np.asarray(background, dtype=np.float64)
        return np.clip(rgb, 0, 1).astype(np.float32), alpha.astype(np.float32)

    def render_alpha_depth(
        self,
        gaussians: Gaussians,
        camera: Camera,
        include_mask: np.ndarray | None = None,  # [N] bool
    ) -> tuple[np.ndarray, np.ndarray]:  # alpha [H, W] float64, sum of w * view depth [H, W] float64
        projected = self.project(gaussians, camera)
        alpha, depth_sum = render_sums(projected, projected.depths.astype(np.float64)[:, None], include=include_mask)
        return alpha, depth_sum[..., 0]

    def render_label_weights(
        self,
        gaussians: Gaussians,
        camera: Camera,
        groups: np.ndarray,  # [N] int, -1 in the alpha only
        n_groups: int,
    ) -> tuple[np.ndarray, np.ndarray]:  # sums [n_groups, H, W] float64, alpha [H, W] float64
        return group_weights(self.project(gaussians, camera), groups, n_groups)


def cuda_available() -> bool:
    try:
        from .cuda_backend import cuda_device_count
    except ImportError:
        return False
    return cuda_device_count() > 0


def get_backend(name: BackendOrName = "auto") -> Backend:
    """'cpu', 'cuda' or 'auto' (CUDA when CuPy finds a device, else CPU); a backend object is returned as it is,
    and None means 'cpu'."""
    if name is None:
        name = "cpu"
    if not isinstance(name, str):
        return name
    if name == "cpu":
        return CpuBackend()
    if name in ("cuda", "auto"):
        try:
            from .cuda_backend import CudaBackend
            return CudaBackend()
        except Exception as error:  # ImportError, no device, driver too old: all mean "no CUDA here"
            if name == "cuda":
                raise CudaUnavailableError(f"CUDA backend unavailable: {error}") from None
            return CpuBackend()
    raise BadInputError(f"unknown backend {name!r} (choose auto, cpu or cuda)")


# ---------------------------------------------------------------------------------------------------------------
# What will run, and for how long

# Kernel-rule alpha tests (every pixel of every tile a Gaussian touches) per second, as bench/accumulate.py and
# bench/gpu.py measure them (README, benchmarks): the numba walk per thread (750-1060 M/s on 2 threads), the numpy
# path (280-360 M/s on real scans) and the CUDA kernel (2.6e11/s on an H200), each rounded down.
TESTS_PER_SECOND = {"numba": 4e8, "numpy": 2.8e8, "cuda": 1e11}


def planned_backend(name: str = "auto") -> tuple[str, str]:
    """(flavour, description) of what ``get_backend(name)`` would run: flavour 'cuda', 'numba' or 'numpy'; the
    description says why when a faster path is out of reach (e.g. numba cannot load beside this NumPy)."""
    from . import cpu_kernels

    if name in ("cuda", "auto") and cuda_available():
        return "cuda", "CUDA (CuPy)"
    if name == "cuda":
        return "none", "CUDA unavailable (no NVIDIA GPU or no CuPy)"
    if cpu_kernels.available():
        numba = cpu_kernels.numba
        return "numba", f"CPU, compiled (numba {numba.__version__}, {numba.get_num_threads()} threads)"
    return "numpy", f"CPU, numpy (numba unavailable: {cpu_kernels.WHY_UNAVAILABLE})"


def estimate_sample(gaussians: Gaussians, size: int = 20_000) -> Gaussians:
    """A random (seeded) sample of ``size`` Gaussians, all of them in a smaller scene: what the estimate reads."""
    if len(gaussians) <= size:
        return gaussians
    return gaussians.subset(np.sort(np.random.default_rng(0).choice(len(gaussians), size=size, replace=False)))


def kernel_tests(sample: Gaussians, cameras: collections.abc.Sequence[Camera], sample_views: int = 3) -> float:
    """The kernel-rule alpha tests of the Gaussians of ``sample`` (:func:`estimate_sample`) over ``cameras``,
    estimated from ``sample_views`` evenly spaced cameras (milliseconds for any scene)."""
    if len(sample) == 0 or not cameras:
        return 0.0
    covariances = projection.covariances_3d(sample.scales, sample.rotations)
    views = [cameras[int(k)] for k in np.linspace(0, len(cameras) - 1, min(sample_views, len(cameras)))]
    tests = 0.0
    for camera in views:
        projected = projection.project_gaussians(sample.means, covariances, sample.opacities, camera)
        tiles = (projected.tile_max - projected.tile_min).astype(np.float64).prod(axis=1)
        tests += float(tiles[projected.visible].sum()) * projection.TILE_SIZE ** 2
    return tests / len(views) * len(cameras)


def expected_seconds(
    sample: Gaussians,  # estimate_sample(gaussians)
    n_gaussians: int,  # of the whole scene
    cameras: collections.abc.Sequence[Camera],
    flavour: str,  # planned_backend()[0]
) -> float:
    """Roughly how long the accumulation of a scene of ``n_gaussians`` takes on ``flavour``."""
    rate = TESTS_PER_SECOND[flavour]
    if flavour == "numba":
        from . import cpu_kernels
        rate *= cpu_kernels.numba.get_num_threads()
    return kernel_tests(sample, cameras) * n_gaussians / max(len(sample), 1) / rate
