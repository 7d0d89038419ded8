"""Gaussian splat scenes and lossless PLY IO.

A :class:`Gaussians` is the vertex table exactly as read (a structured numpy array, every property kept in file
order with its type) plus the rest of the file (header comments, obj_info, other elements), so writing it back
reproduces the file. Derived views (means, opacities, ...) are computed on demand and cached.

PLY parsing is our own for the header (to keep the exact type names and to check the body size before
allocating anything) and numpy for binary bodies; plyfile reads ASCII bodies and elements with list properties.
"""

import functools
import io
import os

import numpy as np

from .errors import BadInputError
from .fileio import atomic_output

SH_C0 = 0.28209479177387814

REQUIRED_PROPERTIES = (
    "x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
    "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
)
# Number of f_rest_* properties for SH degree 0..4 (degree 4 only from .spz) (3 channels x ((d+1)^2 - 1) coefficients).
REST_COUNT_TO_DEGREE = {0: 0, 9: 1, 24: 2, 45: 3, 72: 4}

# PLY type names -> numpy type codes (without byte order).
PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
# The type name we write for properties we add.
NUMPY_TO_PLY = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint",
                "f4": "float", "f8": "double"}
BYTE_ORDERS = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": "="}
MAX_HEADER_BYTES = 1 << 20
CHECK_BLOCK_ROWS = 1 << 14


class PlyProperty:
    """One property of a PLY element: its name and the exact type names from the header."""

    __slots__ = ("name", "type_name", "count_type_name")

    def __init__(self, name, type_name, count_type_name=None):
        self.name = name
        self.type_name = type_name
        self.count_type_name = count_type_name  # set for list properties

    @property
    def is_list(self):
        return self.count_type_name is not None

    def header_line(self):
        if self.is_list:
            return f"property list {self.count_type_name} {self.type_name} {self.name}"
        return f"property {self.type_name} {self.name}"


class PlyElementData:
    """An element other than ``vertex``, kept as read so it can be written back."""

    def __init__(self, name, properties, data):
        self.name = name
        self.properties = properties
        self.data = data  # structured array (scalar properties) or plyfile PlyElement data with lists

    @property
    def count(self):
        return len(self.data)


class PlyHeader:
    """The parsed header: format, comment/obj_info lines in order, and the elements with their properties."""

    def __init__(self, fmt, version, meta_lines, elements, size):
        self.format = fmt
        self.version = version
        self.meta_lines = meta_lines  # ("comment"|"obj_info", text) in file order
        self.elements = elements  # [(name, count, [PlyProperty])]
        self.size = size  # bytes up to and including the end_header line

    def element(self, name):
        for element in self.elements:
            if element[0] == name:
                return element
        return None


def _parse_header(path, raw):
    """Parse the header block of ``raw`` (the first bytes of the file)."""
    if not raw.startswith(b"ply"):
        raise BadInputError(f"{path}: not a PLY file (it does not start with 'ply')")
    end = raw.find(b"end_header")
    if end < 0:
        raise BadInputError(f"{path}: PLY header has no 'end_header' line")
    line_end = raw.find(b"\n", end)
    if line_end < 0:
        raise BadInputError(f"{path}: PLY header ends without a newline after 'end_header'")
    text = raw[:line_end + 1].decode("ascii", errors="replace")
    fmt = version = None
    meta_lines, elements = [], []
    for number, line in enumerate(text.splitlines()[1:], start=2):
        line = line.rstrip("\r")
        words = line.split()
        if not words:
            continue
        keyword = words[0]
        if keyword == "format":
            if len(words) != 3 or words[1] not in BYTE_ORDERS:
                raise BadInputError(f"{path}: unknown PLY format line {number}: {line!r}")
            fmt, version = words[1], words[2]
        elif keyword in ("comment", "obj_info"):
            meta_lines.append((keyword, line[len(keyword) + 1:] if len(line) > len(keyword) else ""))
        elif keyword == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise BadInputError(f"{path}: bad PLY element line {number}: {line!r}")
            elements.append((words[1], int(words[2]), []))
        elif keyword == "property":
            if not elements:
                raise BadInputError(f"{path}: PLY property before any element (line {number})")
            if len(words) == 5 and words[1] == "list":
                if words[2] not in PLY_TYPES or words[3] not in PLY_TYPES:
                    raise BadInputError(f"{path}: unknown PLY type on line {number}: {line!r}")
                prop = PlyProperty(words[4], words[3], words[2])
            elif len(words) == 3 and words[1] in PLY_TYPES:
                prop = PlyProperty(words[2], words[1])
            else:
                raise BadInputError(f"{path}: bad PLY property line {number}: {line!r}")
            elements[-1][2].append(prop)
        elif keyword == "end_header":
            break
        else:
            raise BadInputError(f"{path}: unexpected PLY header line {number}: {line!r}")
    if fmt is None:
        raise BadInputError(f"{path}: PLY header has no format line")
    return PlyHeader(fmt, version, meta_lines, elements, line_end + 1)


