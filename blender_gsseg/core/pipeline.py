"""The jobs the CLI and the Blender add-on run, as plain functions over the core's data.

segment_scene    files in -> labelled scene + accumulation + report
write_labeled    labelled scene -> OUT.ply + OUT.gsseg.npz, both or neither
selection        which Gaussians a remove/extract/split picks
"""

from __future__ import annotations

import collections.abc
import contextlib
import os
import secrets
import time
import warnings

import numpy as np

from .lift.accumulate import Accumulation, BoundedAccumulation
from .lift.run import SegmentResult, label_counts, lift_views
from .lift import tune
from .raster.backends import BackendOrName, get_backend
from .files.labels import (CODE_PROPERTY, GAMMA_COMMENT, LABEL_COMMENT, LABEL_PROPERTY, LAYOUT_COMMENT, CodeLayout,
                           gamma_comment, label_colour, label_table_comments, read_label_table)
from .cameras import Camera
from .errors import BadInputError
from .files.camera_files import load_cameras
from .files.commit import Commit, StagingFolder
from .files.ply import write_gaussians
from .files.splats import read_gaussians
from .gaussians import Gaussians
from .lift.levels import parent_labels, solve_levels
from .lift.sidecar import rows_fingerprint, run_of, save_run_sidecars, sidecar_paths, solve_level_sidecars, with_run
from .lift.solver import UNSEEN, Shares, check_gamma
from .lift.views import IDS_PER_VIEW, build_views


