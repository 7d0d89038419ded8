"""The front door of the Python API, ``blender_gsseg.core``: every public name is its home module's object, the
package imports nothing until a name is asked for, and the README's "Python API" block runs as written."""

import importlib
import json
import os
import re
import subprocess
import sys

import pytest

import blender_gsseg.core as core

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code, cwd=REPO):
    """Run ``code`` in a fresh interpreter that imports this checkout's package."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_every_public_name_is_its_home_modules_object():
    assert core.__all__ == sorted(set(core.__all__)) and core.__all__
    for name in core.__all__:
        home = importlib.import_module(f"blender_gsseg.core.{core._HOME[name]}")
        assert getattr(core, name) is getattr(home, name), name
        assert name in dir(core)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        core.not_a_name  # noqa: B018


def test_star_import_gives_all():
    namespace = {}
    exec("from blender_gsseg.core import *", namespace)
    assert set(core.__all__) <= set(namespace)


def test_importing_the_core_imports_nothing_heavy():
    """``import blender_gsseg.core`` and one small module of it import no other module of the core and no
    numpy; the first public name asked for imports its own module (and what that needs), not the jobs."""
    result = _python(
        "import json, sys\n"
        "import blender_gsseg.core\n"
        "alone = sorted(m for m in sys.modules if m.startswith(('blender_gsseg', 'numpy')))\n"
        "import blender_gsseg.core.errors\n"
        "errors = sorted(m for m in sys.modules if m.startswith(('blender_gsseg', 'numpy')))\n"
        "from blender_gsseg.core import Camera\n"
        "camera = sorted(m for m in sys.modules if m.startswith('blender_gsseg'))\n"
        "print(json.dumps([alone, errors, camera]))\n")
    assert result.returncode == 0, result.stderr
    alone, errors, camera = json.loads(result.stdout)
    assert alone == ["blender_gsseg", "blender_gsseg.core"]
    assert errors == ["blender_gsseg", "blender_gsseg.core", "blender_gsseg.core.errors"]
    assert "blender_gsseg.core.cameras" in camera
    assert not {"blender_gsseg.core.pipeline", "blender_gsseg.core.lift.accumulate",
                "blender_gsseg.core.raster.backends"} & set(camera)


def _readme_python_api_block():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as handle:
        text = handle.read()
    section = text.split("\n## Python API\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_uses_the_front_door():
    block = _readme_python_api_block()
    imported = re.search(r"from blender_gsseg\.core import \((.*?)\)", block, re.S)
    assert imported, "the README's Python API block imports from blender_gsseg.core"
    names = {name.strip() for name in imported.group(1).replace("\n", " ").split(",") if name.strip()}
    assert names <= set(core.__all__), names - set(core.__all__)


@pytest.mark.slow
def test_readme_python_api_block_runs_on_the_demo(tmp_path):
    """The block as written, from a folder that holds the package as the repository's root does (its paths are
    relative to the root), on the bundled demo; what it writes lands in that folder."""
    os.symlink(os.path.join(REPO, "blender_gsseg"), tmp_path / "blender_gsseg")
    result = _python(_readme_python_api_block(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert abs(float(result.stdout.split()[0]) - 0.811) < 0.0005  # the held-out mIoU the README states
    assert (tmp_path / "labeled.ply").is_file() and (tmp_path / "labeled.gsseg.npz").is_file()
