"""The ``gsseg`` command line. Argument parsing and printing only; the work is in ``core``.

Results go to stdout, progress, warnings and errors to stderr. Exit codes: 0 success, 2 bad input, 3 over the
memory budget, 4 CUDA asked for but unavailable, 130 cancelled; no output is left behind on failure.
"""

import argparse
import contextlib
import json
import os
import signal
import sys
import time
import warnings

# Nothing heavy is imported here (numpy and the core are imported by the commands, inside main()): a Ctrl-C
# while they load is main()'s to report, as "cancelled", not Python's traceback.
from . import __version__
from .core.errors import BadInputError, GssegError


class Progress:
    """A one-line progress bar on stderr when it is a terminal; silent in pipes."""

    def __init__(self, label, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.start = time.perf_counter()

    def __call__(self, done, total):
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / max(total, 1))
        elapsed = time.perf_counter() - self.start
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                          f"{elapsed:.1f}s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _print_json(data):
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=_json_default)
    sys.stdout.write("\n")


def _json_default(value):
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value).__name__)


def _write_json(path, data, commit=None):
    from .core.files.commit import output_file

    with output_file(path, "w", commit) as handle:
        json.dump(data, handle, indent=2, default=_json_default)
        handle.write("\n")


# ----- commands


def cmd_convert(args):
    from .core.files.commit import Commit
    from .core.files.splats import output_format, read_gaussians, write_splat_file

    ending = output_format(args.output).ending  # a clear error for an unknown format before any reading
    if args.sog_palette is not None and ending != ".sog":
        raise BadInputError(f"{args.output}: --sog-palette is for .sog outputs, not {ending}")
    with Commit([args.input]) as commit:
        commit.check_outputs([args.output])
        gaussians = read_gaussians(args.input, spz_axes=args.spz_axes)
        if args.sh_degree is not None:
            gaussians = gaussians.with_sh_degree(args.sh_degree)
        _say_lost(args.output, write_splat_file(args.output, gaussians, commit, sog_palette=args.sog_palette))
    _print_json({"input": args.input, "output": args.output, "format": ending, "splats": len(gaussians),
                 "sh_degree": gaussians.sh_degree})
    return 0


def cmd_info(args):
    from .core.files.splats import read_gaussians

    gaussians = read_gaussians(args.file, spz_axes=args.spz_axes)
    means = gaussians.means
    info = {
        "file": args.file,
        "source_format": gaussians.source_format,
        "count": len(gaussians),
        "sh_degree": gaussians.sh_degree,
        "properties": [{"name": n, "type": gaussians.property_types[n]} for n in gaussians.property_names],
        "bounds": {"min": means.min(axis=0).tolist() if len(means) else None,
                   "max": means.max(axis=0).tolist() if len(means) else None},
        "comments": gaussians.comments,
        "other_elements": [{"name": e.name, "count": e.count} for e in gaussians.elements],
    }
    if args.json:
        _print_json(info)
        return 0
    print(f"{info['file']}: {info['count']} Gaussians, SH degree {info['sh_degree']}, {info['source_format']}")
    if len(means):
        print("bounds: min " + " ".join(f"{v:.4g}" for v in info["bounds"]["min"])
              + "  max " + " ".join(f"{v:.4g}" for v in info["bounds"]["max"]))
    print("properties: " + " ".join(f"{p['name']}:{p['type']}" for p in info["properties"]))
    for element in info["other_elements"]:
        print(f"element {element['name']}: {element['count']}")
    for comment in info["comments"]:
        print(f"comment {comment}")
    return 0


def _output_checks(path):
    if not path.lower().endswith(".ply"):
        raise BadInputError(f"{path}: the output must be a .ply file")


