"""Where the 5.0 import of a random SH3 splat to its first evaluation spends its time (issue 27, item 6): gsseg's
stages timed inside one import through the operator, and the Geometry Nodes display cut short after each of its
stages (the modifier's own execution time). Headless bpy, one fresh process per run (the methods of
tests/blender_scripts/import_breakdown.py).

    python bench/import_breakdown.py [--count 1000000] [--runs 2] [--rounds 2] [--release 5.0] [--out bench/results]

Writes ``import_breakdown.json`` to --out and prints the medians.
"""

import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests"), os.path.join(REPO, "bench")]

from blender_harness import run_bpy  # noqa: E402
from display import cached_sh3_scene  # noqa: E402


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2, help="fresh processes")
    parser.add_argument("--rounds", type=int, default=2, help="evaluations of each cut per process")
    parser.add_argument("--release", default="5.0")
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    args = parser.parse_args(argv)
    work, ply = cached_sh3_scene("gsseg-breakdown-", args.count)
    runs = []
    for _ in range(args.runs):
        load = os.getloadavg()[0]
        result = run_bpy("import_breakdown.py", home=os.path.join(work, "home"), blender=args.release,
                         timeout=3600, args={"ply": ply, "rounds": args.rounds})
        result.pop("_output")
        runs.append(result | {"load": load})
        print(json.dumps(runs[-1]), flush=True)
    report = {"count": args.count, "release": args.release, "runs": runs,
              "median": {"total_s": float(np.median([r["total_s"] for r in runs])),
                         "evaluate_s": float(np.median([r["evaluate_s"] for r in runs])),
                         "stages": {k: float(np.median([r["stages"][k] for r in runs])) for k in runs[0]["stages"]},
                         "cuts": {k: float(np.median(sum((r["cuts"][k] for r in runs), [])))
                                  for k in runs[0]["cuts"]}}}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "import_breakdown.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    print(json.dumps(report["median"], indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
