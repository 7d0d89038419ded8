"""PLY files as elements, whatever they hold: the header parsed by our own code (to keep the exact type names and
to check the body size before allocating anything), binary bodies read with numpy, ASCII bodies and elements with
list properties with plyfile; and the list-element writer. Below the data types (a :class:`~..gaussians.Gaussians`
carries its PLY type names and other elements); what the elements mean is the formats' own: :mod:`.ply` (the 3DGS
PLY) and :mod:`.compressed_ply`."""

from __future__ import annotations

import io
import os
import warnings
import typing

import numpy as np

from ..errors import BadInputError

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


class PlyProperty:
    """One property of a PLY element: its name and the exact type names from the header."""

    __slots__ = ("name", "type_name", "count_type_name")

    def __init__(self, name: str, type_name: str, count_type_name: str | None = None):
        self.name = name
        self.type_name = type_name
        self.count_type_name = count_type_name  # set for list properties

    @property
    def is_list(self) -> bool:
        return self.count_type_name is not None

    def header_line(self) -> str:
        if self.is_list:
            return f"property list {self.count_type_name} {self.type_name} {self.name}"
        return f"property {self.type_name} {self.name}"


class PlyElementData:
    """An element other than ``vertex``, kept as read so it can be written back."""

    def __init__(
        self,
        name: str,
        properties: list[PlyProperty],
        data: np.ndarray,  # [count] structured (or plyfile's element data, with list properties)
    ):
        self.name = name
        self.properties = properties
        self.data = data  # structured array (scalar properties) or plyfile PlyElement data with lists

    @property
    def count(self) -> int:
        return len(self.data)


class PlyHeader:
    """The parsed header: format, comment/obj_info lines in order, and the elements with their properties."""

    def __init__(
        self,
        fmt: str,  # "ascii", "binary_little_endian" or "binary_big_endian"
        version: str,
        meta_lines: list[tuple[str, str]],
        elements: list[tuple[str, int, list[PlyProperty]]],
        size: int,
    ):
        self.format = fmt
        self.version = version
        self.meta_lines = meta_lines  # ("comment"|"obj_info", text) in file order
        self.elements = elements  # [(name, count, [PlyProperty])]
        self.size = size  # bytes up to and including the end_header line

    def element(self, name: str) -> tuple[str, int, list[PlyProperty]] | None:  # (name, count, properties)
        for element in self.elements:
            if element[0] == name:
                return element
        return None


def _header_lines(path, raw):
    """The header's lines (bytes, without their line ends) up to the line ``end_header`` itself, and the header's
    size in bytes: a word ``end_header`` inside a comment or a property name does not end it."""
    lines, start = [], 0
    while True:
        line_end = raw.find(b"\n", start)
        if line_end < 0:
            if len(raw) >= MAX_HEADER_BYTES:
                raise BadInputError(f"{path}: PLY header has no 'end_header' line in its first "
                                    f"{MAX_HEADER_BYTES} bytes")
            if raw[start:].rstrip(b"\r") == b"end_header":
                raise BadInputError(f"{path}: PLY header ends without a newline after 'end_header'")
            raise BadInputError(f"{path}: PLY header has no 'end_header' line")
        line = raw[start:line_end]
        if line.endswith(b"\r"):
            line = line[:-1]
        start = line_end + 1
        if line.strip() == b"end_header":
            return lines, start
        lines.append(line)


# Characters that end or break a header line for some reader (str.splitlines' set and the other controls); a tab is
# kept.
_LINE_BREAKING = frozenset([chr(c) for c in range(32) if c != 9] + ["\x7f", "\x85", "\u2028", "\u2029"])


def check_header_word(where, what: str, word: str) -> None:
    """An element or property name as a PLY header can hold it: one word of printable characters (no space, no
    line end), not empty."""
    if not word or word.split() != [word] or not word.isprintable():
        raise BadInputError(f"{where}: the {what} name {word!r} cannot be written in a PLY header (a name is one "
                            f"word of printable characters)")


def check_header_text(where, kind: str, text: str) -> None:
    """A comment or obj_info text as a PLY header line can hold it: no line end or other control character."""
    bad = next((c for c in text if c in _LINE_BREAKING), None)
    if bad is not None:
        raise BadInputError(f"{where}: a PLY header {kind} cannot hold the character {bad!r} (in {text!r})")


