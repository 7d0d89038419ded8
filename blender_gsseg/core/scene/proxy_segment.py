"""Labels from proxy objects alone: an artist without cameras or masks puts a loose mesh (a box) around each
object, and each Gaussian gets the instance of the proxy it belongs to, or the background (0).

Geometry decides where it can, the splat itself where geometry cannot:

- a Gaussian whose footprint (its 3-sigma ellipsoid, tested at its centre and its six axis ends) touches no
  proxy is background, always;
- a Gaussian deep inside one proxy (inside it shrunk by ``DEEP`` about its centre) and inside no other is that
  proxy's: a seed;
- every other Gaussian that touches a proxy -- inside several proxies (loose boxes overlap), near a proxy's
  walls (the floor a box reaches into), or only spilling into it (the faint halo around an object's surface) --
  takes the label its neighbours of like colour carry: labels spread from the seeds over a graph of nearest
  neighbours weighted by colour likeness, each Gaussian choosing only among the proxies it touches and the
  background (a random-walk label propagation, as graph-cut segmenters of splats do with a smoothness term).

The scores are kept as an accumulation (:func:`proxy_weights`: per Gaussian a weight per proxy and the
background, summing to 1), so the solver, the gamma slider and halo membership read them as they read a mask
accumulation: gamma 0 gives :func:`proxy_labels`; gamma moves only the uncertain Gaussians (certain ones have all
their weight on one label): a proxy takes a Gaussian when its score exceeds the background's by more than
gamma, and the halo at gamma is every Gaussian whose score for the proxy exceeds (1 + gamma) / 2.

``baseline_labels`` is the naive rule the benchmark compares with: the centre inside the smallest proxy that
holds it.
"""

from __future__ import annotations

import collections.abc
import dataclasses

import numpy as np

from ..gaussians import Gaussians
from .proxy_geometry import points_inside

DEEP = 0.75  # a seed lies inside its proxy shrunk by this factor about the proxy's centre (if it holds any)
REACH = 1.3  # the graph covers the Gaussians inside the proxies grown by this factor
FOOTPRINT_SIGMAS = 3.0
NEIGHBOURS = 10
COLOUR_SCALE = 0.08  # colour distance (RGB in [0, 1]) at which a neighbour's vote falls to exp(-1/2)
ITERATIONS = 60
BACKGROUND_PRIOR = 0.05  # a standing vote for the background where the centre is outside every proxy: weak
# evidence (an isolated floater spilling into a box) stays background


@dataclasses.dataclass
class Proxy:
    label: int  # the instance id it stands for (> 0)
    triangles: np.ndarray  # [T, 3, 3] closed mesh, in the Gaussians' frame
    name: str = ""

    @property
    def centre(self) -> np.ndarray:
        corners = self.triangles.reshape(-1, 3)
        return (corners.min(axis=0) + corners.max(axis=0)) / 2.0

    def scaled(self, factor: float) -> np.ndarray:  # [T, 3, 3]
        return self.centre + factor * (self.triangles - self.centre)

    @property
    def volume(self) -> float:  # of a closed mesh (divergence theorem)
        a, b, c = self.triangles[:, 0], self.triangles[:, 1], self.triangles[:, 2]
        return float(abs(np.einsum("ij,ij->i", a, np.cross(b, c)).sum()) / 6.0)


def footprint_points(gaussians: Gaussians, sigmas: float = FOOTPRINT_SIGMAS) -> np.ndarray:  # [7, N, 3]
    """Each Gaussian's centre and the six ends of its axes at ``sigmas`` standard deviations."""
    from ..cameras import quaternions_to_rotations

    means = gaussians.means.astype(np.float64)
    axes = quaternions_to_rotations(gaussians.rotations) * gaussians.scales[:, None, :].astype(np.float64)
    ends = [means]
    for k in range(3):
        ends += [means + sigmas * axes[:, :, k], means - sigmas * axes[:, :, k]]
    return np.stack(ends)


