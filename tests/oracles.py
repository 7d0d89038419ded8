"""What the tests need beyond gsseg itself: the reference oracles (torch and gsplat's projection, bpy and the
Blender releases of tests/blender_releases.txt) and the test-only tools (numba, Dask, NVRTC, g++).

A developer without one gets skips that name it. With ``GSSEG_REQUIRE_ORACLES=1`` every such skip is a failure
instead: scripts/test.sh sets it (it has just installed them all, so one missing is a broken install), and so CI
(.ci/run calls scripts/test.sh), where a missing oracle would otherwise turn its tests into silent skips and a
broken install green. Tests that need a CUDA device stay skips everywhere (``gpu`` marker; CI has no GPU).

- ``require(module)`` at a test module's top: import and return it, or skip the module (under
  GSSEG_REQUIRE_ORACLES=1: a collection error, which stops the run);
- ``missing(what)`` in a test or fixture: skip it (fail under GSSEG_REQUIRE_ORACLES=1);
- ``unless(present, what)``: a ``skipif`` mark whose skip conftest.py reports as a failure under
  GSSEG_REQUIRE_ORACLES=1.
"""

import importlib
import os

import pytest

REQUIRED = os.environ.get("GSSEG_REQUIRE_ORACLES") == "1"
PREFIX = "missing test dependency: "  # conftest.py turns the skips whose reason starts so into failures
HOW = "./scripts/test.sh installs it"


def _message(what, how):
    return f"{PREFIX}{what} ({how})" + ("; GSSEG_REQUIRE_ORACLES=1 makes that a failure" if REQUIRED else "")


def require(module, how=HOW):
    """The imported ``module``, or the calling test module skipped (failed under GSSEG_REQUIRE_ORACLES=1)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        message = _message(f"{module} ({error})", how)
    if REQUIRED:
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)


def missing(what, how=HOW):
    """Skip the running test (fail it under GSSEG_REQUIRE_ORACLES=1): ``what`` is not there."""
    if REQUIRED:
        pytest.fail(_message(what, how), pytrace=False)
    pytest.skip(_message(what, how))


def unless(present, what, how=HOW):
    """A mark that skips the test where ``present`` is false (fails it under GSSEG_REQUIRE_ORACLES=1)."""
    return pytest.mark.skipif(not present, reason=_message(what, how))