def segment_scene(
    scene: str | os.PathLike | Gaussians,
    cameras: str | os.PathLike | list[Camera],
    masks_dir: str | os.PathLike | list[str | os.PathLike],  # one folder, or one per level, coarsest first
    *,
    gamma: float | str = 0.0,  # in [-1, 1], or "auto"
    target: int | None = None,  # binary mode: this label against all the others
    scale: float = 1.0,  # working resolution / camera resolution
    every: int = 1,  # every K-th camera in image-name order
    backend: BackendOrName = "auto",
    memory_budget: int | None = None,  # bytes; default a quarter of RAM
    ignore_label: int | str | None = None,  # a mask value (or '#rrggbb') that counts for nothing
    binary_threshold: int | None = None,  # read grey masks as binary at this level
    progress: collections.abc.Callable[[int, int], None] | None = None,  # progress(done, total)
    cancel: collections.abc.Callable[[], bool] | None = None,  # True cancels (CancelledError)
    level_names: list[str] | None = None,
    folds: int = tune.DEFAULT_FOLDS,  # with gamma="auto"
    ids: str | None = None,  # "consistent" (default) or "per-view" (a SAM-layout folder is always per-view)
) -> SegmentResult:
    """Lift the masks in ``masks_dir`` onto ``scene`` (a path or :class:`Gaussians`) seen by ``cameras``
    (a path or a list of :class:`Camera`). Returns a :class:`SegmentResult`; writes nothing.

    ``masks_dir`` may be a list of folders, one per level, coarsest first: each finer level is lifted among the
    Gaussians of each coarser label and the levels are packed into ``gsseg_code`` (see levels.py).
    ``gamma="auto"``: γ chosen per render rule by ``folds``-fold cross-validation over the lifting views
    (:mod:`.lift.tune`); the labels use the subset rule's (the default one), ``result.gamma_choice`` holds both.
    ``ids="per-view"`` (or a SAM-layout folder): the masks' ids mean nothing across views; they are associated
    into 3D instances first (:mod:`.lift.associate`), ``report["association"]`` says how.
    """
    timings = {}
    start = time.perf_counter()
    gaussians = read_gaussians(scene) if isinstance(scene, (str, os.PathLike)) else scene
    if len(gaussians) == 0:
        raise BadInputError(f"{gaussians.path or 'scene'}: the scene holds 0 Gaussians")
    camera_source = cameras
    if isinstance(cameras, (str, os.PathLike)):
        cameras = load_cameras(cameras)
    folders = [masks_dir] if isinstance(masks_dir, (str, os.PathLike)) else list(masks_dir)
    if target is not None and len(folders) > 1:
        raise BadInputError("--target (binary mode) takes a single --masks folder")
    if gamma == "auto" and len(folders) > 1:
        raise BadInputError("--gamma auto takes a single --masks folder")
    if gamma != "auto":
        check_gamma(gamma)  # before the long work, not after it
    level_views = [build_views(cameras, folder, scale=scale, every=every, ignore_label=ignore_label,
                               binary_threshold=binary_threshold, ids=ids, n_gaussians=len(gaussians),
                               memory_budget=memory_budget) for folder in folders]
    timings["load_s"] = time.perf_counter() - start

    start = time.perf_counter()
    backend = get_backend(backend)
    cameras_name = os.fspath(camera_source) if isinstance(camera_source, (str, os.PathLike)) else "the cameras"
    lifts = []
    for level, views in enumerate(level_views):
        level_progress = progress if progress is None or len(folders) == 1 else (
            lambda done, total, level=level: progress(level * total + done, len(folders) * total))
        lifts.append(lift_views(gaussians, views, backend=backend, choose_gamma=gamma == "auto", folds=folds,
                                target=target, memory_budget=memory_budget, cameras_name=cameras_name,
                                progress=level_progress, cancel=cancel))
    accumulations = [lift.accumulation for lift in lifts]
    level_views = [lift.views for lift in lifts]  # per-view ids: the views with the associated, consistent ids
    associations = {level: lift.association for level, lift in enumerate(lifts) if lift.association is not None}
    gamma_choice = lifts[0].gamma_choice
    associate_s = sum(lift.associate_s for lift in lifts)
    if associations:
        timings["associate_s"] = associate_s
    timings["accumulate_s"] = time.perf_counter() - start - lifts[0].choose_gamma_s - associate_s
    if gamma_choice is not None:
        gamma = gamma_choice.gamma["subset"]
        timings["choose_gamma_s"] = lifts[0].choose_gamma_s

    start = time.perf_counter()
    mask_sets = [views.masks for views in level_views]
    parents = [None] + [_parents_between(mask_sets[k], mask_sets[k - 1]) for k in range(1, len(folders))]
    level_labels, confidence, finest = solve_levels(accumulations, parents, gamma, target)
    labels = level_labels[-1]
    timings["solve_s"] = time.perf_counter() - start

    out = with_labels(gaussians, labels, finest.label_ids)
    if len(folders) - 1 in associations:  # instances are named instance_<k> (a name the scene had is replaced)
        out = out.with_comments(label_table_comments(finest.label_ids, {
            int(k): (f"instance_{k}", "#%02x%02x%02x" % label_colour(int(k))) for k in finest.label_ids if k > 0}),
            drop_prefix=LABEL_COMMENT + " ")
    layout = None
    if len(folders) > 1:
        names = level_names or [os.path.basename(os.path.normpath(os.fspath(f))) for f in folders]
        layout = CodeLayout.for_levels(names, [int(m.label_ids.max()) for m in mask_sets])
        out = with_code(out, layout.pack(level_labels), layout)
    views = level_views[-1]
    report = {
        "scene": str(gaussians.path) if gaussians.path else None,
        "n_gaussians": len(gaussians),
        "backend": backend.name,
        "accumulation_form": "dense" if isinstance(accumulations[-1], Accumulation) else "bounded",
        "gamma": gamma,
        "target": target,
        "scale": scale,
        "views_used": [camera.image_name for camera in views.cameras],
        "cameras_without_mask": views.without_mask,
        "masks_without_camera": list(views.masks.unmatched_masks),
        "label_ids": [int(x) for x in views.label_ids],
        **label_counts(labels),
        "color_map": dict(views.masks.color_map or {}),
        "timings": timings,
    }
    if layout is not None:
        report["code_layout"] = {"levels": layout.names, "bits": layout.bits}
        report["levels"] = [{"name": name, "label_ids": [int(x) for x in m.label_ids],
                             "parents": None if p is None else {str(int(i)): int(q) for i, q in
                                                                 zip(m.label_ids, p, strict=True)}}
                            for name, m, p in zip(layout.names, mask_sets, parents, strict=True)]
    if gamma_choice is not None:
        report["gamma_auto"] = gamma_choice.report()
    if associations:
        names = [[camera.image_name for camera in level_views[level].cameras] for level in range(len(folders))]
        reports = {level: association.report(names[level]) for level, association in associations.items()}
        report["ids"] = IDS_PER_VIEW
        report["association"] = reports[len(folders) - 1] if len(folders) == 1 else \
            {str(level): value for level, value in reports.items()}
    return SegmentResult(out, labels, confidence, accumulations[-1], report, views, accumulations[:-1], parents,
                         gamma_choice)


