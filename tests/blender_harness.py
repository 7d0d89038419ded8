"""Run a script in a fresh headless-bpy Python process (bpy state is global and HOME must be set before
``import bpy``), with a private HOME so Blender's user folders (extensions, config) start empty.

The child script gets:
- ``ARGS``: the JSON-able dict passed as ``args``;
- ``RESULT``: a dict it may fill; it comes back as the return value of :func:`run_bpy`;
- with ``register="package"``: ``GSSEG`` = the ``blender_gsseg`` package, registered (the pip layout).
Any exception or failed assert in the child fails the calling test with the child's output.
"""

import json
import os
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT_MARKER = "GSSEG_RESULT "

_PRELUDE = """\
import json, os, sys
ARGS = json.loads(os.environ["GSSEG_TEST_ARGS"])
RESULT = {}
"""

_REGISTER_PACKAGE = """\
import bpy
import blender_gsseg as GSSEG
GSSEG.register()
"""

_EPILOGUE = """
print({marker!r} + json.dumps(RESULT), flush=True)
"""


def bpy_env(home):
    env = dict(os.environ)
    for key in list(env):
        if key.startswith("BLENDER_") or key.startswith("XDG_"):
            del env[key]
    env["HOME"] = str(home)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_bpy(body, *, home, args=None, register="package", timeout=240, preamble=""):
    """Run ``body`` in a new Python process with HOME=``home``; return its RESULT dict."""
    os.makedirs(home, exist_ok=True)
    parts = [_PRELUDE, textwrap.dedent(preamble)]
    if register == "package":
        parts.append(_REGISTER_PACKAGE)
    parts += [textwrap.dedent(body), _EPILOGUE.format(marker=RESULT_MARKER)]
    script = os.path.join(home, "gsseg_test_script.py")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write("\n".join(parts))
    env = bpy_env(home)
    env["GSSEG_TEST_ARGS"] = json.dumps(args or {})
    process = subprocess.run([sys.executable, script], cwd=str(home), env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=timeout)
    output = process.stdout
    if process.returncode != 0:
        raise AssertionError(f"bpy child process failed (exit code {process.returncode}):\n{output[-6000:]}")
    for line in reversed(output.splitlines()):
        if line.startswith(RESULT_MARKER):
            result = json.loads(line[len(RESULT_MARKER):])
            result["_output"] = output
            return result
    raise AssertionError(f"bpy child process printed no result:\n{output[-6000:]}")


def labeled_scene(folder, *, levels=False, sh_degree=0, seed=2):
    """A small synthetic scene segmented by the core (as `gsseg segment` would): writes scene.ply,
    cameras.json, masks/ (objects) and parts/ (each sphere split in two), labeled.ply + labeled.gsseg.npz and,
    with ``levels``, multi.ply (gsseg_code with its layout comment) and its sidecars. Returns a dict of paths
    and facts."""
    import numpy as np
    from PIL import Image

    from blender_gsseg.core.cameras import write_cameras_json
    from blender_gsseg.core.gaussians import write_gaussians
    from blender_gsseg.core.pipeline import segment_scene, write_labeled
    from blender_gsseg.core.synthetic import make_scene

    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    scene = make_scene(n_spheres=3, points_per_unit_area=40, n_cameras=8, width=64, height=48, seed=seed,
                       sh_degree=sh_degree)
    paths = {name: os.path.join(folder, name) for name in ("scene.ply", "cameras.json", "masks", "parts",
                                                           "labeled.ply", "multi.ply")}
    write_gaussians(paths["scene.ply"], scene.gaussians)
    write_cameras_json(paths["cameras.json"], scene.cameras)
    for key, parts in (("masks", False), ("parts", True)):
        os.makedirs(paths[key], exist_ok=True)
        for camera in scene.cameras:
            Image.fromarray(scene.mask(camera, parts=parts).astype(np.uint8)).save(
                os.path.join(paths[key], camera.image_name + ".png"))
    result = segment_scene(scene.gaussians, scene.cameras, paths["masks"], backend="cpu")
    write_labeled(paths["labeled.ply"], result.gaussians, result.accumulation)
    if levels:
        multi = segment_scene(scene.gaussians, scene.cameras, [paths["masks"], paths["parts"]], backend="cpu",
                              level_names=["objects", "parts"])
        write_labeled(paths["multi.ply"], multi.gaussians, multi.accumulation, multi.coarse_accumulations,
                      multi.parents)
    paths["n"] = len(scene.gaussians)
    paths["labels"] = result.labels.tolist()
    return paths
