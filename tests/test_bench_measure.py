"""What a benchmark rank measures: network time, iteration parts, peak memory (one process, CPU)."""

import time

import pytest
import torch

from distinv.bench.measure import IterationClock, NetworkTimer, PeakTracker, peak_memory_bytes, reset_peak_memory


def _sleepy(seconds):
    def network(x, sigma, scale=1.0):
        time.sleep(seconds)
        return scale * x
    return network


def test_network_timer_adds_up_its_calls_and_passes_arguments_through():
    timer = NetworkTimer(_sleepy(0.02), "cpu")
    x = torch.ones(3)
    assert torch.equal(timer(x, 0.1, scale=2.0), 2 * x)
    timer(x, 0.1)
    assert timer.calls == 2
    assert 0.04 <= timer.seconds() < 1.0
    time.sleep(0.05)  # time outside the calls is not counted
    assert timer.seconds() < 1.0 and timer.seconds() == pytest.approx(timer.seconds())
    timer.reset()
    assert timer.calls == 0 and timer.seconds() == 0.0


def test_iteration_clock_parts_are_disjoint_and_bounded_by_the_total():
    clock = IterationClock("cpu")
    clock.start()
    with clock.part("grad"):
        time.sleep(0.03)
    with clock.part("prior"):
        time.sleep(0.05)
    time.sleep(0.02)
    parts = clock.stop()
    assert parts["t_grad"] >= 0.03 and parts["t_prior"] >= 0.05
    assert parts["t_total"] >= parts["t_grad"] + parts["t_prior"] + 0.02
    assert parts["t_comm"] == 0 and parts["comm_bytes"] == 0
    with pytest.raises(ValueError, match="part name"):
        with clock.part("other"):
            pass


def test_peak_memory_sees_a_large_allocation_after_a_reset():
    reset_peak_memory("cpu")
    before = peak_memory_bytes("cpu")
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    assert peak_memory_bytes("cpu") >= before + 48 * 2**20
    del block


def test_peak_tracker_leaves_out_the_excluded_block_but_not_what_it_keeps():
    tracker = PeakTracker("cpu")
    base = tracker.read()
    with tracker.excluded():
        temporary = torch.ones(128 * 2**20 // 4)  # 128 MiB, freed at the end of the block
        del temporary
    assert tracker.read() < base + 32 * 2**20
    with tracker.excluded():
        kept = torch.ones(64 * 2**20 // 4)  # still resident afterwards: it counts from then on
    assert tracker.read() >= base + 48 * 2**20
    work = torch.ones(128 * 2**20 // 4)  # outside any excluded block: counts
    assert tracker.read() >= base + 160 * 2**20
    del work, kept