def read_ply_header(path):
    """Read and parse just the header of a PLY file."""
    with open(path, "rb") as handle:
        raw = handle.read(MAX_HEADER_BYTES)
    return _parse_header(path, raw)


def _scalar_dtype(properties, byte_order):
    return np.dtype([(p.name, byte_order + PLY_TYPES[p.type_name]) for p in properties])


def read_ply_elements(path, header=None):
    """Return ``(header, {element name: data})``; binary bodies are size-checked before anything is allocated."""
    path = os.fspath(path)
    if header is None:
        header = read_ply_header(path)
    file_size = os.path.getsize(path)
    byte_order = BYTE_ORDERS[header.format]
    has_lists = any(p.is_list for _, _, props in header.elements for p in props)
    if header.format != "ascii" and not has_lists:
        offset = header.size
        plan = []
        for name, count, props in header.elements:
            dtype = _scalar_dtype(props, byte_order)
            plan.append((name, count, dtype, offset))
            offset += count * dtype.itemsize
        if offset > file_size:
            raise BadInputError(
                f"{path}: truncated PLY body: the header promises {offset - header.size} bytes of data, "
                f"the file has {file_size - header.size}")
        data = {}
        with open(path, "rb") as handle:
            for name, count, dtype, start in plan:
                handle.seek(start)
                array = np.fromfile(handle, dtype=dtype, count=count)
                if byte_order == ">":
                    array = array.astype(array.dtype.newbyteorder("<"))
                data[name] = array
        return header, data
    return header, _read_with_plyfile(path, header)


def _read_with_plyfile(path, header):
    """ASCII bodies and elements with list properties go through plyfile."""
    import plyfile

    if header.format == "ascii":
        # ASCII needs at least one byte per value; refuse absurd counts before plyfile allocates them.
        promised = sum(count * max(1, len(props)) for _, count, props in header.elements)
        if promised * 2 > os.path.getsize(path) - header.size + 1:
            raise BadInputError(f"{path}: truncated PLY body: the header promises more values than the file holds")
    try:
        ply = plyfile.PlyData.read(path)
    except plyfile.PlyParseError as error:
        raise BadInputError(f"{path}: cannot read PLY body: {error}") from None
    except (ValueError, EOFError) as error:
        raise BadInputError(f"{path}: truncated or corrupt PLY body ({error})") from None
    data = {}
    for element in ply.elements:
        array = element.data
        if array.dtype.fields and all(array.dtype.fields[n][0].kind != "O" for n in array.dtype.names):
            array = array.astype([(n, "<" + array.dtype[n].str[1:]) for n in array.dtype.names])
        data[element.name] = array
    return data


