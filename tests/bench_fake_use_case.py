"""A use case for the runner's tests: it sleeps, then reports which process ran it (registered on import)."""

import os
import time

from distinv.bench.registry import UseCase, register_use_case

#: when set, the seconds every point sleeps whatever its ``sleep_s`` (to rerun a slow point quickly)
SLEEP_OVERRIDE_S = None


def sleepy_point(cfg: dict) -> dict:
    """Rank entry point: sleep ``sleep_s``, then return ``iterations`` rows and the pid that ran it."""
    time.sleep(cfg["sleep_s"] if SLEEP_OVERRIDE_S is None else SLEEP_OVERRIDE_S)
    history = [{"iteration": i, "t_total": cfg["sleep_s"], "psnr": float(cfg["size"])}
               for i in range(1, cfg["iterations"] + 1)]
    return {"history": history, "final": {"runner_pid": os.getpid()}, "per_rank": [{"rank": 0, "peak_mem_bytes": 0}]}


register_use_case(UseCase("bench_test_sleepy", "bench_fake_use_case:sleepy_point", {"size": 8, "sleep_s": 0.1}),
                  replace=True)
