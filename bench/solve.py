"""Re-solve time for a new gamma from a cached accumulation: 1M Gaussians x 8 labels (goal <= 20 ms)."""

import argparse
import time

import numpy as np

from blender_gsseg.core.lift.accumulate import Accumulation
from blender_gsseg.core.lift.solver import Shares


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gaussians", type=int, default=1_000_000)
    parser.add_argument("--labels", type=int, default=8)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    weights = rng.exponential(size=(args.labels, args.gaussians)).astype(np.float32)
    weights[:, ::50] = 0  # some unseen
    accumulation = Accumulation(np.arange(args.labels, dtype=np.int32), weights)
    start = time.perf_counter()
    shares = Shares.from_accumulation(accumulation)
    prepare = time.perf_counter() - start
    times = []
    for gamma in np.linspace(-0.9, 0.9, 19):
        start = time.perf_counter()
        shares.solve(float(gamma))
        times.append(time.perf_counter() - start)
    print(f"{args.gaussians} Gaussians x {args.labels} labels: shares once {prepare * 1e3:.1f} ms, "
          f"re-solve median {np.median(times) * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
