"""Splat files <-> Blender mesh objects (vertices only, one POINT attribute per PLY vertex property).

Import: the core reads the file into a :class:`Gaussians`; every vertex property becomes a POINT attribute of
the same name (FLOAT for float32 and float64 -- float64 is rounded --, INT for the integer types; uint32 is
stored bit for bit in the int32 attribute), x/y/z become the vertex positions. The header (property names,
PLY types and order, comment/obj_info lines, the position of the vertex element) is kept as JSON in the
object's custom property ``gsseg_header``; other PLY elements are kept as a small PLY file (zero vertices,
base64 of zlib) in ``gsseg_elements``. Derived attributes for display: ``Col`` (FLOAT_COLOR: the base colour,
converted from sRGB to Blender's scene-linear, and the opacity as alpha), ``gsseg_radius`` (mean of the
three scales) and ``gsseg_rotation`` (the normalised quaternions, for the splat display).

Export rebuilds the structured vertex array from the attributes in the stored order and types and writes it
with the core writer (atomic), so unedited float32 and integer values come back bit for bit.

On Blender 5.3+ the import makes a native ``GAUSSIAN_SPLAT`` point cloud instead (``shown_as='NATIVE'``, the
Import operator's default there: Blender draws it; :mod:`.native_splat`), with the same header and the file's
opacity and log-scales kept, so its unedited export is as exact; export also reads a native splat Blender imported
itself (no header: the values derived from its attributes, what that cost said).

Every bulk transfer is ``foreach_set``/``foreach_get`` on numpy buffers: no per-point Python.
"""

import base64
import json
import os
import tempfile
import zlib

import bpy
import numpy as np

from ..core.errors import BadInputError
from ..core.files.formats import READ_FORMATS, named_format
from ..core.files.labels import LABEL_PROPERTY
from ..core.files.ply import write_gaussians
from ..core.files.ply_elements import PLY_TYPES
from ..core.files.splats import read_gaussians, write_splat_file
from ..core.gaussians import Gaussians
from ..core.lift.sidecar import bound_sidecar
from . import native_splat, point_display, splat_display
from .attributes import (COLOR_ATTRIBUTE, CONFIDENCE_ATTRIBUTE, HIDDEN_ATTRIBUTE, INDEX_ATTRIBUTE,
                         LABEL_COLOR_ATTRIBUTE, LABEL_RADIANCE_ATTRIBUTE, MANUAL_ATTRIBUTE, MANUAL_LABEL_ATTRIBUTE,
                         RADIUS_ATTRIBUTE, ROTATION_ATTRIBUTE, srgb_to_linear)

HEADER_KEY = "gsseg_header"
ELEMENTS_KEY = "gsseg_elements"
SIDECAR_KEY = "gsseg_sidecar"
HEADER_VERSION = 1
POSITION_PROPERTIES = ("x", "y", "z")
# Attributes we compute (never written back unless asked for).
DERIVED_ATTRIBUTES = (COLOR_ATTRIBUTE, RADIUS_ATTRIBUTE, CONFIDENCE_ATTRIBUTE, LABEL_COLOR_ATTRIBUTE,
                      HIDDEN_ATTRIBUTE, ROTATION_ATTRIBUTE, MANUAL_ATTRIBUTE, MANUAL_LABEL_ATTRIBUTE, INDEX_ATTRIBUTE,
                      LABEL_RADIANCE_ATTRIBUTE)


class SplatImportResult:
    def __init__(self, obj, count, rounded, renamed, sidecar, seconds, refused=None):
        self.object = obj
        self.refused = refused  # why the sidecar beside the file was not used
        self.count = count
        self.rounded = rounded  # float64 properties stored as float32
        self.renamed = renamed  # {property: attribute name} where the name was not free
        self.sidecar = sidecar
        self.seconds = seconds

    def summary(self):
        text = f"Imported {self.count:,} splats into '{self.object.name}' in {self.seconds:.2f} s"
        if self.rounded:
            text += f"; float64 rounded to float32: {', '.join(self.rounded)}"
        if self.renamed:
            text += "; renamed: " + ", ".join(f"{k} -> {v}" for k, v in self.renamed.items())
        if self.sidecar:
            text += f"; cached segmentation found: {os.path.basename(self.sidecar)}"
        if self.refused:
            text += f"; not used: {self.refused}"
        return text


def _attribute_kind(ply_type):
    code = PLY_TYPES[ply_type]
    return "FLOAT" if code[0] == "f" else "INT"


