"""Segmentation metrics over label images (NVOS style): per-label IoU, mIoU, pixel accuracy; per-Gaussian accuracy
when the predicted ids are names of their own (matched one to one to the true ids); image fidelity (PSNR, SSIM)."""

from __future__ import annotations

import collections.abc

import numpy as np


def confusion_counts(
    predictions: collections.abc.Iterable[np.ndarray],  # [V] of int [H, W]
    truths: collections.abc.Iterable[np.ndarray],  # [V] of int [H, W]
    ignore_label: int | None = None,
) -> dict[tuple[int, int], int]:  # (truth, prediction) -> pixel count
    """{(truth, prediction): pixel count} summed over pairs of label images of equal shape."""
    counts = {}
    for pred, truth in zip(predictions, truths, strict=True):
        pred = np.asarray(pred, dtype=np.int64).ravel()
        truth = np.asarray(truth, dtype=np.int64).ravel()
        if ignore_label is not None:
            keep = truth != ignore_label
            pred, truth = pred[keep], truth[keep]
        pairs, n = np.unique(np.stack([truth, pred]), axis=1, return_counts=True)
        for (t, p), c in zip(pairs.T, n, strict=True):
            counts[(int(t), int(p))] = counts.get((int(t), int(p)), 0) + int(c)
    return counts


def segmentation_metrics(
    predictions: collections.abc.Iterable[np.ndarray],  # [V] of int [H, W]
    truths: collections.abc.Iterable[np.ndarray],  # [V] of int [H, W], same shapes
    ignore_label: int | None = None,  # truth pixels with this label are left out
) -> dict:  # {"miou": float, "miou_with_background": float, "macc": float, "per_label": {str id: float}}
    """``{"miou", "miou_with_background", "macc", "per_label": {str(id): iou}}``.

    IoU per label over every label in the ground truth or the prediction; ``miou`` averages the foreground
    labels (id > 0) of the ground truth, ``miou_with_background`` adds label 0; ``macc`` is pixel accuracy.
    """
    return metrics_from_counts(confusion_counts(predictions, truths, ignore_label))


def metrics_from_counts(counts: dict[tuple[int, int], int]) -> dict:
    """:func:`segmentation_metrics` from confusion counts (:func:`confusion_counts`, possibly summed over
    several calls)."""
    truth_labels = sorted({t for t, _ in counts})
    labels = sorted({t for t, _ in counts} | {p for _, p in counts})
    per_label = {}
    for label in labels:
        inter = counts.get((label, label), 0)
        truth_total = sum(c for (t, _), c in counts.items() if t == label)
        pred_total = sum(c for (_, p), c in counts.items() if p == label)
        union = truth_total + pred_total - inter
        per_label[label] = inter / union if union else 1.0
    total = sum(counts.values())
    correct = sum(c for (t, p), c in counts.items() if t == p)
    foreground = [per_label[l] for l in truth_labels if l > 0]
    with_background = [per_label[l] for l in truth_labels]
    return {
        "miou": float(np.mean(foreground)) if foreground else float("nan"),
        "miou_with_background": float(np.mean(with_background)) if with_background else float("nan"),
        "macc": correct / total if total else float("nan"),
        "per_label": {str(k): v for k, v in per_label.items()},
    }


def add_counts(total: dict[tuple[int, int], int], counts: dict[tuple[int, int], int]) -> dict[tuple[int, int], int]:
    """``total`` with ``counts`` added (in place); returns it."""
    for key, value in counts.items():
        total[key] = total.get(key, 0) + value
    return total


# ---------------------------------------------------------------------------------------------------------------
# Image fidelity (the Blender splat display against the rasterizer)