@contextlib.contextmanager
def _backend_of(args, scene_path=None):
    """(backend, memory budget per process): ``--backend`` here, or a cluster backend on ``--workers N`` (a
    local cluster, closed afterwards) or ``--cluster ADDRESS``, running ``--backend`` on each worker."""
    budget = _memory_budget(getattr(args, "memory_budget", None))
    if args.workers is None and args.cluster is None:
        yield args.backend, budget
        return
    from .core.raster.backends import cuda_available
    from .core.cluster import ClusterBackend, open_cluster, worker_memory_budget

    gpus = (args.workers or 0) > 0 and (args.backend == "cuda" or (args.backend == "auto" and cuda_available()))
    if gpus:
        from .core.raster.cuda_backend import cuda_device_count

        if args.workers > cuda_device_count():
            raise BadInputError(f"--workers {args.workers}: this machine has {cuda_device_count()} GPUs (one "
                                f"worker per GPU; use --backend cpu for CPU workers)")
    with open_cluster(args.workers, args.cluster, gpus=gpus) as client:
        backend = ClusterBackend(client, args.backend, scene_path=scene_path)
        yield backend, budget or worker_memory_budget(client, args.workers)


def cmd_segment(args):
    _output_checks(args.output)
    if "opacity" in args.refine:
        from .core.refine.seg_opacity import import_torch

        import_torch()  # a clear message before the long work when PyTorch is missing
    with _backend_of(args, scene_path=args.scene) as (backend, memory_budget):
        return _segment(args, backend, memory_budget)


def _segment(args, backend, memory_budget):
    from .core.files.commit import Commit
    from .core.lift.sidecar import level_sidecars, sidecar_path, sidecar_paths_of
    from .core.pipeline import segment_scene, write_labeled

    masks = args.masks[0] if len(args.masks) == 1 else args.masks
    inputs = [args.scene, args.cameras, *args.masks, *sidecar_paths_of(args.scene)]
    with Commit(inputs) as commit:  # refuses an output that is an input before the long work
        levels = len(args.masks)  # the sidecars segment writes beside OUT.ply, one per level
        commit.check_outputs([args.output, args.report, *level_sidecars(sidecar_path(args.output), levels)])
        if args.write_masks and args.ids != "per-view":
            from .core.files.sam_masks import is_sam_layout

            if not any(is_sam_layout(folder) for folder in args.masks):
                raise BadInputError("--write-masks writes the masks made consistent from per-view ids: give "
                                    "--ids per-view or a SAM-layout folder")
        masks_folder = commit.folder(args.write_masks, kind="masks") if args.write_masks else None
        result = segment_scene(args.scene, args.cameras, masks, gamma=args.gamma, target=args.target,
                               folds=args.folds, scale=args.scale, every=args.every, backend=backend,
                               memory_budget=memory_budget, ignore_label=args.ignore_label,
                               binary_threshold=args.binary_threshold, progress=Progress("accumulating"),
                               ids=args.ids)
        if masks_folder is not None:
            from .core.files.sam_masks import write_label_maps

            if result.views.ids != "per-view":
                raise BadInputError("--write-masks writes the masks made consistent from per-view ids: give "
                                    "--ids per-view or a SAM-layout folder")
            write_label_maps(masks_folder, [camera.image_name for camera in result.views.cameras],
                             result.views.label_maps)
        if args.refine:
            from .core.refine.refinements import refine_segment_result

            refine_segment_result(result, args.refine, backend=backend, progress=Progress("refining"))
        start = time.perf_counter()
        write_labeled(args.output, result.gaussians, result.accumulation, result.coarse_accumulations,
                      result.parents, commit=commit, gamma_choice=result.gamma_choice)
        result.report["timings"]["write_s"] = time.perf_counter() - start
        result.report["output"] = args.output
        if args.report:
            _write_json(args.report, result.report, commit)
    summary = {k: result.report[k] for k in ("n_gaussians", "gaussians_per_label", "unseen", "backend")}
    summary["views"] = len(result.report["views_used"])
    summary["seconds"] = round(sum(result.report["timings"].values()), 3)
    _print_json(summary)
    return 0


def _cluster_arguments(p):
    group = p.add_mutually_exclusive_group()
    group.add_argument("--workers", type=int, metavar="N",
                       help="shard the views over a local Dask cluster of N worker processes (one per GPU with "
                            "the CUDA backend); needs the 'cluster' extra")
    group.add_argument("--cluster", metavar="tcp://HOST:PORT",
                       help="shard the views over the workers of a running Dask scheduler")


def _gamma(text):
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [-1, 1] or 'auto', not {text!r}") from None