class Gaussians:
    """A splat scene: the vertex table as read, the rest of the PLY file, and cached derived views."""

    def __init__(self, vertex, *, property_types=None, meta_lines=(), elements=(), vertex_position=0,
                 source_format="ply", path=None):
        self.vertex = vertex
        self.property_types = dict(property_types or {})  # name -> PLY type name as it was in the header
        for name in vertex.dtype.names:
            self.property_types.setdefault(name, NUMPY_TO_PLY[vertex.dtype[name].str[1:]])
        self.meta_lines = list(meta_lines)
        self.elements = list(elements)  # PlyElementData, other than vertex
        self.vertex_position = vertex_position  # index of the vertex element among all elements
        self.source_format = source_format
        self.path = path

    # ----- basic facts
    def __len__(self):
        return len(self.vertex)

    @property
    def property_names(self):
        return list(self.vertex.dtype.names)

    @property
    def comments(self):
        return [text for kind, text in self.meta_lines if kind == "comment"]

    @functools.cached_property
    def sh_degree(self):
        rest = sum(1 for name in self.vertex.dtype.names if name.startswith("f_rest_"))
        return REST_COUNT_TO_DEGREE.get(rest, 0)

    def _stack(self, names, dtype=np.float32):
        out = np.empty((len(self.vertex), len(names)), dtype=dtype)
        for column, name in enumerate(names):
            out[:, column] = self.vertex[name]
        return out

    # ----- derived views (float32, cached)
    @functools.cached_property
    def means(self):
        return self._stack(("x", "y", "z"))

    @functools.cached_property
    def opacities(self):
        """Opacity in [0, 1]: the sigmoid of the stored logit."""
        logit = self.vertex["opacity"].astype(np.float32)
        return (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)

    @functools.cached_property
    def scales(self):
        """Per-axis standard deviations: exp of the stored log-scales."""
        return np.exp(self._stack(("scale_0", "scale_1", "scale_2")))

    @functools.cached_property
    def rotations(self):
        """Unit quaternions, w first."""
        quats = self._stack(("rot_0", "rot_1", "rot_2", "rot_3"))
        norm = np.linalg.norm(quats, axis=1, keepdims=True)
        norm[norm == 0] = 1.0
        return quats / norm

    @functools.cached_property
    def sh_dc(self):
        return self._stack(("f_dc_0", "f_dc_1", "f_dc_2"))

    @functools.cached_property
    def base_colors(self):
        """RGB in [0, 1] from the degree-0 SH coefficient."""
        return np.clip(0.5 + SH_C0 * self.sh_dc, 0.0, 1.0)

    @functools.cached_property
    def sh_rest(self):
        """[N, K, 3] higher-order SH coefficients (f_rest is channel-major: index = c*K + k)."""
        count = ((self.sh_degree + 1) ** 2) - 1
        rest = self._stack([f"f_rest_{i}" for i in range(3 * count)])
        return rest.reshape(len(self.vertex), 3, count).transpose(0, 2, 1).copy()

    # ----- editing (each returns a new scene; the original is untouched)
    def subset(self, selection):
        """The Gaussians picked by a boolean mask or an index array, with the same header."""
        return self._replace(self.vertex[selection])

    def with_int_property(self, name, values):
        """Add an int32 property, or replace one of that name in place (keeping its position)."""
        values = np.asarray(values)
        if values.shape != (len(self.vertex),):
            raise ValueError(f"{name}: expected {len(self.vertex)} values, got shape {values.shape}")
        fields = [(n, self.vertex.dtype[n]) for n in self.vertex.dtype.names]
        if name in self.vertex.dtype.names:
            fields = [(n, np.dtype("<i4") if n == name else dt) for n, dt in fields]
        else:
            fields.append((name, np.dtype("<i4")))
        vertex = np.empty(len(self.vertex), dtype=fields)
        for n in self.vertex.dtype.names:
            if n != name:
                vertex[n] = self.vertex[n]
        vertex[name] = values
        types = dict(self.property_types)
        types[name] = "int"
        return self._replace(vertex, property_types=types)

    def without_properties(self, names):
        keep = [n for n in self.vertex.dtype.names if n not in set(names)]
        vertex = np.empty(len(self.vertex), dtype=[(n, self.vertex.dtype[n]) for n in keep])
        for n in keep:
            vertex[n] = self.vertex[n]
        return self._replace(vertex)

    def with_comments(self, comments, *, drop_prefix=None):
        """Replace comments starting with ``drop_prefix`` by ``comments`` (appended after the others)."""
        meta = [(kind, text) for kind, text in self.meta_lines
                if not (drop_prefix and kind == "comment" and text.startswith(drop_prefix))]
        meta += [("comment", text) for text in comments]
        return self._replace(self.vertex, meta_lines=meta)

    def _replace(self, vertex, **changes):
        args = dict(property_types=self.property_types, meta_lines=self.meta_lines, elements=self.elements,
                    vertex_position=self.vertex_position, source_format=self.source_format, path=self.path)
        args.update(changes)
        args["property_types"] = {n: t for n, t in args["property_types"].items() if n in vertex.dtype.names}
        return Gaussians(vertex, **args)

    # ----- validation
    def check(self):
        """Raise BadInputError naming the file and the problem (missing properties, NaN/Inf values)."""
        where = self.path or "scene"
        missing = [name for name in REQUIRED_PROPERTIES if name not in self.vertex.dtype.names]
        if missing:
            raise BadInputError(f"{where}: missing required vertex properties: {' '.join(missing)}")
        float_names = [n for n in self.vertex.dtype.names if self.vertex.dtype[n].kind == "f"]
        counts = dict.fromkeys(float_names, 0)
        # Row blocks keep each block in cache while its columns are scanned; scanning whole columns of a
        # wide table would stream the entire table through memory once per property.
        for start in range(0, len(self.vertex), CHECK_BLOCK_ROWS):
            block = self.vertex[start:start + CHECK_BLOCK_ROWS]
            for name in float_names:
                column = block[name]
                counts[name] += column.size - int(np.count_nonzero(np.isfinite(column)))
        bad = [f"{count} in {name}" for name, count in counts.items() if count]
        if bad:
            raise BadInputError(f"{where}: NaN/Inf values in the file: {', '.join(bad)}")
        return self