# Rows per block when moving columns in or out of the structured vertex table: pulling one column at a time
# out of a 1M x 62 table strides through all of it 62 times; block by block it stays in cache.
BLOCK_ROWS = 1 << 12


def _split_columns(vertex, columns):
    """Contiguous attribute buffers (float32 for FLOAT, int32 for INT, uint32 stored bit for bit) for
    ``columns`` = [(name, ply type, kind)] of the structured array ``vertex``."""
    n = len(vertex)
    if all(vertex.dtype[name] == np.dtype("<f4") for name in vertex.dtype.names) and \
            vertex.dtype.itemsize == 4 * len(vertex.dtype.names):
        # The common all-float32 table: transpose it as a 2D array block by block (one numpy call per block).
        table = vertex.view(np.float32).reshape(n, len(vertex.dtype.names))
        transposed = np.empty((len(vertex.dtype.names), n), dtype=np.float32)
        for start in range(0, n, BLOCK_ROWS):
            transposed[:, start:start + BLOCK_ROWS] = table[start:start + BLOCK_ROWS].T
        position = {name: index for index, name in enumerate(vertex.dtype.names)}
        return [transposed[position[name]] for name, _, _ in columns]
    buffers = [np.empty(n, dtype=np.float32 if kind == "FLOAT" else np.int32) for _, _, kind in columns]
    targets = [buffer.view(np.uint32) if kind == "INT" and PLY_TYPES[ply_type] == "u4" else buffer
               for buffer, (_, ply_type, kind) in zip(buffers, columns, strict=True)]
    for start in range(0, n, BLOCK_ROWS):
        block = vertex[start:start + BLOCK_ROWS]
        stop = start + len(block)
        for target, (name, _, _) in zip(targets, columns, strict=True):
            target[start:stop] = block[name]
    return buffers


# Columns per chunk of :func:`_column_chunks`: a 16 x N float32 buffer, used again for every chunk.
CHUNK_COLUMNS = 16


def _column_chunks(vertex, columns):
    """:func:`_split_columns` a chunk at a time: yields lists of (index into ``columns``, contiguous buffer),
    each buffer valid only until the next chunk is asked for. The all-float32 table goes through one
    CHUNK_COLUMNS x N buffer used again for every chunk, rather than a transposed copy of the whole table:
    at 1M x 62 that is 64 MB of fresh memory instead of 248 MB (numpy asks for huge pages on big arrays, and
    where the kernel compacts memory to find them each new page can stall)."""
    n = len(vertex)
    names = vertex.dtype.names
    if not (all(vertex.dtype[name] == np.dtype("<f4") for name in names) and vertex.dtype.itemsize == 4 * len(names)):
        yield list(enumerate(_split_columns(vertex, columns)))
        return
    table = vertex.view(np.float32).reshape(n, len(names))
    position = {name: index for index, name in enumerate(names)}
    wanted = {}
    for index, (name, _, _) in enumerate(columns):
        wanted.setdefault(position[name], []).append(index)
    buffer = np.empty((min(CHUNK_COLUMNS, len(names)), n), dtype=np.float32)
    for first in range(0, len(names), CHUNK_COLUMNS):
        last = min(first + CHUNK_COLUMNS, len(names))
        if not any(column in wanted for column in range(first, last)):
            continue
        part = buffer[:last - first]
        for start in range(0, n, BLOCK_ROWS):
            part[:, start:start + BLOCK_ROWS] = table[start:start + BLOCK_ROWS, first:last].T
        yield [(index, part[column - first]) for column in range(first, last) for index in wanted.get(column, ())]


def _join_columns(vertex, columns, buffers):
    """The inverse of :func:`_split_columns`: write the buffers into the structured array ``vertex``."""
    sources = [buffer.view(np.uint32) if kind == "INT" and PLY_TYPES[ply_type] == "u4" else buffer
               for buffer, (_, ply_type, kind) in zip(buffers, columns, strict=True)]
    n = len(vertex)
    for start in range(0, n, BLOCK_ROWS):
        block = vertex[start:start + BLOCK_ROWS]
        stop = start + len(block)
        for source, (name, _, _) in zip(sources, columns, strict=True):
            block[name] = source[start:stop]


def _new_attribute(mesh, name, kind, fallback):
    """Create a POINT attribute, preferring ``name``; returns it (its name may be the fallback)."""
    if name not in mesh.attributes:
        attribute = mesh.attributes.new(name, kind, "POINT")
        if attribute is not None and attribute.name == name:
            return attribute
        if attribute is not None:
            mesh.attributes.remove(attribute)
    attribute = mesh.attributes.new(fallback, kind, "POINT")
    if attribute is None:
        raise BadInputError(f"cannot create attribute {fallback!r}")
    return attribute


