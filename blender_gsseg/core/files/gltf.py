"""glTF binary (.glb) with the KHR_gaussian_splatting extension, in and out, with gsseg's labels.

Layout as PlayCanvas's splat-transform 3.7.0 writes it (checked on its output): one POINTS primitive with
``POSITION``, ``COLOR_0`` (RGBA8, the base colour and the opacity), and ``KHR_gaussian_splatting:ROTATION`` (xyzw,
as stored: not normalised), ``:SCALE`` (linear), ``:OPACITY`` (after the sigmoid) and ``:SH_DEGREE_l_COEF_n``
(RGB per coefficient). glTF is +Y up: the scene is turned 180° about Z, (x, y, z) -> (-x, -y, z), quaternions and
SH coefficients with it, and reading undoes it.

What the standard attributes cannot give back bit for bit (the log-scales and opacity logits, through exp and the
sigmoid in float32) travels beside them as ``_GSSEG_LOG_SCALE`` and ``_GSSEG_OPACITY_LOGIT`` (glTF's
application-specific attributes), so PLY -> .glb -> PLY is exact; other readers ignore them. A file without them
(splat-transform's) is read through the standard attributes, to float32 precision.

Labels: ``gsseg_label`` as per-splat feature ids (EXT_mesh_features, ``_FEATURE_ID_0``: the row of the instance
in an EXT_structural_metadata property table holding each instance's label id, name and colour; unseen splats
carry the null feature id). Levels (``gsseg_code`` with its layout): each level's labels as feature ids of their
own (the next ``_FEATURE_ID_<n>`` after the labels', coarse first, labelled ``gsseg_code:<level>``) and the layout
as the ``gsseg_code_level`` property table (each level's name and bits), from which a reader packs the code again.
"""

from __future__ import annotations

import json
import os
import re
import struct

import numpy as np

from ..errors import BadInputError
from ..gaussians import REST_COUNT_TO_DEGREE, SH_C0, Gaussians, sh_flip_signs, standard_dtype
from .commit import output_file
from .labels import LABEL_PROPERTY
from .ply_elements import check_header_text, check_header_word

EXTENSION = "KHR_gaussian_splatting"
PREFIX = EXTENSION + ":"
LOG_SCALE = "_GSSEG_LOG_SCALE"
OPACITY_LOGIT = "_GSSEG_OPACITY_LOGIT"
INSTANCE_CLASS = "gsseg_instance"
LEVEL_CLASS = "gsseg_code_level"
LEVEL_PREFIX = "gsseg_code:"  # the label of a level's feature ids, before the level's name
EXTRAS = "gsseg"  # in the primitive's extras: the other properties, the property order and the header comments
GLB_MAGIC, JSON_CHUNK, BIN_CHUNK = 0x46546C67, 0x4E4F534A, 0x004E4942
FLOAT, UBYTE, USHORT, UINT, INT = 5126, 5121, 5123, 5125, 5124
ARRAY_BUFFER = 34962
_COMPONENTS = {FLOAT: np.float32, UBYTE: np.uint8, USHORT: np.uint16, UINT: np.uint32, 5120: np.int8,
               5122: np.int16}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
# A 180° turn about Z flips x and y.
Z_TURN = (-1, -1, 1)


def _sh_signs(count):
    """The sign each of ``count`` higher SH coefficients takes under the turn."""
    return sh_flip_signs(REST_COUNT_TO_DEGREE[3 * count], Z_TURN)


