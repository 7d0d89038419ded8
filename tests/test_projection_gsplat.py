"""Projection against gsplat 1.5.3's pure-PyTorch reference (independent code, same EWA maths).

gsplat puts pixel centres at j + 0.5 (ours: integer j, as INRIA), so its means are ours + 0.5; its radius rule
differs on purpose and is not compared. Both clamp the Jacobian at 1.3 tan(fov/2) for a centred principal
point; gsplat's near plane is 0.01 (ours 0.2), so only Gaussians in front of both are compared.
"""

import numpy as np
import pytest

from blender_gsseg.core.raster import projection
from oracles import require
from scenes import front_camera, random_scene, rotated_camera

torch = require("torch")
gsplat_torch = require("gsplat.cuda._torch_impl")


@pytest.mark.parametrize("seed,camera", [(0, front_camera()), (1, rotated_camera(1)), (2, rotated_camera(4))])
def test_means_conics_depths_match_gsplat(seed, camera):
    scene = random_scene(seed, n=400)
    covs = projection.covariances_3d(scene.scales, scene.rotations)
    ours = projection.project_gaussians(scene.means, covs, scene.opacities, camera)

    K = np.array([[camera.fx, 0, camera.cx], [0, camera.fy, camera.cy], [0, 0, 1]])
    radii, means2d, depths, conics, _ = gsplat_torch._fully_fused_projection(
        torch.tensor(scene.means, dtype=torch.float64)[None],
        torch.tensor(covs, dtype=torch.float64)[None],
        torch.tensor(camera.world_to_camera, dtype=torch.float64)[None, None],
        torch.tensor(K, dtype=torch.float64)[None, None],
        camera.width, camera.height, eps2d=projection.LOW_PASS, near_plane=projection.NEAR_PLANE)
    theirs_means = means2d[0, 0].numpy() - 0.5
    theirs_conics = conics[0, 0].numpy()
    theirs_depths = depths[0, 0].numpy()
    both = (ours.depths > projection.NEAR_PLANE) & (theirs_depths > projection.NEAR_PLANE)
    assert both.sum() > 100
    np.testing.assert_allclose(ours.depths[both], theirs_depths[both], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.means2d[both], theirs_means[both], rtol=1e-4, atol=2e-3)
    # Conics: compare relative to their scale (tiny Gaussians have conics ~ 1/0.3).
    scale = np.abs(theirs_conics[both]).max(axis=1, keepdims=True)
    np.testing.assert_allclose(ours.conics[both] / scale, theirs_conics[both] / scale, atol=2e-4)
    # Culling: everything gsplat keeps in front of our near plane, we keep unless it is off-screen.
    assert not np.any(ours.visible & (ours.depths <= projection.NEAR_PLANE))
