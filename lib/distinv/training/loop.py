"""The rank function of a training run: ``distinv.launch(train_rank, cfg, nprocs=N)`` (or in place under torchrun).

``cfg`` holds the options of :class:`~distinv.training.config.UnrolledTrainingConfig` plus:

- ``checkpoint`` (required): the resumable checkpoint file. If it exists the run continues from it (after
  checking that it is the same run); it is rewritten every ``checkpoint_every`` steps, at the end, and when
  ``minutes`` run out.
- ``stop_after`` (optional): stop this session after that many steps in total (the schedule still follows
  ``steps``: a later session resumes). Used to test resumption; a killed run behaves the same, minus the
  steps after its last checkpoint.

Rank 0 returns ``{"steps_done", "losses", "minutes", "finished", "state", "architecture", "config", "threads",
"nprocs"}``, where ``state`` is the float32 state dict of the network on the CPU and ``minutes`` the wall time
of every session of the run.
"""

from __future__ import annotations

import os
import time

import torch

from distinv.distributed import comm
from distinv.launch import resolve_device
from distinv.training.checkpoint import load_checkpoint, restore, save_checkpoint, training_state
from distinv.training.config import UnrolledTrainingConfig
from distinv.training.trainer import UnrolledTrainer

__all__ = ["train_rank"]


def train_rank(cfg: dict) -> dict | None:
    """Train (or continue training) the unrolled network on the ranks of the current process group.

    :param dict cfg: see the module docstring.
    """
    from distinv.solvers.context import AccountedContext

    options = dict(cfg)
    checkpoint = options.pop("checkpoint", None)
    if not checkpoint:
        raise ValueError("cfg must name the resumable checkpoint file under 'checkpoint'")
    stop_after = options.pop("stop_after", None)
    if stop_after is not None and (not isinstance(stop_after, int) or stop_after < 1):
        raise ValueError(f"stop_after must be an integer >= 1 or None, got {stop_after!r}")
    config = UnrolledTrainingConfig.from_dict(options)
    device = resolve_device(config.device)
    with AccountedContext("physics", device) as ctx:
        rank = ctx.rank
        trainer = UnrolledTrainer(config, ctx, device)
        done, losses, minutes_before = 0, [], 0.0
        if os.path.exists(checkpoint):
            state = load_checkpoint(checkpoint, config.to_dict(), trainer.model.architecture())
            done, losses, minutes_before = restore(trainer, state)
            del state
        bar = None
        if config.progress and rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=config.steps, initial=done, desc="training", leave=True)
        start = time.perf_counter()
        while done < config.steps:
            losses.append(trainer.step(done))
            done += 1
            out_of_time = config.minutes is not None and time.perf_counter() - start > 60 * config.minutes
            stopping = out_of_time or (stop_after is not None and done >= stop_after) or done == config.steps
            if done % config.checkpoint_every == 0 or stopping:
                if rank == 0:
                    minutes = minutes_before + (time.perf_counter() - start) / 60
                    save_checkpoint(checkpoint, training_state(trainer, done, losses, minutes))
                comm.barrier(site="training.checkpoint")
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3g}", refresh=False)
            if stopping:
                break
        if bar is not None:
            bar.close()
        if rank != 0:
            return None
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in trainer.model.state_dict().items()}
        return {"steps_done": done, "losses": losses, "minutes": minutes_before + (time.perf_counter() - start) / 60,
                "finished": done >= config.steps, "state": state, "architecture": trainer.model.architecture(),
                "config": config.to_dict(), "threads": torch.get_num_threads(), "nprocs": ctx.world_size}
