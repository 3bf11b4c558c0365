"""Solvers of the book's inverse problems on 1..N ranks: PnP-PGD, PnP-HQS and a TV baseline.

The rank entry point of the multi-frame deblurring chapter is :func:`run_reconstruction`
(``distinv.launch(run_reconstruction, cfg, nprocs=N)``).
"""

from distinv.solvers.config import IMPLEMENTATIONS, SOLVERS, PriorConfig, SolverConfig
from distinv.solvers.data_term import StackedDataTerm, conjugate_gradient
from distinv.solvers.iterations import PhaseTimes, Solver, make_solver
from distinv.solvers.run import default_config, run_reconstruction, split_config, summary

__all__ = [
    "SOLVERS", "IMPLEMENTATIONS", "SolverConfig", "PriorConfig", "StackedDataTerm", "conjugate_gradient",
    "PhaseTimes", "Solver", "make_solver", "run_reconstruction", "default_config", "split_config", "summary",
]
