"""The resumable checkpoint of a training run: everything needed to continue it as if it had never stopped.

One file, written atomically by rank 0 (every rank holds the same parameters and optimiser state)::

    {"format": FORMAT, "architecture": UnrolledHQS.architecture(), "config": UnrolledTrainingConfig.to_dict(),
     "step": steps done, "model": state dict, "optimizer": Adam's state dict, "losses": [loss per step],
     "minutes": wall minutes of the training sessions so far}

Nothing else is needed: the crops and the noise of step ``s`` are drawn from seeds derived from
``(seed, s)`` and the learning rate is a function of ``s``, so a resumed run computes, step for step,
what the uninterrupted run computes (bit for bit on CPU with a fixed thread count). It is read with
``torch.load(weights_only=True)``; a checkpoint of another architecture, or of a run with other training
options, is refused with the differences named.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from distinv.files import write_atomically
from distinv.solvers.unrolled import architecture_mismatch
from distinv.training.config import RUN_KEYS

__all__ = ["FORMAT", "training_state", "save_checkpoint", "load_checkpoint", "restore"]

FORMAT = "distinv.unrolled-training/1"


def training_state(trainer, step: int, losses: list[float], minutes: float = 0.0) -> dict:
    """The checkpoint of ``trainer`` after ``step`` steps (tensors shared with the trainer; save it at once).

    :param UnrolledTrainer trainer: the rank's trainer.
    :param int step: steps done.
    :param list losses: the loss of every step done.
    :param float minutes: wall minutes spent in the steps done (all sessions).
    """
    return {"format": FORMAT, "architecture": trainer.model.architecture(), "config": trainer.config.to_dict(),
            "step": int(step), "model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
            "losses": [float(v) for v in losses], "minutes": float(minutes)}


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` to ``path`` atomically (a killed write leaves the previous checkpoint intact).

    :param str path: the checkpoint file (its folder is created).
    :param dict state: :func:`training_state`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | os.PathLike, config: dict, architecture: dict) -> dict:
    """Read a checkpoint and check that it continues this run.

    :param str path: the checkpoint file.
    :param dict config: this run's :meth:`UnrolledTrainingConfig.to_dict`; options other than
        :data:`~distinv.training.config.RUN_KEYS` must equal the checkpoint's.
    :param dict architecture: this run's :meth:`UnrolledHQS.architecture`.
    :raises ValueError: not a training checkpoint, another architecture, or other training options.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"checkpoint {str(path)!r} is not a training checkpoint of the unrolled network "
                         f"(format {found!r}, expected {FORMAT!r})")
    mismatch = architecture_mismatch(architecture, state.get("architecture"))
    if mismatch:
        raise ValueError(f"checkpoint {str(path)!r} is from another architecture ({mismatch}); start a new run "
                         f"with another --checkpoint, or pass the checkpoint's options")
    saved = state.get("config", {})
    differences = [f"{key}: this run {config[key]!r}, checkpoint {saved.get(key)!r}"
                   for key in sorted(config) if key not in RUN_KEYS and saved.get(key) != config[key]]
    if differences:
        raise ValueError(f"checkpoint {str(path)!r} was written by a run with other training options "
                         f"({'; '.join(differences)}); resuming it would not continue that run")
    return state


def restore(trainer, state: dict) -> tuple[int, list[float], float]:
    """Load a checkpoint's parameters and optimiser state into ``trainer``; return ``(step, losses, minutes)``."""
    trainer.model.load_state_dict(state["model"], strict=True)
    trainer.optimizer.load_state_dict(state["optimizer"])
    return int(state["step"]), list(state["losses"]), float(state.get("minutes", 0.0))