def _parents_between(fine, coarse):
    """Parent (coarse label) of each fine label, from the views both mask sets share."""
    common = sorted(set(fine.camera_indices) & set(coarse.camera_indices))
    if not common:
        raise BadInputError("the mask folders of two levels share no view")
    fine_maps = (fine.label_maps[fine.camera_indices.index(i)] for i in common)  # one view at a time
    coarse_maps = (coarse.label_maps[coarse.camera_indices.index(i)] for i in common)
    return parent_labels(fine_maps, coarse_maps, fine.label_ids)


def with_code(gaussians, codes, layout):
    """The scene with int32 ``gsseg_code`` and its layout comment."""
    return gaussians.with_int_property(CODE_PROPERTY, codes).with_comments(
        [layout.comment()], drop_prefix=LAYOUT_COMMENT + " ")


def with_labels(gaussians, labels, label_ids):
    """The scene with the int32 ``gsseg_label`` property and the label-table comments."""
    if LABEL_PROPERTY in gaussians.property_names:
        warnings.warn(f"{gaussians.path or 'scene'}: replacing its existing '{LABEL_PROPERTY}' property")
    table = read_label_table(gaussians.comments)
    return gaussians.with_int_property(LABEL_PROPERTY, labels).with_comments(
        label_table_comments(label_ids, table), drop_prefix=LABEL_COMMENT + " ")


def write_labeled(
    path: str | os.PathLike,
    gaussians: Gaussians,
    accumulation: Accumulation | BoundedAccumulation | None = None,  # the finest level's
    coarse_accumulations: collections.abc.Sequence = (),  # levels 0..L-2 of a multi-level run
    parents: collections.abc.Sequence = (),  # per level: parent id per label id (None at level 0)
    *,
    commit: Commit | StagingFolder | None = None,
    gamma_choice: tune.GammaChoice | None = None,
) -> None:
    """Write OUT.ply and, with an accumulation, OUT.gsseg.npz (the finest level's), plus one sidecar per
    coarser level of a multi-level run, bound by one run id (``comment gsseg_run <id>`` in the PLY, ``run_id``
    in the sidecars): all land, or none does. Part of ``commit`` (a :class:`~.files.commit.Commit`) when
    given, e.g. with the report; the PLY lands last. ``gamma_choice`` (``segment --gamma auto``): the γ chosen
    per render rule, kept as the PLY comment ``gsseg_gamma`` and the sidecar's ``chosen_gamma``."""
    with contextlib.ExitStack() as stack:
        if commit is None:
            commit = stack.enter_context(Commit())
        if accumulation is not None:
            run_id = secrets.token_hex(8)
            save_run_sidecars(path, list(coarse_accumulations) + [accumulation], parents, run_id,
                              None if gamma_choice is None else gamma_choice.gamma, commit, rows_fingerprint(gaussians))
            gaussians = with_run(gaussians, run_id)
            # a new run: its own chosen γ, or none (never a stale one from the scene it was made from)
            chosen = [] if gamma_choice is None else [gamma_comment(gamma_choice.gamma)]
            gaussians = gaussians.with_comments(chosen, drop_prefix=GAMMA_COMMENT + " ")
        write_gaussians(path, gaussians, commit=commit)