def _encode_elements(gaussians):
    """Other PLY elements as a zero-vertex PLY file (zlib, base64), or '' when there are none."""
    if not gaussians.elements:
        return ""
    folder = tempfile.mkdtemp(prefix="gsseg-")
    path = os.path.join(folder, "elements.ply")
    try:
        write_gaussians(path, gaussians.subset(np.zeros(len(gaussians), dtype=bool)))
        with open(path, "rb") as handle:
            data = handle.read()
    finally:
        _remove_tree(folder)
    return base64.b64encode(zlib.compress(data, 6)).decode("ascii")


def _decode_elements(text):
    if not text:
        return []
    from ..core.files.ply_elements import PlyElementData, read_ply_elements, read_ply_header

    folder = tempfile.mkdtemp(prefix="gsseg-")
    path = os.path.join(folder, "elements.ply")
    try:
        with open(path, "wb") as handle:
            handle.write(zlib.decompress(base64.b64decode(text)))
        header, data = read_ply_elements(path, read_ply_header(path))
    finally:
        _remove_tree(folder)
    return [PlyElementData(name, props, data[name]) for name, _count, props in header.elements if name != "vertex"]


def _remove_tree(folder):
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def header_of(obj):
    """The stored header dict of a splat object, or None."""
    text = obj.get(HEADER_KEY)
    if not text:
        return None
    try:
        header = json.loads(text)
    except ValueError:
        return None
    return header if isinstance(header, dict) and "properties" in header else None


def is_splat_object(obj):
    """A splat gsseg imported as a mesh, or a native Gaussian splat point cloud (gsseg's import or Blender's)."""
    return obj is not None and ((obj.type == "MESH" and header_of(obj) is not None)
                                or native_splat.is_native_splat(obj))


def build_mesh(mesh, gaussians):
    """Fill an empty mesh with the splats of ``gaussians``; returns (header dict, rounded, renamed)."""
    n = len(gaussians)
    mesh.vertices.add(n)
    vertex = gaussians.vertex
    mesh.attributes["position"].data.foreach_set("vector", np.ascontiguousarray(gaussians.means, dtype=np.float32)
                                                 .ravel())
    properties, rounded, renamed, columns = [], [], {}, []
    for index, name in enumerate(vertex.dtype.names):
        ply_type = gaussians.property_types[name]
        if name in POSITION_PROPERTIES:
            properties.append([name, ply_type, None])
            if PLY_TYPES[ply_type] != "f4":
                rounded.append(name)
            continue
        kind = _attribute_kind(ply_type)
        attribute = _new_attribute(mesh, f"ply_{name}" if name in DERIVED_ATTRIBUTES else name, kind,
                                   f"ply_property_{index}")
        if attribute.name != name:
            renamed[name] = attribute.name
        if kind == "FLOAT" and PLY_TYPES[ply_type] != "f4":
            rounded.append(name)
        properties.append([name, ply_type, attribute.name])
        columns.append((name, ply_type, kind, attribute.name))
    attributes = {attribute.name: attribute for attribute in mesh.attributes}
    for chunk in _column_chunks(vertex, [(name, ply_type, kind) for name, ply_type, kind, _ in columns]):
        for index, values in chunk:
            attributes[columns[index][3]].data.foreach_set("value", values)

    colors = np.empty((n, 4), dtype=np.float32)
    colors[:, :3] = srgb_to_linear(gaussians.base_colors)
    colors[:, 3] = gaussians.opacities
    color = mesh.color_attributes.new(COLOR_ATTRIBUTE, "FLOAT_COLOR", "POINT")
    color.data.foreach_set("color", colors.ravel())
    mesh.color_attributes.active_color_name = color.name
    index = list(mesh.color_attributes).index(mesh.color_attributes[color.name])
    mesh.color_attributes.render_color_index = index
    radius = mesh.attributes.new(RADIUS_ATTRIBUTE, "FLOAT", "POINT")
    radius.data.foreach_set("value", np.ascontiguousarray(gaussians.scales.mean(axis=1), dtype=np.float32))
    header = {
        "version": HEADER_VERSION,
        "properties": properties,
        "meta_lines": [list(line) for line in gaussians.meta_lines],
        "vertex_position": gaussians.vertex_position,
        "source_format": gaussians.source_format,
    }
    return header, rounded, renamed


def default_display():
    """'NATIVE' where this Blender draws Gaussian splats itself (5.3+), else 'SPLAT' (gsseg's display)."""
    return "NATIVE" if native_splat.has_native() else "SPLAT"


