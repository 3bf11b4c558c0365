r"""The unrolled PnP-HQS network: ``n_layers`` half-quadratic-splitting iterations with learned parameters.

Layer :math:`t` (``0 <= t < n_layers``) of the network, with :math:`f(x) = \tfrac12\sum_k\|A_kx-y_k\|^2`,
one shared denoiser :math:`D_\theta` and per-layer noise levels :math:`\sigma_t = e^{s_t}` and penalty
weights :math:`w_t = e^{u_t}` (positive by construction):

.. math::

    \mu_t = w_t\,\frac{\max(\sigma_n, 10^{-3})^2}{\sigma_t^2}, \qquad
    z_{t+1} = \mathrm{CG}_c\big[(A^\top A + \mu_t I)\,z = A^\top y + \mu_t x_t;\ z^{(0)} = x_t\big], \qquad
    x_{t+1} = D_\theta(z_{t+1}, \sigma_t),

from :math:`x_0` = the normalised back-projection :math:`A^\top y \oslash A^\top\mathbf 1` (the start point
of every solver of the images problem). :math:`\mathrm{CG}_c` is ``cg_iterations`` conjugate-gradient steps,
differentiated through (the gradient of what is computed, not of the exact solve). The learnable
parameters are :math:`\theta` (the small DRUNet, initialised from the shipped ``drunet-small-gray`` /
``-color`` weights), :math:`(s_t)` and :math:`(u_t)`, initialised at PnP-HQS's defaults
(:math:`\sigma_t` geometric from 0.1 to 0.02, :math:`w_t = 0.25`): **before training the network is
PnP-HQS with** ``n_layers`` **iterations** (a test checks it), so the training gain is measured against
exactly the solver it starts from.

Design choices:

- **HQS, not PGD.** The data step is an approximate proximal step (a few CG steps on the well-conditioned
  system above) instead of one gradient step. Each CG step is one :math:`A^\top A` (one all-reduce), which
  costs little next to the denoiser, so an HQS layer costs about a PGD layer and does much more for the
  data (measured by ``python -m distinv.training.bench layer``: time per iteration and PSNR of both).
  Both differentiate through plain linear algebra.
- **Not** ``deepinv.unfolded``. deepinv 0.5.0 marks ``unfolded_builder`` / ``BaseUnfold`` as deprecated
  (for ``BaseOptim(unfold=True)``), and either way the whole iteration loop runs inside one ``forward``:
  the runner needs one layer per :meth:`~distinv.solvers.iterations.Solver.step` with the data and prior
  phases timed apart, and training needs a layer as one callable to checkpoint it (reentrantly, see
  :meth:`UnrolledHQS.forward`). Its learnable parameters are raw values (nothing keeps a step or a noise
  level positive). We keep deepinv's physics (``DistributedStackedLinearPhysics``, ``BlurFFT``) and its
  ``DRUNet``, but differentiate :math:`A^\top A` ourselves (below): under autograd deepinv's stacked physics
  records the operators' graph and adds collectives (a flag all-reduce per product, an input-gradient
  all-reduce), where the self-adjoint function stores nothing.

The data term enters only through ``data.normal`` (:math:`A^\top A`, a collective) and ``data.dot`` (the
global inner product). :math:`A^\top A` is wrapped in a self-adjoint autograd function
(:class:`SelfAdjointOperator`): forward :math:`A^\top A x`, backward :math:`A^\top A g` — two collectives,
nothing saved, whatever the layout.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from distinv.solvers.iterations import PhaseTimes, Solver, _Phase, _comm_bytes, _comm_seconds, _synchronize

__all__ = [
    "UnrolledHQS", "SelfAdjointOperator", "unrolled_conjugate_gradient", "denoiser_architecture",
    "architecture_mismatch", "load_unrolled", "save_unrolled", "shipping_state", "available_unrolled",
    "UnrolledSolver", "UNROLLED_DIR",
]

#: Where the shipped unrolled models live: a sub-folder of the denoisers' weights, so that the denoiser
#: registry (:func:`distinv.models.available_denoisers`, which reads every ``weights/*.json``) does not list them.
UNROLLED_DIR = Path(__file__).resolve().parents[1] / "weights" / "unrolled"
#: Format tag of the state dicts and records the training script writes.
ARCHITECTURE_CLASS = "distinv.solvers.unrolled.UnrolledHQS"


def _check_int(name: str, value, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def _check_positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


class SelfAdjointOperator(torch.autograd.Function):
    r"""Autograd of a self-adjoint linear operator :math:`M` (e.g. :math:`A^\top A`) applied by a callable.

    Forward :math:`Mx`, backward :math:`Mg` (as :math:`M^\top = M`): the operator's own graph is never
    recorded, nothing is saved, and collectives inside ``operator`` run once in each direction on every
    rank.

    >>> m = torch.tensor([[2.0, 1.0], [1.0, 3.0]])
    >>> x = torch.ones(2, requires_grad=True)
    >>> SelfAdjointOperator.apply(x, lambda v: m @ v).sum().backward()
    >>> x.grad.tolist()
    [3.0, 4.0]
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, operator: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        ctx.operator = operator
        return operator(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        with torch.no_grad():
            return ctx.operator(grad.contiguous()), None


def unrolled_conjugate_gradient(operator: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, x0: torch.Tensor,
                                iterations: int, dot: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                                ) -> torch.Tensor:
    r"""``iterations`` CG steps on :math:`Mx = b` without in-place updates, so autograd can go through them.

    The same arithmetic as :func:`distinv.solvers.data_term.conjugate_gradient` (inner products in float64,
    the same order of operations): under ``torch.no_grad`` both give the same iterate.

    :param callable operator: :math:`x \mapsto Mx`, symmetric positive definite.
    :param torch.Tensor b: right-hand side.
    :param torch.Tensor x0: start point.
    :param int iterations: CG steps.
    :param callable dot: the global inner product (all-reduced when the vectors are slabs).

    >>> m = torch.diag(torch.tensor([1.0, 2.0, 4.0]))
    >>> from distinv.solvers.data_term import local_dot
    >>> x = unrolled_conjugate_gradient(lambda v: m @ v, torch.tensor([1.0, 2.0, 4.0]), torch.zeros(3), 3, local_dot)
    >>> [round(v, 5) for v in x.tolist()]
    [1.0, 1.0, 1.0]
    """
    x = x0
    r = b - operator(x)
    p = r
    rr = dot(r, r)
    for _ in range(iterations):
        if rr == 0:
            break
        mp = operator(p)
        alpha = rr / dot(p, mp)
        x = x + alpha * p
        r = r - alpha * mp
        rr_new = dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def denoiser_architecture(denoiser: torch.nn.Module) -> dict:
    """The DRUNet's architecture as a plain dict (``in_channels``, ``nc``, ``nb``), read from its layers.

    :param torch.nn.Module denoiser: a deepinv ``DRUNet``.

    >>> from deepinv.models import DRUNet
    >>> denoiser_architecture(DRUNet(1, 1, nc=[8, 16, 32, 64], nb=1, pretrained=None))
    {'class': 'deepinv.models.DRUNet', 'in_channels': 1, 'nc': [8, 16, 32, 64], 'nb': 1}
    """
    from deepinv.models import DRUNet

    if not isinstance(denoiser, DRUNet):
        raise TypeError(f"denoiser must be a deepinv DRUNet, got {type(denoiser).__name__}")
    nc = [denoiser.m_head.out_channels, denoiser.m_down1[-1].out_channels, denoiser.m_down2[-1].out_channels,
          denoiser.m_down3[-1].out_channels]
    return {"class": "deepinv.models.DRUNet", "in_channels": denoiser.m_tail.out_channels, "nc": nc,
            "nb": len(denoiser.m_down1) - 1}


class UnrolledHQS(torch.nn.Module):
    r"""``n_layers`` PnP-HQS iterations with learned :math:`\sigma_t`, :math:`w_t` and one shared denoiser.

    See the module docstring for the maths. A layer is :meth:`data_step` then :meth:`prior_step`; the
    data term and the (tiled) prior are arguments, not members, so the same network runs on any layout.

    :param torch.nn.Module denoiser: a deepinv ``DRUNet`` called ``(x, sigma)``.
    :param int n_layers: layers, ``>= 1``.
    :param int cg_iterations: CG steps of each data step, ``>= 1``.
    :param float sigma_start: :math:`\sigma_0` at initialisation, ``> 0``.
    :param float sigma_end: :math:`\sigma_{n-1}` at initialisation (geometric in between), ``> 0``.
    :param float hqs_weight: :math:`w_t` at initialisation, ``> 0``.

    >>> from deepinv.models import DRUNet
    >>> model = UnrolledHQS(DRUNet(1, 1, nc=[8, 8, 8, 8], nb=1, pretrained=None), n_layers=3)
    >>> [round(s, 4) for s in model.sigmas().tolist()], [round(w, 2) for w in model.weights().tolist()]
    ([0.1, 0.0447, 0.02], [0.25, 0.25, 0.25])
    """

    def __init__(self, denoiser: torch.nn.Module, n_layers: int, cg_iterations: int = 5, sigma_start: float = 0.1,
                 sigma_end: float = 0.02, hqs_weight: float = 0.25):
        super().__init__()
        _check_int("n_layers", n_layers, 1)
        _check_int("cg_iterations", cg_iterations, 1)
        sigma_start, sigma_end = _check_positive("sigma_start", sigma_start), _check_positive("sigma_end", sigma_end)
        hqs_weight = _check_positive("hqs_weight", hqs_weight)
        self.denoiser_arch = denoiser_architecture(denoiser)
        self.denoiser = denoiser
        self.n_layers, self.cg_iterations = n_layers, cg_iterations
        ratio = 1.0 if n_layers == 1 else (sigma_end / sigma_start) ** (1.0 / (n_layers - 1))
        sigmas = torch.tensor([sigma_start * ratio ** t for t in range(n_layers)], dtype=torch.float64)
        self.log_sigma = torch.nn.Parameter(sigmas.log().float())
        self.log_weight = torch.nn.Parameter(torch.full((n_layers,), math.log(hqs_weight)))

    # ------------------------------------------------------------------ parameters

    def sigmas(self) -> torch.Tensor:
        r"""The denoiser strengths :math:`\sigma_t = e^{s_t}`, one per layer."""
        return self.log_sigma.exp()

    def weights(self) -> torch.Tensor:
        r"""The penalty weights :math:`w_t = e^{u_t}`, one per layer."""
        return self.log_weight.exp()

    def penalty(self, t: int, sigma_n: float) -> torch.Tensor:
        r""":math:`\mu_t = w_t \max(\sigma_n, 10^{-3})^2 / \sigma_t^2` (a 0-d tensor)."""
        return self.weights()[t] * max(float(sigma_n), 1e-3) ** 2 / self.sigmas()[t] ** 2

    def scalar_parameters(self) -> list[torch.nn.Parameter]:
        """The per-layer parameters (used identically on every rank, outside the denoiser)."""
        return [self.log_sigma, self.log_weight]

    def architecture(self) -> dict:
        """What a checkpoint must match to be loaded into this network (a plain dict)."""
        return {"class": ARCHITECTURE_CLASS, "n_layers": self.n_layers, "cg_iterations": self.cg_iterations,
                "denoiser": dict(self.denoiser_arch)}

    # ------------------------------------------------------------------ layers

    def data_step(self, t: int, x: torch.Tensor, data, aty: torch.Tensor, sigma_n: float) -> torch.Tensor:
        r""":math:`z_{t+1}`: ``cg_iterations`` CG steps on :math:`(A^\top A + \mu_t I)z = A^\top y + \mu_t x`.

        :param int t: layer index.
        :param torch.Tensor x: :math:`x_t` (the whole image, or this rank's slab).
        :param data: the data term (``normal`` and ``dot``; e.g. a
            :class:`~distinv.solvers.data_term.StackedDataTerm`).
        :param torch.Tensor aty: :math:`A^\top y` in the layout of ``x``.
        :param float sigma_n: noise level of the measurements.
        """
        mu = self.penalty(t, sigma_n).to(x.dtype)

        def system(z: torch.Tensor) -> torch.Tensor:
            return SelfAdjointOperator.apply(z, data.normal) + mu * z

        return unrolled_conjugate_gradient(system, aty + mu * x, x, self.cg_iterations, data.dot)

    def prior_step(self, t: int, z: torch.Tensor, prior: Callable) -> torch.Tensor:
        r""":math:`x_{t+1} = D_\theta(z, \sigma_t)` through ``prior`` (the tiled denoiser around :attr:`denoiser`)."""
        return prior(z, self.sigmas()[t].to(z.dtype))

    def layer(self, t: int, x: torch.Tensor, data, aty: torch.Tensor, sigma_n: float, prior: Callable) -> torch.Tensor:
        """One layer: :meth:`data_step` then :meth:`prior_step`."""
        return self.prior_step(t, self.data_step(t, x, data, aty, sigma_n), prior)

    def forward(self, x0: torch.Tensor, data, aty: torch.Tensor, sigma_n: float, prior: Callable,
                checkpoint_layers: bool = False) -> torch.Tensor:
        r"""All layers from :math:`x_0`.

        :param torch.Tensor x0: the start point.
        :param data: the data term (see :meth:`data_step`).
        :param torch.Tensor aty: :math:`A^\top y`.
        :param float sigma_n: noise level.
        :param callable prior: ``prior(x, sigma)``, the tiled :attr:`denoiser`.
        :param bool checkpoint_layers: keep only each layer's input for the backward pass and recompute the
            layer there (:func:`torch.utils.checkpoint.checkpoint`, reentrant: the recomputation, which runs
            collectives, then starts at the same node of the backward graph on every rank).
        """
        x = x0
        for t in range(self.n_layers):
            if checkpoint_layers and torch.is_grad_enabled():
                if not x.requires_grad:  # a reentrant checkpoint passes gradients only if an input needs one
                    x = x.detach().requires_grad_(True)
                x = torch.utils.checkpoint.checkpoint(self.layer, t, x, data, aty, sigma_n, prior,
                                                      use_reentrant=True, preserve_rng_state=False)
            else:
                x = self.layer(t, x, data, aty, sigma_n, prior)
        return x

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_shipped_denoiser(cls, channels: int = 1, n_layers: int = 8, cg_iterations: int = 5,
                              device: torch.device | str = "cpu", **kwargs) -> "UnrolledHQS":
        """A fresh network whose denoiser is the shipped ``drunet-small-gray`` (``channels=1``) or ``-color``.

        :param int channels: 1 or 3.
        :param int n_layers: layers.
        :param int cg_iterations: CG steps per layer.
        :param torch.device device: where the network lives.
        :param kwargs: ``sigma_start``, ``sigma_end``, ``hqs_weight`` (see the class).
        """
        from distinv.models import load_denoiser

        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (gray) or 3 (color), got {channels!r}")
        denoiser = load_denoiser("drunet-small-gray" if channels == 1 else "drunet-small-color", device=device)
        return cls(denoiser, n_layers, cg_iterations, **kwargs).to(device)

    @classmethod
    def from_architecture(cls, architecture: dict) -> "UnrolledHQS":
        """An untrained network of a recorded architecture (see :meth:`architecture`); load weights into it."""
        from deepinv.models import DRUNet

        if not isinstance(architecture, dict) or architecture.get("class") != ARCHITECTURE_CLASS:
            raise ValueError(f"architecture must be a record of class {ARCHITECTURE_CLASS!r}, got {architecture!r}")
        d = architecture["denoiser"]
        denoiser = DRUNet(d["in_channels"], d["in_channels"], nc=list(d["nc"]), nb=d["nb"], pretrained=None)
        return cls(denoiser, architecture["n_layers"], architecture["cg_iterations"])


def architecture_mismatch(expected: dict, found: dict) -> str | None:
    """A sentence naming the differences between two :meth:`UnrolledHQS.architecture` records, or ``None``.

    >>> a = {"class": "x", "n_layers": 8, "cg_iterations": 5, "denoiser": {"nb": 2}}
    >>> architecture_mismatch(a, dict(a, n_layers=4))
    'n_layers: expected 8, found 4'
    """
    if not isinstance(found, dict):
        return f"no architecture record (found {type(found).__name__})"
    differences = []
    for key in sorted(set(expected) | set(found)):
        if expected.get(key) != found.get(key):
            differences.append(f"{key}: expected {expected.get(key)!r}, found {found.get(key)!r}")
    return "; ".join(differences) or None


def shipping_state(model: UnrolledHQS) -> dict[str, torch.Tensor]:
    r"""The state dict that ships: the denoiser in fp16 (as the shipped denoisers), the per-layer scalars in
    float32 (``2 * n_layers`` numbers; fp16 would move :math:`\sigma_t` by up to 0.1 %).

    :param UnrolledHQS model: the network.
    """
    scalars = {name for name, p in model.named_parameters() if any(p is q for q in model.scalar_parameters())}
    return {name: t.detach().to("cpu", torch.float32 if name in scalars else torch.float16).contiguous()
            for name, t in model.state_dict().items()}


def save_unrolled(model: UnrolledHQS, path: str | os.PathLike, record: dict | None = None, *,
                  overwrite: bool = False) -> dict:
    """Write ``<path>`` (:func:`shipping_state`, atomically) and its record ``<stem>.json``; return the record.

    The record holds ``name`` (the stem), ``file``, ``sha256``, ``size_bytes``, ``dtype`` and
    ``architecture`` (:meth:`UnrolledHQS.architecture`), then the keys of ``record`` (training settings,
    validation table, ...). :func:`load_unrolled` reads both.

    :param UnrolledHQS model: the network.
    :param str path: a ``.pt`` path.
    :param dict record: extra JSON-able entries.
    :param bool overwrite: replace existing files (otherwise ``FileExistsError``).
    """
    from distinv.files import write_atomically
    from distinv.models import sha256_of

    path = Path(path)
    if path.suffix != ".pt":
        raise ValueError(f"path must end in .pt, got {str(path)!r}")
    hint = "pass overwrite=True (--force) to replace it"
    write_atomically(path, lambda tmp: torch.save(shipping_state(model), tmp), overwrite=overwrite, refusal_hint=hint)
    out = {"name": path.stem, "file": path.name, "sha256": sha256_of(path), "size_bytes": path.stat().st_size,
           "dtype": "float16 (denoiser), float32 (per-layer scalars)", "architecture": model.architecture(),
           **(record or {})}
    text = json.dumps(out, indent=2) + "\n"
    write_atomically(path.with_suffix(".json"), lambda tmp: tmp.write_text(text), overwrite=True)
    return out


def available_unrolled(folder: str | os.PathLike | None = None) -> dict[str, dict]:
    """Shipped unrolled models by name: their records (``<name>.json`` in :data:`UNROLLED_DIR`).

    :param str folder: another folder of records (default :data:`UNROLLED_DIR`).
    """
    folder = Path(folder) if folder is not None else UNROLLED_DIR
    if not folder.is_dir():
        return {}
    return {r["name"]: r for r in (json.loads(p.read_text()) for p in sorted(folder.glob("*.json")))}


def load_unrolled(name: str = "auto", channels: int = 1, device: torch.device | str = "cpu",
                  folder: str | os.PathLike | None = None) -> UnrolledHQS:
    """A trained unrolled network by name (shipped) or by path, float32, in eval mode, on ``device``.

    The weights file (fp16 state dict) is checked against the sha256 of its record and read with
    ``torch.load(weights_only=True)``; its architecture must be the record's.

    :param str name: a name of :func:`available_unrolled`, ``"auto"`` (``unrolled-hqs-gray`` for
        ``channels=1``, ``unrolled-hqs-color`` for 3), or the path of a ``.pt`` with its ``.json`` record beside it.
    :param int channels: used by ``"auto"``; otherwise checked against the record.
    :param torch.device device: where the network lives.
    :param str folder: folder of shipped records (default :data:`UNROLLED_DIR`).
    :raises ValueError: an unknown name, a record of another architecture or channel count.
    :raises distinv.models.WeightsHashError: the file's sha256 differs from its record's.
    """
    from distinv.models import _check_hash

    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"name must be a str or a path, got {type(name).__name__}")
    if name == "auto":
        name = "unrolled-hqs-gray" if channels == 1 else "unrolled-hqs-color"
    path = Path(name)
    if path.suffix == ".pt":
        record_path = path.with_suffix(".json")
        if not record_path.is_file():
            raise FileNotFoundError(f"name {str(path)!r}: no record {record_path.name} beside the weights")
        record = json.loads(record_path.read_text())
        weights = path
    else:
        shipped = available_unrolled(folder)
        if name not in shipped:
            raise ValueError(f"unrolled_weights must be one of {sorted(shipped)} or a path to a .pt file, got {name!r}")
        record = shipped[name]
        weights = (Path(folder) if folder is not None else UNROLLED_DIR) / record["file"]
    if not weights.is_file():
        raise FileNotFoundError(f"weights {weights} are missing; run data_scripts/train_unrolled.py")
    if record.get("architecture", {}).get("class") != ARCHITECTURE_CLASS:
        raise ValueError(f"{weights} is not an unrolled network (architecture {record.get('architecture')!r})")
    if record["architecture"]["denoiser"]["in_channels"] != channels:
        raise ValueError(f"{weights} has {record['architecture']['denoiser']['in_channels']} channel(s) but the "
                         f"problem has channels={channels}")
    _check_hash(weights, record["sha256"])
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model = UnrolledHQS.from_architecture(record["architecture"])
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()} if isinstance(state, dict) else {}
    if found != expected:
        differences = [f"{k}: expected {expected.get(k)}, found {found.get(k)}"
                       for k in sorted(set(expected) | set(found)) if expected.get(k) != found.get(k)]
        raise ValueError(f"{weights} holds another architecture than its record: {'; '.join(differences[:4])}")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.eval().to(device)


