"""The CUDA backend (blender_gsseg/cuda/gsseg_kernels.cu + blender_gsseg/core/raster/cuda_backend.py) against the CPU reference.

Three layers, so that something always runs:

* where ``nvcc`` is on PATH: every ``cuda/*.cu`` compiles to PTX with the backend's own options;
* where ``g++`` is on PATH: the real backend runs on a CPU through a fake ``cupy`` module
  (``tests/cuda_emulator/fake_cupy.py``) whose kernels are the .cu file compiled by the host emulator beside it
  (every CUDA thread a fiber, strict about barriers, warp collectives and argument types, guard bytes around
  device buffers); its results must match the CPU backend. It runs in a subprocess
  (``python tests/test_cuda.py emulate``) so that a crash cannot take pytest down;
* where CuPy sees a GPU: the same comparisons on the device, plus a scene of 100k Gaussians.

Agreement rule for A (float32 atomics sum in another order than the CPU's float64): total within 1e-4
relative; entries within 1e-5 absolute or 1e-5 relative (larger entries carry float32 rounding of their size)
on at least 99.99 % of them; solved labels identical except where the two top shares are within 1e-5.
"""

import ctypes
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
CUDA_DIR = ROOT / "blender_gsseg" / "cuda"
for _path in (str(ROOT), str(TESTS)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from blender_gsseg.core.raster import projection  # noqa: E402
from blender_gsseg.core.lift.accumulate import Accumulation  # noqa: E402
from blender_gsseg.core.raster.backends import CpuBackend  # noqa: E402
from blender_gsseg.core.cameras import Camera  # noqa: E402
from blender_gsseg.core.lift.solver import Shares  # noqa: E402
from cuda_emulator.fake_cupy import install_fake_cupy  # noqa: E402
from oracles import unless  # noqa: E402
from scenes import random_scene  # noqa: E402

ENTRY_ATOL = 1e-5
ENTRY_RTOL = 1e-5
ENTRY_FRACTION = 0.9999
TOTAL_RTOL = 1e-4
TIE = 1e-5


# ---------------------------------------------------------------------------------------------------------------
# Scenes, cameras and label maps shared by the emulator and GPU checks

class ArrayScene:
    """The attributes the backends read from a Gaussians object, as plain float32 arrays."""

    def __init__(self, means, scales, rotations, opacities, base_colors):
        self.means = np.ascontiguousarray(means, dtype=np.float32)
        self.scales = np.ascontiguousarray(scales, dtype=np.float32)
        self.rotations = np.ascontiguousarray(rotations, dtype=np.float32)
        self.opacities = np.ascontiguousarray(opacities, dtype=np.float32)
        self.base_colors = np.ascontiguousarray(base_colors, dtype=np.float32)

    def __len__(self):
        return len(self.means)


def device_scene(seed, n):
    """tests/scenes.py's random scene (in front of and behind the cameras, tiny to huge) as the backends' float32
    arrays, with a few Gaussians on tile borders and some at equal depths."""
    huge = max(1, n // 40)
    means, log_scales, quats, logits, colours = random_scene(
        seed, n, log_scale_mean=-2.4, huge=huge, huge_scale=(0.5, 1.5), tiny_scale=0.002, arrays=True)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    scene = ArrayScene(means, np.exp(log_scales), quats, 1 / (1 + np.exp(-logits)), colours)
    # A few Gaussians whose 2D mean sits exactly on a tile border of the front camera (x, y multiples of 16 px).
    cam = front_camera(72, 50)
    k = min(n - 2 * huge, 6)
    depth = 3.0
    for j in range(k):
        u, v = 16.0 * (1 + j % 3), 16.0 * (1 + j // 3)
        scene.means[n - 1 - j] = [(u + 0.5 - cam.cx) * depth / cam.fx, (v + 0.5 - cam.cy) * depth / cam.fy,
                                  depth - 4.0]
    # Equal depths (tie order must be Gaussian order).
    scene.means[n - 10:n - 7, 2] = np.float32(0.25)
    return scene


def front_camera(width, height, cx=None, cy=None, name="front"):
    w2c = np.eye(4)
    w2c[2, 3] = 4.0
    return Camera(w2c, 0.8 * width, 0.8 * width, width / 2 if cx is None else cx,
                  height / 2 if cy is None else cy, width, height, name)


def orbit_camera(angle, width, height, name):
    eye = np.array([4.2 * np.sin(angle), 0.7, -4.2 * np.cos(angle)])
    forward = -eye / np.linalg.norm(eye)
    right = np.cross(forward, [0.0, -1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])
    w2c = np.eye(4)
    w2c[:3, :3] = rot
    w2c[:3, 3] = -rot @ eye
    return Camera(w2c, 0.9 * width, 0.85 * width, 0.47 * width, 0.52 * height, width, height, name)


def label_maps(cameras, n_labels, seed):
    """Voronoi blobs of a few labels, a disc of ignored pixels (-1) and a noisy patch holding every label, so
    that some tile has more distinct labels than the kernel's slots."""
    maps = []
    for k, cam in enumerate(cameras):
        rng = np.random.default_rng(seed + 7 * k)
        yy, xx = np.mgrid[0:cam.height, 0:cam.width]
        n_blobs = min(n_labels, 5)
        sx, sy = rng.uniform(0, cam.width, n_blobs), rng.uniform(0, cam.height, n_blobs)
        dist = (xx[..., None] - sx) ** 2 + (yy[..., None] - sy) ** 2
        index = rng.permutation(n_labels)[:n_blobs][np.argmin(dist, axis=-1)].astype(np.int32)
        cx, cy = rng.uniform(0, cam.width), rng.uniform(0, cam.height)
        index[(xx - cx) ** 2 + (yy - cy) ** 2 < (0.15 * cam.width) ** 2] = -1
        px, py = int(rng.integers(0, max(1, cam.width - 20))), int(rng.integers(0, max(1, cam.height - 20)))
        patch = index[py:py + 20, px:px + 20]
        patch[...] = rng.integers(-1, n_labels, patch.shape)
        maps.append(index)
    return maps


def small_cases():
    """(scene, views, n_labels) cases for the exactness checks."""
    cases = []
    cams = [front_camera(72, 50), front_camera(33, 17, cx=15.0, cy=9.5, name="odd"),
            orbit_camera(0.7, 64, 48, "orbit")]
    scene = device_scene(1, 180)
    cases.append((scene, list(zip(cams, label_maps(cams, 12, 3), strict=True)), 12))
    cams2 = [orbit_camera(a, 80, 64, f"o{a}") for a in (0.0, 2.0)]
    maps2 = [m.astype(np.int16) for m in label_maps(cams2, 3, 5)]  # as masks.label_index_maps gives them
    cases.append((device_scene(2, 140), list(zip(cams2, maps2, strict=True)), 3))
    return cases


# ---------------------------------------------------------------------------------------------------------------
# Comparisons

def weights_report(gpu, cpu):
    gpu64, cpu64 = gpu.astype(np.float64), cpu.astype(np.float64)
    err = np.abs(gpu64 - cpu64)
    ok = err <= ENTRY_ATOL + ENTRY_RTOL * np.abs(cpu64)
    total_cpu, total_gpu = float(cpu64.sum()), float(gpu64.sum())
    return {"fraction_ok": float(ok.mean()) if ok.size else 1.0, "max_abs": float(err.max(initial=0)),
            "bad": int((~ok).sum()), "entries": int(ok.size), "total_cpu": total_cpu, "total_gpu": total_gpu,
            "total_rel": abs(total_gpu - total_cpu) / max(total_cpu, 1e-30)}


def assert_weights_close(gpu, cpu, what=""):
    assert gpu.shape == cpu.shape and gpu.dtype == np.float32, (gpu.shape, cpu.shape, gpu.dtype)
    report = weights_report(gpu, cpu)
    assert report["total_rel"] <= TOTAL_RTOL, (what, report)
    assert report["fraction_ok"] >= ENTRY_FRACTION, (what, report)
    return report


def assert_labels_agree(gpu, cpu):
    """solve_labels on both: identical except where the CPU's two best shares are within TIE (or the Gaussian is
    on the edge of being seen at all)."""
    label_ids = np.arange(cpu.shape[0], dtype=np.int32)
    mismatched = 0
    for gamma in (0.0, 0.3):
        shares_cpu = Shares.from_accumulation(Accumulation(label_ids, cpu))
        shares_gpu = Shares.from_accumulation(Accumulation(label_ids, gpu))
        labels_cpu, _ = shares_cpu.solve(gamma)
        labels_gpu, _ = shares_gpu.solve(gamma)
        differ = np.flatnonzero(labels_cpu != labels_gpu)
        for i in differ:
            a, b = labels_cpu[i], labels_gpu[i]
            if a < 0 or b < 0:  # seen on one side only: the weights there must be negligible
                assert max(cpu[:, i].sum(), gpu[:, i].sum()) <= 1e-5, (i, cpu[:, i], gpu[:, i])
                continue
            s = shares_cpu.shares[:, i].astype(np.float64)
            bias = np.zeros_like(s)
            bias[0] = gamma
            ia, ib = np.flatnonzero(label_ids == a)[0], np.flatnonzero(label_ids == b)[0]
            assert abs((s[ia] + bias[ia]) - (s[ib] + bias[ib])) <= TIE, (i, a, b, s)
        mismatched += len(differ)
    return mismatched


def cpu_reference(scene, views, n_labels):
    return CpuBackend(use_numba=False).accumulate(scene, views, n_labels)


def cpu_renders(scene, camera, include=None):
    from blender_gsseg.core.raster.rasterize import render_sums
    from blender_gsseg.core.raster.render import render_colour

    rgb, alpha = render_colour(scene, camera)
    covs = projection.covariances_3d(scene.scales, scene.rotations)
    projected = projection.project_gaussians(scene.means, covs, scene.opacities, camera)
    alpha_d, depth = render_sums(projected, projected.depths.astype(np.float64)[:, None], include=include)
    return rgb, alpha, alpha_d, depth[..., 0]


def check_binning(backend, scene, camera, include=None):
    """Projection and the sorted (tile, Gaussian) list against projection.py and rasterize.sorted_tile_pairs, bit
    for bit: both sides round every float32 operation once, in the same order (no matmul, no fused
    multiply-adds). Returns the fraction of tiles whose Gaussian sequence is identical (1.0)."""
    from blender_gsseg.core.raster.rasterize import sorted_tile_pairs

    cp = backend.cp
    device = backend.upload(scene)
    binned = backend.bin_view(device, camera, include)
    covs = projection.covariances_3d(scene.scales, scene.rotations)
    proj = projection.project_gaussians(scene.means, covs, scene.opacities, camera)
    visible = proj.visible if include is None else proj.visible & include
    cov6 = cp.asnumpy(device.cov6)
    depths = cp.asnumpy(device.depths)
    touched = cp.asnumpy(device.touched)
    means2d = cp.asnumpy(device.means2d)[visible]
    conics = cp.asnumpy(device.conic_opacity)[visible, :3]
    rects = cp.asnumpy(device.rects)[visible]
    expected_rects = np.concatenate([proj.tile_min, proj.tile_max], axis=1)[visible]
    ids, tiles = sorted_tile_pairs(proj, include)
    ranges = cp.asnumpy(binned.ranges)
    gids = cp.asnumpy(binned.pair_gid)
    n_tiles = len(ranges)
    cpu_runs = np.split(ids, np.searchsorted(tiles, np.arange(1, n_tiles)))
    gpu_runs = [gids[a:b] for a, b in ranges]
    same_tiles = np.mean([len(a) == len(b) and (a == b).all() for a, b in zip(cpu_runs, gpu_runs, strict=True)])
    assert (cov6 == covs[:, [0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]]).all()
    assert (depths == proj.depths).all()
    assert ((touched > 0) == visible).all()
    assert (means2d == proj.means2d[visible]).all()
    assert (conics == proj.conics[visible]).all()
    assert (rects == expected_rects).all()
    assert binned.n_pairs == len(ids) and same_tiles == 1.0
    return same_tiles


RENDER_AGREEMENT = 0.999  # label pixels that must agree: float32 sums may cross alpha = 0.5 where float64 do not


def check_label_renders(backend, scene, cameras, seed, log=print):
    """render_labels (both modes) and render_colour with ``backend`` against the same calls on the CPU, for
    random per-Gaussian labels (some -1, unseen). Returns the agreement per mode."""
    from blender_gsseg.core.raster.render import render_colour, render_labels

    rng = np.random.default_rng(seed)
    labels = rng.integers(-1, 5, len(scene)).astype(np.int32)
    agreement = {}
    for camera in cameras:
        for mode in ("subset", "argmax"):
            cpu = render_labels(scene, labels, camera, mode, backend="cpu")
            gpu = render_labels(scene, labels, camera, mode, backend=backend)
            assert gpu.shape == cpu.shape and gpu.dtype == cpu.dtype == np.int32
            assert (cpu > 0).any(), f"{mode}: nothing rendered at {camera.image_name}"
            same = float(np.mean(gpu == cpu))
            assert same >= RENDER_AGREEMENT, (mode, camera.image_name, same)
            agreement[mode] = min(same, agreement.get(mode, 1.0))
        rgb_cpu, alpha_cpu = render_colour(scene, camera, background=(0.2, 0.4, 0.6))
        rgb_gpu, alpha_gpu = render_colour(scene, camera, background=(0.2, 0.4, 0.6), backend=backend)
        np.testing.assert_allclose(rgb_gpu, rgb_cpu, atol=2e-5)
        np.testing.assert_allclose(alpha_gpu, alpha_cpu, atol=2e-5)
    log(f"label renders agree with the CPU on {agreement} of pixels")
    return agreement


def check_backend_against_cpu(make_backend, cases, log=print):
    """Every comparison the emulator and the GPU share. ``make_backend(**options)`` builds a CudaBackend."""
    agg = make_backend()
    all_stats = []
    for case_index, (scene, views, n_labels) in enumerate(cases):
        for camera, _ in views:
            same = check_binning(agg, scene, camera)
            same_subset = check_binning(agg, scene, camera, include=np.arange(len(scene)) % 4 != 0)
            log(f"case {case_index} {camera.image_name}: projection/binning agree "
                f"(bit for bit; identical tile lists {same:.4f}, subset {same_subset:.4f})")
        cpu = cpu_reference(scene, views, n_labels)
        assert cpu.sum() > 0
        calls = []
        stats_agg, stats_naive = {}, {}
        gpu = agg.accumulate(scene, views, n_labels, progress=lambda d, t: calls.append((d, t)), stats=stats_agg,
                             aggregate="warp")
        assert calls == [(k + 1, len(views)) for k in range(len(views))], calls
        report = assert_weights_close(gpu, cpu, f"case {case_index} aggregated")
        log(f"case {case_index}: aggregated {report}, {stats_agg}")
        naive = agg.accumulate(scene, views, n_labels, aggregate=False, stats=stats_naive)
        report = assert_weights_close(naive, cpu, f"case {case_index} naive")
        log(f"case {case_index}: naive {report}, {stats_naive}")
        assert stats_agg["global_atomics"] < stats_naive["global_atomics"], (stats_agg, stats_naive)
        stats_shared = {}
        shared = agg.accumulate(scene, views, n_labels, aggregate="shared", stats=stats_shared)
        report = assert_weights_close(shared, cpu, f"case {case_index} shared")
        log(f"case {case_index}: shared-atomic aggregation {report}, {stats_shared}")
        assert stats_shared["global_atomics"] == stats_agg["global_atomics"], (stats_shared, stats_agg)
        assert stats_naive["overflow_tiles"] == 0
        all_stats.append(stats_agg)
        mismatched = assert_labels_agree(gpu, cpu)
        log(f"case {case_index}: labels differing within ties: {mismatched}")
        stats_default = {}
        agg.accumulate(scene, views, n_labels, stats=stats_default)
        assert stats_default["global_atomics"] == stats_naive["global_atomics"]  # the default kind is none
        # float64 device sums and label chunks (three labels per chunk; progress counts views x chunks)
        chunked = make_backend(accum_dtype=np.float64, max_weight_bytes=3 * len(scene) * 8)
        calls = []
        result = chunked.accumulate(scene, views, n_labels, progress=lambda d, t: calls.append((d, t)))
        n_chunks = -(-n_labels // 3)
        assert calls[-1] == (len(views) * n_chunks, len(views) * n_chunks)
        report = assert_weights_close(result, cpu, f"case {case_index} chunked f64")
        log(f"case {case_index}: float64 in {n_chunks} chunks {report}")
        # renders
        camera = views[0][0]
        include = np.arange(len(scene)) % 3 != 1
        rgb_ref, alpha_ref, alpha_d_ref, depth_ref = cpu_renders(scene, camera, include)
        rgb, alpha = agg.render_colour(scene, camera)
        np.testing.assert_allclose(alpha, alpha_ref, atol=2e-5)
        np.testing.assert_allclose(rgb, rgb_ref, atol=2e-5)
        alpha_d, depth = agg.render_alpha_depth(scene, camera, include)
        np.testing.assert_allclose(alpha_d, alpha_d_ref, atol=2e-5)
        np.testing.assert_allclose(depth, depth_ref, atol=2e-4, rtol=1e-5)
        log(f"case {case_index}: renders agree (max |d alpha| {np.abs(alpha - alpha_ref).max():.2e})")
        check_label_renders(agg, scene, [c for c, _ in views], seed=case_index, log=log)
    # cancel between views
    from blender_gsseg.core.errors import CancelledError

    scene, views, n_labels = cases[0]
    seen = []
    with pytest.raises(CancelledError):
        agg.accumulate(scene, views, n_labels, progress=lambda d, t: seen.append(d), cancel=lambda: len(seen) >= 1)
    assert seen == [1]
    # empty inputs
    assert agg.accumulate(scene, views, 0).shape == (0, len(scene))
    empty = ArrayScene(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 4)), np.zeros(0), np.zeros((0, 3)))
    assert agg.accumulate(empty, views, 2).shape == (2, 0)
    # nobody in front of the camera
    behind = ArrayScene(scene.means - [0, 0, 50], scene.scales, scene.rotations, scene.opacities,
                        scene.base_colors)
    assert not agg.accumulate(behind, views, n_labels).any()
    # the label maps put more labels in some tile than the aggregation has slots: the fallback ran
    assert any(stats["overflow_tiles"] > 0 for stats in all_stats), all_stats
    return all_stats


# ---------------------------------------------------------------------------------------------------------------
# Always (where the tools exist): kernels compile, constants agree, the module imports without CuPy

def test_kernel_sources_exist():
    from blender_gsseg.core.raster.cuda_backend import kernel_source_path

    assert sorted(CUDA_DIR.glob("*.cu")), "no CUDA sources in blender_gsseg/cuda/"
    assert Path(kernel_source_path()).is_file()


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("source", sorted(CUDA_DIR.glob("*.cu")), ids=lambda p: p.name)
def test_kernels_compile_with_nvcc(source, arch, tmp_path):
    """nvcc -ptx with the options the backend gives NVRTC (no headers beyond what NVRTC provides are used)."""
    from blender_gsseg.core.raster.cuda_backend import compile_options

    text = source.read_text()
    assert not re.search(r"^\s*#\s*include", text, re.M), "kernels must not include headers (NVRTC)"
    out = tmp_path / (source.stem + ".ptx")
    result = subprocess.run(["nvcc", "-ptx", f"-arch={arch}", *compile_options(), "-o", str(out), str(source)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    ptx = out.read_text()
    from blender_gsseg.core.raster.cuda_backend import KERNEL_NAMES

    if source.name == "gsseg_kernels.cu":
        for name in KERNEL_NAMES:
            assert f".entry {name}(" in ptx, f"{name} missing from the PTX"
        # --fmad=false: nothing fused in the kernels without expf (expf's own code uses explicit fmaf)
        for name in ("gsseg_cov3d", "gsseg_project"):
            body = ptx.split(f".entry {name}(", 1)[1].split(".entry", 1)[0]
            assert "fma.rn" not in body, f"{name} has fused multiply-adds"


def find_nvrtc():
    """libnvrtc from the nvidia-cuda-nvrtc wheel (the test extra), if installed: the compiler CuPy's RawModule
    uses, with none of the headers nvcc adds implicitly."""
    for entry in sys.path:
        for pattern in ("nvidia/*/lib/libnvrtc.so.*", "nvidia/*/*/lib/libnvrtc.so.*"):
            for path in sorted(Path(entry or ".").glob(pattern)):
                if "builtins" not in path.name:
                    return path
    return None


# the test extra installs the wheel on Linux x86-64 only: there, a missing one fails under GSSEG_REQUIRE_ORACLES=1
NEEDS_NVRTC = (unless(find_nvrtc() is not None, "nvidia-cuda-nvrtc")
               if sys.platform == "linux" and platform.machine() == "x86_64"
               else pytest.mark.skipif(find_nvrtc() is None, reason="nvidia-cuda-nvrtc not installed"))


@NEEDS_NVRTC
@pytest.mark.parametrize("arch", ["compute_75", "compute_90"])
def test_kernels_compile_with_nvrtc(arch):
    """What CuPy does on the user's machine: NVRTC compiles the source with the backend's options, and every
    entry point is in the PTX."""
    from blender_gsseg.core.raster.cuda_backend import KERNEL_NAMES, compile_options, kernel_source_path

    lib = ctypes.CDLL(str(find_nvrtc()))
    program = ctypes.c_void_p()
    source = Path(kernel_source_path()).read_bytes()
    assert lib.nvrtcCreateProgram(ctypes.byref(program), source, b"gsseg_kernels.cu", 0, None, None) == 0
    try:
        options = [o.encode() for o in compile_options()] + [f"--gpu-architecture={arch}".encode()]
        rc = lib.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*options))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value + 1)
        lib.nvrtcGetProgramLog(program, log)
        assert rc == 0, log.value.decode()
        lib.nvrtcGetPTXSize(program, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value + 1)
        lib.nvrtcGetPTX(program, ptx)
        text = ptx.value.decode()
        for name in KERNEL_NAMES:
            assert f".entry {name}(" in text, f"{name} missing from the PTX"
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(program))


