"""Rank functions and a test-only problem for tests/test_bad_inputs.py: measurements that hold a NaN.

Kept apart from the test module so that a rank imports only this (and the runner), not every module the
catalogue of wrong inputs touches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from distinv.problems import ProblemSpec, RankProblem, register_problem
from distinv.solvers import run_reconstruction


@dataclass(frozen=True)
class NanConfig:
    """The test problem's options: the side of its images and the operators whose measurements hold a NaN."""

    size: int = 8
    operators: int = 2
    bad: tuple = (1,)


class NanMeasurements(RankProblem):
    """Identity operators dealt out to the ranks; the measurements of the ``bad`` ones hold one NaN.

    Only what the runner touches before its first iteration is implemented: a finite check must stop it there.
    """

    def __init__(self, config: NanConfig, ctx, device):
        shape = (1, 1, config.size, config.size)
        self.y = [None] * config.operators  # the operators of other ranks: None, as in a stacked data term
        for k in range(ctx.rank, config.operators, ctx.world_size):
            self.y[k] = torch.ones(shape)
            if k in config.bad:
                self.y[k][..., 2, 3] = math.nan
        self.data = self
        self.shape = shape

    def sqnorm(self) -> float:
        return float(len(self.y))

    def start(self, pinv_iterations: int):
        x = torch.zeros(self.shape)
        return x, {"pinv": None}, x


def nan_measurements_problem(config, ctx, device) -> NanMeasurements:
    return NanMeasurements(config, ctx, device)


NAN_PROBLEM = ProblemSpec("test-nan-measurements", f"{__name__}:NanConfig", f"{__name__}:nan_measurements_problem",
                          "identity operators with a NaN in some measurements (tests only)")


def solve_nan_problem(cfg: dict):
    """Rank function: register the test problem in this rank (a spawned rank starts with the shipped registry)."""
    register_problem(NAN_PROBLEM, replace=True)
    return run_reconstruction(cfg)