def touches(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:  # [7, N, 3] -> [N] bool
    inside = points_inside(points.reshape(-1, 3), triangles).reshape(points.shape[:2])
    return inside.any(axis=0)


def baseline_labels(gaussians: Gaussians, proxies: collections.abc.Sequence[Proxy]) -> np.ndarray:  # [N] int32
    """The naive rule: the label of the smallest proxy that holds the Gaussian's centre, else 0."""
    means = gaussians.means.astype(np.float64)
    labels = np.zeros(len(gaussians), dtype=np.int32)
    for proxy in sorted(proxies, key=lambda p: -p.volume):  # the smallest last: it wins
        labels[points_inside(means, proxy.triangles)] = proxy.label
    return labels


def nearest_neighbours(points: np.ndarray, count: int) -> np.ndarray:  # [M, 3] -> [M, count] int (-1: none)
    """The ``count`` nearest other points of each point, by a uniform grid (cells of about ``count`` points,
    searched in the 27 around each point's own)."""
    m = len(points)
    result = np.full((m, count), -1, dtype=np.int64)
    if m < 2:
        return result
    low, high = points.min(axis=0), points.max(axis=0)
    extent = np.maximum(high - low, 1e-9)
    # cells of about ``count`` points: the bounding volume's share first, then smaller while the occupied cells
    # hold more (points on surfaces fill few cells of a volume)
    cell = max(float(np.prod(extent) * count / m) ** (1.0 / 3.0), float(extent.max()) / 1024.0)
    for _ in range(16):
        cells = np.floor((points - low) / cell).astype(np.int64)
        occupied = len(np.unique(cells[:, 0] * (1 << 42) + cells[:, 1] * (1 << 21) + cells[:, 2]))
        if m / occupied <= count or cell <= float(extent.max()) / 1024.0:
            break
        cell /= 1.5
    size = cells.max(axis=0) + 3
    keys = ((cells[:, 0] + 1) * size[1] + cells[:, 1] + 1) * size[2] + cells[:, 2] + 1
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    offsets = [(dx * size[1] + dy) * size[2] + dz for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)]
    chunk = max(1, 2_000_000 // (27 * count))
    for start in range(0, m, chunk):
        rows = np.arange(start, min(start + chunk, m))
        pair_rows, pair_cols = [], []
        for offset in offsets:
            target = keys[rows] + offset
            first = np.searchsorted(sorted_keys, target, side="left")
            last = np.searchsorted(sorted_keys, target, side="right")
            lengths = last - first
            total = int(lengths.sum())
            if total == 0:
                continue
            repeated = np.repeat(np.arange(len(rows)), lengths)
            position = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            pair_rows.append(repeated)
            pair_cols.append(order[np.repeat(first, lengths) + position])
        local = np.concatenate(pair_rows)
        other = np.concatenate(pair_cols)
        keep = other != rows[local]
        local, other = local[keep], other[keep]
        distance = np.sum((points[rows[local]] - points[other]) ** 2, axis=1)
        ranking = np.lexsort((distance, local))
        local, other = local[ranking], other[ranking]
        starts = np.searchsorted(local, np.arange(len(rows)), side="left")
        rank = np.arange(len(local)) - starts[local]
        near = rank < count
        result[rows[local[near]], rank[near]] = other[near]
    return result


def proxy_weights(
    gaussians: Gaussians,
    proxies: collections.abc.Sequence[Proxy],
    *,
    iterations: int = ITERATIONS,
    progress: collections.abc.Callable[[int, int], None] | None = None,  # (steps done, steps)
    cancel: collections.abc.Callable[[], bool] | None = None,  # True: stop (raises CancelledError)
) -> tuple[np.ndarray, np.ndarray]:  # label_ids int32 [L], weights float32 [L, N]
    """The proxies' segmentation as an accumulation (label_ids: 0, then the proxies' labels ascending; weights
    [L, N], each column summing to 1): a Gaussian's weight for a proxy is its score from the label propagation
    (see the module docstring), its background weight the rest. A seed or a Gaussian that touches no proxy has
    all its weight on one label; only the uncertain ones (overlaps, walls, halo) share theirs. Proxies with the
    same label add their scores. The solver (``lift/solver.Shares``) reads it as it reads a mask accumulation:
    at gamma 0 it gives :func:`proxy_labels`; gamma > 0 takes fewer of the uncertain Gaussians, gamma < 0 more."""
    from ..errors import CancelledError

    steps = len(proxies) + 1 + iterations

    def step(done):
        if cancel is not None and cancel():
            raise CancelledError("segmentation from proxies cancelled")
        if progress is not None:
            progress(done, steps)

    n = len(gaussians)
    label_ids = np.unique(np.array([0] + [p.label for p in proxies], dtype=np.int32))
    weights = np.zeros((len(label_ids), n), dtype=np.float32)
    weights[0] = 1.0
    if n == 0 or not proxies:
        return label_ids, weights
    ends = footprint_points(gaussians)
    centres = ends[0]
    count = len(proxies)
    touching = []
    for number, proxy in enumerate(proxies):
        touching.append(touches(ends, proxy.triangles))
        step(number + 1)
    touching = np.stack(touching)  # [P, N]
    inside = np.stack([points_inside(centres, proxy.triangles) for proxy in proxies])
    deep = np.stack([points_inside(centres, proxy.scaled(DEEP)) for proxy in proxies])
    deep[~deep.any(axis=1)] = inside[~deep.any(axis=1)]  # a hollow or thin object: no Gaussian deep inside
    near = np.zeros(n, dtype=bool)
    for proxy in proxies:
        near |= points_inside(centres, proxy.scaled(REACH))
    near |= touching.any(axis=0)

    # the graph: Gaussians near a proxy; columns of the scores: background, then the proxies in order
    nodes = np.flatnonzero(near)
    allowed = np.ones((len(nodes), count + 1), dtype=bool)
    allowed[:, 1:] = touching[:, nodes].T
    seeds = np.full(len(nodes), -1)
    seeds[~touching[:, nodes].any(axis=0)] = 0
    single = deep[:, nodes] & (inside[:, nodes].sum(axis=0) == 1)
    for k in range(count):
        seeds[single[k]] = k + 1
    scores = allowed / allowed.sum(axis=1, keepdims=True)
    fixed = seeds >= 0
    scores[fixed] = 0.0
    scores[fixed, seeds[fixed]] = 1.0

    neighbours = nearest_neighbours(centres[nodes], NEIGHBOURS)
    step(count + 1)
    colours = gaussians.base_colors[nodes].astype(np.float64)
    valid = neighbours >= 0
    safe = np.where(valid, neighbours, 0)
    difference = np.sum((colours[:, None, :] - colours[safe]) ** 2, axis=2)
    weights_nn = np.where(valid, np.exp(-0.5 * difference / COLOUR_SCALE ** 2), 0.0)
    weights_nn *= gaussians.opacities[nodes][safe]  # faint neighbours vote less
    # and far ones too: neighbours whose footprints do not overlap barely vote (floaters in the air)
    reach = FOOTPRINT_SIGMAS * gaussians.scales[nodes].max(axis=1).astype(np.float64)
    gap = np.sqrt(np.sum((centres[nodes][:, None, :] - centres[nodes][safe]) ** 2, axis=2))
    weights_nn *= np.exp(-0.5 * (gap / (reach[:, None] + reach[safe])) ** 2)
    free = ~fixed
    prior = np.where(inside[:, nodes].any(axis=0), 0.0, BACKGROUND_PRIOR)[free]
    for iteration in range(iterations):
        step(count + 2 + iteration)
        votes = np.einsum("mk,mkl->ml", weights_nn[free], scores[safe[free]])
        votes[:, 0] += prior
        votes *= allowed[free]
        total = votes.sum(axis=1, keepdims=True)
        undecided = total[:, 0] <= 0
        votes[~undecided] /= total[~undecided]
        votes[undecided] = scores[free][undecided]
        scores[free] = votes
    rows = np.searchsorted(label_ids, [0] + [p.label for p in proxies])  # each score column's row
    merged = np.zeros((len(label_ids), len(nodes)))
    np.add.at(merged, rows, scores.T)
    weights[:, nodes] = merged
    return label_ids, weights


def proxy_labels(
    gaussians: Gaussians,
    proxies: collections.abc.Sequence[Proxy],
    *,
    iterations: int = ITERATIONS,
    progress: collections.abc.Callable[[int, int], None] | None = None,  # (steps done, steps)
    cancel: collections.abc.Callable[[], bool] | None = None,  # True: stop (raises CancelledError)
) -> np.ndarray:  # [N] int32: a proxy's label or 0
    """Each Gaussian's instance from the proxies (see the module docstring): :func:`proxy_weights` decided as
    the solver decides at gamma 0."""
    label_ids, weights = proxy_weights(gaussians, proxies, iterations=iterations, progress=progress,
                                       cancel=cancel)
    return labels_at_zero(label_ids, weights)


def labels_at_zero(label_ids: np.ndarray, weights: np.ndarray) -> np.ndarray:  # [N] int32
    """The label lift/solver.Shares.solve(0) gives a dense accumulation whose every column has weight (this
    floor cannot import the solver; tests/test_proxy_segment.py checks that they agree): the shares in float32
    as Shares.dense makes them, the best foreground label (ties to the smaller id), taken when its share
    exceeds the background's."""
    total = weights.sum(axis=0, dtype=np.float64).astype(np.float32)
    inverse = np.zeros_like(total)
    np.divide(1.0, total, out=inverse, where=total > 0)
    background = weights[0] * inverse
    best = np.full(weights.shape[1], -1.0, dtype=np.float32)
    best_label = np.zeros(weights.shape[1], dtype=np.int32)
    for row in range(1, len(label_ids)):
        share = weights[row] * inverse
        better = share > best  # rows ascend by id: ties stay with the smaller id
        np.copyto(best, share, where=better)
        best_label[better] = label_ids[row]
    return np.where((best > background + np.float32(0.0)) & (best_label > 0), best_label, 0).astype(np.int32)
