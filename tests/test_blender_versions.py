"""The extension on every tested Blender release (tests/blender_releases.txt): the stated range, the message a
release outside it gets, and an artist's first session from the built zip on each release."""

import os
import tomllib

import numpy as np
import pytest

from blender_harness import BLENDER_RELEASES, HOST_BLENDER, REPO, run_bpy

import blender_gsseg
from blender_gsseg.core.files.splats import read_gaussians
from blender_gsseg.core.pipeline import segment_scene

DEMO = os.path.join(REPO, "blender_gsseg", "data", "demo")


def _version(text):
    return tuple(int(part) for part in text.split("."))


def test_manifest_and_readme_state_the_tested_range():
    with open(os.path.join(REPO, "blender_manifest.toml"), "rb") as handle:
        manifest = tomllib.load(handle)
    releases = sorted(_version(release) for release in BLENDER_RELEASES)
    low, high = blender_gsseg.TESTED_BLENDER
    assert _version(manifest["blender_version_min"]) == low == releases[0] + (0,)
    # blender_version_max is exclusive: the release after the newest tested one
    assert _version(manifest["blender_version_max"]) == high == (releases[-1][0], releases[-1][1] + 1, 0)
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    tested = "Tested on Blender " + ", ".join(f"{major}.{minor}" for major, minor in releases)
    assert tested in readme, tested


def test_releases_outside_the_range_get_one_clear_line():
    problem = blender_gsseg.blender_support
    assert problem((4, 2, 0)) == (True, None) and problem((5, 3, 1)) == (True, None)
    enable, message = problem((4, 1, 1))
    assert not enable and message == ("gsseg needs Blender 4.2 to 5.3 and this is Blender 4.1.1: "
                                      "gsseg is not enabled (install gsseg for Blender 4.2 or newer)")
    enable, message = problem((5, 4, 0))
    assert enable and message == ("gsseg is tested on Blender 4.2 to 5.3 and this is Blender 5.4.0: "
                                  "it is enabled, but please report any problem")


@pytest.fixture(scope="module")
def demo_labels():
    """The labels the core gives the demo scene at the workflow's settings (half-size views, CPU)."""
    result = segment_scene(os.path.join(DEMO, "scene_trained.ply"), os.path.join(DEMO, "cameras.json"),
                           os.path.join(DEMO, "masks"), scale=0.5, backend="cpu")
    return result.labels


@pytest.mark.blender
@pytest.mark.parametrize("release", list(BLENDER_RELEASES))
def test_workflow_from_the_zip(release, extension_zip, demo_labels, tmp_path):
    """Install the built zip, import the demo splat and its cameras, segment with its masks, select Suzanne,
    delete her, undo, redo, export: on each release, with the labels the core computes."""
    ply = os.path.join(DEMO, "scene_trained.ply")
    source = read_gaussians(ply)
    suzanne = 3
    result = run_bpy(script="workflow.py", register="none", blender=release, home=tmp_path / "home", args={
        "zip": extension_zip, "ply": ply, "n": len(source), "cameras": os.path.join(DEMO, "cameras.json"),
        "masks": os.path.join(DEMO, "masks"), "scale": 0.5, "instance": suzanne, "out": str(tmp_path / "out.ply")})
    assert result["blender"].startswith(release + "."), result["blender"]
    assert result["python"] == BLENDER_RELEASES[release]
    # the lift runs on the compiled walk of the bundled numba, and the panel says so with a time
    assert result["plan"].startswith("CPU, compiled (numba ") and ": about " in result["plan"], result["plan"]
    assert "extensions" in result["numba"] or release == HOST_BLENDER, result["numba"]
    labels = np.asarray(result["labels"])
    # the lift in Blender against the core's backend here: the same optimum, up to floating-point near-ties
    agreement = (labels == demo_labels).mean()
    assert agreement > 0.999, agreement
    keep = labels != suzanne
    assert (~keep).sum() > 1000
    exported = read_gaussians(tmp_path / "out.ply")
    assert result["exported"] == len(exported) == keep.sum()
    for name in source.vertex.dtype.names:
        assert exported.vertex[name].tobytes() == source.vertex[name][keep].tobytes(), name
    assert (exported.vertex["gsseg_label"] == labels[keep]).all()
