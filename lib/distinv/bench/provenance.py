"""Where a result comes from: commit, package versions, machine and device, recorded with every run.

>>> info = collect_provenance()
>>> sorted(k for k in info if k.startswith("version_"))[:2]
['version_deepinv', 'version_distinv']
"""

from __future__ import annotations

import datetime
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

import torch

__all__ = ["collect_provenance", "device_name", "git_commit"]

_PACKAGES = ("distinv", "deepinv", "torch", "numpy")


def git_commit(path: str | Path | None = None) -> tuple[str, bool]:
    """``(commit, dirty)`` of the git checkout holding ``path`` (default: this package).

    A copy without ``.git`` (a compute node) reads ``DISTINV_COMMIT`` (dirty is then unknown: ``False``);
    otherwise ``("unknown", False)``.

    :param str path: a file or folder inside the checkout.
    """
    if os.environ.get("DISTINV_COMMIT"):
        return os.environ["DISTINV_COMMIT"], False
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return commit, bool(status.strip())


def device_name(device: torch.device | str = "cpu") -> str:
    """Human name of a device: the GPU's name, or the CPU model.

    :param torch.device device: the device.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect_provenance(device: torch.device | str = "cpu") -> dict[str, object]:
    """Provenance of a run made on this machine now.

    :param torch.device device: the device the run computes on.
    :return: flat dict: ``commit, dirty, version_<package>, python, hostname, device_name, cpu_count,
        slurm_job_id, recorded_at``.
    """
    commit, dirty = git_commit()
    info: dict[str, object] = {"commit": commit, "dirty": dirty}
    for package in _PACKAGES:
        try:
            info[f"version_{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[f"version_{package}"] = "absent"
    info.update(
        python=platform.python_version(),
        hostname=socket.gethostname(),
        device_name=device_name(device),
        cpu_count=os.cpu_count(),
        slurm_job_id=os.environ.get("SLURM_JOB_ID", ""),
        recorded_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    return info
