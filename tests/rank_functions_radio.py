"""Rank functions of the radio problem's tests (importable, so ranks can start with forkserver)."""

from distinv.distributed import comm
from distinv.solvers.run import run_reconstruction


def radio_runs(cases: list[dict]) -> list | None:
    """``run_reconstruction`` of each case in one launch; a case that raises ``ValueError`` (on every rank, at the
    same point: the problem's checks read all-reduced totals) gives each rank's message instead of a result."""
    rank, world = comm.world()
    out = []
    for cfg in cases:
        try:
            out.append(run_reconstruction(cfg))
        except ValueError as error:
            messages = [None] * world
            comm.all_gather_object(messages, str(error), site="test.messages")
            out.append({"errors": messages})
    return out if rank == 0 else None
