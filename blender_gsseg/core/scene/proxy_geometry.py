"""Which Gaussians lie inside a proxy mesh: a closed triangle mesh standing for an object (Blender's "Select
Inside Object", proxy segmentation).

A point is inside when a ray from it crosses the surface an odd number of times. The ray runs along
(1, RAY_SKEW): askew, so that a ray through a mesh edge (points on a face's diagonal, on a box's mid-plane) is
the exception rather than the rule; a shear makes it the +x axis. The
loop runs over triangles, never over points: the points are sorted by y once, and each triangle tests only the
points in its y range (then its z range), so a box proxy over a million points costs a few sorted-array lookups.
"""

from __future__ import annotations

import numpy as np

RAY_SKEW = (0.0137, 0.0291)  # the ray's y and z per unit of x


def points_inside(
    points: np.ndarray,  # [N, 3]
    triangles: np.ndarray,  # [T, 3, 3] vertices of a closed mesh, in the points' frame
) -> np.ndarray:  # [N] bool
    """Whether each point is inside the closed mesh ``triangles`` (crossing parity along +x)."""
    shear = np.array([[1.0, 0.0, 0.0], [-RAY_SKEW[0], 1.0, 0.0], [-RAY_SKEW[1], 0.0, 1.0]])
    points = np.asarray(points, dtype=np.float64) @ shear.T
    triangles = np.asarray(triangles, dtype=np.float64) @ shear.T
    crossings = np.zeros(len(points), dtype=np.int32)
    if len(points) == 0 or len(triangles) == 0:
        return crossings.astype(bool)
    order = np.argsort(points[:, 1], kind="stable")
    ys = points[order, 1]
    for a, b, c in triangles:
        low, high = min(a[1], b[1], c[1]), max(a[1], b[1], c[1])
        start, stop = np.searchsorted(ys, [low, high], side="left")[0], np.searchsorted(ys, high, side="right")
        if start >= stop:
            continue
        candidates = order[start:stop]
        y, z = points[candidates, 1], points[candidates, 2]
        keep = (z >= min(a[2], b[2], c[2])) & (z <= max(a[2], b[2], c[2]))
        candidates, y, z = candidates[keep], y[keep], z[keep]
        # barycentric coordinates in the (y, z) plane
        denominator = (b[1] - a[1]) * (c[2] - a[2]) - (c[1] - a[1]) * (b[2] - a[2])
        if abs(denominator) < 1e-20 or len(candidates) == 0:
            continue  # edge-on to the ray: it cannot be crossed
        u = ((y - a[1]) * (c[2] - a[2]) - (c[1] - a[1]) * (z - a[2])) / denominator
        v = ((b[1] - a[1]) * (z - a[2]) - (y - a[1]) * (b[2] - a[2])) / denominator
        hit = (u >= 0) & (v >= 0) & (u + v < 1)
        x_hit = a[0] + u * (b[0] - a[0]) + v * (c[0] - a[0])
        crossed = hit & (x_hit > points[candidates, 0])
        crossings[candidates[crossed]] += 1
    return crossings % 2 == 1
