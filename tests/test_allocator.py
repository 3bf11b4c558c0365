"""The large-allocation policy of a CPU rank: freed slabs leave the resident set (glibc, Linux)."""

import subprocess
import sys
from pathlib import Path

import pytest

import distinv
import rank_functions as rf
from distinv.allocator import map_large_allocations

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc are Linux's")


def _kept_in_fresh_process(map_first: bool) -> float:
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import rank_functions; "
            f"print(rank_functions.freed_slabs_kept_mib({map_first}))")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def test_freed_slabs_stay_resident_by_default_and_leave_when_mapped():
    # some of the four slabs came from the heap and stay there (all four in most processes, one in some)
    assert _kept_in_fresh_process(map_first=False) > 12
    assert _kept_in_fresh_process(map_first=True) < 8


def test_the_run_option_pins_the_threshold_on_every_rank():
    assert distinv.launch(rf.freed_slabs_kept_after_a_run, True, nprocs=2) < 8


def test_the_run_option_takes_booleans_only():
    from distinv.solvers.run import RunOptions

    with pytest.raises(ValueError, match="map_large_allocations must be true or false"):
        RunOptions(map_large_allocations="yes")


@pytest.mark.parametrize("bad", [0, 4095, 33 * 2**20, 1.5, True, "4MiB"])
def test_thresholds_outside_glibcs_range_are_refused(bad):
    with pytest.raises(ValueError, match="threshold_bytes must be an integer from 4096"):
        map_large_allocations(bad)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_the_cost_benchmark_refuses_bad_round_counts(bad):
    from distinv.bench.allocator import allocator_costs

    with pytest.raises(ValueError, match="rounds must be an integer >= 1"):
        allocator_costs(bad)
