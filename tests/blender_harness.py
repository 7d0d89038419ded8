"""Run a script in a fresh headless-bpy Python process (bpy state is global and HOME must be set before
``import bpy``), with a private HOME so Blender's user folders (extensions, config) start empty.

The child script gets:
- ``ARGS``: the JSON-able dict passed as ``args``;
- ``RESULT``: a dict it may fill; it comes back as the return value of :func:`run_bpy`;
- with ``register="package"``: ``GSSEG`` = the ``blender_gsseg`` package, registered (the pip layout).
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
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT_MARKER = "GSSEG_RESULT "
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
    if not os.path.exists(python):
        raise AssertionError(f"no environment with the bpy of Blender {release} at {python}: "
                             "./scripts/test.sh makes it")
    return python


def blender_user_dir(home, release=None):
    """Blender's user folder (config, extensions) of ``release`` under HOME=``home``."""
    return os.path.join(str(home), ".config", "blender", release or DEFAULT_BLENDER)

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

# Unregister as Blender does when it quits (wm_exit: addon_utils.disable_all()), so unregister code runs in every
# test; then leave without Python's finalisation: bpy 4.2 as a module crashes there (SIGSEGV) once any Python
# callback (an operator, an update function) has been registered, even after it was unregistered.
_EPILOGUE = """
import addon_utils
addon_utils.disable_all()
if "GSSEG" in globals():
    GSSEG.unregister()
print({marker!r} + json.dumps(RESULT), flush=True)
sys.stderr.flush()
os._exit(0)
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


SCRIPTS = os.path.join(REPO, "tests", "blender_scripts")


def run_bpy(body=None, *, home, args=None, register="package", timeout=240, preamble="", blender=None,
            script=None):
    """Run ``body`` (or the file ``script`` of tests/blender_scripts/) in a new Python process of Blender
    release ``blender`` (default DEFAULT_BLENDER) with HOME=``home``; return its RESULT dict."""
    if script is not None:
        with open(os.path.join(SCRIPTS, script), encoding="utf-8") as handle:
            body = handle.read()
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
    process = subprocess.run([blender_python(blender), script], cwd=str(home), env=env, stdout=subprocess.PIPE,
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