def _resolve_gamma(gamma, gaussians, path, rule="subset"):
    """A number as it is; 'auto': the γ ``segment --gamma auto`` chose for ``rule`` (its PLY comment)."""
    from .core.files.labels import read_gamma_comment

    if gamma != "auto":
        return gamma
    chosen = read_gamma_comment(gaussians.comments)
    if not chosen or rule not in chosen:
        raise BadInputError(f"{path}: no γ chosen by 'segment --gamma auto' in this scene; give --gamma G")
    return chosen[rule]


def _memory_budget(megabytes):
    if megabytes is None:
        return None
    if not 0 < megabytes < float("inf"):
        raise BadInputError(f"--memory-budget {megabytes:g}: must be a positive finite number of MB")
    return int(megabytes * 2**20)


def cmd_relabel(args):
    import shutil

    import numpy as np

    from .core.files.commit import Commit, output_path
    from .core.files.ply import write_gaussians
    from .core.lift.sidecar import sidecar_paths, sidecar_paths_of
    from .core.pipeline import read_labeled, relabel_scene

    output = args.output or args.scene
    _output_checks(output)
    # made before the input is read: it refuses to land if another run rewrote the input meanwhile
    commit = Commit([args.scene, *sidecar_paths_of(args.scene)], rewrites=[args.scene])
    gaussians = read_labeled(args.scene)
    args.gamma = _resolve_gamma(args.gamma, gaussians, args.scene)
    out, labels = relabel_scene(args.scene, gaussians, args.gamma)
    sources = sidecar_paths(args.scene, gaussians)
    with commit:
        if os.path.abspath(output) != os.path.abspath(args.scene):
            # The new file keeps the accumulations beside it (same run), so it can be re-solved again.
            for source, target in zip(sources, sidecar_paths(output, gaussians), strict=True):
                with output_path(target, commit) as temp:
                    shutil.copyfile(source, temp)
        write_gaussians(output, out, commit=commit)
    ids, counts = np.unique(labels, return_counts=True)
    _print_json({"gamma": args.gamma, "gaussians_per_label": {str(i): int(c) for i, c in zip(ids, counts, strict=True)}})
    return 0


def _save_label_png(path, label_image, folder):
    import numpy as np

    from PIL import Image

    from .core.files.commit import output_file

    top = int(label_image.max()) if label_image.size else 0
    if top <= 255:
        image = Image.fromarray(label_image.astype(np.uint8), mode="L")
    else:
        image = Image.fromarray(label_image.astype(np.uint16))
    with output_file(path, "wb", folder) as handle:
        image.save(handle, format="PNG")


def _save_rgb_png(path, rgb, folder):
    import numpy as np

    from PIL import Image

    from .core.files.commit import output_file

    with output_file(path, "wb", folder) as handle:
        Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).save(handle, format="PNG")


def _save_rgb8_png(path, rgb8, folder):
    from PIL import Image

    from .core.files.commit import output_file

    with output_file(path, "wb", folder) as handle:
        Image.fromarray(rgb8).save(handle, format="PNG")


def overlay_labels(rgb, label_image, opacity=0.5):
    """The colour render with each label's colour blended over it (background left as it is)."""
    import numpy as np

    from .core.files.labels import label_colour

    out = rgb.copy()
    for label in np.unique(label_image):
        if label <= 0:
            continue
        where = label_image == label
        out[where] = (1 - opacity) * out[where] + opacity * np.array(label_colour(int(label))) / 255.0
    return out


