"""Gaussian splat scenes: the vertex table exactly as read plus what the file said around it.

A :class:`Gaussians` is the vertex table exactly as read (a structured numpy array, every property kept in file
order with its type) plus the rest of the file (header comments, obj_info, other elements), so writing it back
reproduces the file. Derived views (means, opacities, ...) are computed on demand and cached. Reading and
writing files is :mod:`.files.splats`.
"""

from __future__ import annotations

import collections.abc
import functools
import warnings

import numpy as np

from .errors import BadInputError
from .files.ply_elements import NUMPY_TO_PLY, PlyElementData

SH_C0 = 0.28209479177387814

def sigmoid32(logits: np.ndarray) -> np.ndarray:
    """float32 opacity in [0, 1] from logits, computed in float32 (as Blender's importer and the rasterizer do);
    a logit of -inf gives 0 (exp(+inf) = inf), +inf gives 1."""
    logits = np.asarray(logits, dtype=np.float32)
    with np.errstate(over="ignore"):
        return (np.float32(1.0) / (np.float32(1.0) + np.exp(-logits))).astype(np.float32)


REQUIRED_PROPERTIES = (
    "x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
    "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
)
# Number of f_rest_* properties for SH degree 0..4 (degree 4 only from .spz) (3 channels x ((d+1)^2 - 1) coefficients).
REST_COUNT_TO_DEGREE = {0: 0, 9: 1, 24: 2, 45: 3, 72: 4}
CHECK_BLOCK_ROWS = 1 << 14  # rows per block of the NaN/Inf scan
MAX_LOG_SCALE = 88.0  # exp(88) is about 1.7e38, near the float32 maximum


def standard_dtype(rest_count: int = 0) -> np.dtype:
    """The INRIA vertex layout (float32, little-endian) with ``rest_count`` f_rest_* properties."""
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(rest_count)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return np.dtype([(name, "<f4") for name in names])


# The sign table of the SPZ library for the 24 SH coefficients of bands 1-4 under a flip of the axes; each entry
# names the axes whose flip changes that coefficient's sign. It is the parity of the real SH basis (3DGS order,
# m = -l..l) except the last one, band 4 m = 4 (even in x and y, so it should never flip), where the library uses y.
# Following it is what makes band-4 data written by the library come back as it went in (.spz is the only format
# with band 4; .glb turns the scene with it).
_SH_FLIP_AXES = ("y", "z", "x",
                 "xy", "yz", "", "xz", "",
                 "y", "xyz", "y", "z", "x", "z", "x",
                 "xy", "yz", "xy", "yz", "", "xz", "", "xz", "y")


def sh_flip_signs(degree, signs):
    """Per-coefficient SH signs (bands 1..degree) for a flip of the axes by ``signs`` (x, y, z each +1 or -1)."""
    flips = dict(zip("xyz", signs, strict=True))
    table = [int(np.prod([flips[a] for a in axes])) for axes in _SH_FLIP_AXES]
    return np.array(table[:(degree + 1) ** 2 - 1], dtype=np.float32)


