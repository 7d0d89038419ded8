"""The splat formats gsseg reads and writes: one row per file name ending, saying which function reads it, which
writes it, whether gsseg's labels survive, and its name and description in a menu. Everything that lists the
formats is built from :data:`SPLAT_FORMATS`: the dispatch by file name (:mod:`.splats`), the CLI's help and
``--format`` choices, and the Blender add-on's file filters, export formats, drop handler and menu texts.

Adding a format: its module in this package (``read_<name>(path) -> Gaussians``, unchecked, and/or
``write_<name>(path, gaussians, commit=None)``, which lands through :func:`.commit.output_file` and returns what the
file could not keep, or None) and its row below.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import os

from ..gaussians import Gaussians
from .compressed_ply import write_compressed_ply
from .dot_splat import read_dot_splat, write_dot_splat
from .gltf import read_glb, write_glb
from .ksplat import read_ksplat
from .ply import read_ply, write_gaussians
from .sog import read_sog, read_sog_folder, write_sog
from .spz import read_spz, write_spz


@dataclasses.dataclass(frozen=True)
class SplatFormat:
    ending: str  # the file name's ending, lower case, with its dot: ".compressed.ply" (or a whole name: "meta.json")
    label: str  # its name in a menu: "Compressed PLY"
    description: str  # one line on what it holds (the export menu's tooltip)
    read: collections.abc.Callable[[str], Gaussians] | None  # the file's scene (unchecked); None: not read
    write: collections.abc.Callable | None  # (path, gaussians, commit) -> lost sentences or None; None: not written
    keeps_labels: bool  # gsseg_label survives writing

    @property
    def identifier(self) -> str:
        """The name of its item in Blender's export enum: "COMPRESSED_PLY"."""
        return self.ending[1:].replace(".", "_").upper()


# In the order menus and help list them: the written formats, then the one only read.
SPLAT_FORMATS = (
    SplatFormat(".ply", "PLY", "The 3DGS PLY, every property kept, exactly", read_ply, write_gaussians,
                keeps_labels=True),
    # A compressed PLY is read as any PLY is: its header, not its name, says which layout it has.
    SplatFormat(".compressed.ply", "Compressed PLY", "SuperSplat's compressed PLY, about 4x smaller", read_ply,
                write_compressed_ply, keeps_labels=True),
    SplatFormat(".glb", "glTF", "glTF binary with KHR_gaussian_splatting, labels as feature ids", read_glb,
                write_glb, keeps_labels=True),
    SplatFormat(".sog", "SOG", "PlayCanvas's WebP-packed splats, the smallest of these; no labels", read_sog,
                write_sog, keeps_labels=False),
    SplatFormat(".spz", "SPZ", "Niantic's compressed splats, about 10x smaller", read_spz, write_spz,
                keeps_labels=False),
    SplatFormat(".splat", "Splat", "antimatter15's 32 bytes per splat, no SH and no labels", read_dot_splat,
                write_dot_splat, keeps_labels=False),
    SplatFormat(".ksplat", "KSplat", "GaussianSplats3D's compressed splats (read only)", read_ksplat, None,
                keeps_labels=False),
    # An unbundled SOG: the ending is the whole name (no dot: the file is meta.json, its folder names the scene);
    # read_gaussians also takes the folder that holds it.
    SplatFormat("meta.json", "SOG (unbundled)", "A .sog's meta.json and WebP images in a folder, as PlayCanvas "
                "publishes scenes (read only)", read_sog_folder, None, keeps_labels=False),
)
READ_FORMATS = tuple(f for f in SPLAT_FORMATS if f.read is not None)
WRITTEN_FORMATS = tuple(f for f in SPLAT_FORMATS if f.write is not None)


def named_format(path: str | os.PathLike, formats: collections.abc.Iterable[SplatFormat]) -> SplatFormat | None:
    """The format among ``formats`` whose ending ``path``'s name has (the longest: a .compressed.ply is not
    a .ply; an ending without a dot is the whole name: scene/meta.json, not cameras_meta.json), or None."""
    lower = os.path.basename(os.fspath(path)).lower()
    matches = [f for f in formats if lower.endswith(f.ending) and (f.ending.startswith(".") or lower == f.ending)]
    return max(matches, key=lambda f: len(f.ending)) if matches else None


def filter_endings(formats: collections.abc.Iterable[SplatFormat]) -> list[str]:
    """The endings a file filter needs for ``formats``: those no shorter one among them already matches (a
    .compressed.ply is a .ply)."""
    endings = [f.ending for f in formats]
    return [e for e in endings if not any(other != e and e.endswith(other) for other in endings)]