def cmd_render_masks(args):
    from .core.raster.backends import get_backend
    from .core.cluster import map_in_order
    from .core.files.camera_files import load_cameras
    from .core.files.commit import Commit
    from .core.files.labels import read_label_table
    from .core.lift.sidecar import load_shares
    from .core.pipeline import level_labels_of, read_labeled
    from .core.raster.render import check_render_memory, colour_label_image, render_view
    from .core.refine.seg_opacity import with_seg_opacity
    from .core.files.labels import read_gamma_comment
    from .core.lift.views import working_sizes

    local = args.workers is None and args.cluster is None
    here = get_backend(args.backend) if local else None  # a missing CUDA says so first
    gaussians = read_labeled(args.scene)
    cameras = load_cameras(args.cameras)
    working_sizes(cameras, args.scale)  # a clear error for a scale that leaves no pixel
    cameras = [camera.scaled(args.scale) for camera in cameras]
    check_render_memory(cameras, len(gaussians), _memory_budget(args.memory_budget), args.cameras)
    stems = [os.path.splitext(os.path.basename(camera.image_name))[0] for camera in cameras]
    twice = sorted({stem for stem in stems if stems.count(stem) > 1})
    if twice:
        raise BadInputError(f"{args.cameras}: two cameras would write {twice[0]}.png (image names must differ in "
                            f"their file stem)")
    labels = level_labels_of(gaussians, args.level, args.scene)
    masked = with_seg_opacity(gaussians)  # the masks see the segmentation opacity of --refine opacity, if any
    chosen = read_gamma_comment(gaussians.comments)
    if chosen and args.level is None and args.mode in chosen and chosen[args.mode] != chosen.get("subset"):
        # gsseg_label holds the subset rule's γ; this rule had another one
        labels = load_shares(args.scene, gaussians).solve(chosen[args.mode])[0]
    overlay_masks = None
    if args.overlay:
        from .core.files.masks import load_masks
        overlay_masks = load_masks(args.overlay, cameras, sizes=[(c.width, c.height) for c in cameras])
    colour_scene = gaussians if args.colour or overlay_masks is not None else None
    # the table names gsseg_label's ids; a --level's ids are another level's, so they take the fixed palette
    table = read_label_table(gaussians.comments) if args.level is None else None
    progress = Progress("rendering")
    with Commit([args.scene, args.cameras, args.overlay]) as commit, _backend_of(args) as (backend, _):
        folder = commit.folder(args.output, kind="render-masks", overwrite=args.overwrite)
        # on the workers of --workers / --cluster, each running --backend; here otherwise
        with contextlib.closing(map_in_order(backend, render_view, cameras, masked, labels, args.mode, colour_scene,
                                             here if local else backend.inner)) as renders:
            for index, (stem, (mask, rgb)) in enumerate(zip(stems, renders, strict=True)):
                _save_label_png(os.path.join(folder.path, stem + ".png"), mask, folder)
                if args.colour_labels:
                    _save_rgb8_png(os.path.join(folder.path, stem + "_colour_labels.png"),
                                   colour_label_image(mask, table), folder)
                if args.colour:
                    _save_rgb_png(os.path.join(folder.path, stem + "_colour.png"), rgb, folder)
                if overlay_masks is not None and index in overlay_masks.camera_indices:
                    given = overlay_masks.label_maps[overlay_masks.camera_indices.index(index)]
                    _save_rgb_png(os.path.join(folder.path, stem + "_overlay.png"), overlay_labels(rgb, given),
                                  folder)
                progress(index + 1, len(cameras))
    _print_json({"written": len(stems), "folder": args.output})
    return 0


def _select(args, keep):
    from .core.files.commit import Commit
    from .core.files.splats import output_format, write_splat_file
    from .core.lift.sidecar import load_shares, sidecar_paths_of
    from .core.pipeline import read_labeled, selection

    output_format(args.output)  # any format gsseg writes, from the name
    commit = Commit([args.scene, *sidecar_paths_of(args.scene)])
    commit.check_outputs([args.output])  # before any work
    gaussians = read_labeled(args.scene)
    if args.gamma is not None:
        args.gamma = _resolve_gamma(args.gamma, gaussians, args.scene)
    shares = load_shares(args.scene, gaussians) if args.gamma is not None else None
    picked = selection(gaussians, args.labels, shares=shares, gamma=args.gamma,
                       include_unseen=args.drop_unseen if not keep else False, level=args.level)
    if keep:
        chosen = picked
    else:
        chosen = ~picked
    with commit:
        _say_lost(args.output, write_splat_file(args.output, gaussians.subset(chosen), commit=commit))
    _print_json({"input": len(gaussians), "written": int(chosen.sum()), "output": args.output})
    return 0


def cmd_remove(args):
    return _select(args, keep=False)


def cmd_extract(args):
    return _select(args, keep=True)


def _say_lost(path, lost):
    """One warning per thing the output's format could not keep (labels in a .splat, ...)."""
    for problem in lost:
        warnings.warn(f"{path}: {problem}")


