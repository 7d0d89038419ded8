"""The format and maths core of gsseg. Never imports ``bpy``.

The front door of the Python API: ``from blender_gsseg.core import segment_scene, Shares, ...``. Each public
name lives in the module listed in ``_HOME`` and is imported from there the first time it is asked for (PEP 562),
so ``import blender_gsseg.core.errors`` (or any one module) does not import the whole core, and this package
imports nothing at its top: no import cycle can pass through it.
"""

import importlib

# public name -> the module (below blender_gsseg.core) that defines it; README's "Python API" uses these
_HOME = {
    # the data
    "Gaussians": "gaussians",
    "Camera": "cameras",
    "GssegError": "errors",
    "BadInputError": "errors",
    "MemoryBudgetError": "errors",
    "CudaUnavailableError": "errors",
    "CancelledError": "errors",
    # files in and out
    "read_gaussians": "files.splats",
    "write_gaussians": "files.ply",
    "write_splat_file": "files.splats",
    "load_cameras": "files.camera_files",
    "load_masks": "files.masks",
    "read_label_image": "files.masks",
    "read_label_table": "files.labels",
    # views, backends, renders
    "build_views": "lift.views",
    "Views": "lift.views",
    "get_backend": "raster.backends",
    "render_labels": "raster.render",
    "render_colour": "raster.render",
    "colour_label_image": "raster.render",
    "segmentation_metrics": "metrics",
    # the lift and the solve
    "accumulate_weights": "lift.accumulate",
    "Accumulation": "lift.accumulate",
    "BoundedAccumulation": "lift.accumulate",
    "Shares": "lift.solver",
    "solve_labels": "lift.solver",
    "SegmentResult": "lift.run",
    # refinements
    "refine_segment_result": "refine.refinements",
    "with_seg_opacity": "refine.seg_opacity",
    # the jobs
    "segment_scene": "pipeline",
    "write_labeled": "pipeline",
    "read_labeled": "pipeline",
    "load_shares": "lift.sidecar",
    "relabel_scene": "pipeline",
    "selection": "pipeline",
}

__all__ = sorted(_HOME)


def __getattr__(name):
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # asked once: later look-ups do not come here
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
