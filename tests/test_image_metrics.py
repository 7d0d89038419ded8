"""PSNR and SSIM (core.metrics), the fidelity figures of the splat display, against plain per-window sums."""

import numpy as np

from blender_gsseg.core.metrics import SSIM_RADIUS, SSIM_SIGMA, psnr, ssim


def ssim_by_windows(image, reference):
    """Wang et al.'s SSIM written out window by window (Gaussian weights, sigma 1.5, 11 x 11, 'valid')."""
    offsets = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1)
    weights = np.exp(-0.5 * (offsets[:, None] ** 2 + offsets[None, :] ** 2) / SSIM_SIGMA ** 2)
    weights /= weights.sum()
    size = 2 * SSIM_RADIUS + 1
    scores = []
    for channel in range(image.shape[2]):
        for i in range(image.shape[0] - size + 1):
            for j in range(image.shape[1] - size + 1):
                x = image[i:i + size, j:j + size, channel]
                y = reference[i:i + size, j:j + size, channel]
                mx, my = (weights * x).sum(), (weights * y).sum()
                vx, vy = (weights * (x - mx) ** 2).sum(), (weights * (y - my) ** 2).sum()
                cov = (weights * (x - mx) * (y - my)).sum()
                scores.append((2 * mx * my + 1e-4) * (2 * cov + 9e-4) / ((mx ** 2 + my ** 2 + 1e-4) * (vx + vy + 9e-4)))
    return float(np.mean(scores))


def test_ssim_matches_the_window_by_window_definition():
    rng = np.random.default_rng(0)
    reference = rng.random((19, 23, 3))
    image = np.clip(reference + rng.normal(0, 0.1, reference.shape), 0, 1)
    assert np.isclose(ssim(image, reference), ssim_by_windows(image, reference), atol=1e-10)
    assert ssim(reference, reference) == 1.0
    assert ssim(image, reference) < 0.95


def test_psnr():
    reference = np.zeros((4, 5, 3))
    assert psnr(reference, reference) == float("inf")
    assert np.isclose(psnr(reference + 0.1, reference), 20.0)
