"""Run a script of tests/blender_scripts/ in a fresh headless-bpy Python process (bpy state is global and HOME
must be set before ``import bpy``), with a private HOME so Blender's user folders (extensions, config) start empty.

The child process runs ``tests/blender_scripts/runner.py`` in place, so that folder is first on its sys.path and
the scripts import its helper modules by name (``import snapshot``). The child side of the contract is one module:

- ``from child import ARGS, RESULT``: ``ARGS`` is the JSON-able dict passed as ``args``; ``RESULT`` is a dict the
  script fills, returned by :func:`run_bpy` (plus ``_output``, the child's stdout and stderr);
- with ``register="package"`` (the default) the runner imports bpy and registers the ``blender_gsseg`` package
  (the pip layout) before the script runs; with ``register="none"`` nothing is imported for the script (it may
  install the extension zip itself);
- ``preamble="module"`` imports that module of tests/blender_scripts/ first, before ``import bpy``
  (``bundled_only``: plyfile and PIL only from the extension's wheels);
- after the script, the runner disables every add-on and unregisters the package, as Blender does when it quits,
  prints RESULT and leaves with ``os._exit`` (bpy 4.2 crashes in Python's finalisation).
Any exception or failed assert in the child fails the calling test with the child's output.

The child runs on one of the Blender releases of ``BLENDER_RELEASES``: the bpy of the test environment (5.0) or
one of the virtual environments that scripts/test.sh makes under .venv-blender/ (blender_releases.txt).
``run_bpy(..., blender="5.3")`` picks one; ``GSSEG_BLENDER=5.3 pytest tests/test_blender*.py`` runs the whole
Blender suite on another release.
"""

import json
import os
import subprocess
import sys

import oracles

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT_MARKER = "GSSEG_RESULT "  # blender_scripts/runner.py prints RESULT after it
HOST_BLENDER = "5.0"  # the bpy of the test environment (pyproject.toml's test extra)
BLENDER_VENVS = os.path.join(REPO, ".venv-blender")


def _read_releases():
    """{release: Python version} of every Blender release the tests run on."""
    releases = {HOST_BLENDER: "%d.%d" % sys.version_info[:2]}
    with open(os.path.join(REPO, "tests", "blender_releases.txt"), encoding="utf-8") as handle:
        for line in handle:
            fields = line.split("#", 1)[0].split()
            if fields:
                releases[fields[0]] = fields[1]
    return dict(sorted(releases.items(), key=lambda item: tuple(map(int, item[0].split(".")))))


BLENDER_RELEASES = _read_releases()
DEFAULT_BLENDER = os.environ.get("GSSEG_BLENDER", HOST_BLENDER)
if DEFAULT_BLENDER not in BLENDER_RELEASES:
    raise RuntimeError(f"GSSEG_BLENDER={DEFAULT_BLENDER}: not one of the tested releases {list(BLENDER_RELEASES)}")


def blender_python(release=None):
    """The Python interpreter that imports the bpy of Blender ``release`` (default: DEFAULT_BLENDER)."""
    release = release or DEFAULT_BLENDER
    if release == HOST_BLENDER:
        return sys.executable
    python = os.path.join(BLENDER_VENVS, f"bpy-{release}", "bin", "python")
    if not os.path.exists(python):  # a skip here, a failure under GSSEG_REQUIRE_ORACLES=1 (tests/oracles.py)
        oracles.missing(f"the bpy of Blender {release}: no environment at {python}", "./scripts/test.sh makes it")
    return python


def blender_user_dir(home, release=None):
    """Blender's user folder (config, extensions) of ``release`` under HOME=``home``."""
    return os.path.join(str(home), ".config", "blender", release or DEFAULT_BLENDER)


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


SCRIPTS = os.path.join(REPO, "tests", "blender_scripts")
RUNNER = os.path.join(SCRIPTS, "runner.py")


def run_bpy(script, *, home, args=None, register="package", timeout=240, preamble=None, blender=None):
    """Run ``script``, a file of tests/blender_scripts/, in a new Python process of Blender release ``blender``
    (default DEFAULT_BLENDER) with HOME=``home``; return its RESULT dict."""
    if not os.path.isfile(os.path.join(SCRIPTS, script)):
        raise FileNotFoundError(f"no script {script!r} in {SCRIPTS}")
    if register not in ("package", "none"):
        raise ValueError(f"register={register!r}: 'package' or 'none'")
    os.makedirs(home, exist_ok=True)
    env = bpy_env(home)
    env["GSSEG_TEST_ARGS"] = json.dumps(args or {})
    command = [blender_python(blender), RUNNER, script, register] + ([preamble] if preamble else [])
    process = subprocess.run(command, cwd=str(home), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, timeout=timeout)
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

    from blender_gsseg.core.files.inria_cameras import write_cameras_json
    from blender_gsseg.core.files.ply import write_gaussians
    from blender_gsseg.core.pipeline import segment_scene, write_labeled
    from synthetic.scene import make_scene

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
