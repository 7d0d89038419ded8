"""Fixtures shared by the Blender test modules; the markers' rules (pyproject.toml registers them) and the
missing test dependencies that fail under GSSEG_REQUIRE_ORACLES=1 (tests/oracles.py)."""

import importlib.util
import os
import subprocess
import sys

import pytest

import blender_gsseg
import oracles

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # the test-only `synthetic` package sits at the repo root and is not installed


def pytest_collection_modifyitems(items):
    """Every ``blender`` test is ``slow`` too: each starts Blender in a child process (seconds), and together they
    would take the quick loop (-m "not slow") past its two minutes; run them with -m blender."""
    for item in items:
        if item.get_closest_marker("blender") is not None:
            item.add_marker(pytest.mark.slow)


def pytest_runtest_setup(item):
    """A ``blender`` test runs bpy in a child process, so it needs bpy here (never imported in this process)."""
    if item.get_closest_marker("blender") is not None and importlib.util.find_spec("bpy") is None:
        oracles.missing("bpy (Blender as a Python module)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under GSSEG_REQUIRE_ORACLES=1 the skips of ``oracles.unless`` marks are failures."""
    outcome = yield
    report = outcome.get_result()
    if oracles.REQUIRED and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if oracles.PREFIX in reason:
            report.outcome = "failed"
            report.longrepr = reason


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory):
    """The extension zip as `build.py` makes it for this platform, with the wheels of both Pythons Blender
    embeds (3.11 for 4.2-5.0, 3.13 for 5.1+), as a user downloads it."""
    out = tmp_path_factory.mktemp("dist")
    process = subprocess.run([sys.executable, os.path.join(REPO, "build.py"), "--platform", "current",
                              "--python", "3.11,3.13", "--output-dir", str(out)],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert process.returncode == 0, process.stdout
    zips = [f for f in os.listdir(out) if f.endswith(".zip")]
    assert zips == [f"gsseg-{blender_gsseg.__version__}.zip"], (zips, process.stdout)
    return os.path.join(out, zips[0])
