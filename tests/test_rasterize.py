"""The fast CPU rasterization against the slow per-pixel reference written from the INRIA kernel rules."""

import numpy as np
import pytest

from blender_gsseg.core.raster import projection
from blender_gsseg.core.raster import cpu_kernels, rasterize
from blender_gsseg.core.lift.accumulate import accumulate_weights
from blender_gsseg.core.raster.backends import CpuBackend
from blender_gsseg.core.raster.rasterize import iter_contributions
from reference_raster import reference_weights
from oracles import unless
from scenes import random_scene, rotated_camera, front_camera


def project(gaussians, camera):
    covs = projection.covariances_3d(gaussians.scales, gaussians.rotations)
    return projection.project_gaussians(gaussians.means, covs, gaussians.opacities, camera)


_REFERENCES = {}


def scene_reference(seed, camera, include_every=None):
    """random_scene(seed) projected at ``camera`` and the per-pixel reference's weights and final transmittance
    (with ``include_every`` k: of every k-th Gaussian only), computed once per test session: the reference is
    the slow part, and the fast walk is compared with it at several chunk sizes and walk steps."""
    key = (seed, camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy,
           np.asarray(camera.world_to_camera).tobytes(), include_every)
    if key not in _REFERENCES:
        scene = random_scene(seed)
        projected = project(scene, camera)
        include = None if include_every is None else np.arange(len(scene)) % include_every == 0
        _REFERENCES[key] = (scene, projected, include) + reference_weights(projected, include)
    return _REFERENCES[key]


def dense_fast(projected, chunk_entries=1 << 22, include=None):
    out = np.zeros((len(projected.radii), projected.height * projected.width))
    for gid, pixel, weight in iter_contributions(projected, include=include, chunk_entries=chunk_entries):
        np.add.at(out, (gid, pixel), weight)
    return out.reshape(len(projected.radii), projected.height, projected.width)


@pytest.fixture(params=["default steps", "one pair per step"])
def walk_steps(request, monkeypatch):
    """The numpy walk with its own step sizes, or one pair of each tile per step (a pixel's walk then spans
    many steps and chunks, carried by its transmittance between them)."""
    if request.param == "one pair per step":
        monkeypatch.setattr(rasterize, "LEVEL_PAIRS", 1)
        monkeypatch.setattr(rasterize, "MIN_STEP_PAIRS", 1)
    return request.param


@pytest.mark.parametrize("seed,camera", [(0, front_camera()), (1, front_camera(cx=30.0, cy=31.0)),
                                         (2, rotated_camera(2)), (3, front_camera(width=33, height=17))])
@pytest.mark.parametrize("chunk_entries", [1 << 22, 700])
def test_weights_match_reference(seed, camera, chunk_entries, walk_steps):
    _, projected, _, reference, t_final = scene_reference(seed, camera)
    assert (projected.depths <= projection.NEAR_PLANE).any(), "scene should put some Gaussians behind"
    assert (projected.radii > 3 * projection.TILE_SIZE).any(), "scene should hold Gaussians spanning tiles"
    fast = dense_fast(projected, chunk_entries)
    err = np.abs(fast - reference)
    assert (err <= 1e-5).mean() >= 0.9999
    assert abs(fast.sum() - reference.sum()) <= 1e-4 * reference.sum()
    # Per pixel, the weights sum to 1 - T_final.
    np.testing.assert_allclose(fast.sum(axis=0), 1 - t_final, atol=1e-5)


def test_subset_render_matches_reference(walk_steps):
    _, projected, include, reference, _ = scene_reference(5, front_camera(), include_every=3)
    fast = dense_fast(projected, include=include)
    assert np.abs(fast - reference).max() < 1e-5
    assert fast[~include].sum() == 0


CPU_PATHS = [pytest.param(False, id="numpy"),
             pytest.param(True, id="numba", marks=unless(cpu_kernels.available(), "numba"))]


@pytest.mark.parametrize("use_numba", CPU_PATHS)
@pytest.mark.parametrize("seed,camera", [(7, front_camera()), (8, rotated_camera(8))])
def test_accumulation_sums_weights_per_label(use_numba, seed, camera):
    """A[e, i] = sum over pixels with label e of w_i(p), with ignored pixels counting for nothing."""
    scene, _, _, reference, _ = scene_reference(seed, camera)
    rng = np.random.default_rng(0)
    index_map = rng.integers(-1, 3, (camera.height, camera.width)).astype(np.int32)
    acc = accumulate_weights(scene, [camera, camera], [index_map, index_map], [0, 4, 9],
                             backend=CpuBackend(use_numba=use_numba))
    assert acc.weights.shape == (3, len(scene))
    for e in range(3):
        expected = 2 * reference[:, index_map == e].sum(axis=1)
        np.testing.assert_allclose(acc.weights[e], expected, atol=2e-5, rtol=1e-5)


def test_kernel_tests_count_every_pixel_of_every_touched_tile_and_sampling_estimates_them():
    """The time estimate's count: with every Gaussian and every view, exactly 256 tests per (tile, Gaussian) pair
    of the walk; from a sample of a tenth of the Gaussians and 3 of 8 views, within 15% of it."""
    from blender_gsseg.core.raster.backends import estimate_sample, kernel_tests

    scene = random_scene(11, n=4000)
    cams = [rotated_camera(seed, 96, 64) for seed in range(8)]
    exact = sum(len(rasterize.sorted_tile_pairs(project(scene, camera))[0]) for camera in cams) * 256
    assert exact > 0
    assert kernel_tests(estimate_sample(scene, size=len(scene)), cams, sample_views=len(cams)) == exact
    sample = estimate_sample(scene, size=400)
    assert len(sample) == 400
    estimate = kernel_tests(sample, cams) * len(scene) / len(sample)
    assert abs(estimate / exact - 1) < 0.15, estimate / exact


def test_planned_backend_says_why_the_compiled_walk_is_not_used(monkeypatch):
    from blender_gsseg.core.raster import backends

    monkeypatch.setattr(backends, "cuda_available", lambda: False)
    monkeypatch.setattr(cpu_kernels, "numba", None)
    monkeypatch.setattr(cpu_kernels, "WHY_UNAVAILABLE", "Numba needs NumPy 2.3 or less. Got NumPy 2.5.")
    assert backends.planned_backend("auto") == (
        "numpy", "CPU, numpy (numba unavailable: Numba needs NumPy 2.3 or less. Got NumPy 2.5.)")
    assert backends.planned_backend("cuda")[0] == "none"