def cmd_split(args):
    import numpy as np

    from .core.files.commit import Commit
    from .core.files.splats import write_splat_file
    from .core.pipeline import level_labels_of, read_labeled

    gaussians = read_labeled(args.scene)
    labels = level_labels_of(gaussians, args.level, args.scene)
    stem = os.path.splitext(os.path.basename(args.scene))[0]
    written = {}
    with Commit([args.scene]) as commit:
        folder = commit.folder(args.output, kind="split", overwrite=args.overwrite)
        lost = []
        for label in np.unique(labels):
            name = f"{stem}_unseen.{args.format}" if label < 0 else f"{stem}_label_{int(label)}.{args.format}"
            chosen = labels == label
            lost = write_splat_file(os.path.join(folder.path, name), gaussians.subset(chosen), commit=folder)
            written[name] = int(chosen.sum())
        _say_lost(args.output, lost)
    _print_json({"folder": args.output, "files": written})
    return 0


def _read_label_images(folder):
    """{stem: int array} for every image in ``folder`` (label maps as stored; binary {0,255} -> {0,1})."""
    from .core.files.masks import read_label_image, regular_file

    found = {}
    for root, _dirs, files in os.walk(folder):
        for name in sorted(files):
            if name.lower().endswith((".png", ".tif", ".tiff", ".bmp")) and "_colour" not in name \
                    and "_overlay" not in name and regular_file(os.path.join(root, name)):
                path = os.path.join(root, name)
                found[os.path.splitext(name)[0]] = read_label_image(path)
    return found


def cmd_eval(args):
    from .core.metrics import segmentation_metrics

    if not os.path.isdir(args.predictions):
        raise BadInputError(f"{args.predictions}: no such folder")
    if not os.path.isdir(args.truth):
        raise BadInputError(f"{args.truth}: no such folder")
    predictions = _read_label_images(args.predictions)
    truths = _read_label_images(args.truth)
    common = sorted(set(predictions) & set(truths))
    if not common:
        raise BadInputError(f"{args.predictions}: no image shares a file stem with {args.truth}")
    for stem in common:
        if predictions[stem].shape != truths[stem].shape:
            raise BadInputError(f"{args.predictions}/{stem}: size {predictions[stem].shape} differs from the "
                                f"ground truth {truths[stem].shape}")
    result = segmentation_metrics([predictions[s] for s in common], [truths[s] for s in common],
                                  ignore_label=args.ignore_label)
    result["views"] = len(common)
    if len(common) < len(truths):
        warnings.warn(f"{args.predictions}: only {len(common)} of the {len(truths)} ground-truth views in "
                      f"{args.truth} have a prediction (matched by file stem); the figures cover those alone")
    if args.json:
        _print_json(result)
    else:
        print(f"views {len(common)}  mIoU {result['miou']:.4f}  mIoU+bg {result['miou_with_background']:.4f}  "
              f"mAcc {result['macc']:.4f}")
        for label, iou in result["per_label"].items():
            print(f"  label {label}: IoU {iou:.4f}")
    return 0


def cmd_demo(args):
    from .demo import run_demo

    summary = run_demo(args.output, backend=args.backend, progress=Progress("demo"))
    _print_json(summary)
    return 0


# ----- parser

OVERWRITE_HELP = ("replace an existing output folder that gsseg wrote (only the files its manifest lists; "
                  "refused if it holds others)")


