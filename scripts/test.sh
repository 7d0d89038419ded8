#!/usr/bin/env bash
# Install gsseg with its test dependencies into the current Python environment, make one virtual environment
# per other Blender release the Blender tests run on (tests/blender_releases.txt), then run the test suite.
# gsplat (the projection oracle) must be installed with --no-deps: its declared dependencies would pull a
# CUDA build of torch, while the tests only need its pure-PyTorch code on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -e '.[test]'
python -m pip install --no-deps 'gsplat==1.5.3'

# The Python of a version (e.g. 3.13): pythonX.Y on PATH, else pyenv's build of it.
find_python() {
    local candidate
    if command -v "python$1" >/dev/null && "python$1" -c '' 2>/dev/null; then
        command -v "python$1"
        return
    fi
    for candidate in "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/"$1"*/bin/"python$1"; do
        if [ -x "$candidate" ]; then
            echo "$candidate"
            return
        fi
    done
    echo "scripts/test.sh: the Blender tests need Python $1 (pythonX.Y on PATH or under pyenv); none found" >&2
    exit 2
}

# .venv-blender/bpy-RELEASE: that release's bpy module, its numpy, and gsseg (editable) for the package tests.
while read -r release python requirements; do
    case "$release" in ''|'#'*) continue ;; esac
    venv=".venv-blender/bpy-$release"
    [ -x "$venv/bin/python" ] || "$(find_python "$python")" -m venv "$venv"
    # shellcheck disable=SC2086  # the requirements are words
    "$venv/bin/python" -m pip install -q --disable-pip-version-check $requirements -e .
done < tests/blender_releases.txt

# Everything the tests compare against was just installed, so a missing oracle (torch, gsplat, bpy, a Blender
# release, numba, Dask, NVRTC, g++) is a broken install: fail its tests instead of skipping them (tests/oracles.py).
# CI (.ci/run) runs this script. Tests that need a CUDA device still skip without one.
export GSSEG_REQUIRE_ORACLES="${GSSEG_REQUIRE_ORACLES:-1}"
python -m pytest "$@"