def matched_labels(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:  # [N] int, [N] int -> [N] int32
    """``predicted`` with its ids renamed to the true ids they match one to one, greedily by the number of
    Gaussians they share (largest first); an id left unmatched gets one no true label has; -1 (unseen) stays."""
    keep = predicted >= 0
    pairs, counts = np.unique(np.stack([predicted[keep], truth[keep]]), axis=1, return_counts=True)
    mapping, taken = {}, set()
    for k in np.argsort(-counts, kind="stable"):
        p, t = int(pairs[0, k]), int(pairs[1, k])
        if p not in mapping and t not in taken:
            mapping[p] = t
            taken.add(t)
    fresh = int(max(truth.max(initial=0), predicted.max(initial=0))) + 1
    ids, inverse = np.unique(predicted, return_inverse=True)
    renamed = np.array([-1 if i < 0 else mapping.get(int(i), fresh + int(i)) for i in ids], dtype=np.int32)
    return renamed[inverse.reshape(-1)]


def matched_accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Share of the Gaussians whose predicted label, renamed by :func:`matched_labels`, is the true one."""
    return float(np.mean(matched_labels(predicted, truth) == truth))


def psnr(image: np.ndarray, reference: np.ndarray) -> float:  # [H, W, C] in [0, 1] -> dB
    """Peak signal-to-noise ratio of ``image`` against ``reference`` (peak 1); inf when they are equal."""
    error = np.mean((np.asarray(image, np.float64) - np.asarray(reference, np.float64)) ** 2)
    return float("inf") if error == 0 else float(10.0 * np.log10(1.0 / error))


SSIM_SIGMA = 1.5  # Wang et al. 2004: an 11 x 11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03
SSIM_RADIUS = 5


def _gaussian_blur(image: np.ndarray) -> np.ndarray:  # [H, W] -> [H - 10, W - 10] ('valid' window positions)
    offsets = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1)
    window = np.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    window /= window.sum()
    size = len(window)
    rows = sum(window[k] * image[k:image.shape[0] - size + 1 + k] for k in range(size))
    return sum(window[k] * rows[:, k:rows.shape[1] - size + 1 + k] for k in range(size))


def ssim(image: np.ndarray, reference: np.ndarray) -> float:  # [H, W, C] in [0, 1]
    """Mean structural similarity (Gaussian window, per channel, then averaged), peak 1."""
    image = np.asarray(image, np.float64)
    reference = np.asarray(reference, np.float64)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    scores = []
    for channel in range(image.shape[2]):
        x, y = image[..., channel], reference[..., channel]
        mx, my = _gaussian_blur(x), _gaussian_blur(y)
        vx = _gaussian_blur(x * x) - mx * mx
        vy = _gaussian_blur(y * y) - my * my
        cov = _gaussian_blur(x * y) - mx * my
        scores.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    return float(np.mean(scores))


def splat_errors(source, decoded) -> dict:  # two Gaussians of equal length, splat for splat
    """RMS error of each attribute of ``decoded`` against ``source``, as the formats issue measures a lossy
    format: position relative to the largest side of the source's bounding box, f_dc, opacity after the sigmoid,
    log-scale, rotation angle (degrees), and the higher SH coefficients when both carry the same bands."""
    rms = lambda a: float(np.sqrt(np.mean(np.square(a))))  # noqa: E731
    from .files.quantize import sigmoid64

    log_scale = lambda g: np.stack([g.vertex[f"scale_{k}"].astype(np.float64) for k in range(3)], axis=1)  # noqa: E731
    source_means = source.means.astype(np.float64)
    side = float((source_means.max(axis=0) - source_means.min(axis=0)).max()) or 1.0  # one splat: absolute
    qs, qd = source.rotations.astype(np.float64), decoded.rotations.astype(np.float64)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    qd /= np.linalg.norm(qd, axis=1, keepdims=True)
    angle = np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(qs * qd, axis=1)), 0, 1)))
    errors = {"position": rms(decoded.means - source_means) / side,
              "f_dc": rms(decoded.sh_dc.astype(np.float64) - source.sh_dc),
              "opacity": rms(sigmoid64(decoded.vertex["opacity"]) - sigmoid64(source.vertex["opacity"])),
              "log_scale": rms(log_scale(decoded) - log_scale(source)),
              "rotation_deg": rms(angle)}
    if source.sh_degree and decoded.sh_degree == source.sh_degree:
        errors["sh_rest"] = rms(decoded.sh_rest.astype(np.float64) - source.sh_rest)
    return errors
