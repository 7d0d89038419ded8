"""View-dependent colour from SH degrees 1-3 (the INRIA convention) against gsplat's pure-PyTorch
``_spherical_harmonics`` (independent code), and render_colour with it."""

import numpy as np
import pytest

from blender_gsseg.core.raster.render import render_colour
from blender_gsseg.core.raster.sh import sh_basis, view_colours
from oracles import require
from scenes import front_camera
from synthetic.scene import make_scene

gsplat_torch = require("gsplat.cuda._torch_impl")
torch = require("torch")


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_basis_matches_gsplat(degree):
    rng = np.random.default_rng(degree)
    directions = rng.normal(size=(500, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    coeffs = rng.normal(size=(500, 16, 3))
    ours = np.einsum("nb,nbc->nc", sh_basis(directions, degree), coeffs[:, :(degree + 1) ** 2])
    theirs = gsplat_torch._spherical_harmonics(degree, torch.from_numpy(directions),
                                               torch.from_numpy(coeffs)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_view_colours_of_an_sh3_scene_match_gsplat():
    scene = make_scene(n_spheres=2, points_per_unit_area=60, n_cameras=2, width=32, height=24, seed=1, sh_degree=3)
    gaussians = scene.gaussians
    vertex = gaussians.vertex
    rng = np.random.default_rng(2)
    for k in range(45):  # strong view dependence, so that every band matters
        vertex[f"f_rest_{k}"] = rng.normal(0, 0.3, len(vertex)).astype(np.float32)
    centre = scene.cameras[0].centre
    coeffs = np.concatenate([gaussians.sh_dc[:, None], gaussians.sh_rest], axis=1).astype(np.float64)  # [N, 16, 3]
    directions = gaussians.means.astype(np.float64) - centre[None]
    theirs = gsplat_torch._spherical_harmonics(3, torch.from_numpy(directions), torch.from_numpy(coeffs)).numpy()
    expected = np.clip(theirs + 0.5, 0, 1)
    np.testing.assert_allclose(view_colours(gaussians, centre), expected, atol=2e-6)
    assert np.array_equal(view_colours(gaussians, centre, 0), gaussians.base_colors)
    # degree 1 uses the first band only
    theirs1 = gsplat_torch._spherical_harmonics(1, torch.from_numpy(directions), torch.from_numpy(coeffs)).numpy()
    np.testing.assert_allclose(view_colours(gaussians, centre, 1), np.clip(theirs1 + 0.5, 0, 1), atol=2e-6)
    # another viewpoint, another colour; the rendered image follows
    assert np.abs(view_colours(gaussians, scene.cameras[1].centre) - view_colours(gaussians, centre)).max() > 0.1
    camera = scene.cameras[0]
    flat, _ = render_colour(gaussians, camera)
    lit, _ = render_colour(gaussians, camera, sh_degree=None)
    assert np.abs(lit - flat).max() > 0.05


def test_without_higher_bands_the_render_is_unchanged():
    from scenes import random_scene

    scene = random_scene(3, n=80)  # SH degree 0
    camera = front_camera(40, 30)
    assert np.array_equal(render_colour(scene, camera, sh_degree=None)[0], render_colour(scene, camera)[0])
