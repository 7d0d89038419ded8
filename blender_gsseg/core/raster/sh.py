"""View-dependent colour from spherical harmonics, the INRIA convention (3DGS ``utils/sh_utils.eval_sh``).

A Gaussian's colour seen from a camera is ``C0 * dc + sum over the higher bands of basis(dir) * f_rest + 0.5``,
``dir`` the unit vector from the camera centre to the Gaussian's mean; bands 1 to 3 hold 3, 5 and 7
coefficients per channel (``f_rest`` is channel-major, :attr:`~.gaussians.Gaussians.sh_rest`). Colours are
clipped to [0, 1] per Gaussian, as the degree-0 colours (:attr:`~.gaussians.Gaussians.base_colors`) are.
"""

from __future__ import annotations

import numpy as np

from ..gaussians import SH_C0, Gaussians

SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
         1.445305721320277, -0.5900435899266435)


# Each basis function as a polynomial in the unit direction (x, y, z): [(coefficient, (power x, power y,
# power z)), ...], in the INRIA order and signs. One table for numpy (:func:`sh_basis`) and for the Blender
# splat display, which builds the same sums as Geometry Nodes maths.
SH_POLYNOMIALS = (
    ((SH_C0, (0, 0, 0)),),
    ((-SH_C1, (0, 1, 0)),), ((SH_C1, (0, 0, 1)),), ((-SH_C1, (1, 0, 0)),),
    ((SH_C2[0], (1, 1, 0)),), ((SH_C2[1], (0, 1, 1)),),
    ((2 * SH_C2[2], (0, 0, 2)), (-SH_C2[2], (2, 0, 0)), (-SH_C2[2], (0, 2, 0))),
    ((SH_C2[3], (1, 0, 1)),), ((SH_C2[4], (2, 0, 0)), (-SH_C2[4], (0, 2, 0))),
    ((3 * SH_C3[0], (2, 1, 0)), (-SH_C3[0], (0, 3, 0))),
    ((SH_C3[1], (1, 1, 1)),),
    ((4 * SH_C3[2], (0, 1, 2)), (-SH_C3[2], (2, 1, 0)), (-SH_C3[2], (0, 3, 0))),
    ((2 * SH_C3[3], (0, 0, 3)), (-3 * SH_C3[3], (2, 0, 1)), (-3 * SH_C3[3], (0, 2, 1))),
    ((4 * SH_C3[4], (1, 0, 2)), (-SH_C3[4], (3, 0, 0)), (-SH_C3[4], (1, 2, 0))),
    ((SH_C3[5], (2, 0, 1)), (-SH_C3[5], (0, 2, 1))),
    ((SH_C3[6], (3, 0, 0)), (-3 * SH_C3[6], (1, 2, 0))),
)


def sh_basis(directions: np.ndarray, degree: int) -> np.ndarray:  # [N, 3] unit -> [N, (degree + 1) ** 2]
    """The real SH basis of ``degree`` (0 to 3) at unit ``directions``, in the INRIA order and signs."""
    xyz = directions.astype(np.float64)
    powers = {}

    def monomial(exponents):
        if exponents not in powers:
            value = np.ones(len(xyz))
            for axis, power in enumerate(exponents):
                if power:
                    value = value * xyz[:, axis] ** power
            powers[exponents] = value
        return powers[exponents]

    columns = [sum(coefficient * monomial(exponents) for coefficient, exponents in terms)
               for terms in SH_POLYNOMIALS[:(degree + 1) ** 2]]
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