def test_kernel_constants_match_projection():
    from blender_gsseg.core.raster.cuda_backend import compile_options

    text = (CUDA_DIR / "gsseg_kernels.cu").read_text()
    defaults = dict(re.findall(r"#define (GSSEG_[A-Z_]+) ([0-9.e+-]+)f\b", text))
    expected = {"GSSEG_NEAR_PLANE": projection.NEAR_PLANE, "GSSEG_LOW_PASS": projection.LOW_PASS,
                "GSSEG_MIN_EIGEN_GAP": projection.MIN_EIGEN_GAP, "GSSEG_RADIUS_SIGMAS": projection.RADIUS_SIGMAS,
                "GSSEG_MAX_ALPHA": projection.MAX_ALPHA, "GSSEG_MIN_ALPHA": projection.MIN_ALPHA,
                "GSSEG_MIN_TRANSMITTANCE": projection.MIN_TRANSMITTANCE}
    for name, value in expected.items():
        assert np.float32(defaults[name]) == np.float32(value), name
    options = dict(o[2:].split("=", 1) for o in compile_options() if o.startswith("-D"))
    for name, value in expected.items():
        assert np.float32(options[name].rstrip("f")) == np.float32(value), name
    assert "--fmad=false" in compile_options()
    assert projection.TILE_SIZE == 16


