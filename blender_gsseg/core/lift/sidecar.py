"""The sidecar (OUT.gsseg.npz): the lift's accumulation saved beside a labelled scene, so that any γ is re-solved
later without a new pass over the views. Here are its paths (one per level of a multi-level run), its format
(written as format_version 3, dense or bounded; versions 1 and 2 still read), the run id that binds the sidecars
to the PLY written with them (``comment gsseg_run <id>``), and the re-solve from the sidecars.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import glob
import json
import os
import zipfile
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BadInputError
from ..files.commit import output_path, recover_interrupted
from ..files.labels import CodeLayout
from .accumulate import Accumulation, BoundedAccumulation
from .levels import solve_levels
from .solver import Shares

if TYPE_CHECKING:
    from ..files.commit import Commit, StagingFolder
    from ..gaussians import Gaussians

SIDECAR_SUFFIX = ".gsseg.npz"
DENSE_FORMAT_VERSION = 1  # read only: dense weights
BOUNDED_FORMAT_VERSION = 2  # read only: the bounded form
SIDECAR_FORMAT_VERSION = 3  # written: run_id, kind, form, total, optional original_index
RUN_COMMENT = "gsseg_run"  # PLY header comment: gsseg_run <id>, the run_id of the sidecars written with the PLY


# ----- paths
def sidecar_path(ply_path: str | os.PathLike) -> str:
    """OUT.ply -> OUT.gsseg.npz"""
    base = os.fspath(ply_path)
    if base.lower().endswith(".ply"):
        base = base[:-4]
    return base + SIDECAR_SUFFIX


def level_sidecar_path(path: str | os.PathLike, level: int) -> str:
    """OUT.ply (or OUT) -> OUT.level<k>.gsseg.npz: the accumulation of a coarser level of a multi-level run."""
    base = os.fspath(path)
    if base.lower().endswith(".ply"):
        base = base[:-4]
    return f"{base}.level{level}{SIDECAR_SUFFIX}"


def level_sidecars(finest: str | os.PathLike, levels: int) -> list[str]:
    """The sidecars of a run with ``levels`` levels, coarsest first, from the finest one's path (OUT.gsseg.npz):
    OUT.level0.gsseg.npz, ..., OUT.gsseg.npz."""
    finest = os.fspath(finest)
    base = finest[:-len(SIDECAR_SUFFIX)] if finest.endswith(SIDECAR_SUFFIX) else finest
    return [level_sidecar_path(base, k) for k in range(levels - 1)] + [finest]


def sidecar_paths(path: str | os.PathLike, gaussians: Gaussians) -> list[str]:
    """Every sidecar a labelled scene has: one per coarser level of a multi-level run, then the finest."""
    layout = CodeLayout.from_comments(gaussians.comments, path)
    return level_sidecars(sidecar_path(path), 1 if layout is None else len(layout.bits))


def sidecar_paths_of(path: str | os.PathLike) -> list[str]:
    """The sidecars beside a PLY that exist (the finest and any coarser levels'): inputs a command must not
    overwrite."""
    finest = sidecar_path(path)
    base = finest[:-len(SIDECAR_SUFFIX)]
    return [p for p in [finest] + sorted(glob.glob(glob.escape(base) + ".level*" + SIDECAR_SUFFIX))
            if os.path.isfile(p)]


# ----- save and load
def save_accumulation(path: str | os.PathLike, accumulation: Accumulation | BoundedAccumulation,
                      extra: dict | None = None, commit: Commit | StagingFolder | None = None) -> None:
    """Write the sidecar (.gsseg.npz, format_version 3) of either form: on its own, or as part of ``commit`` (a
    :class:`~..files.commit.Commit`); ``extra`` arrays are stored beside the standard keys."""
    if isinstance(accumulation, BoundedAccumulation):
        form, total = "bounded", accumulation.total.astype(np.float32)
        arrays = {"share_bg": accumulation.share_bg.astype(np.float32),
                  "top_labels": accumulation.top_labels.astype(np.int32),
                  "top_shares": accumulation.top_shares.astype(np.float32)}
    else:
        form, total = "dense", accumulation.weights.sum(axis=0, dtype=np.float64).astype(np.float32)
        if accumulation.kind == "shares":
            inverse = np.zeros_like(total)
            np.divide(1.0, total, out=inverse, where=total > 0)
            arrays = {"shares": (accumulation.weights * inverse).astype(np.float32)}
        else:
            arrays = {"weights": accumulation.weights.astype(np.float32)}
    keys = {"format_version": np.int32(SIDECAR_FORMAT_VERSION), "run_id": np.str_(accumulation.run_id),
            "kind": np.str_(accumulation.kind), "form": np.str_(form),
            "n_gaussians": np.int64(accumulation.n_gaussians),
            "label_ids": np.asarray(accumulation.label_ids, dtype=np.int32), "total": total, **arrays}
    if accumulation.original_index is not None:
        keys["original_index"] = np.asarray(accumulation.original_index, dtype=np.int64)
    with output_path(path, commit) as temp:
        _write_npz(temp, {**keys, **(extra or {})})


def _write_npz(path, arrays):
    """np.savez's format (an uncompressed zip of .npy files), with the zip file closed on every path: numpy
    leaves it to the garbage collector when a write fails, which then prints an ignored exception."""
    with zipfile.ZipFile(path, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, value in arrays.items():
            with archive.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def save_run_sidecars(
    path: str | os.PathLike,  # the PLY they are written beside
    accumulations: collections.abc.Sequence,  # one per level, coarsest first (one for a single-level run)
    parents: collections.abc.Sequence,  # per level: parent id per label id (None at level 0)
    run_id: str,
    chosen_gamma: dict[str, float] | None = None,  # segment --gamma auto: rule -> γ
    commit: Commit | StagingFolder | None = None,
    rows: str | None = None,  # rows_fingerprint() of the PLY they are written beside
) -> None:
    """The sidecars of one run of segment beside the PLY ``path``: OUT.gsseg.npz for the finest level and
    OUT.level<k>.gsseg.npz for each coarser one, each with ``run_id``; a finer level also keeps its
    ``parent_ids``, every level the ``chosen_gamma`` (JSON) and ``rows``, the PLY's row order (checked when
    the pair is loaded: a PLY whose rows a conversion reordered keeps its run id, not its rows)."""
    for level, accumulation in enumerate(accumulations):
        target = sidecar_path(path) if level == len(accumulations) - 1 else level_sidecar_path(path, level)
        extra = {} if rows is None else {"rows": np.str_(rows)}
        if chosen_gamma is not None:
            extra["chosen_gamma"] = np.str_(json.dumps(chosen_gamma))
        if len(accumulations) > 1 and level > 0:
            extra["parent_ids"] = np.asarray(parents[level], dtype=np.int32)
        save_accumulation(target, dataclasses.replace(accumulation, run_id=run_id), extra=extra, commit=commit)


def rows_fingerprint(gaussians: Gaussians) -> str:
    """A hash of the scene's positions in row order: what binds a sidecar's columns to the PLY's rows."""
    import hashlib

    means = np.ascontiguousarray(gaussians.means, dtype="<f4")
    return hashlib.blake2b(memoryview(means).cast("B"), digest_size=16).hexdigest()


