"""Splat files in and out: any format the readers know (.ply, SuperSplat .compressed.ply, .splat, .spz, .glb, .sog,
.ksplat) into a checked :class:`~..gaussians.Gaussians`; out, a standard binary little-endian PLY (losslessly), .glb
(KHR_gaussian_splatting, labels included), .compressed.ply, .sog, .spz or .splat (:func:`write_splat_file` picks
by the name)."""

from __future__ import annotations

import os

import numpy as np

from ..errors import BadInputError
from ..gaussians import Gaussians
from .commit import Commit, StagingFolder
from .dot_splat import read_dot_splat
from .ply import read_ply, write_gaussians
from .spz import read_spz

def read_gaussians(path: str | os.PathLike) -> Gaussians:
    """Read a splat file (.ply, SuperSplat .compressed.ply, .splat, .spz, .glb, .sog, .ksplat) into a checked
    :class:`Gaussians`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise BadInputError(f"{path}: no such file")
    lower = path.lower()
    if lower.endswith(".splat"):
        return read_dot_splat(path).check()
    if lower.endswith(".spz"):
        return read_spz(path).check()
    if lower.endswith(".glb"):
        from .gltf import read_glb

        return read_glb(path).check()
    if lower.endswith(".sog"):
        from .sog import read_sog

        return read_sog(path).check()
    if lower.endswith(".ksplat"):
        from .ksplat import read_ksplat

        return read_ksplat(path).check()
    return read_ply(path).check()


# Output formats by file name ending, and whether they carry gsseg's labels.
WRITTEN_FORMATS = {".compressed.ply": True, ".ply": True, ".glb": True, ".sog": False, ".splat": False,
                   ".spz": False}


def output_format(path: str | os.PathLike) -> str:
    """The format ``path``'s name asks for (a key of WRITTEN_FORMATS); a clear error for any other."""
    lower = os.fspath(path).lower()
    for ending in WRITTEN_FORMATS:
        if lower.endswith(ending):
            return ending
    raise BadInputError(f"{path}: unknown output format (the name must end in {', '.join(WRITTEN_FORMATS)})")


def write_splat_file(path: str | os.PathLike, gaussians: Gaussians, commit: Commit | StagingFolder | None = None,
                     sog_palette: int | None = None) -> list[str]:
    """Write ``gaussians`` in the format ``path``'s name asks for (:func:`output_format`); returns what the
    format cannot keep (e.g. labels in a .splat), for the caller to say. ``sog_palette``: the SH palette size
    of a .sog (default: splat-transform's for the splat count)."""
    from .labels import LABEL_PROPERTY

    kind = output_format(path)
    lost = []
    if LABEL_PROPERTY in gaussians.property_names and not WRITTEN_FORMATS[kind]:
        lost.append(f"{kind} cannot carry labels: {LABEL_PROPERTY} is not written")
    if kind == ".compressed.ply":
        from .compressed_ply import write_compressed_ply

        if gaussians.sh_degree > 3:
            raise BadInputError(f"{path}: compressed PLY holds SH up to degree 3 (convert with --sh-degree 3)")
        write_compressed_ply(path, gaussians, commit)
    elif kind == ".ply":
        write_gaussians(path, gaussians, commit)
    elif kind == ".glb":
        from .gltf import write_glb

        lost += write_glb(path, gaussians, commit)
    elif kind == ".sog":
        from .sog import write_sog

        write_sog(path, gaussians, commit, palette_size=sog_palette)
    elif kind == ".spz":
        from .spz import write_spz

        write_spz(path, gaussians, commit)
    else:
        from .dot_splat import write_dot_splat

        if gaussians.sh_degree:
            lost.append(f".splat holds no view-dependent colour: SH degree {gaussians.sh_degree} is dropped")
        write_dot_splat(path, gaussians, commit)
    return lost