def test_module_imports_without_cupy():
    from blender_gsseg.core.raster import cuda_backend
    from blender_gsseg.core.raster.backends import get_backend

    count = cuda_backend.cuda_device_count()
    assert isinstance(count, int) and count >= 0
    backend = get_backend("auto")
    assert backend.name in ("cpu", "cuda")
    if count == 0:
        assert backend.name == "cpu"
        from blender_gsseg.core.errors import CudaUnavailableError

        with pytest.raises(CudaUnavailableError):
            cuda_backend.CudaBackend()


def test_camera_params_match_projection():
    from blender_gsseg.core.raster.cuda_backend import camera_params

    cam = orbit_camera(0.3, 64, 48, "c")
    params = camera_params(cam)
    assert params.dtype == np.float32 and params.shape == (20,)
    view = cam.world_to_camera.astype(np.float32)
    assert (params[:9] == view[:3, :3].ravel()).all() and (params[9:12] == view[:3, 3]).all()
    # the clamp limits reproduce projection.py's: a point far off to the side projects with the clamped Jacobian
    assert params[16] > 0 and params[17] > 0 and params[18] > 0 and params[19] > 0


# ---------------------------------------------------------------------------------------------------------------
# The emulator: the real backend and kernels on a CPU

@pytest.mark.slow  # on a clean machine it first compiles the kernels with the emulator (g++)
@unless(shutil.which("g++") is not None, "g++ on PATH (builds the CUDA host emulator)", "a system package")
def test_emulated_backend_matches_cpu():
    result = subprocess.run([sys.executable, str(Path(__file__).resolve()), "emulate"], capture_output=True,
                            text=True, timeout=1800, cwd=str(ROOT))
    print(result.stdout[-6000:])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "EMULATION OK" in result.stdout