def sidecar_rows(path: str | os.PathLike) -> str | None:
    """The ``rows`` fingerprint a sidecar carries (None: written before it, or unreadable)."""
    try:
        with np.load(os.fspath(path)) as data:
            return str(data["rows"]) if "rows" in data.files else None
    except Exception:  # damaged: the run id check says so
        return None


def check_rows(path, gaussians: Gaussians, sidecar) -> None:
    """Refuse a PLY whose rows are not the ones its sidecar was written for (reordered: a conversion through
    a Morton-ordered format, rows reversed or shifted), though it carries the sidecar's run id."""
    rows = sidecar_rows(sidecar)
    if rows is not None and rows != rows_fingerprint(gaussians):
        raise BadInputError(f"{path}: its Gaussians are not the ones, in the order, its sidecar {sidecar} was "
                            f"written for (reordered or changed since, e.g. by a conversion); re-run segment")


def sidecar_run_id(path: str | os.PathLike) -> str | None:
    """The run id a sidecar carries ('' for versions 1 and 2; None for one that cannot be read), without
    loading its weights."""
    try:
        with np.load(os.fspath(path)) as data:
            return str(data["run_id"]) if "run_id" in data.files else ""
    except Exception:  # damaged
        return None


def load_accumulation(path: str | os.PathLike,
                      n_gaussians: int | None = None) -> Accumulation | BoundedAccumulation:
    """Read a sidecar (format_version 1-3, dense or bounded, raw weights or shares); a clear error for a
    missing, damaged, inconsistent or mismatched one."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise BadInputError(f"{path}: no sidecar accumulation found (run 'gsseg segment' first)")
    try:
        with np.load(path) as data:
            version = int(data["format_version"])
            if version not in (1, 2, SIDECAR_FORMAT_VERSION):
                raise BadInputError(f"{path}: unsupported sidecar format_version {version}")
            count = int(data["n_gaussians"])
            label_ids = data["label_ids"].astype(np.int32)
            meta = {}
            if version == SIDECAR_FORMAT_VERSION:
                meta = {"run_id": str(data["run_id"]), "kind": str(data["kind"])}
                if "original_index" in data.files:
                    meta["original_index"] = data["original_index"].astype(np.int64)
                form = str(data["form"])
            else:
                form = "dense" if version == DENSE_FORMAT_VERSION else "bounded"
            if meta.get("kind", "accumulation") not in ("accumulation", "shares"):
                raise BadInputError(f"{path}: unknown sidecar kind {meta['kind']!r}")
            if form == "dense":
                if meta.get("kind") == "shares":
                    total = data["total"].astype(np.float32)
                    weights = data["shares"].astype(np.float32) * total[None]
                else:
                    weights = data["weights"].astype(np.float32)
                result = Accumulation(label_ids, weights, **meta)
                shapes = {"weights": (result.weights.shape, (len(label_ids), count))}
                values = [result.weights]
            elif form == "bounded":
                result = BoundedAccumulation(label_ids, data["total"].astype(np.float32),
                                             data["share_bg"].astype(np.float32),
                                             data["top_labels"].astype(np.int32),
                                             data["top_shares"].astype(np.float32), **meta)
                k = result.top_labels.shape[0] if result.top_labels.ndim == 2 else -1
                shapes = {"total": (result.total.shape, (count,)), "share_bg": (result.share_bg.shape, (count,)),
                          "top_labels": (result.top_labels.shape, (k, count)),
                          "top_shares": (result.top_shares.shape, (k, count))}
                values = [result.total, result.share_bg, result.top_shares]
            else:
                raise BadInputError(f"{path}: unknown sidecar form {form!r}")
    except BadInputError:
        raise
    except Exception as error:  # zipfile, KeyError, ValueError: all mean a damaged sidecar
        raise BadInputError(f"{path}: unreadable sidecar ({error})") from None
    for name, (shape, expected) in shapes.items():
        if shape != expected:
            raise BadInputError(f"{path}: sidecar {name} has shape {shape}, expected {expected}")
    if label_ids.ndim != 1 or len(label_ids) == 0:
        raise BadInputError(f"{path}: the sidecar's label_ids must be a non-empty list (damaged)")
    if len(np.unique(label_ids)) != len(label_ids):
        raise BadInputError(f"{path}: the sidecar lists a label id twice")
    if np.any(np.diff(label_ids) <= 0) or label_ids[0] < 0:  # rows are matched to ids by this order
        raise BadInputError(f"{path}: the sidecar's label_ids must be ascending and not negative "
                            f"({_few(label_ids)}: damaged)")
    if isinstance(result, BoundedAccumulation):
        used = result.top_labels[result.top_labels >= 0]
        if not np.all(np.isin(used, label_ids)) or np.any(result.share_bg > 1 + 1e-4) or \
                np.any(result.top_shares.sum(axis=0) + result.share_bg > 1 + 1e-3):
            raise BadInputError(f"{path}: the sidecar's shares do not add up (labels it does not list, or shares "
                                f"above 1: damaged)")
    for array in values:
        if not np.all(np.isfinite(array)) or np.any(array < 0):
            raise BadInputError(f"{path}: the sidecar holds NaN, infinite or negative weights (damaged)")
    index = getattr(result, "original_index", None)
    if index is not None and index.shape != (count,):
        raise BadInputError(f"{path}: sidecar original_index has shape {index.shape}, expected ({count},)")
    if n_gaussians is not None and count != n_gaussians:
        raise BadInputError(f"{path}: sidecar is for {count} Gaussians but the scene has {n_gaussians}")
    return result


def _few(ids) -> str:
    """The first few of ``ids`` as plain numbers."""
    shown = ", ".join(str(int(i)) for i in ids[:6])
    return f"[{shown}{', ...' if len(ids) > 6 else ''}]"


# ----- the run id that binds a PLY and its sidecars
def with_run(gaussians: Gaussians, run_id: str) -> Gaussians:
    """The scene carrying ``comment gsseg_run <run_id>`` (in place of any earlier one)."""
    return gaussians.with_comments([f"{RUN_COMMENT} {run_id}"], drop_prefix=RUN_COMMENT + " ")


def run_of(gaussians: Gaussians) -> str | None:
    """The run id a labelled PLY carries (``comment gsseg_run <id>``), or None for files written before."""
    for text in gaussians.comments:
        if text.startswith(RUN_COMMENT + " "):
            return text[len(RUN_COMMENT) + 1:].strip()
    return None


def check_run(path, run: str | None, sidecar, sidecar_run: str | None) -> None:
    """Refuse a PLY (run id ``run``, None for files written before run ids) and a sidecar from different runs
    of segment (a crash between renames, two runs on one output, a file copied over another)."""
    if sidecar_run is None:
        raise BadInputError(f"{path}: its sidecar {sidecar} cannot be read (damaged); re-run segment")
    if (run or sidecar_run) and sidecar_run != (run or ""):  # either side from a run with an id: both must be
        restored = recover_interrupted(os.path.dirname(os.path.abspath(os.fspath(path))))
        if restored:  # a run killed between its renames: its kept-aside files are back
            names = ", ".join(os.path.basename(p) for p in restored)
            raise BadInputError(f"{path}: a gsseg run was killed while writing it; the previous files were put "
                                f"back ({names}); run the command again")
        theirs = sidecar_run or "none: written before run ids"
        raise BadInputError(f"{path}: its sidecar {sidecar} comes from another run of segment (run {run}, "
                            f"sidecar {theirs}); re-run segment")


def bound_sidecar(path: str | os.PathLike, gaussians: Gaussians) -> str | None:
    """The sidecar beside the PLY ``path`` when there is one and it was written with it (same run id, read
    without loading the weights); None when there is none. A sidecar from another run raises."""
    sidecar = sidecar_path(path)
    if not os.path.isfile(sidecar):
        return None
    check_run(path, run_of(gaussians), sidecar, sidecar_run_id(sidecar))
    check_rows(path, gaussians, sidecar)
    return sidecar


# ----- re-solving from the sidecars
def load_shares(path: str | os.PathLike, gaussians: Gaussians) -> Shares:
    """Shares of the finest level, from the sidecar beside ``path`` (refused when it is from another run)."""
    sidecar = sidecar_path(path)
    accumulation = load_accumulation(sidecar, len(gaussians))
    check_run(path, run_of(gaussians), sidecar, accumulation.run_id)
    check_rows(path, gaussians, sidecar)
    return Shares.from_accumulation(accumulation)


UNCHECKED = object()  # solve_level_sidecars(run=UNCHECKED): sidecars already known to belong (Blender's caches)


def solve_level_sidecars(paths: list[str], n_gaussians: int, gamma: float, run=UNCHECKED,
                         path=None, gaussians=None) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Every level re-solved at ``gamma`` from its sidecar (``paths`` coarsest first, as :func:`level_sidecars`
    gives them), each finer level within its parents. ``run``: the run id of the PLY at ``path`` (None: written
    before run ids), which the sidecars must carry; ``gaussians``: that PLY's scene, whose rows they must be for.
    Returns (labels per level, the finest level's confidence, the finest level's label ids)."""
    accumulations = [load_accumulation(p, n_gaussians) for p in paths]
    for sidecar, accumulation in zip(paths, accumulations, strict=True):
        if run is not UNCHECKED:
            check_run(path or sidecar, run, sidecar, accumulation.run_id)
        if gaussians is not None:
            check_rows(path or sidecar, gaussians, sidecar)
    parents = [None]
    for sidecar in paths[1:]:
        try:
            with np.load(sidecar) as data:
                if "parent_ids" not in data.files:
                    raise BadInputError(f"{sidecar}: no parent_ids for this level")
                parents.append(data["parent_ids"].astype(np.int32))
        except BadInputError:
            raise
        except Exception as error:  # zipfile, CRC, ValueError: a damaged sidecar
            raise BadInputError(f"{sidecar}: unreadable sidecar ({error})") from None
    level_labels, confidence, _ = solve_levels(accumulations, parents, gamma)
    return level_labels, confidence, accumulations[-1].label_ids