class Gaussians:
    """A splat scene: the vertex table as read, the rest of the PLY file, and cached derived views."""

    def __init__(
        self,
        vertex: np.ndarray,  # [N] structured: one field per vertex property, in file order
        *,
        property_types: collections.abc.Mapping[str, str] | None = None,  # property name -> PLY type name
        meta_lines: collections.abc.Iterable[tuple[str, str]] = (),  # ("comment" | "obj_info", text)
        elements: collections.abc.Iterable[PlyElementData] = (),  # the other elements, in file order
        vertex_position: int = 0,
        source_format: str = "ply",
        path: str | None = None,  # the file read, for messages
    ):
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
    def __len__(self) -> int:
        return len(self.vertex)

    @property
    def property_names(self) -> list[str]:
        return list(self.vertex.dtype.names)

    @property
    def comments(self) -> list[str]:
        return [text for kind, text in self.meta_lines if kind == "comment"]

    @functools.cached_property
    def sh_degree(self) -> int:
        rest = sum(1 for name in self.vertex.dtype.names if name.startswith("f_rest_"))
        return REST_COUNT_TO_DEGREE.get(rest, 0)

    def _stack(self, names, dtype=np.float32):
        out = np.empty((len(self.vertex), len(names)), dtype=dtype)
        for column, name in enumerate(names):
            out[:, column] = self.vertex[name]
        return out

    # ----- derived views (float32, cached)
    @functools.cached_property
    def means(self) -> np.ndarray:  # [N, 3] float32
        return self._stack(("x", "y", "z"))

    @functools.cached_property
    def opacities(self) -> np.ndarray:  # [N] float32
        """Opacity in [0, 1]: the sigmoid of the stored logit."""
        return sigmoid32(self.vertex["opacity"])

    @functools.cached_property
    def scales(self) -> np.ndarray:  # [N, 3] float32
        """Per-axis standard deviations: exp of the stored log-scales (clamped so that they stay finite)."""
        return np.exp(np.minimum(self._stack(("scale_0", "scale_1", "scale_2")), MAX_LOG_SCALE))

    @functools.cached_property
    def rotations(self) -> np.ndarray:  # [N, 4] float32
        """Unit quaternions, w first."""
        quats = self._stack(("rot_0", "rot_1", "rot_2", "rot_3"))
        norm = np.linalg.norm(quats, axis=1, keepdims=True)
        norm[norm == 0] = 1.0
        return quats / norm

    @functools.cached_property
    def sh_dc(self) -> np.ndarray:  # [N, 3] float32
        return self._stack(("f_dc_0", "f_dc_1", "f_dc_2"))

    @functools.cached_property
    def base_colors(self) -> np.ndarray:  # [N, 3] float32
        """RGB in [0, 1] from the degree-0 SH coefficient."""
        return np.clip(0.5 + SH_C0 * self.sh_dc, 0.0, 1.0)

    @functools.cached_property
    def sh_rest(self) -> np.ndarray:  # [N, K, 3] float32
        """[N, K, 3] higher-order SH coefficients (f_rest is channel-major: index = c*K + k)."""
        count = ((self.sh_degree + 1) ** 2) - 1
        rest = self._stack([f"f_rest_{i}" for i in range(3 * count)])
        return rest.reshape(len(self.vertex), 3, count).transpose(0, 2, 1).copy()

    # ----- editing (each returns a new scene; the original is untouched)
    def subset(self, selection: np.ndarray) -> Gaussians:  # bool [N] or int [M]
        """The Gaussians picked by a boolean mask or an index array, with the same header."""
        return self._replace(self.vertex[selection])

    def with_int_property(self, name: str, values: np.ndarray) -> Gaussians:  # values: int [N]
        """Add an int32 property, or replace one of that name in place (keeping its position)."""
        return self._with_property(name, values, "int")

    def with_float_property(self, name: str, values: np.ndarray) -> Gaussians:  # values: float [N]
        """Add a float32 property, or replace one of that name in place (keeping its position)."""
        return self._with_property(name, values, "float")

    def _with_property(self, name, values, kind):
        dtype = np.dtype("<i4" if kind == "int" else "<f4")
        values = np.asarray(values)
        if values.shape != (len(self.vertex),):
            raise ValueError(f"{name}: expected {len(self.vertex)} values, got shape {values.shape}")
        fields = [(n, self.vertex.dtype[n]) for n in self.vertex.dtype.names]
        if name in self.vertex.dtype.names:
            fields = [(n, dtype if n == name else dt) for n, dt in fields]
        else:
            fields.append((name, dtype))
        vertex = np.empty(len(self.vertex), dtype=fields)
        for n in self.vertex.dtype.names:
            if n != name:
                vertex[n] = self.vertex[n]
        vertex[name] = values
        types = dict(self.property_types)
        types[name] = kind
        return self._replace(vertex, property_types=types)

    def without_properties(self, names: collections.abc.Collection[str]) -> Gaussians:
        keep = [n for n in self.vertex.dtype.names if n not in set(names)]
        vertex = np.empty(len(self.vertex), dtype=[(n, self.vertex.dtype[n]) for n in keep])
        for n in keep:
            vertex[n] = self.vertex[n]
        return self._replace(vertex)

    def with_comments(self, comments: collections.abc.Iterable[str], *, drop_prefix: str | None = None) -> Gaussians:
        """Replace comments starting with ``drop_prefix`` by ``comments`` (appended after the others)."""
        meta = [(kind, text) for kind, text in self.meta_lines
                if not (drop_prefix and kind == "comment" and text.startswith(drop_prefix))]
        meta += [("comment", text) for text in comments]
        return self._replace(self.vertex, meta_lines=meta)

    def with_sh_degree(self, degree: int) -> Gaussians:
        """The scene with its view-dependent colour cut to ``degree`` bands (the f_rest_* of the higher ones
        dropped, the others renumbered channel-major as the format wants); the same scene when it has no more."""
        if degree < 0:
            raise BadInputError(f"SH degree {degree}: must be 0 or more")
        if degree >= self.sh_degree:
            return self
        count, kept = (self.sh_degree + 1) ** 2 - 1, (degree + 1) ** 2 - 1
        names = list(self.vertex.dtype.names)
        first = names.index("f_rest_0")
        rest = [f"f_rest_{c * count + k}" for c in range(3) for k in range(kept)]  # the kept ones, new order
        others = [n for n in names if not n.startswith("f_rest_")]
        order = others[:first] + [f"f_rest_{i}" for i in range(len(rest))] + others[first:]
        vertex = np.empty(len(self.vertex), dtype=[(n, self.vertex.dtype[n if not n.startswith("f_rest_") else
                                                                         "f_rest_0"]) for n in order])
        for n in others:
            vertex[n] = self.vertex[n]
        for i, old in enumerate(rest):
            vertex[f"f_rest_{i}"] = self.vertex[old]
        types = dict(self.property_types)
        types.update({f"f_rest_{i}": self.property_types.get("f_rest_0", "float") for i in range(len(rest))})
        return self._replace(vertex, property_types=types)

    def _replace(self, vertex, **changes):
        args = dict(property_types=self.property_types, meta_lines=self.meta_lines, elements=self.elements,
                    vertex_position=self.vertex_position, source_format=self.source_format, path=self.path)
        args.update(changes)
        args["property_types"] = {n: t for n, t in args["property_types"].items() if n in vertex.dtype.names}
        return Gaussians(vertex, **args)

    # ----- validation
    def check(self) -> Gaussians:
        """Raise BadInputError naming the file and the problem (missing properties, NaN/Inf values)."""
        where = self.path or "scene"
        missing = [name for name in REQUIRED_PROPERTIES if name not in self.vertex.dtype.names]
        if missing:
            raise BadInputError(f"{where}: missing required vertex properties: {' '.join(missing)}")
        rest = [name for name in self.vertex.dtype.names if name.startswith("f_rest_")]
        if set(rest) != {f"f_rest_{i}" for i in range(len(rest))}:  # the SH bands are read by number
            odd = sorted(set(rest) - {f"f_rest_{i}" for i in range(len(rest))})
            raise BadInputError(f"{where}: the {len(rest)} f_rest_* properties are not numbered 0 to "
                                f"{len(rest) - 1} (found {', '.join(odd[:4])}{' ...' if len(odd) > 4 else ''})")
        float_names = [n for n in self.vertex.dtype.names if self.vertex.dtype[n].kind == "f"]
        counts = dict.fromkeys(float_names, 0)
        nan_opacity = overflowing = 0
        # Row blocks keep each block in cache while its columns are scanned; scanning whole columns of a
        # wide table would stream the entire table through memory once per property.
        for start in range(0, len(self.vertex), CHECK_BLOCK_ROWS):
            block = self.vertex[start:start + CHECK_BLOCK_ROWS]
            for name in float_names:
                column = block[name]
                if name == "opacity":  # +-Inf is a valid logit (sigmoid 0 or 1): splat-transform writes it
                    nan_opacity += int(np.count_nonzero(np.isnan(column)))
                    continue
                counts[name] += column.size - int(np.count_nonzero(np.isfinite(column)))
                if name.startswith("scale_"):
                    overflowing += int(np.count_nonzero(column > MAX_LOG_SCALE))
        counts["opacity"] = nan_opacity
        bad = [f"{count} in {name}" for name, count in counts.items() if count]
        if bad:
            raise BadInputError(f"{where}: NaN/Inf values in the file: {', '.join(bad)}")
        if overflowing:
            warnings.warn(f"{where}: {overflowing} log-scales (scale_0..2) above {MAX_LOG_SCALE:g} give Gaussians "
                          f"larger than float32 holds; they are clamped to {np.exp(MAX_LOG_SCALE):.3g}", stacklevel=2)
        return self