@unless(shutil.which("g++") is not None, "g++ on PATH (builds the CUDA host emulator)", "a system package")
@pytest.mark.slow
def test_emulated_benchmark_runs():
    """bench/gpu.py end to end (tiny sizes) on the emulator, so the script works before it meets a GPU."""
    result = subprocess.run([sys.executable, str(Path(__file__).resolve()), "emulate-bench"], capture_output=True,
                            text=True, timeout=900, cwd=str(ROOT))
    print(result.stdout[-4000:])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "EMULATED BENCH OK" in result.stdout and "CPU check" in result.stdout
    assert "goal accumulate <= 60 s" in result.stdout  # the --large run
    # --pairs-only counts on the CPU what the (emulated) device binned, over the same 3 views
    binned = re.findall(r"([\d,]+) tile/Gaussian pairs per view", result.stdout)
    counted = re.findall(r"over 3 of the views: ([\d,]+) tile/Gaussian pairs", result.stdout)
    assert len(binned) == 2 and len(counted) == 1 and binned[0] == binned[1] == counted[0], (binned, counted)


def emulation_bench_main():
    """bench/gpu.py --small and --large on the emulator, scaled down (``python tests/test_cuda.py emulate-bench``);
    --large ray-casts its label maps as each view is used."""
    install_fake_cupy(numpy_fallback=True)
    sys.path.insert(0, str(ROOT / "bench"))
    import gpu

    for size in (["--small"], ["--large"], ["--large", "--pairs-only"]):
        sys.argv = ["gpu.py", *size, "--gaussians", "1500", "--views", "3", "--width", "40", "--height", "36"]
        gpu.main()
    print("EMULATED BENCH OK")


