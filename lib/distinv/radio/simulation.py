"""Run the external simulator (``data_scripts/simulate_observation.py`` in ``.venv-sim``) as a subprocess.

The torch side never imports the simulator: it writes a sky file, runs the script in the simulator's own
environment (``make simulator`` builds it) and reads the Measurement Set it writes. These helpers only
build the command line and time the run; a notebook cell can show the command it runs.

>>> cmd = simulator_command("sky.npz", "obs.ms", track(3600.0, 10, 1), noise_jy=0.01)
>>> cmd[1].endswith("simulate_observation.py"), cmd[cmd.index("--integration-s") + 1], cmd[-3:]
(True, '360.0', ['--noise-jy', '0.01', '--force'])
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from distinv.radio.observation import ObservationConfig

__all__ = ["REPO_ROOT", "simulator_python", "simulator_script", "track", "simulator_command", "run_simulator",
           "shell_line"]

#: The checkout holding ``data_scripts/`` and ``.venv-sim/``.
REPO_ROOT = Path(__file__).resolve().parents[3]


def simulator_python() -> Path:
    """The simulator environment's interpreter (``$DISTINV_SIM_PYTHON``, else ``.venv-sim/bin/python``)."""
    return Path(os.environ.get("DISTINV_SIM_PYTHON", REPO_ROOT / ".venv-sim" / "bin" / "python"))


def simulator_script() -> Path:
    """``data_scripts/simulate_observation.py``."""
    return REPO_ROOT / "data_scripts" / "simulate_observation.py"


def track(duration_s: float, n_times: int, n_channels: int = 1, **kwargs) -> ObservationConfig:
    """A MeerKAT track of ``n_times`` integrations over ``duration_s`` (centred on transit by default).

    :param float duration_s: track length.
    :param int n_times: integrations.
    :param int n_channels: channels.
    :param kwargs: other :class:`~distinv.radio.observation.ObservationConfig` fields.
    """
    if isinstance(n_times, bool) or not isinstance(n_times, int) or n_times < 1:
        raise ValueError(f"n_times must be an integer >= 1, got {n_times!r}")
    return ObservationConfig(duration_s=float(duration_s), integration_s=float(duration_s) / n_times,
                             n_channels=n_channels, **kwargs)


def simulator_command(sky: str | os.PathLike, out: str | os.PathLike, observation: ObservationConfig,
                      engine: str = "matvis", noise_jy: float = 0.0, noise_seed: int = 0,
                      force: bool = True) -> list[str]:
    """The simulator's command line for ``observation`` of the sky file ``sky``, writing ``out`` (an ``.ms``)."""
    cmd = [str(simulator_python()), str(simulator_script()), "--sky", str(sky), "--out", str(out), "--engine", engine,
           *observation.simulator_arguments(), "--noise-seed", str(noise_seed)]
    if noise_jy:
        cmd += ["--noise-jy", repr(float(noise_jy))]
    return cmd + (["--force"] if force else [])


def run_simulator(sky: str | os.PathLike, out: str | os.PathLike, observation: ObservationConfig,
                  engine: str = "matvis", noise_jy: float = 0.0, noise_seed: int = 0, force: bool = True,
                  timeout: float = 3600.0) -> dict:
    """Run the simulator; ``{"seconds": wall time, "simulator": its printed JSON, "command": argv}``.

    :raises FileNotFoundError: no simulator environment (run ``make simulator``).
    :raises RuntimeError: the simulator failed (the end of its stderr is in the message).
    """
    python = simulator_python()
    if not python.exists():
        raise FileNotFoundError(f"no simulator environment at {python}: run `make simulator` first")
    cmd = simulator_command(sky, out, observation, engine, noise_jy, noise_seed, force)
    tic = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - tic
    if done.returncode != 0:
        raise RuntimeError(f"the simulator failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return {"seconds": seconds, "simulator": json.loads(lines[-1]) if lines else {}, "command": cmd}


def shell_line(command: list[str]) -> str:
    """A command for reading: paths inside the checkout relative to it, other absolute paths by their name.

    >>> shell_line([str(REPO_ROOT / ".venv-sim" / "bin" / "python"), "/tmp/x/sky.npz", "--force"])
    '.venv-sim/bin/python sky.npz --force'
    """
    shown = []
    for part in command:
        path = Path(part)
        if path.is_absolute():
            shown.append(str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else path.name)
        else:
            shown.append(part)
    return " ".join(shown)