def import_splat(context, path, *, collection=None, name=None, shown_as="SPLAT"):
    """Read a splat file and link a new object for it: a native Gaussian splat point cloud (``shown_as`` 'NATIVE',
    Blender 5.3+) or a mesh shown as ``shown_as`` ('SPLAT', 'POINTS', None: no display modifier); returns a
    :class:`SplatImportResult`."""
    import time

    start = time.perf_counter()
    path = os.path.abspath(os.fspath(path))
    gaussians = read_gaussians(path)
    if name is None:
        name = os.path.basename(path)
        splat_format = named_format(name, READ_FORMATS)
        if splat_format is not None:
            name = name[:-len(splat_format.ending)]
        if not name:  # an unbundled SOG's meta.json: its folder names the scene
            name = os.path.basename(os.path.dirname(path)) or "splat"
    if shown_as == "NATIVE":
        if not native_splat.has_native():
            raise BadInputError(f"{path}: this Blender has no native Gaussian splats (5.3+): import it as 'SPLAT'")
        mesh, native = native_splat.build_pointcloud(gaussians, name, reserved=DERIVED_ATTRIBUTES)
        header = {"version": HEADER_VERSION, "properties": native.properties,
                  "meta_lines": [list(line) for line in gaussians.meta_lines],
                  "vertex_position": gaussians.vertex_position, "source_format": gaussians.source_format,
                  "native": True}
        rounded, renamed = native.rounded, native.renamed
    else:
        mesh = bpy.data.meshes.new(name)
        header, rounded, renamed = build_mesh(mesh, gaussians)
    header["source"] = path
    obj = bpy.data.objects.new(name, mesh)
    obj[HEADER_KEY] = json.dumps(header)
    obj[ELEMENTS_KEY] = _encode_elements(gaussians)
    refused = None
    try:
        sidecar = bound_sidecar(path, gaussians)
    except BadInputError as error:  # from another run: never used, the import goes on without it
        sidecar, refused = None, str(error)
    if sidecar is not None:
        obj[SIDECAR_KEY] = sidecar
        obj.gsseg.accumulation_path = sidecar
    (collection or context.collection).objects.link(obj)
    if shown_as == "SPLAT":
        splat_display.add_splat_display(obj, gaussians)
    elif shown_as == "POINTS":
        point_display.add_point_display(obj)
    if shown_as in ("SPLAT", "POINTS"):
        obj.gsseg.display = shown_as
    if shown_as == "NATIVE":
        mesh.update_tag()
    else:
        mesh.update()
    return SplatImportResult(obj, len(gaussians), rounded, renamed, sidecar, time.perf_counter() - start,
                             refused)


def _point_selection(obj):
    mesh = obj.data
    attribute = mesh.attributes.get(".select_vert")
    selection = np.zeros(len(mesh.vertices), dtype=bool)
    if attribute is not None:
        attribute.data.foreach_get("value", selection)
    return selection


def gaussians_from_object(obj, *, selected_only=False, include_label=False):
    """Rebuild a :class:`Gaussians` from a splat object's attributes, in the stored property order and types."""
    return gaussians_and_notes(obj, selected_only=selected_only, include_label=include_label)[0]


def gaussians_and_notes(obj, *, selected_only=False, include_label=False):
    """(:func:`gaussians_from_object`, what could not be recovered exactly: sentences, for a native splat)."""
    if native_splat.is_native_splat(obj):
        return native_splat.gaussians_from_pointcloud(
            obj, header_of(obj), elements=_decode_elements(obj.get(ELEMENTS_KEY, "")), selected_only=selected_only,
            include_label=include_label, exclude=DERIVED_ATTRIBUTES)
    return _gaussians_from_mesh(obj, selected_only=selected_only, include_label=include_label), []