# ------------------------------------------------------------------ inference in the runner


def _stored_channels_last(network) -> bool:
    """Whether a network's convolution weights are stored channels-last (as ``tiled_prior`` leaves them)."""
    weights = [p for p in network.parameters() if p.ndim == 4] if isinstance(network, torch.nn.Module) else []
    return bool(weights) and all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
                                 for p in weights)


def _swap_network(prior, network: torch.nn.Module):
    """The tiled prior of the runner with ``network`` in place of the denoiser it was built with."""
    for attribute in ("denoiser", "processor"):  # distinv's TiledDenoiser / the whole-image prior, deepinv's
        if isinstance(getattr(prior, attribute, None), torch.nn.Module):
            setattr(prior, attribute, network)
            return prior
    raise TypeError(f"cannot put the unrolled network's denoiser into a prior of type {type(prior).__name__}")


@dataclass
class UnrolledSolver(Solver):
    """The unrolled network run one layer per :meth:`step`, timed like every :class:`Solver`.

    ``sigmas`` are the network's learned :math:`\\sigma_t`; ``config.iterations`` is its layer count.
    Built by :func:`distinv.solvers.make_solver` for ``solver="unrolled"``.
    """

    model: UnrolledHQS | None = None
    _prior: Callable | None = field(default=None, repr=False)

    def __post_init__(self):
        self.device = self.x.device
        self.sigmas = [float(s) for s in self.model.sigmas().detach()]
        if self.aty is None:
            self.aty = self.data.back_projection()
        self._prior = lambda v, sigma: self.prior(v, float(sigma))

    def step(self, t: int) -> PhaseTimes:
        """Layer ``t`` (0-based); returns its times."""
        times = PhaseTimes()
        comm_total0, bytes0 = _comm_seconds(), _comm_bytes()
        _synchronize(self.device)
        start = time.perf_counter()
        with torch.no_grad():
            with _Phase(self.device, "physics") as data_phase:
                z = self.model.data_step(t, self.x, self.data, self.aty, self.sigma_n)
            with _Phase(self.device, "prior") as prior_phase:
                self.x = self.model.prior_step(t, z, self._prior)
        _synchronize(self.device)
        times.t_total = time.perf_counter() - start
        times.t_grad, times.t_prior = data_phase.seconds, prior_phase.seconds
        times.t_comm_data, times.t_comm_prior = data_phase.comm, prior_phase.comm
        times.t_comm = _comm_seconds() - comm_total0
        times.comm_bytes = _comm_bytes() - bytes0
        return times