class _Writer:
    """The binary chunk and the accessors/bufferViews that describe it."""

    def __init__(self):
        self.blob = bytearray()
        self.views, self.accessors = [], []

    def view(self, data: bytes, target=None) -> int:
        self.blob += b"\0" * (-len(self.blob) % 4)
        view = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)}
        if target:
            view["target"] = target
        self.blob += data
        self.views.append(view)
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, kind: str, normalized=False, bounds=False) -> int:
        array = np.ascontiguousarray(array)
        component = {np.dtype(v): k for k, v in _COMPONENTS.items()}[array.dtype.newbyteorder("=")]
        accessor = {"bufferView": self.view(array.astype(array.dtype.newbyteorder("<")).tobytes(), ARRAY_BUFFER),
                    "componentType": component, "count": len(array), "type": kind}
        if normalized:
            accessor["normalized"] = True
        if bounds:
            flat = array.reshape(len(array), -1)
            accessor["min"] = [float(v) for v in flat.min(axis=0)]
            accessor["max"] = [float(v) for v in flat.max(axis=0)]
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def write_glb(path: str | os.PathLike, gaussians: Gaussians, commit=None) -> list[str]:
    """Write ``gaussians`` as a .glb (module docstring), on its own or as part of ``commit``; returns what other
    readers cannot get from it (for the caller to say)."""
    from .quantize import sigmoid64
    from .labels import CODE_PROPERTY, CodeLayout, read_label_table

    v = gaussians.vertex
    if len(gaussians) == 0:
        raise BadInputError(f"{path}: a .glb needs at least one splat")
    if gaussians.sh_degree > 3:
        raise BadInputError(f"{path}: KHR_gaussian_splatting holds SH up to degree 3; this scene has degree "
                            f"{gaussians.sh_degree} (convert with --sh-degree 3)")
    writer = _Writer()
    attributes = {}
    f64 = lambda name: v[name].astype(np.float64)  # noqa: E731
    position = np.stack([-f64("x"), -f64("y"), f64("z")], axis=1).astype(np.float32)
    attributes["POSITION"] = writer.accessor(position, "VEC3", bounds=True)
    alpha = sigmoid64(v["opacity"])
    rgb = np.clip(0.5 + SH_C0 * np.stack([f64(f"f_dc_{c}") for c in range(3)], axis=1), 0.0, 1.0)
    colour = np.round(np.concatenate([rgb, alpha[:, None]], axis=1) * 255.0).astype(np.uint8)
    attributes["COLOR_0"] = writer.accessor(colour, "VEC4", normalized=True)
    w, x, y, z = (v[f"rot_{k}"] for k in range(4))
    attributes[PREFIX + "ROTATION"] = writer.accessor(np.stack([-y, x, w, -z], axis=1).astype(np.float32), "VEC4")
    log_scale = np.stack([v[f"scale_{k}"] for k in range(3)], axis=1).astype(np.float32)
    attributes[PREFIX + "SCALE"] = writer.accessor(np.exp(log_scale.astype(np.float64)).astype(np.float32), "VEC3")
    attributes[PREFIX + "OPACITY"] = writer.accessor(alpha.astype(np.float32), "SCALAR")
    attributes[PREFIX + "SH_DEGREE_0_COEF_0"] = writer.accessor(
        np.stack([v[f"f_dc_{c}"] for c in range(3)], axis=1).astype(np.float32), "VEC3")
    rest = gaussians.sh_rest * _sh_signs(gaussians.sh_rest.shape[1])[None, :, None]  # [N, K, 3]
    for k in range(rest.shape[1]):
        band = int(np.sqrt(k + 1))
        attributes[f"{PREFIX}SH_DEGREE_{band}_COEF_{k + 1 - band * band}"] = writer.accessor(
            rest[:, k].astype(np.float32), "VEC3")
    attributes[LOG_SCALE] = writer.accessor(log_scale, "VEC3")
    attributes[OPACITY_LOGIT] = writer.accessor(v["opacity"].astype(np.float32), "SCALAR")
    kept = _write_other_properties(writer, attributes, gaussians)

    primitive = {"attributes": attributes, "mode": 0, "extensions": {EXTENSION: {
        "kernel": "ellipse", "colorSpace": "srgb_rec709_display", "sortingMethod": "cameraDistance",
        "projection": "perspective"}}, "extras": {EXTRAS: kept}}
    document = {"asset": {"version": "2.0", "generator": "gsseg"}, "extensionsUsed": [EXTENSION],
                "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
                "meshes": [{"primitives": [primitive]}]}
    if LABEL_PROPERTY in v.dtype.names:
        _write_labels(writer, document, primitive, v[LABEL_PROPERTY].astype(np.int64),
                      read_label_table(gaussians.comments))
    # a bad layout comment is the scene's fault: name the file it came from, when there is one
    layout = CodeLayout.from_comments(gaussians.comments, where=gaussians.path or str(path)) \
        if CODE_PROPERTY in v.dtype.names else None
    lost = []
    if layout is not None:
        skipped = _write_levels(writer, primitive, _metadata(document), v[CODE_PROPERTY].astype(np.int64), layout)
        lost += [f"gsseg_code level {name!r} needs more than 24 bits: written without its feature ids (readers "
                 f"other than gsseg see no such level)" for name in skipped]
    document["buffers"] = [{"byteLength": len(writer.blob)}]
    document["bufferViews"] = writer.views
    document["accessors"] = writer.accessors
    text = json.dumps(document, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    blob = bytes(writer.blob) + b"\0" * (-len(writer.blob) % 4)
    with output_file(path, "wb", commit) as handle:
        handle.write(struct.pack("<III", GLB_MAGIC, 2, 12 + 8 + len(text) + 8 + len(blob)))
        handle.write(struct.pack("<II", len(text), JSON_CHUNK) + text)
        handle.write(struct.pack("<II", len(blob), BIN_CHUNK) + blob)
    return lost


def _write_other_properties(writer, attributes, gaussians):
    """The scene's other vertex properties (normals, gsseg_code, a tool's own), each as ``_GSSEG_P<k>``: float
    ones as floats, the others as their bytes in unsigned shorts (vertex attributes have no 32-bit integers);
    returned with the property order, types and header comments for the primitive's extras, so that reading
    gives the PLY back as it was."""
    v = gaussians.vertex
    standard = set(standard_dtype(3 * gaussians.sh_rest.shape[1]).names) | {LABEL_PROPERTY}
    properties = []
    for name in v.dtype.names:
        if name in standard:
            continue
        semantic = f"_GSSEG_P{len(properties)}"
        kind = v.dtype[name]
        if kind == np.float32:
            attributes[semantic] = writer.accessor(v[name].astype(np.float32), "SCALAR")
        else:  # the value's bytes, little-endian, padded to 4 (integers) or 8 (doubles)
            width = 8 if kind.itemsize == 8 else 4
            raw = v[name].astype(kind.newbyteorder("<")).view(np.uint8).reshape(len(v), kind.itemsize)
            padded = np.zeros((len(v), width), dtype=np.uint8)
            padded[:, :kind.itemsize] = raw
            attributes[semantic] = writer.accessor(padded.view("<u2"), "VEC2" if width == 4 else "VEC4")
        properties.append({"name": name, "type": gaussians.property_types[name], "attribute": semantic})
    return {"properties": properties, "order": list(v.dtype.names), "comments": gaussians.comments}


def _write_labels(writer, document, primitive, labels, table):
    """Feature ids (rows of the instance table) and the table: label id, name and colour per instance."""
    from .labels import label_table_comments, read_label_table

    ids = np.unique(labels[labels >= 0])
    rows = read_label_table(label_table_comments(ids, table))  # every label named, as a PLY header would
    null = len(ids)
    feature = np.full(len(labels), null, dtype=np.int64)
    feature[labels >= 0] = np.searchsorted(ids, labels[labels >= 0])
    metadata = _metadata(document)
    _add_feature_ids(writer, primitive, feature, len(ids), null, LABEL_PROPERTY,
                     propertyTable=len(metadata["propertyTables"]))  # the table appended below
    names = [rows[int(i)][0] for i in ids]
    colours = np.array([[int(rows[int(i)][1][k:k + 2], 16) for k in (1, 3, 5)] for i in ids], dtype=np.uint8)
    metadata["schema"]["classes"][INSTANCE_CLASS] = {"properties": {
        "label": {"type": "SCALAR", "componentType": "INT32"},
        "name": {"type": "STRING"},
        "colour": {"type": "VEC3", "componentType": "UINT8"}}}
    metadata["propertyTables"].append({"class": INSTANCE_CLASS, "count": int(len(ids)), "properties": {
        "label": {"values": writer.view(ids.astype("<i4").tobytes())},
        **_string_property(writer, names),
        "colour": {"values": writer.view(colours.tobytes())}}})


def _add_feature_ids(writer, primitive, feature, count, null, label, **table):  # feature: int [N]
    """``feature`` as the primitive's next ``_FEATURE_ID_<n>`` and its EXT_mesh_features entry (``table``: a
    ``propertyTable`` index, if any). float32: a vertex attribute's elements are 4-byte aligned, and floats hold ids
    exactly up to 2^24. featureCount is at least 1 (the schema's minimum), even when every splat is null."""
    features = primitive["extensions"].setdefault("EXT_mesh_features", {"featureIds": []})["featureIds"]
    primitive["attributes"][f"_FEATURE_ID_{len(features)}"] = writer.accessor(feature.astype(np.float32), "SCALAR")
    features.append({"featureCount": max(1, int(count)), "attribute": len(features), **table,
                     "nullFeatureId": int(null), "label": label})


def _metadata(document):
    """The document's EXT_structural_metadata (a schema and property tables), made on first use."""
    if "EXT_structural_metadata" not in document.setdefault("extensions", {}):
        document["extensionsUsed"] += ["EXT_mesh_features", "EXT_structural_metadata"]
        document["extensions"]["EXT_structural_metadata"] = {"schema": {"id": "gsseg", "classes": {}},
                                                             "propertyTables": []}
    return document["extensions"]["EXT_structural_metadata"]


def _string_property(writer, names, key="name"):  # UTF-8 strings -> a property table's STRING property
    encoded = [name.encode("utf-8") for name in names]
    offsets = np.cumsum([0] + [len(name) for name in encoded]).astype(np.uint32)
    return {key: {"values": writer.view(b"".join(encoded)), "stringOffsets": writer.view(offsets.tobytes()),
                  "stringOffsetType": "UINT32"}}


def _write_levels(writer, primitive, metadata, codes, layout):
    """Each level of ``gsseg_code`` as feature ids of their own (the next ``_FEATURE_ID_<n>``: the level's label
    id, the null id 2^bits for an unseen splat), and the layout, each level's name and bits coarse first, as the
    ``gsseg_code_level`` property table: what a reader needs to pack the code again. Returns the names of levels
    too wide for feature ids (left out)."""
    skipped = []
    metadata["schema"]["classes"][LEVEL_CLASS] = {
        "description": f"the levels of gsseg_code, coarse first; the feature ids labelled '{LEVEL_PREFIX}<name>' "
                       f"hold each level's labels",
        "properties": {"name": {"type": "STRING"}, "bits": {"type": "SCALAR", "componentType": "UINT8"}}}
    metadata["propertyTables"].append({"class": LEVEL_CLASS, "count": len(layout.names), "properties": {
        **_string_property(writer, layout.names),
        "bits": {"values": writer.view(np.asarray(layout.bits, np.uint8).tobytes())}}})
    for level, name in enumerate(layout.names):
        field = layout.field(codes, level).astype(np.int64)
        null = 1 << layout.bits[level]
        # float32 ids are exact up to 2^24. A wider level (over 16M labels) is left out: the caller says so, and
        # the code itself still travels exactly in gsseg's extras.
        if null > 1 << 24:
            skipped.append(name)
            continue
        _add_feature_ids(writer, primitive, np.where(field < 0, null, field), len(np.unique(field[field >= 0])),
                         null, f"{LEVEL_PREFIX}{name}")
    return skipped


def read_glb(path: str | os.PathLike) -> Gaussians:
    """Read a KHR_gaussian_splatting .glb (ours: exact; splat-transform's: to float32 precision), with labels.
    A damaged or hand-made file is refused in one line naming it: the accessors and bufferViews are checked
    before any byte is read through them, and a JSON of another shape than glTF's is caught here."""
    path = os.fspath(path)
    try:
        return _read_glb(path)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as error:
        raise BadInputError(f"{path}: malformed glTF document ({type(error).__name__}: {error})") from None


_SH_NAME = re.compile(r"SH_DEGREE_([0-9])_COEF_([0-9]+)")


def _read_glb(path):
    from .labels import CODE_PROPERTY, label_table_comments

    document, blob = _read_chunks(path)
    meshes = document.get("meshes", [])
    if not isinstance(meshes, list) or not all(isinstance(m, dict) and isinstance(m.get("primitives", []), list)
                                               and all(isinstance(p, dict) for p in m.get("primitives", []))
                                               for m in meshes):
        raise BadInputError(f"{path}: glTF 'meshes' is not a list of meshes with lists of primitives")
    try:
        primitive = next(p for mesh in meshes for p in mesh.get("primitives", [])
                         if EXTENSION in p.get("extensions", {}) or PREFIX + "SCALE" in p.get("attributes", {}))
    except StopIteration:
        raise BadInputError(f"{path}: no {EXTENSION} primitive in this glTF file") from None
    attributes = primitive["attributes"]
    if not isinstance(attributes, dict):
        raise BadInputError(f"{path}: the splat primitive's attributes are not a JSON object")
    missing = [name for name in ("POSITION", PREFIX + "ROTATION", PREFIX + "SCALE", PREFIX + "OPACITY")
               if name not in attributes]
    if missing:
        raise BadInputError(f"{path}: the splat primitive lacks {', '.join(missing)}")
    position = _accessor(path, document, blob, attributes["POSITION"]).astype(np.float32)
    n = len(position)

    def read(name):  # every per-splat attribute has one row per splat
        values = _accessor(path, document, blob, attributes[name])
        if len(values) != n:
            raise BadInputError(f"{path}: the attribute {name} has {len(values)} rows for {n} splats")
        return values

    coefficients = []
    for name in attributes:
        if name.startswith(PREFIX + "SH_DEGREE_"):
            match = _SH_NAME.fullmatch(name[len(PREFIX):])
            if match is None:
                raise BadInputError(f"{path}: malformed SH attribute name {name!r} (expected "
                                    f"{PREFIX}SH_DEGREE_<l>_COEF_<n>)")
            coefficients.append((int(match[1]), int(match[2]), name))
    coefficients.sort()
    rest = [name for band, _, name in coefficients if band > 0]
    if 3 * len(rest) not in REST_COUNT_TO_DEGREE:
        raise BadInputError(f"{path}: {len(rest)} higher SH coefficients do not make whole bands")
    degree = REST_COUNT_TO_DEGREE[3 * len(rest)]
    expected = [(band, k) for band in range(1, degree + 1) for k in range(2 * band + 1)]
    if [(band, k) for band, k, _ in coefficients if band > 0] != expected:
        raise BadInputError(f"{path}: the SH attributes are not bands 1 to {degree}, each with its coefficients "
                            f"0 to 2l (a coefficient missing, repeated or out of its band)")
    out = np.empty(n, dtype=standard_dtype(3 * len(rest)))
    out["x"], out["y"], out["z"] = -position[:, 0], -position[:, 1], position[:, 2]
    if PREFIX + "SH_DEGREE_0_COEF_0" in attributes:
        dc = read(PREFIX + "SH_DEGREE_0_COEF_0")
    elif "COLOR_0" in attributes:
        dc = (read("COLOR_0")[:, :3] - 0.5) / SH_C0
    else:
        raise BadInputError(f"{path}: the splat primitive has no colour (SH_DEGREE_0_COEF_0 or COLOR_0)")
    for c in range(3):
        out[f"f_dc_{c}"] = dc[:, c]
    signs = _sh_signs(len(rest))
    for k, name in enumerate(rest):
        values = read(name) * signs[k]
        for c in range(3):
            out[f"f_rest_{c * len(rest) + k}"] = values[:, c]
    if OPACITY_LOGIT in attributes:
        out["opacity"] = read(OPACITY_LOGIT)[:, 0]
    else:
        alpha = np.clip(read(PREFIX + "OPACITY")[:, 0].astype(np.float64), 1e-7, 1 - 1e-7)
        out["opacity"] = np.log(alpha / (1.0 - alpha))
    if LOG_SCALE in attributes:
        log_scale = read(LOG_SCALE)
    else:
        scale = read(PREFIX + "SCALE").astype(np.float64)
        if not np.all(scale > 0):
            raise BadInputError(f"{path}: {int(np.sum(~np.all(scale > 0, axis=1)))} splats have a zero or "
                                f"negative scale")
        log_scale = np.log(scale)
    for k in range(3):
        out[f"scale_{k}"] = log_scale[:, k]
    x, y, z, w = read(PREFIX + "ROTATION").T  # as written: (-y, x, w, -z) of the PLY's (w, x, y, z)
    out["rot_0"], out["rot_1"], out["rot_2"], out["rot_3"] = z, y, -x, -w
    comments, types = [], {}
    features = primitive.get("extensions", {}).get("EXT_mesh_features", {}).get("featureIds", [])
    labelled = [f for f in features if f.get("label") == LABEL_PROPERTY and "attribute" in f]
    if labelled:
        labels, names = _read_labels(path, document, blob, attributes, labelled[0])
        out = _with_column(out, LABEL_PROPERTY, labels)
        table = {label: names[label] for label in names}
        comments = label_table_comments(sorted(table), table)
    kept = primitive.get("extras", {}).get(EXTRAS)
    if isinstance(kept, dict):  # written by gsseg: the other properties, the order and the comments as they were
        out, types = _read_other_properties(path, document, blob, attributes, out, kept)
        comments = [str(c) for c in kept.get("comments", comments)]
    # what a PLY header must hold, checked here, naming this file, not when a PLY is written after a whole lift
    for comment in comments:
        check_header_text(path, "comment", comment)
    for name in out.dtype.names:
        check_header_word(path, "vertex property", name)
    if CODE_PROPERTY not in out.dtype.names:  # a file that kept the standard parts only: the levels' feature ids
        levels = _read_levels(path, document, blob, attributes, features)
        if levels is not None:
            out = _with_column(out, CODE_PROPERTY, levels[0])
            comments = comments + [levels[1].comment()]
    return Gaussians(out, property_types=types, meta_lines=[("comment", c) for c in comments], source_format="glb",
                     path=path)


def _read_other_properties(path, document, blob, attributes, out, kept):
    from .ply_elements import PLY_TYPES

    columns = {name: out[name] for name in out.dtype.names}
    types = {}
    try:
        for entry in kept.get("properties", []):
            name, ply_type, semantic = entry["name"], entry["type"], entry["attribute"]
            kind = np.dtype("<" + PLY_TYPES[ply_type])
            accessor = document["accessors"][attributes[semantic]]
            if kind == np.float32:
                columns[name] = _accessor(path, document, blob, attributes[semantic])[:, 0]
            else:
                width = 2 * _WIDTH[accessor["type"]]
                if width < kind.itemsize:
                    raise ValueError(f"{semantic} is {accessor['type']}, too narrow for a {ply_type}")
                raw = _accessor(path, document, blob, attributes[semantic], raw=True)
                columns[name] = raw.reshape(-1, width)[:, :kind.itemsize].copy().view(kind)[:, 0]
            if len(columns[name]) != len(out):
                raise ValueError(f"{semantic} has {len(columns[name])} rows for {len(out)} splats")
            types[name] = ply_type
        order = [name for name in kept.get("order", out.dtype.names) if name in columns]
        order += [name for name in columns if name not in order]
    except (KeyError, TypeError, ValueError) as error:
        raise BadInputError(f"{path}: unreadable gsseg properties in the glTF extras ({error})") from None
    table = np.empty(len(out), dtype=[(name, columns[name].dtype.newbyteorder("<")) for name in order])
    for name in order:
        table[name] = columns[name]
    return table, types


def _with_column(array, name, values):
    dtype = np.dtype(array.dtype.descr + [(name, "<i4")])
    out = np.empty(len(array), dtype=dtype)
    for field in array.dtype.names:
        out[field] = array[field]
    out[name] = values
    return out


def _read_labels(path, document, blob, attributes, feature_ids):
    """gsseg_label per splat, and {label: (name, '#rrggbb')} from the instance table."""
    feature = _feature_ids(path, document, blob, attributes, feature_ids)
    try:
        table = document["extensions"]["EXT_structural_metadata"]["propertyTables"][feature_ids["propertyTable"]]
        properties = table["properties"]
        count = int(table["count"])
        view = lambda key: _view(path, document, blob, key)  # noqa: E731
        ids = np.frombuffer(view(properties["label"]["values"]), "<i4", count).astype(np.int64)
        names = _read_string_property(path, document, blob, properties["name"], count)
        colours = np.frombuffer(view(properties["colour"]["values"]), np.uint8, 3 * count).reshape(count, 3)
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise BadInputError(f"{path}: unreadable gsseg instance table ({error})") from None
    labels = np.full(len(feature), -1, dtype=np.int32)
    known = (feature >= 0) & (feature < count)
    labels[known] = ids[feature[known]]
    return labels, {int(i): (n, "#%02x%02x%02x" % tuple(int(c) for c in rgb))
                    for i, n, rgb in zip(ids, names, colours, strict=True)}


def _feature_ids(path, document, blob, attributes, feature_ids):  # a featureIds entry -> int64 [N]
    name = f"_FEATURE_ID_{feature_ids['attribute']}"
    if name not in attributes:
        raise BadInputError(f"{path}: the feature ids name {name}, which the primitive lacks")
    return _accessor(path, document, blob, attributes[name])[:, 0].astype(np.int64)


def _read_string_property(path, document, blob, prop, count):  # a property table's STRING property -> [count]
    """The reader's side of :func:`_string_property`."""
    raw = _view(path, document, blob, prop["values"])
    offsets = np.frombuffer(_view(path, document, blob, prop["stringOffsets"]), "<u4", count + 1)
    return [raw[offsets[k]:offsets[k + 1]].decode("utf-8") for k in range(count)]


def _read_levels(path, document, blob, attributes, features):
    """``gsseg_code`` packed again from the levels' feature ids and the ``gsseg_code_level`` table, with its
    layout; None when the file has no levels."""
    from .labels import CodeLayout

    tables = document.get("extensions", {}).get("EXT_structural_metadata", {}).get("propertyTables", [])
    table = next((t for t in tables if t.get("class") == LEVEL_CLASS), None)
    if table is None:
        return None
    try:
        count = int(table["count"])
        properties = table["properties"]
        names = _read_string_property(path, document, blob, properties["name"], count)
        bits = [int(b) for b in np.frombuffer(_view(path, document, blob, properties["bits"]["values"]), np.uint8,
                                              count)]
        by_label = {f.get("label"): f for f in features}
        fields = []
        for name in names:
            ids = by_label[LEVEL_PREFIX + name]
            feature = _feature_ids(path, document, blob, attributes, ids)
            fields.append(np.where(feature == int(ids["nullFeatureId"]), -1, feature))
        layout = CodeLayout.checked(names, bits, where=path)
        return layout.pack(fields), layout
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise BadInputError(f"{path}: unreadable gsseg_code levels ({error!r})") from None


def _read_chunks(path):
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < 20 or struct.unpack_from("<I", data)[0] != GLB_MAGIC:
        raise BadInputError(f"{path}: not a binary glTF (.glb) file")
    version, length = struct.unpack_from("<II", data, 4)
    if version != 2 or length > len(data):
        raise BadInputError(f"{path}: glTF version {version}, or truncated ({len(data)} of {length} bytes)")
    chunks, offset = {}, 12
    while offset + 8 <= length:
        size, kind = struct.unpack_from("<II", data, offset)
        chunks.setdefault(kind, data[offset + 8:offset + 8 + size])
        offset += 8 + size
    if JSON_CHUNK not in chunks:
        raise BadInputError(f"{path}: the .glb has no JSON chunk")
    try:
        document = json.loads(chunks[JSON_CHUNK])
    except (ValueError, RecursionError) as error:
        raise BadInputError(f"{path}: unreadable glTF JSON ({error})") from None
    if not isinstance(document, dict):
        raise BadInputError(f"{path}: the glTF JSON is a {type(document).__name__}, not an object")
    return document, chunks.get(BIN_CHUNK, b"")


def _index(path, document, key, index):
    """``document[key][index]``, a JSON object, after checking that the index is one."""
    items = document.get(key)
    if not isinstance(items, list):
        raise BadInputError(f"{path}: the glTF document has no list of {key}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(items):
        raise BadInputError(f"{path}: {key} index {index!r} out of range (the file has {len(items)})")
    if not isinstance(items[index], dict):
        raise BadInputError(f"{path}: {key}[{index}] is not a JSON object")
    return items[index]


def _whole(path, what, value, least=0):
    """A JSON number that must be a whole number, at least ``least``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise BadInputError(f"{path}: {what} is {value!r}, not a whole number of at least {least}")
    return value


def _view(path, document, blob, index):
    view = _index(path, document, "bufferViews", index)
    buffer = _whole(path, f"bufferViews[{index}].buffer", view.get("buffer", 0))
    buffers = document.get("buffers", [])
    if buffer != 0 or not isinstance(buffers, list) or not buffers or not isinstance(buffers[0], dict) \
            or "uri" in buffers[0]:
        raise BadInputError(f"{path}: buffers outside the .glb's binary chunk are not read")
    start = _whole(path, f"bufferViews[{index}].byteOffset", view.get("byteOffset", 0))
    length = _whole(path, f"bufferViews[{index}].byteLength", view.get("byteLength"))
    if start + length > len(blob):
        raise BadInputError(f"{path}: a bufferView runs past the binary chunk (truncated file)")
    return blob[start:start + length]


def _accessor(path, document, blob, index, raw=False) -> np.ndarray:
    """An accessor as float32 [count, width] (normalised integers scaled to [0, 1] or [-1, 1]); ``raw``: its
    elements' bytes, uint8 [count, element size]. Every field is checked before a byte is read through it."""
    accessor = _index(path, document, "accessors", index)
    component, kind = accessor.get("componentType"), accessor.get("type")
    if component not in _COMPONENTS or isinstance(component, bool):
        raise BadInputError(f"{path}: accessor {index} has componentType {component!r} (known: "
                            f"{', '.join(str(c) for c in sorted(_COMPONENTS))})")
    if kind not in _WIDTH:
        raise BadInputError(f"{path}: accessor {index} has type {kind!r} (a splat attribute is one of "
                            f"{', '.join(_WIDTH)})")
    dtype = np.dtype(_COMPONENTS[component]).newbyteorder("<")
    width = _WIDTH[kind]
    count = _whole(path, f"accessor {index}'s count", accessor.get("count"), least=1)
    view_index = accessor.get("bufferView")
    data = _view(path, document, blob, view_index)
    view = document["bufferViews"][view_index]
    element = dtype.itemsize * width
    stride = view.get("byteStride") or element
    if isinstance(stride, bool) or not isinstance(stride, int) or not element <= stride <= 252:
        raise BadInputError(f"{path}: bufferView {view_index} has byteStride {stride!r} (glTF allows the "
                            f"element's {element} bytes to 252)")
    start = _whole(path, f"accessor {index}'s byteOffset", accessor.get("byteOffset", 0))
    if start + stride * (count - 1) + element > len(data):
        raise BadInputError(f"{path}: accessor {index} runs past its bufferView (truncated file)")
    rows = np.lib.stride_tricks.as_strided(np.frombuffer(data, np.uint8, offset=start),
                                           shape=(count, element), strides=(stride, 1))
    if raw:
        return np.ascontiguousarray(rows)
    values = np.ascontiguousarray(rows).view(dtype).reshape(count, width)
    if accessor.get("normalized"):
        info = np.iinfo(dtype)
        values = np.maximum(values.astype(np.float64) / info.max, -1.0)
    return values.astype(np.float32)
