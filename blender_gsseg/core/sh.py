"""View-dependent colour from spherical harmonics, the INRIA convention (3DGS ``utils/sh_utils.eval_sh``).

A Gaussian's colour seen from a camera is ``C0 * dc + sum over the higher bands of basis(dir) * f_rest + 0.5``,
``dir`` the unit vector from the camera centre to the Gaussian's mean; bands 1 to 3 hold 3, 5 and 7
coefficients per channel (``f_rest`` is channel-major, :attr:`~.gaussians.Gaussians.sh_rest`). Colours are
clipped to [0, 1] per Gaussian, as the degree-0 colours (:attr:`~.gaussians.Gaussians.base_colors`) are.
"""

from __future__ import annotations

import numpy as np

from .gaussians import SH_C0, Gaussians

SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
         1.445305721320277, -0.5900435899266435)


def sh_basis(directions: np.ndarray, degree: int) -> np.ndarray:  # [N, 3] unit -> [N, (degree + 1) ** 2]
    """The real SH basis of ``degree`` (0 to 3) at unit ``directions``, in the INRIA order and signs."""
    x, y, z = (directions[:, k].astype(np.float64) for k in range(3))
    columns = [np.full(len(directions), SH_C0)]
    if degree > 0:
        columns += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree > 1:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        columns += [SH_C2[0] * xy, SH_C2[1] * yz, SH_C2[2] * (2 * zz - xx - yy), SH_C2[3] * xz,
                    SH_C2[4] * (xx - yy)]
    if degree > 2:
        columns += [SH_C3[0] * y * (3 * xx - yy), SH_C3[1] * xy * z, SH_C3[2] * y * (4 * zz - xx - yy),
                    SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy), SH_C3[4] * x * (4 * zz - xx - yy),
                    SH_C3[5] * z * (xx - yy), SH_C3[6] * x * (xx - 3 * yy)]
    return np.stack(columns, axis=1)


def view_colours(gaussians: Gaussians, centre: np.ndarray, degree: int | None = None) -> np.ndarray:
    """RGB [N, 3] float32 in [0, 1] of each Gaussian seen from ``centre`` ([3], the camera's position), with the
    SH bands up to ``degree`` (default: all the scene has; 0 gives the base colours)."""
    available = gaussians.sh_degree
    degree = available if degree is None else min(int(degree), available)
    if degree <= 0:
        return gaussians.base_colors
    directions = gaussians.means.astype(np.float64) - np.asarray(centre, dtype=np.float64)[None]
    norms = np.linalg.norm(directions, axis=1, keepdims=True)
    directions = np.divide(directions, norms, out=np.zeros_like(directions), where=norms > 0)
    basis = sh_basis(directions, degree)  # [N, B]
    count = (degree + 1) ** 2 - 1
    rgb = basis[:, :1] * gaussians.sh_dc + np.einsum("nb,nbc->nc", basis[:, 1:], gaussians.sh_rest[:, :count])
    return np.clip(rgb + 0.5, 0.0, 1.0).astype(np.float32)