def emulation_main():
    """Run the backend on the emulator and compare with the CPU backend (``python tests/test_cuda.py emulate``)."""
    import time

    fake = install_fake_cupy()
    from blender_gsseg.core.raster import cuda_backend

    assert cuda_backend.cuda_device_count() == 1
    start = time.perf_counter()
    check_backend_against_cpu(lambda **kw: cuda_backend.CudaBackend(**kw), small_cases())
    # 64-bit tile keys (the 32-bit variant serves these small scenes otherwise)
    scene, views, n_labels = small_cases()[0]
    backend = cuda_backend.CudaBackend()
    backend.force_wide_keys = True
    wide = backend.accumulate(scene, views, n_labels)
    assert_weights_close(wide, cpu_reference(scene, views, n_labels), "64-bit keys")
    assert fake.launches.get("gsseg_duplicate_keys64", 0) > 0 and fake.launches.get("gsseg_tile_ranges64", 0) > 0
    print("launches:", dict(sorted(fake.launches.items())))
    print(f"EMULATION OK in {time.perf_counter() - start:.1f} s")


# ---------------------------------------------------------------------------------------------------------------
# On a GPU

@pytest.fixture(scope="module")
def gpu_backend():
    from blender_gsseg.core.raster.cuda_backend import CudaBackend, cuda_device_count

    if cuda_device_count() == 0:
        pytest.skip("no CUDA device (or CuPy missing)")
    return CudaBackend


