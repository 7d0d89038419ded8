"""Blender's native Gaussian splats (Blender 5.3+): a :class:`Gaussians` <-> the point attributes of a
``GAUSSIAN_SPLAT`` point cloud, as plain numpy arrays (the Blender layer moves them with foreach_get/foreach_set).

Blender's layout, as its own PLY importer makes it (measured with bpy 5.3.0: docs/notes/blender_5.3_native_splats.md):

============================  =============  ====================================================================
attribute                     type           value
============================  =============  ====================================================================
``position``                  FLOAT_VECTOR   (x, y, z)
``radiance:base``             FLOAT4         (f_dc_0, f_dc_1, f_dc_2, sigmoid(opacity)) -- alpha, not the logit
``scale``                     FLOAT_VECTOR   exp(scale_0..2) -- the standard deviations, not their logs
``rotation``                  QUATERNION     (rot_0..rot_3), w first (Blender's importer normalises it; the
                                             renderer normalises anyway, so gsseg writes it as stored)
``radiance:sh_k``             FLOAT_VECTOR   (f_rest_k, f_rest_{K+k}, f_rest_{2K+k}), k < K: one RGB vector per
                                             SH coefficient (the file's f_rest is channel-major)
============================  =============  ====================================================================

Float32 round trip: positions, f_dc, f_rest and (gsseg's) rotations are bit-exact. Alpha and the scales are not:
``logit(sigmoid(o))`` in float32 is exact for only 17-44 % of splats and its error grows as alpha nears 1 (about
2.5e-4 at o = 8; alpha is exactly 1.0 from o ~ 16.6, where the logit is lost); ``log(exp(s))`` is exact for
99.8 % and 1 ulp off for the rest. So gsseg's own import keeps the file's opacity and log-scales in two hidden
attributes (:data:`KEPT_OPACITY`, :data:`KEPT_LOG_SCALE`, 16 bytes a splat) and :func:`from_radiance` uses them
wherever the native value still equals the forward map of the kept one (within 2 float32 ulp, so that a
different exp/sigmoid rounding on another machine still counts as unedited): an unedited object comes back bit
for bit, an edited alpha or scale is derived from the native value. A point cloud Blender imported itself has no
kept values: everything is derived, and :func:`from_radiance` says what that cost.

Blender's own ``.spz`` import does not keep the file's axes: it reads the stored coordinates as the SPZ README's
RUB and turns them to Z up, ``(x, y, z) -> (x, -z, y)`` of the stored values, which is gsseg's reading of a
``.spz`` without the coordinate-system extension (PLY axes; :mod:`.spz`), e.g. every ``.spz`` gsseg writes
(:data:`BLENDER_SPZ_AXES`, measured with bpy 5.3.0 by tests/test_blender_native.py; a file holding RUB, which
gsseg reads with y and z negated, comes out as ``(x, z, -y)`` of gsseg's reading, as the research note saw).
:func:`blender_spz_to_file` is the 4x4 matrix that undoes it, for
``core.scene.object_transform.transform_gaussians``.
"""

from __future__ import annotations

import collections.abc

import numpy as np

from ..errors import BadInputError
from ..gaussians import Gaussians, sigmoid32, standard_dtype
from .labels import CODE_PROPERTY, LABEL_PROPERTY
from .ply_elements import PLY_TYPES

POSITION = "position"
BASE = "radiance:base"
SCALE = "scale"
ROTATION = "rotation"
SH_PREFIX = "radiance:sh_"
KEPT_OPACITY = ".gsseg_opacity"  # FLOAT: the file's opacity logit, as read
KEPT_LOG_SCALE = ".gsseg_log_scale"  # FLOAT_VECTOR: the file's log-scales, as read

# Blender's own .spz import, as a rotation of the stored coordinates (gsseg's reading of a .spz without the
# coordinate-system extension): (x, y, z) -> (x, -z, y), measured with bpy 5.3.0.
BLENDER_SPZ_AXES = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

POSITION_PROPERTIES = ("x", "y", "z")
DC_PROPERTIES = ("f_dc_0", "f_dc_1", "f_dc_2")
SCALE_PROPERTIES = ("scale_0", "scale_1", "scale_2")
ROTATION_PROPERTIES = ("rot_0", "rot_1", "rot_2", "rot_3")
# Every property the native attributes hold (f_rest_* too, by prefix); the others get an attribute each.
NATIVE_PROPERTIES = frozenset(POSITION_PROPERTIES + DC_PROPERTIES + SCALE_PROPERTIES + ROTATION_PROPERTIES
                              + ("opacity",))
# PLY properties Blender's own PLY importer drops (and keeps no trace of).
DROPPED_BY_BLENDER = ("nx", "ny", "nz", "red", "green", "blue")