def _gaussians_from_mesh(obj, *, selected_only=False, include_label=False):
    header = header_of(obj)
    if header is None:
        raise BadInputError(f"'{obj.name}' is not an imported Gaussian splat (no {HEADER_KEY} custom property)")
    if obj.mode == "EDIT":
        obj.update_from_editmode()
    mesh = obj.data
    n = len(mesh.vertices)
    properties = [tuple(p) for p in header["properties"]]
    names = [p[0] for p in properties]
    if include_label and LABEL_PROPERTY not in names and LABEL_PROPERTY in mesh.attributes:
        properties.append((LABEL_PROPERTY, "int", LABEL_PROPERTY))
    dtype = np.dtype([(name, "<" + PLY_TYPES[ply_type]) for name, ply_type, _ in properties])
    vertex = np.empty(n, dtype=dtype)
    positions = np.empty(n * 3, dtype=np.float32)
    mesh.attributes["position"].data.foreach_get("vector", positions)
    positions = positions.reshape(n, 3)
    attributes = {attribute.name: attribute for attribute in mesh.attributes}
    columns, buffers, missing = [], [], []
    for name, ply_type, attribute_name in properties:
        if name in POSITION_PROPERTIES and attribute_name is None:
            columns.append((name, ply_type, "FLOAT"))
            buffers.append(np.ascontiguousarray(positions[:, POSITION_PROPERTIES.index(name)]))
            continue
        attribute = attributes.get(attribute_name)
        kind = _attribute_kind(ply_type)
        if attribute is None or attribute.domain != "POINT" or attribute.data_type != kind:
            missing.append(attribute_name)
            continue
        buffer = np.empty(n, dtype=np.float32 if kind == "FLOAT" else np.int32)
        attribute.data.foreach_get("value", buffer)
        columns.append((name, ply_type, kind))
        buffers.append(buffer)
    if missing:
        raise BadInputError(f"'{obj.name}': attributes missing or of another type: {', '.join(missing)} "
                            f"(they hold PLY properties of the original file)")
    _join_columns(vertex, columns, buffers)
    del buffers
    if selected_only:
        vertex = vertex[_point_selection(obj)]
    types = {name: ply_type for name, ply_type, _ in properties}
    return Gaussians(vertex, property_types=types, meta_lines=[tuple(m) for m in header.get("meta_lines", [])],
                     elements=_decode_elements(obj.get(ELEMENTS_KEY, "")),
                     vertex_position=int(header.get("vertex_position", 0)), source_format="blender")


def in_world(obj, gaussians, matrix=None):
    """``gaussians`` of the splat object ``obj`` in world space: its transform (or ``matrix``, 4x4) baked in by
    the core (positions, rotations, scales, normals, SH); unchanged when it is exactly the identity."""
    from ..core.scene.object_transform import transform_gaussians

    matrix = obj.matrix_world if matrix is None else matrix
    if is_identity(matrix, tolerance=0.0):
        return gaussians
    return transform_gaussians(gaussians, np.array(matrix, dtype=np.float64),
                               where=f"'{obj.name}' (object transform)")


def is_identity(matrix, tolerance=1e-6):
    return all(abs(matrix[i][j] - (1.0 if i == j else 0.0)) <= tolerance for i in range(4) for j in range(4))


def export_splat(obj, path, *, selected_only=False, include_label=False, apply_transform=True, header=None,
                 file_axes=True, undo_spz_axes=False):
    """Write a splat object (atomic) in the format ``path``'s name asks for (a binary little-endian PLY, or any
    of :func:`~..core.files.splats.write_splat_file`'s). Returns (splats written, what the format could not
    keep).

    The instance list's names and colours become the gsseg_label header comments (when gsseg_label is
    written). With ``apply_transform`` a non-identity object transform is baked in by the core
    (:func:`~..core.scene.object_transform.transform_gaussians`: positions, rotations, scales, normals and SH); a transform
    a Gaussian cannot represent (non-uniform or negative scale, shear) is refused before anything is written;
    with ``file_axes`` the turn the import's axes gave it is taken off first
    (:func:`.camera_objects.file_axes_matrix`: an unedited splat is written as it was read).
    ``header``: a function that returns the Gaussians with the header comments to write (the instance list's
    names and colours: :func:`.labels.with_label_comments`). ``undo_spz_axes``: the object came from Blender's own
    .spz import, which turned the file to Z up: turn it back to the file's axes (after the object transform)."""
    gaussians, notes = gaussians_and_notes(obj, selected_only=selected_only, include_label=include_label)
    if selected_only and len(gaussians) == 0:
        raise BadInputError(f"'{obj.name}': no points are selected (select some in edit mode)")
    if header is not None:
        gaussians = header(obj, gaussians)
    if apply_transform:
        from .camera_objects import file_axes_matrix

        gaussians = in_world(obj, gaussians, file_axes_matrix(obj) if file_axes else None)
    if undo_spz_axes:
        from ..core.files.radiance import blender_spz_to_file
        from ..core.scene.object_transform import transform_gaussians

        gaussians = transform_gaussians(gaussians, blender_spz_to_file(), where=f"'{obj.name}' (SPZ axes)")
    lost = write_splat_file(path, gaussians)
    return len(gaussians), notes + lost
