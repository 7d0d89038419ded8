#!/bin/sh
# The CUDA checks for a machine with a GPU and CuPy: the CUDA tests, then the benchmark (arguments go to it,
# e.g. --small). Run from anywhere: bench/gpu_check.sh [--small]. PYTHON picks the interpreter (default python).
# Exit status: non-zero if either step failed; both always run.
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python}
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
status=0
echo "== $PY -m pytest tests/test_cuda.py -q -rs"
"$PY" -m pytest tests/test_cuda.py -q -rs || status=1
echo "== $PY bench/gpu.py $*"
"$PY" bench/gpu.py "$@" || status=1
exit $status
