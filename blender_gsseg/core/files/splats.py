"""Splat files in and out by their name: any format of :data:`.formats.READ_FORMATS` into a checked
:class:`~..gaussians.Gaussians` (a name no format claims is read as a PLY), and out in any of
:data:`.formats.WRITTEN_FORMATS` (:func:`write_splat_file`), saying what the format could not keep."""

from __future__ import annotations

import os

from ..errors import BadInputError
from ..gaussians import Gaussians
from .commit import Commit, StagingFolder
from .formats import READ_FORMATS, WRITTEN_FORMATS, SplatFormat, named_format
from .ply import read_ply


def read_gaussians(path: str | os.PathLike, spz_axes: str | None = None) -> Gaussians:
    """Read a splat file in the format its name says (any other name: as a PLY) into a checked
    :class:`Gaussians`. A folder holding an unbundled SOG (its ``meta.json``) is read as that SOG. ``spz_axes``: the
    axes of a ``.spz`` without the coordinate-system extension ("ply", the default, or "rub" for old files;
    :func:`.spz.read_spz`); other formats ignore it."""
    from .sog import sog_meta_in

    path = os.fspath(path)
    if os.path.isdir(path) and sog_meta_in(path):
        path = sog_meta_in(path)
    if not os.path.isfile(path):
        raise BadInputError(f"{path}: no such file")
    splat_format = named_format(path, READ_FORMATS)
    if splat_format is not None and splat_format.ending == ".spz" and spz_axes is not None:
        return splat_format.read(path, axes=spz_axes).check()
    return (splat_format.read if splat_format else read_ply)(path).check()


def output_format(path: str | os.PathLike) -> SplatFormat:
    """The written format ``path``'s name asks for; a clear error for any other."""
    splat_format = named_format(path, WRITTEN_FORMATS)
    if splat_format is None:
        raise BadInputError(f"{path}: unknown output format (the name must end in "
                            f"{', '.join(f.ending for f in WRITTEN_FORMATS)})")
    return splat_format


def write_splat_file(path: str | os.PathLike, gaussians: Gaussians, commit: Commit | StagingFolder | None = None,
                     sog_palette: int | None = None) -> list[str]:
    """Write ``gaussians`` in the format ``path``'s name asks for (:func:`output_format`); returns what the
    format cannot keep (e.g. labels in a .splat), for the caller to say. ``sog_palette``: the SH palette size
    of a .sog (default: splat-transform's for the splat count)."""
    from .labels import LABEL_PROPERTY

    splat_format = output_format(path)
    lost = []
    if LABEL_PROPERTY in gaussians.property_names and not splat_format.keeps_labels:
        lost.append(f"{splat_format.ending} cannot carry labels: {LABEL_PROPERTY} is not written")
    options = {"palette_size": sog_palette} if splat_format.ending == ".sog" else {}  # the one writer option
    lost += splat_format.write(path, gaussians, commit, **options) or []
    return lost
