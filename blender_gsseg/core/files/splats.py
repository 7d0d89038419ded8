"""Splat files in and out: any format the readers know (.ply, SuperSplat .compressed.ply, .splat, .spz, .glb, .sog,
.ksplat) into a checked :class:`~..gaussians.Gaussians`; out, a standard binary little-endian PLY (losslessly), .glb
(KHR_gaussian_splatting, labels included), .compressed.ply, .sog, .spz or .splat (:func:`write_splat_file` picks
by the name)."""

from __future__ import annotations

import os

import numpy as np

from ..errors import BadInputError
from ..gaussians import REQUIRED_PROPERTIES, Gaussians
from .commit import Commit, StagingFolder, output_file
from .compressed_ply import read_compressed_ply
from .dot_splat import read_dot_splat
from .spz import read_spz
from .ply import PLY_TYPES, PlyElementData, PlyProperty, read_ply_elements, read_ply_header, write_list_element

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
    header = read_ply_header(path)
    vertex_element = header.element("vertex")
    if vertex_element is None:
        raise BadInputError(f"{path}: PLY file has no 'vertex' element")
    names = {p.name for p in vertex_element[2]}
    if header.element("chunk") is not None and "packed_position" in names:
        return read_compressed_ply(path, header).check()
    if any(p.is_list for p in vertex_element[2]):
        raise BadInputError(f"{path}: the vertex element has list properties; not a Gaussian splat PLY")
    missing = [name for name in REQUIRED_PROPERTIES if name not in names]
    if missing:
        raise BadInputError(f"{path}: missing required vertex properties: {' '.join(missing)}")
    header, data = read_ply_elements(path, header)
    elements, vertex_position = [], 0
    for index, (name, _count, props) in enumerate(header.elements):
        if name == "vertex":
            vertex_position = index
        else:
            elements.append(PlyElementData(name, props, data[name]))
    return Gaussians(
        data["vertex"],
        property_types={p.name: p.type_name for p in vertex_element[2]},
        meta_lines=header.meta_lines,
        elements=elements,
        vertex_position=vertex_position,
        source_format=f"ply ({header.format})",
        path=path,
    ).check()


def ply_header_text(
    gaussians: Gaussians,
    vertex_count: int | None = None,  # the count written in the header; default len(gaussians)
) -> tuple[str, list[PlyElementData]]:  # header text, every element (vertex included) in file order
    """The header we write: binary little-endian, the scene's meta lines, elements and exact type names."""
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"{kind} {text}" for kind, text in gaussians.meta_lines]
    vertex_props = [PlyProperty(n, gaussians.property_types[n]) for n in gaussians.vertex.dtype.names]
    blocks = list(gaussians.elements)
    blocks.insert(gaussians.vertex_position, PlyElementData("vertex", vertex_props, gaussians.vertex))
    for block in blocks:
        count = len(block.data) if block.name != "vertex" or vertex_count is None else vertex_count
        lines.append(f"element {block.name} {count}")
        lines += [p.header_line() for p in block.properties]
    lines.append("end_header")
    return "\n".join(lines) + "\n", blocks


def write_gaussians(path: str | os.PathLike, gaussians: Gaussians,
                    commit: Commit | StagingFolder | None = None) -> None:
    """Write a standard binary little-endian PLY: on its own (it lands whole, or not at all), or as part of
    ``commit`` (see :mod:`.commit`). Property names, types and order are kept."""
    header, blocks = ply_header_text(gaussians)
    with output_file(path, "wb", commit) as handle:
        handle.write(header.encode("ascii"))
        for block in blocks:
            if any(p.is_list for p in block.properties):
                write_list_element(handle, block)
            else:
                dtype = np.dtype([(p.name, "<" + PLY_TYPES[p.type_name]) for p in block.properties])
                array = block.data
                if array.dtype != dtype:
                    array = array.astype(dtype)
                # Through the file object, not ndarray.tofile: its C-level buffer can lose a failed last write
                # silently (a file-size limit or a full disk), and Python's raises.
                handle.write(np.ascontiguousarray(array).view(np.uint8))


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