def read_gaussians(path):
    """Read a splat file (.ply, SuperSplat .compressed.ply, .splat, .spz) into a checked :class:`Gaussians`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise BadInputError(f"{path}: no such file")
    lower = path.lower()
    if lower.endswith(".splat"):
        from .formats import read_dot_splat
        return read_dot_splat(path).check()
    if lower.endswith(".spz"):
        from .formats import read_spz
        return read_spz(path).check()
    header = read_ply_header(path)
    vertex_element = header.element("vertex")
    if vertex_element is None:
        raise BadInputError(f"{path}: PLY file has no 'vertex' element")
    names = {p.name for p in vertex_element[2]}
    if header.element("chunk") is not None and "packed_position" in names:
        from .formats import read_compressed_ply
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


def ply_header_text(gaussians, vertex_count=None):
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


def write_gaussians(path, gaussians):
    """Write a standard binary little-endian PLY, atomically. Property names, types and order are kept."""
    header, blocks = ply_header_text(gaussians)
    with atomic_output(path) as handle:
        handle.write(header.encode("ascii"))
        for block in blocks:
            if any(p.is_list for p in block.properties):
                _write_list_element(handle, block)
            else:
                dtype = np.dtype([(p.name, "<" + PLY_TYPES[p.type_name]) for p in block.properties])
                array = block.data
                if array.dtype != dtype:
                    array = array.astype(dtype)
                handle.flush()
                np.ascontiguousarray(array).tofile(handle)


def _write_list_element(handle, block):
    import plyfile

    element = plyfile.PlyElement.describe(
        block.data, block.name,
        len_types={p.name: PLY_TYPES[p.count_type_name] for p in block.properties if p.is_list},
        val_types={p.name: PLY_TYPES[p.type_name] for p in block.properties if p.is_list})
    buffer = io.BytesIO()
    element._write(buffer, False, "<")  # plyfile has no public per-element writer
    handle.write(buffer.getvalue())