@pytest.mark.gpu
def test_gpu_matches_cpu_on_small_scenes(gpu_backend):
    check_backend_against_cpu(lambda **kw: gpu_backend(**kw), small_cases())


@pytest.mark.gpu
def test_gpu_matches_cpu_on_100k_gaussians(gpu_backend):
    rng = np.random.default_rng(11)
    n = 100_000
    means = rng.normal(0, 1.0, (n, 3))
    scales = np.exp(rng.normal(-4.2, 0.6, (n, 3)))
    quats = rng.normal(size=(n, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    opacities = 1 / (1 + np.exp(-rng.normal(1.0, 1.5, n)))
    scene = ArrayScene(means, scales, quats, opacities, rng.random((n, 3)))
    cams = [orbit_camera(a, 240, 180, f"big{a}") for a in (0.2, 1.9, 4.0)]
    n_labels = 6
    views = list(zip(cams, label_maps(cams, n_labels, 21), strict=True))
    cpu = cpu_reference(scene, views, n_labels)
    backend = gpu_backend()
    same = check_binning(backend, scene, cams[0])
    print(f"100k: identical tile lists {same:.4f}")
    for kind in ("none", "warp", "shared"):
        stats = {}
        gpu = backend.accumulate(scene, views, n_labels, stats=stats, aggregate=kind)
        report = assert_weights_close(gpu, cpu, f"100k {kind}")
        print(f"100k {kind}:", report, stats)
        assert_labels_agree(gpu, cpu)


@pytest.mark.gpu
def test_gpu_pipeline_matches_cpu_on_demo_scene(gpu_backend, tmp_path):
    """The user's path: segment_scene and the novel-view masks (CLI render-masks) on the bundled demo scene with
    --backend cuda against --backend cpu."""
    from blender_gsseg.cli import main
    from blender_gsseg.core.raster.backends import CpuBackend
    from blender_gsseg.core.files.camera_files import load_cameras
    from blender_gsseg.core.files.inria_cameras import write_cameras_json
    from blender_gsseg.core.pipeline import segment_scene, write_labeled
    from blender_gsseg.demo import demo_paths

    paths = demo_paths()
    lift = load_cameras(paths["cameras"])
    results = {name: segment_scene(paths["scene"], lift, paths["masks"], backend=backend)
               for name, backend in (("cpu", CpuBackend()), ("cuda", gpu_backend()))}
    assert results["cuda"].report["backend"] == "cuda" and results["cpu"].report["backend"] == "cpu"
    cpu, gpu = results["cpu"].accumulation.weights, results["cuda"].accumulation.weights
    report = assert_weights_close(gpu, cpu, "demo scene")
    mismatched = assert_labels_agree(gpu, cpu)
    print(f"demo scene: {report}; labels differing within ties: {mismatched}")
    labeled = tmp_path / "labeled.ply"
    write_labeled(labeled, results["cpu"].gaussians, results["cpu"].accumulation)
    held = load_cameras(paths["heldout_cameras"])[:4]
    write_cameras_json(tmp_path / "held.json", held)
    for backend in ("cpu", "cuda"):
        for mode in ("subset", "argmax"):
            assert main(["render-masks", str(labeled), "--cameras", str(tmp_path / "held.json"), "-o",
                         str(tmp_path / f"{backend}_{mode}"), "--mode", mode, "--backend", backend]) == 0
    from blender_gsseg.core.files.masks import read_label_image

    for mode in ("subset", "argmax"):
        for camera in held:
            name = os.path.splitext(os.path.basename(camera.image_name))[0] + ".png"
            a = read_label_image(str(tmp_path / f"cpu_{mode}" / name))
            b = read_label_image(str(tmp_path / f"cuda_{mode}" / name))
            assert (a > 0).any() and np.mean(a == b) >= RENDER_AGREEMENT, (mode, name, np.mean(a == b))


if __name__ == "__main__":
    if sys.argv[1:] == ["emulate"]:
        emulation_main()
    elif sys.argv[1:] == ["emulate-bench"]:
        emulation_bench_main()
    else:
        sys.exit(f"usage: {sys.argv[0]} emulate | emulate-bench")


@pytest.mark.gpu
def test_gpu_per_view_ids_associate_as_on_the_cpu(gpu_backend, tmp_path):
    """SAM-style folders: the association's per-view pass on the device gives the CPU's instances and labels
    (up to the odd float-borderline Gaussian)."""
    import warnings

    from blender_gsseg.core.metrics import matched_accuracy
    from blender_gsseg.core.pipeline import segment_scene
    from synthetic.sam_folders import write_sam_folders
    from synthetic.scene import make_scene

    scene = make_scene(n_spheres=4, points_per_unit_area=220, n_cameras=10, width=96, height=72, seed=2)
    write_sam_folders(tmp_path, [c.image_name for c in scene.cameras], [scene.mask(c) for c in scene.cameras],
                      seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cpu, gpu = (segment_scene(scene.gaussians, scene.cameras, str(tmp_path), backend=backend, ids="per-view")
                    for backend in ("cpu", gpu_backend()))
    assert gpu.report["association"]["n_instances"] == cpu.report["association"]["n_instances"]
    assert matched_accuracy(gpu.labels, cpu.labels) > 0.999