FLOAT32_ULP_TOLERANCE = 2  # a native value this close to the forward map of the kept one counts as unedited
ROWS = 1 << 14  # rows per block when moving the vertex table's columns


def sh_name(k: int) -> str:
    """The attribute of SH coefficient ``k`` (0-based, bands 1 and up); always built, never sorted (sh_10 < sh_2)."""
    return f"{SH_PREFIX}{k}"


def sh_count(degree: int) -> int:
    """The number of ``radiance:sh_k`` attributes of an SH degree (3, 8, 15, 24 for degrees 1-4)."""
    return (degree + 1) ** 2 - 1


def is_native_name(name: str) -> bool:
    return name in (POSITION, BASE, SCALE, ROTATION, KEPT_OPACITY, KEPT_LOG_SCALE) or name.startswith("radiance:")


def exp32(log_scales: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.exp(np.asarray(log_scales, dtype=np.float32)).astype(np.float32)


def _columns(vertex: np.ndarray, groups: collections.abc.Sequence[collections.abc.Sequence[str]]) -> list:
    """For each group of property names, float32 [N, len(group)]: those columns of the structured table, all
    groups in one pass over the table, row block by row block (a 1M x 62 table is 250 MB: gathered group by group
    it would stream through memory once per group). An all-float32 table (the usual 3DGS PLY) is a 2-D array
    already: one gather per block and group."""
    n = len(vertex)
    fields = vertex.dtype.names
    outs = [np.empty((n, len(group)), dtype=np.float32) for group in groups]
    if vertex.dtype.itemsize == 4 * len(fields) and all(vertex.dtype[f] == np.dtype("<f4") for f in fields):
        table = vertex.view(np.float32).reshape(n, len(fields))
        position = {name: index for index, name in enumerate(fields)}
        indices = [np.array([position[name] for name in group]) for group in groups]
        for start in range(0, n, ROWS):
            block = table[start:start + ROWS]
            for out, index in zip(outs, indices, strict=True):
                np.take(block, index, axis=1, out=out[start:start + len(block)])
        return outs
    for start in range(0, n, ROWS):
        block = vertex[start:start + ROWS]
        for out, group in zip(outs, groups, strict=True):
            for column, name in enumerate(group):
                out[start:start + len(block), column] = block[name]
    return outs


class NativeSplat:
    """What a native splat point cloud holds for one scene, as numpy arrays: ``attributes`` {name: (Blender data
    type, float32/int32 array [N] or [N, width])} in the order to create them, and ``properties`` [(PLY property
    name, PLY type, attribute name or None for the properties the native attributes hold)], the file's order, to
    keep in the object's header; ``rounded`` names the float64 properties stored as float32, ``renamed`` {property:
    attribute} where the property's own name was taken."""

    def __init__(self, attributes, properties, rounded, renamed):
        self.attributes = attributes
        self.properties = properties
        self.rounded = rounded
        self.renamed = renamed


def to_radiance(gaussians: Gaussians, *, reserved: collections.abc.Container[str] = (),
                keep_originals: bool = True) -> NativeSplat:
    """The native attributes of ``gaussians`` (a checked scene), plus the kept opacity and log-scales
    (``keep_originals``) and one attribute per other property (FLOAT for float types, INT for integers, uint32 bit
    for bit); a property whose name is native or in ``reserved`` (the Blender layer's own attributes) is stored as
    ``ply_<name>``."""
    vertex = gaussians.vertex
    names = list(vertex.dtype.names)
    degree = gaussians.sh_degree
    count = sh_count(degree) if degree else 0
    rest_names = [f"f_rest_{i}" for i in range(3 * count)]
    extra = [name for name in names if name not in NATIVE_PROPERTIES and name not in rest_names]
    # f_rest is channel-major: coefficient k of channel c is f_rest_{c*K + k}
    sh_groups = [[f"f_rest_{c * count + k}" for c in range(3)] for k in range(count)]
    position, base, log_scale, rotation, *sh = _columns(
        vertex, [POSITION_PROPERTIES, DC_PROPERTIES + ("opacity",), SCALE_PROPERTIES, ROTATION_PROPERTIES] + sh_groups)
    opacity = base[:, 3].copy()
    base[:, 3] = sigmoid32(opacity)  # the logit replaced by alpha
    attributes = {
        POSITION: ("FLOAT_VECTOR", position),
        BASE: ("FLOAT4", base),
        SCALE: ("FLOAT_VECTOR", exp32(log_scale)),
        ROTATION: ("QUATERNION", rotation),
    }
    for k in range(count):
        attributes[sh_name(k)] = ("FLOAT_VECTOR", sh[k])
    if keep_originals:
        attributes[KEPT_OPACITY] = ("FLOAT", opacity)
        attributes[KEPT_LOG_SCALE] = ("FLOAT_VECTOR", log_scale)
    properties, rounded, renamed = [], [], {}
    for name in names:
        ply_type = gaussians.property_types[name]
        code = PLY_TYPES[ply_type]
        if code[0] == "f" and code != "f4":
            rounded.append(name)
        if name not in extra:
            properties.append([name, ply_type, None])
            continue
        attribute = name
        if is_native_name(name) or name in reserved or name.startswith("."):
            attribute = f"ply_{name}"
            renamed[name] = attribute
        column = vertex[name]
        if code[0] == "f":
            attributes[attribute] = ("FLOAT", column.astype(np.float32))
        elif code == "u4":
            attributes[attribute] = ("INT", column.astype(np.uint32).view(np.int32))
        else:
            attributes[attribute] = ("INT", column.astype(np.int32))
        properties.append([name, ply_type, attribute])
    return NativeSplat(attributes, properties, rounded, renamed)


def _near(native: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Per element: ``native`` within FLOAT32_ULP_TOLERANCE float32 ulp of ``forward`` (equal infinities too)."""
    with np.errstate(invalid="ignore"):
        close = np.abs(native - forward) <= FLOAT32_ULP_TOLERANCE * np.spacing(np.abs(forward))
    return close | (native == forward)


def logit_of_alpha(alpha: np.ndarray) -> tuple[np.ndarray, int]:
    """float32 opacity logits of float32 alphas (in float64, so that 1 - alpha is exact), the alphas clipped to
    the open interval float32 can hold (an alpha of exactly 0 or 1 has no logit); returns (logits, how many were
    clipped)."""
    alpha = np.asarray(alpha, dtype=np.float64)
    low, high = float(np.finfo(np.float32).tiny), 1.0 - 2.0 ** -24
    clipped = int(np.count_nonzero((alpha < low) | (alpha > high)))
    value = np.clip(np.nan_to_num(alpha, nan=0.5), low, high)
    return np.log(value / (1.0 - value)).astype(np.float32), clipped


def logit_error_bound(alpha: np.ndarray) -> float:
    """The largest opacity error ``logit`` of these float32 alphas can carry: half a float32 ulp of alpha through
    d logit / d alpha = 1 / (alpha (1 - alpha)), for the unclipped ones."""
    alpha = np.asarray(alpha, dtype=np.float64)
    inside = alpha[(alpha > 0) & (alpha < 1.0 - 2.0 ** -24)]
    if inside.size == 0:
        return 0.0
    return float(np.max(0.5 * np.spacing(inside.astype(np.float32)).astype(np.float64) / (inside * (1 - inside))))


def from_radiance(attributes: collections.abc.Mapping[str, np.ndarray], properties=None, *, where: str = "scene",
                  meta_lines=(), elements=(), vertex_position: int = 0) -> tuple[Gaussians, list[str]]:
    """The scene a native splat point cloud holds, and what could not be recovered exactly (sentences to say).

    ``attributes``: {name: array [N] or [N, width]} read from the point cloud: the native ones, the kept ones when
    present, and the attributes ``properties`` names (or, without ``properties``, the extra FLOAT/INT attributes
    to write as properties after the standard ones: a point cloud Blender imported itself; a FLOAT
    ``gsseg_label``/``gsseg_code`` from its importer becomes an int property again). ``properties``: the header
    :func:`to_radiance` made, in the file's order and types."""
    for name in (POSITION, BASE, SCALE, ROTATION):
        if name not in attributes:
            raise BadInputError(f"{where}: no {name!r} attribute: not a 3D Gaussian splat gsseg can read")
    position = np.asarray(attributes[POSITION], dtype=np.float32).reshape(-1, 3)
    n = len(position)
    base = np.asarray(attributes[BASE], dtype=np.float32).reshape(n, 4)
    scale = np.asarray(attributes[SCALE], dtype=np.float32).reshape(n, 3)
    rotation = np.asarray(attributes[ROTATION], dtype=np.float32).reshape(n, 4)
    count = 0
    while sh_name(count) in attributes:
        count += 1
    notes = []
    if properties is None:
        if count not in (0, 3, 8, 15, 24):
            raise BadInputError(f"{where}: {count} radiance:sh_* attributes (an SH degree has 3, 8, 15 or 24)")
        extra = [name for name in attributes if not is_native_name(name) and not name.startswith(".")]
        properties = [[name, "float", None] for name in standard_dtype(3 * count).names]
        for name in extra:
            values = np.asarray(attributes[name])
            integer = values.dtype.kind in "iu" or name in (LABEL_PROPERTY, CODE_PROPERTY)
            properties.append([name, "int" if integer else "float", name])
        notes.append(f"{where} was imported by Blender, not gsseg: the properties its importer drops "
                     f"({' '.join(DROPPED_BY_BLENDER)}) are not written, and rotations are the normalised ones")
    rest = [p[0] for p in properties if p[0].startswith("f_rest_")]
    if len(rest) != 3 * count:
        raise BadInputError(f"{where}: its header has {len(rest)} f_rest properties but the point cloud holds "
                            f"{count} radiance:sh_* attributes ({3 * count} values)")
    dtype = np.dtype([(name, "<" + PLY_TYPES[ply_type]) for name, ply_type, _ in properties])
    vertex = np.empty(n, dtype=dtype)
    alpha = base[:, 3]
    opacity = None
    kept = attributes.get(KEPT_OPACITY)
    if kept is not None:
        kept = np.asarray(kept, dtype=np.float32).reshape(n)
        unedited = _near(alpha, sigmoid32(kept))
        if unedited.all():
            opacity = kept
        else:
            derived, _ = logit_of_alpha(alpha[~unedited])
            opacity = kept.copy()
            opacity[~unedited] = derived
            notes.append(f"{where}: the opacity of {np.count_nonzero(~unedited):,} edited splats is the logit of "
                         f"their float32 alpha (error up to {logit_error_bound(alpha[~unedited]):.2g})")
    if opacity is None:
        opacity, clipped = logit_of_alpha(alpha)
        if kept is None and n:
            notes.append(f"{where}: opacity is the logit of Blender's float32 alpha (error up to "
                         f"{logit_error_bound(alpha):.2g}" + (f"; {clipped:,} alphas of exactly 0 or 1 clipped"
                                                              if clipped else "") + ")")
    log_scale = None
    kept = attributes.get(KEPT_LOG_SCALE)
    with np.errstate(divide="ignore"):
        derived_scale = np.log(np.maximum(scale.astype(np.float64), np.finfo(np.float32).tiny)).astype(np.float32)
    if kept is not None:
        kept = np.asarray(kept, dtype=np.float32).reshape(n, 3)
        unedited = _near(scale, exp32(kept))
        log_scale = np.where(unedited, kept, derived_scale)
        if not unedited.all():
            notes.append(f"{where}: the log-scale of {np.count_nonzero(~unedited.all(axis=1)):,} edited splats is "
                         f"the log of their float32 scale")
    else:
        log_scale = derived_scale
    columns = {name: position[:, i] for i, name in enumerate(POSITION_PROPERTIES)}
    columns.update({name: base[:, i] for i, name in enumerate(DC_PROPERTIES)})
    columns.update({name: log_scale[:, i] for i, name in enumerate(SCALE_PROPERTIES)})
    columns.update({name: rotation[:, i] for i, name in enumerate(ROTATION_PROPERTIES)})
    columns["opacity"] = opacity
    for k in range(count):
        sh = np.asarray(attributes[sh_name(k)], dtype=np.float32).reshape(n, 3)
        for c in range(3):
            columns[f"f_rest_{c * count + k}"] = sh[:, c]
    missing = []
    for name, ply_type, attribute in properties:
        if attribute is None:
            continue
        values = attributes.get(attribute)
        if values is None:
            missing.append(attribute)
            continue
        values = np.asarray(values).reshape(n)
        code = PLY_TYPES[ply_type]
        if code == "u4" and values.dtype == np.int32:
            values = values.view(np.uint32)
        elif code[0] in "iu" and values.dtype.kind == "f":
            values = np.rint(values)
        columns[name] = values
    if missing:
        raise BadInputError(f"{where}: attributes missing or of another type: {', '.join(missing)} (they hold PLY "
                            f"properties of the original file)")
    for start in range(0, n, ROWS):
        block = vertex[start:start + ROWS]
        stop = start + len(block)
        for name in dtype.names:
            block[name] = columns[name][start:stop]
    types = {name: ply_type for name, ply_type, _ in properties}
    gaussians = Gaussians(vertex, property_types=types, meta_lines=[tuple(m) for m in meta_lines],
                          elements=list(elements), vertex_position=vertex_position, source_format="blender")
    return gaussians, notes


def blender_spz_to_file() -> np.ndarray:
    """The 4x4 transform that takes a point cloud Blender's own ``.spz`` import made back to the file's axes (as
    gsseg reads the file): the inverse of :data:`BLENDER_SPZ_AXES`."""
    matrix = np.eye(4)
    matrix[:3, :3] = BLENDER_SPZ_AXES.T
    return matrix