def build_parser():
    from .core.files.formats import READ_FORMATS, WRITTEN_FORMATS

    read = f"splat file ({', '.join(f.ending for f in READ_FORMATS)})"
    written = ", ".join(f.ending for f in WRITTEN_FORMATS)
    with_labels = ", ".join(f.ending for f in WRITTEN_FORMATS if f.keeps_labels)
    parser = argparse.ArgumentParser(prog="gsseg", description="Lift 2D object masks onto a 3D Gaussian "
                                     "Splatting scene (FlashSplat's optimal closed form) and edit it by label.")
    parser.add_argument("--version", action="version", version=f"gsseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def _add_spz_axes(p):
        p.add_argument("--spz-axes", choices=("ply", "rub"), default=None,
                       help=".spz input without a coordinate-system extension: its axes, 'ply' (the default, as "
                            "splat-transform, SuperSplat and Niantic's converter write them) or 'rub' (files gsseg "
                            "or splat-transform 2.x wrote before; convert them once)")

    p = sub.add_parser("info", help="describe a splat file")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_spz_axes(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("convert", help=f"write a splat file in another format (from OUT's name: {written})")
    p.add_argument("input", help=read)
    p.add_argument("output", help=f"the file to write; labels travel in {with_labels}")
    p.add_argument("--sh-degree", type=int, metavar="D", help="keep the SH bands up to D (default: all)")
    p.add_argument("--sog-palette", type=int, metavar="N",
                   help=".sog: entries of the SH palette, 1-65536 (default: splat-transform's, 1024 x the largest "
                        "power of two up to splats/1024, at most 65536)")
    _add_spz_axes(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("segment", help="lift masks onto a scene: writes OUT.ply with gsseg_label and OUT.gsseg.npz")
    p.add_argument("scene", help=read)
    p.add_argument("--cameras", required=True, help="cameras.json, COLMAP sparse folder or transforms.json")
    p.add_argument("--masks", required=True, action="append",
                   help="folder of mask images, matched to cameras by name; give it once per level, coarsest "
                        "first, to pack hierarchical labels into gsseg_code")
    p.add_argument("-o", "--output", required=True, help="output .ply")
    p.add_argument("--gamma", type=_gamma, default=0.0,
                   help="background bias in [-1, 1] (default 0), or 'auto': chosen per render rule by "
                        "cross-validation over the lifting views (stored for relabel, remove, render-masks)")
    p.add_argument("--folds", type=int, default=3, help="with --gamma auto: folds of the lifting views (default 3)")
    p.add_argument("--target", type=int, help="binary mode: this label is foreground, all others background")
    p.add_argument("--scale", type=float, default=1.0, help="working resolution scale (default 1)")
    p.add_argument("--every", type=int, default=1, help="use every K-th camera in image-name order")
    p.add_argument("--backend", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the lift runs (on each worker with --workers / --cluster)")
    p.add_argument("--memory-budget", type=float, metavar="MB",
                   help="refuse above this, per process (default: RAM / 4; with --workers N: RAM / 4 / N)")
    _cluster_arguments(p)
    p.add_argument("--ignore-label", type=int, help="mask value that counts for nothing")
    p.add_argument("--binary-threshold", type=int, metavar="T",
                   help="read grey masks as binary: grey level >= T is the object (for anti-aliased masks)")
    p.add_argument("--ids", choices=("consistent", "per-view"),
                   help="consistent (default): an id is the same object in every view; per-view: ids mean nothing "
                        "across views (e.g. SAM): each view's masks are matched into 3D instances first. A folder in "
                        "SAM's layout (<image stem>/<k>.png [+ metadata.csv]) is always per-view")
    p.add_argument("--write-masks", metavar="DIR",
                   help="with per-view ids: write the re-numbered, consistent label maps here (16-bit PNG, one per "
                        "view; 65535 = ignored: re-lift them with --ignore-label 65535)")
    p.add_argument("--report", help="write a JSON report here")
    p.add_argument("--refine", nargs="+", choices=("missing", "opacity", "hidden", "seams"), default=[],
                   help="opt-in refinements beyond the exact optimum (see the README's Quality section); "
                        "a later relabel re-solves the exact labels")
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("relabel", help="re-solve labels for a new gamma from the sidecar (no new pass)")
    p.add_argument("scene")
    p.add_argument("--gamma", type=_gamma, default="auto",
                   help="the new bias; default (or 'auto'): the one segment --gamma auto chose")
    p.add_argument("-o", "--output", help="output .ply (default: overwrite the input)")
    p.set_defaults(func=cmd_relabel)

    p = sub.add_parser("render-masks", help="render label masks (and colour) at any cameras")
    p.add_argument("scene")
    p.add_argument("--cameras", required=True)
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--memory-budget", type=float, metavar="MB",
                   help="refuse views that need more than this to render (default: RAM / 4)")
    p.add_argument("--colour", "--color", action="store_true", help="also write <stem>_colour.png")
    p.add_argument("--overlay", metavar="MASK_DIR", help="write the given masks over the colour render")
    p.add_argument("--colour-labels", "--color-labels", action="store_true",
                   help="also write <stem>_colour_labels.png: each label in its colour from the scene's label "
                        "table (else a fixed palette), to look at; <stem>.png stays the id image (value = label)")
    p.add_argument("--level", type=int, help="render this level of gsseg_code (0 = coarsest)")
    p.add_argument("--mode", choices=("subset", "argmax"), default="subset",
                   help="subset (default, FlashSplat): each label's Gaussians alone, alpha >= 0.5, nearest wins; "
                        "argmax: the whole scene, the label with the largest summed weight where alpha >= 0.5")
    p.add_argument("--backend", choices=("auto", "cpu", "cuda"), default="auto",
                   help="render on the GPU (cuda), here (cpu), or the GPU when CuPy finds one (auto)")
    _cluster_arguments(p)
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_render_masks)

    for name, keep in (("remove", False), ("extract", True)):
        p = sub.add_parser(name, help=("drop" if not keep else "keep only") + " the Gaussians of some labels")
        p.add_argument("scene")
        p.add_argument("--labels", type=int, nargs="+", required=True)
        p.add_argument("-o", "--output", required=True,
                       help=f"the file to write, in the format its name asks for ({written})")
        p.add_argument("--gamma", type=_gamma, help="select members at this bias (needs the sidecar); 'auto': the "
                       "one segment --gamma auto chose")
        p.add_argument("--level", type=int, help="select by this level of gsseg_code (0 = coarsest; a coarse "
                       "label takes all its parts)")
        if not keep:
            p.add_argument("--drop-unseen", action="store_true", help="also drop Gaussians no view saw")
        else:
            p.set_defaults(drop_unseen=False)
        p.set_defaults(func=cmd_remove if not keep else cmd_extract)

    p = sub.add_parser("split", help="write one file per label (and the unseen ones)")
    p.add_argument("scene")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--format", choices=[f.ending[1:] for f in WRITTEN_FORMATS], default="ply",
                   help="of the files (default ply)")
    p.add_argument("--level", type=int, help="split by this level of gsseg_code (0 = coarsest)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("eval", help="compare predicted label images with ground truth")
    p.add_argument("predictions")
    p.add_argument("truth")
    p.add_argument("--json", action="store_true")
    p.add_argument("--ignore-label", type=int)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="run the whole job on a bundled scene and write a contact sheet")
    p.add_argument("-o", "--output", default="gsseg-demo", help="output folder (default ./gsseg-demo)")
    p.add_argument("--backend", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(func=cmd_demo)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(f"gsseg: warning: {message}\n")


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so that the same clean-up as Ctrl-C runs."""


def _terminate(signum, frame):
    raise Terminated()


def main(argv=None):
    previous = signal.signal(signal.SIGTERM, _terminate) if _main_thread() else None
    try:  # from the first line: a Ctrl-C while parsing or importing is reported as one too
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        warnings.showwarning = _show_warning
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not as "Exception ignored" at exit
        return code
    except GssegError as error:
        sys.stderr.write(f"gsseg: error: {error}\n")
        return error.exit_code
    except KeyboardInterrupt as error:
        sys.stderr.write(f"gsseg: {_stopped('cancelled', error)}\n")
        return 130
    except Terminated as error:
        sys.stderr.write(f"gsseg: {_stopped('terminated', error)}\n")
        return 143
    except MemoryError:
        sys.stderr.write("gsseg: error: out of memory (lower --scale or use fewer labels)\n")
        return 3
    except BrokenPipeError:  # `gsseg info --json x | head`: the reader left; quiet, as Unix tools are
        _drop_stdout()
        return 128 + signal.SIGPIPE if hasattr(signal, "SIGPIPE") else 1
    except OSError as error:
        from .core.files.commit import os_reason

        sys.stderr.write(f"gsseg: error: {error.filename or 'a file'}: {os_reason(error)}\n")
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _stopped(what, error):
    """'cancelled', or 'cancelled after the outputs were written (...)' when the signal was held back until the
    commit had landed them."""
    landed = getattr(error, "gsseg_landed", None)
    return f"{what} after the output was written ({', '.join(landed)})" if landed else what


def _drop_stdout():
    """Send what is left for stdout to nowhere, so the flush at exit does not fail again."""
    with contextlib.suppress(Exception):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _main_thread():
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