def _parse_header(path, raw):
    """Parse the header block of ``raw`` (the first bytes of the file). The header is UTF-8 (ASCII, as the
    format says, is its subset): comments in any other encoding are refused here, naming the file."""
    if not raw.startswith(b"ply"):
        raise BadInputError(f"{path}: not a PLY file (it does not start with 'ply')")
    raw_lines, size = _header_lines(path, raw)
    fmt = version = None
    meta_lines, elements = [], []
    for number, raw_line in enumerate(raw_lines[1:], start=2):
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadInputError(f"{path}: PLY header line {number} is not UTF-8 text ({error.reason} at byte "
                                f"{error.start}: {raw_line!r})") from None
        words = line.split()
        if not words:
            continue
        keyword = words[0]
        if keyword == "format":
            if len(words) != 3 or words[1] not in BYTE_ORDERS:
                raise BadInputError(f"{path}: unknown PLY format line {number}: {line!r}")
            fmt, version = words[1], words[2]
        elif keyword in ("comment", "obj_info"):
            text = line[len(keyword) + 1:] if len(line) > len(keyword) else ""
            check_header_text(f"{path}: line {number}", keyword, text)
            meta_lines.append((keyword, text))
        elif keyword == "element":
            if len(words) != 3 or not words[2].isdigit() or not words[2].isascii():
                raise BadInputError(f"{path}: bad PLY element line {number}: {line!r}")
            if any(name == words[1] for name, _, _ in elements):
                raise BadInputError(f"{path}: two PLY elements are named '{words[1]}' (line {number}); each "
                                    f"element's name must be its own")
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
            if any(other.name == prop.name for other in elements[-1][2]):
                raise BadInputError(f"{path}: the element '{elements[-1][0]}' names the property "
                                    f"'{prop.name}' twice (line {number})")
            elements[-1][2].append(prop)
        else:
            raise BadInputError(f"{path}: unexpected PLY header line {number}: {line!r}")
    if fmt is None:
        raise BadInputError(f"{path}: PLY header has no format line")
    return PlyHeader(fmt, version, meta_lines, elements, size)


def read_ply_header(path: str | os.PathLike) -> PlyHeader:
    """Read and parse just the header of a PLY file."""
    with open(path, "rb") as handle:
        raw = handle.read(MAX_HEADER_BYTES)
    return _parse_header(path, raw)


def _scalar_dtype(properties, byte_order):
    return np.dtype([(p.name, byte_order + PLY_TYPES[p.type_name]) for p in properties])


def read_ply_elements(
    path: str | os.PathLike,
    header: PlyHeader | None = None,
) -> tuple[PlyHeader, dict[str, np.ndarray]]:  # {element name: [count] structured array}
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
        if offset < file_size:
            warnings.warn(f"{path}: {file_size - offset} bytes after the data the header describes were not read "
                          f"(is an element count in the header too small?)", stacklevel=3)
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

    body = os.path.getsize(path) - header.size
    if header.format == "ascii":
        # ASCII needs at least one byte per value; refuse absurd counts before plyfile allocates them.
        promised = sum(count * max(1, len(props)) for _, count, props in header.elements)
        if promised * 2 > body + 1:
            raise BadInputError(f"{path}: truncated PLY body: the header promises more values than the file holds")
    else:
        # A binary row is at least its scalars and its lists' lengths (an empty list); refuse counts the file
        # cannot hold before plyfile allocates a row table for them.
        least = sum(count * sum(np.dtype(PLY_TYPES[p.count_type_name if p.is_list else p.type_name]).itemsize
                                for p in props) for _, count, props in header.elements)
        if least > body:
            raise BadInputError(f"{path}: truncated PLY body: the header's element counts need at least {least} "
                                f"bytes, the file has {body} after its header")
    # plyfile reads its header as ASCII and ends it at any line starting 'end_header': it gets the header we
    # parsed, with plain names (e<i>, p<j>) and no comments, and the body as it is; our names are put back after.
    lines = ["ply", f"format {header.format} {header.version}"]
    for index, (_, count, props) in enumerate(header.elements):
        lines.append(f"element e{index} {count}")
        lines += [f"property list {p.count_type_name} {p.type_name} p{j}" if p.is_list else
                  f"property {p.type_name} p{j}" for j, p in enumerate(props)]
    with open(path, "rb") as handle:
        handle.seek(header.size)
        stream = io.BytesIO(("\n".join(lines) + "\nend_header\n").encode("ascii") + handle.read())
    try:
        ply = plyfile.PlyData.read(stream)
    except plyfile.PlyParseError as error:
        raise BadInputError(f"{path}: cannot read PLY body: {error}") from None
    except (ValueError, EOFError, UnicodeDecodeError) as error:
        raise BadInputError(f"{path}: truncated or corrupt PLY body ({error})") from None
    data = {}
    for element, (name, _, props) in zip(ply.elements, header.elements, strict=True):
        array = element.data
        array.dtype.names = tuple(p.name for p in props)
        if array.dtype.fields and all(array.dtype.fields[n][0].kind != "O" for n in array.dtype.names):
            array = array.astype([(n, "<" + array.dtype[n].str[1:]) for n in array.dtype.names])
        data[name] = array
    return data


def write_list_element(handle: typing.BinaryIO, block: PlyElementData) -> None:
    """An element with list properties, in binary little-endian (through plyfile)."""
    import plyfile

    element = plyfile.PlyElement.describe(
        block.data, block.name,
        len_types={p.name: PLY_TYPES[p.count_type_name] for p in block.properties if p.is_list},
        val_types={p.name: PLY_TYPES[p.type_name] for p in block.properties if p.is_list})
    buffer = io.BytesIO()
    element._write(buffer, False, "<")  # plyfile has no public per-element writer
    handle.write(buffer.getvalue())