def make_unrolled_solver(config, data, prior: Callable, x0: torch.Tensor, sigma_n: float,
                         aty: torch.Tensor | None) -> UnrolledSolver:
    """The :class:`UnrolledSolver` of ``config.unrolled_weights``, its denoiser put into the runner's ``prior``.

    :param SolverConfig config: ``solver="unrolled"``; ``iterations`` is replaced by the layer count.
    :param data: the data term.
    :param callable prior: the runner's tiled prior (its network is replaced by the unrolled one's, converted
        to channels-last when the prior's network was).
    :param torch.Tensor x0: start point.
    :param float sigma_n: noise level.
    :param torch.Tensor aty: :math:`A^\\top y` if already computed.
    """
    from distinv.tiling import to_channels_last

    model = load_unrolled(config.unrolled_weights, channels=int(x0.shape[1]), device=x0.device).requires_grad_(False)
    if _stored_channels_last(getattr(prior, "denoiser", getattr(prior, "processor", None))):
        to_channels_last(model.denoiser)
    model.denoiser.to(x0.dtype)
    prior = _swap_network(prior, model.denoiser)
    config = replace(config, iterations=model.n_layers)
    return UnrolledSolver(data=data, prior=prior, config=config, x=x0.clone(), step_size=float("nan"),
                          sigma_n=sigma_n, aty=aty, model=model)
