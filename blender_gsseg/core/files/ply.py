"""The 3DGS PLY (``.ply``), in and out, losslessly: binary little-endian, ASCII or big-endian in; out, binary
little-endian with every property's name, type and order, the header's comments and obj_info lines and the other
elements as they were read. A PLY whose header has SuperSplat's ``chunk`` element and packed vertex properties is
its compressed PLY (:mod:`.compressed_ply`), whatever the file's name."""

from __future__ import annotations

import os

import numpy as np

from ..errors import BadInputError
from ..gaussians import REQUIRED_PROPERTIES, Gaussians
from .commit import Commit, StagingFolder, output_file
from .compressed_ply import read_compressed_ply
from .ply_elements import (PLY_TYPES, PlyElementData, PlyProperty, check_header_text, check_header_word,
                           read_ply_elements, read_ply_header, write_list_element)


def read_ply(path: str | os.PathLike) -> Gaussians:
    """Read a 3DGS PLY, or a compressed PLY when its header says so (not checked: :func:`.splats.read_gaussians`
    checks every format's scene)."""
    path = os.fspath(path)
    header = read_ply_header(path)
    vertex_element = header.element("vertex")
    if vertex_element is None:
        raise BadInputError(f"{path}: PLY file has no 'vertex' element")
    names = {p.name for p in vertex_element[2]}
    if header.element("chunk") is not None and "packed_position" in names:
        return read_compressed_ply(path, header)
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
    )


def ply_header_text(
    gaussians: Gaussians,
    vertex_count: int | None = None,  # the count written in the header; default len(gaussians)
) -> tuple[str, list[PlyElementData]]:  # header text, every element (vertex included) in file order
    """The header we write: binary little-endian, the scene's meta lines, elements and exact type names (UTF-8).
    Every comment and name is checked first (a BadInputError naming the scene's file), so that what is written
    always reads back."""
    where = gaussians.path or "scene"
    for kind, text in gaussians.meta_lines:
        check_header_text(where, kind, text)
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"{kind} {text}" for kind, text in gaussians.meta_lines]
    vertex_props = [PlyProperty(n, gaussians.property_types[n]) for n in gaussians.vertex.dtype.names]
    blocks = list(gaussians.elements)
    blocks.insert(gaussians.vertex_position, PlyElementData("vertex", vertex_props, gaussians.vertex))
    for block in blocks:
        check_header_word(where, "element", block.name)
        for prop in block.properties:
            check_header_word(where, f"{block.name} property", prop.name)
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
        handle.write(header.encode("utf-8"))
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
