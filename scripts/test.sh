#!/usr/bin/env bash
# Install gsseg with its test dependencies into the current Python environment, then run the test suite.
# gsplat (the projection oracle) must be installed with --no-deps: its declared dependencies would pull a
# CUDA build of torch, while the tests only need its pure-PyTorch code on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -e '.[test]'
python -m pip install --no-deps 'gsplat==1.5.3'
python -m pytest "$@"