def read_labeled(path: str | os.PathLike) -> Gaussians:
    """A scene that carries ``gsseg_label``; a clear error otherwise."""
    gaussians = read_gaussians(path)
    if LABEL_PROPERTY not in gaussians.property_names:
        raise BadInputError(f"{path}: no '{LABEL_PROPERTY}' property (run 'gsseg segment' first)")
    return gaussians


def relabel_scene(path: str | os.PathLike, gaussians: Gaussians,
                  gamma: float) -> tuple[Gaussians, np.ndarray]:  # labels: [N] int32
    """The scene re-solved at ``gamma`` from its sidecars: gsseg_label, and gsseg_code for multi-level scenes."""
    paths = sidecar_paths(path, gaussians)
    level_labels, _, _ = solve_level_sidecars(paths, len(gaussians), gamma, run_of(gaussians), path, gaussians)
    out = gaussians.with_int_property(LABEL_PROPERTY, level_labels[-1])
    if len(paths) > 1:
        layout = CodeLayout.from_comments(gaussians.comments, path)
        for level, (labels, bits) in enumerate(zip(level_labels, layout.bits)):
            top = int(labels.max(initial=0))
            if top >= 1 << bits:  # the comment was edited, or belongs to another scene
                raise BadInputError(f"{path}: its '{LAYOUT_COMMENT}' comment gives level {level} {bits} bits, "
                                    f"too few for label {top} of its sidecar (edited or damaged); re-run segment")
        out = out.with_int_property(CODE_PROPERTY, layout.pack(level_labels))
    return out, level_labels[-1]


def level_labels_of(gaussians: Gaussians, level: int | None, where="scene") -> np.ndarray:  # [N] int32
    """int32 labels of ``level`` (None: gsseg_label; else that level's field of gsseg_code)."""
    if level is None:
        return np.asarray(gaussians.vertex[LABEL_PROPERTY], dtype=np.int32)
    layout = CodeLayout.from_comments(gaussians.comments, where)
    if layout is None or CODE_PROPERTY not in gaussians.property_names:
        raise BadInputError(f"{where}: --level needs a multi-level scene (gsseg_code and its layout comment)")
    return layout.field(gaussians.vertex[CODE_PROPERTY], level)


def selection(
    gaussians: Gaussians,
    labels_to_pick: collections.abc.Iterable[int],
    *,
    shares: Shares | None = None,
    gamma: float | None = None,
    include_unseen: bool = False,
    level: int | None = None,
) -> np.ndarray:  # [N] bool
    """bool [N]: the Gaussians a remove/extract picks.

    Without ``gamma``: those whose label (``gsseg_label``, or the field of ``level`` in ``gsseg_code``: a coarse
    label picks all its parts) is listed. With ``gamma`` (needs ``shares``): every member of a listed instance
    at that bias. Unseen Gaussians are picked only with ``include_unseen``.
    """
    where = gaussians.path or "scene"
    current = level_labels_of(gaussians, level, where)
    known = set(np.unique(current[current != UNSEEN]).tolist())
    if level is None:
        known |= set(read_label_table(gaussians.comments))
    if shares is not None:
        known |= set(shares.label_ids.tolist())
    missing = [int(label) for label in labels_to_pick if int(label) not in known]
    if missing:
        raise BadInputError(f"{where}: no label {', '.join(map(str, missing))} in this scene (its labels: "
                            f"{', '.join(map(str, sorted(known)))})")
    if gamma is None:
        picked = np.isin(current, np.asarray(labels_to_pick, dtype=np.int64))
    else:
        if level is not None:
            raise BadInputError("--gamma and --level cannot be combined (membership is per finest-level label)")
        picked = np.zeros(len(gaussians), dtype=bool)
        for label in labels_to_pick:
            picked |= shares.members(int(label), gamma)
    if include_unseen:
        picked |= current == UNSEEN
    else:
        picked &= current != UNSEEN
    return picked
