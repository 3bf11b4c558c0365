"""The unrolled network: before training it is PnP-HQS; its CG and data-term autograd are the right maths;
it runs in the runner like every solver (same result on 1 and 2 ranks); weights are checked and read with
``weights_only=True``; bad input is named."""

import json
import pickle

import pytest
import torch
from deepinv.models import DRUNet

import distinv
from distinv.models import WeightsHashError
from distinv.solvers import SolverConfig, run_reconstruction, split_config
from distinv.solvers.data_term import conjugate_gradient, local_dot
from distinv.solvers.unrolled import (
    SelfAdjointOperator, UnrolledHQS, available_unrolled, load_unrolled, save_unrolled, unrolled_conjugate_gradient,
)

SMALL = dict(size=64, K=3, sigma_n=0.02, blur_sigma=[1.5, 0.5], patch=32, overlap=8, progress=False, pinv_iterations=0)


def _tiny(n_layers=2):
    torch.manual_seed(0)
    return UnrolledHQS(DRUNet(1, 1, nc=[8, 8, 8, 8], nb=1, pretrained=None), n_layers=n_layers)


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """A 3-layer network straight from the shipped denoiser, saved as a shipped network is."""
    path = tmp_path_factory.mktemp("unrolled") / "untrained.pt"
    save_unrolled(UnrolledHQS.from_shipped_denoiser(1, n_layers=3), path)
    return path


def test_untrained_network_is_pnp_hqs_in_the_runner(untrained):
    hqs = distinv.launch(run_reconstruction, dict(SMALL, solver="pnp-hqs", iterations=3), nprocs=1, timeout=120)
    # iterations=12 is replaced by the network's layer count
    unrolled = distinv.launch(run_reconstruction, dict(SMALL, solver="unrolled", unrolled_weights=str(untrained),
                                                       iterations=12), nprocs=1, timeout=120)
    assert unrolled["config"]["iterations"] == 3 and len(unrolled["history"]) == 3
    for a, b in zip(hqs["history"], unrolled["history"]):
        assert b["sigma"] == pytest.approx(a["sigma"], rel=1e-6)
        assert b["psnr"] == pytest.approx(a["psnr"], abs=1e-3)
        assert b["t_grad"] > 0 and b["t_prior"] > 0 and b["t_grad"] + b["t_prior"] <= b["t_total"] + 1e-6
    torch.testing.assert_close(unrolled["x_hat_preview"], hqs["x_hat_preview"], rtol=0, atol=1e-4)
    two = distinv.launch(run_reconstruction, dict(SMALL, solver="unrolled", unrolled_weights=str(untrained)),
                         nprocs=2, timeout=120)
    torch.testing.assert_close(two["x_hat_preview"], unrolled["x_hat_preview"], rtol=0, atol=1e-5)
    assert two["final"]["nprocs"] == 2 and all(row["t_comm_prior"] > 0 for row in two["history"])


def test_unrolled_cg_is_the_in_place_cg():
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(5, 5, generator=generator)
    m = q @ q.T + torch.eye(5)
    b, x0 = torch.randn(5, generator=generator), torch.randn(5, generator=generator)
    expected = conjugate_gradient(lambda v: m @ v, b, x0, 3)
    assert torch.equal(unrolled_conjugate_gradient(lambda v: m @ v, b, x0, 3, local_dot), expected)


def test_gradient_through_cg_is_the_gradient_of_the_solve():
    # n CG steps solve an n x n system exactly, so their gradient is that of x = (M + mu I)^-1 (b + mu v)
    generator = torch.Generator().manual_seed(1)
    q = torch.randn(4, 4, generator=generator, dtype=torch.float64)
    m = q @ q.T
    b = torch.randn(4, generator=generator, dtype=torch.float64)
    v = torch.randn(4, generator=generator, dtype=torch.float64, requires_grad=True)
    mu = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    probe = torch.randn(4, generator=generator, dtype=torch.float64)
    x = unrolled_conjugate_gradient(lambda z: SelfAdjointOperator.apply(z, lambda w: m @ w) + mu * z, b + mu * v, v,
                                    4, local_dot)
    grad_v, grad_mu = torch.autograd.grad((x * probe).sum(), (v, mu))
    exact = torch.linalg.solve(m + mu * torch.eye(4, dtype=torch.float64), b + mu * v)
    want_v, want_mu = torch.autograd.grad((exact * probe).sum(), (v, mu))
    torch.testing.assert_close(grad_v, want_v, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(grad_mu, want_mu, rtol=1e-9, atol=1e-9)


def test_self_adjoint_operator_passes_gradcheck():
    q = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    m = q + q.T
    x = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: SelfAdjointOperator.apply(v, lambda w: m @ w), (x,))


def test_parameters_stay_positive_and_start_at_pnp_hqs():
    model = _tiny(4)
    with torch.no_grad():
        model.log_sigma.fill_(-50.0)
        model.log_weight.fill_(-50.0)
    assert bool((model.sigmas() > 0).all()) and bool((model.weights() > 0).all())
    fresh = _tiny(4)
    torch.testing.assert_close(fresh.sigmas().double(), torch.tensor(SolverConfig().sigmas(4), dtype=torch.float64),
                               rtol=1e-6, atol=0)
    assert fresh.penalty(0, 0.01).item() == pytest.approx(0.25 * 0.01 ** 2 / 0.1 ** 2, rel=1e-6)


def test_saved_network_round_trips_and_weights_are_checked(tmp_path):
    model = _tiny(2)
    record = save_unrolled(model, tmp_path / "net.pt", {"note": "test"})
    assert record["architecture"]["n_layers"] == 2 and record["note"] == "test"
    loaded = load_unrolled(str(tmp_path / "net.pt"))
    for name, value in model.state_dict().items():
        rounded = value.half().float() if name.startswith("denoiser.") else value
        assert torch.equal(loaded.state_dict()[name], rounded), name
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        save_unrolled(model, tmp_path / "net.pt")
    (tmp_path / "net.pt").write_bytes((tmp_path / "net.pt").read_bytes() + b"x")
    with pytest.raises(WeightsHashError, match="sha256 of .*net.pt is"):
        load_unrolled(str(tmp_path / "net.pt"))


def test_weights_are_read_with_weights_only(tmp_path):
    # a pickle that would run code on load: refused although its sha256 matches its record
    path = tmp_path / "evil.pt"
    save_unrolled(_tiny(2), path)
    path.write_bytes(pickle.dumps(print, protocol=2))
    from distinv.models import sha256_of

    record = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps(dict(record, sha256=sha256_of(path))))
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_unrolled(str(path))


def test_network_of_another_architecture_is_refused(tmp_path):
    save_unrolled(_tiny(2), tmp_path / "net.pt")
    record = json.loads((tmp_path / "net.json").read_text())
    (tmp_path / "net.json").write_text(json.dumps(dict(record, architecture=dict(record["architecture"], n_layers=3))))
    with pytest.raises(ValueError, match=r"net.pt holds another architecture than its record: .*log_sigma"):
        load_unrolled(str(tmp_path / "net.pt"))
    (tmp_path / "net.json").write_text(json.dumps(dict(record, architecture={"class": "deepinv.models.DRUNet"})))
    with pytest.raises(ValueError, match=r"net.pt is not an unrolled network"):
        load_unrolled(str(tmp_path / "net.pt"))
    (tmp_path / "net.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"net.pt has 1 channel\(s\) but the problem has channels=3"):
        load_unrolled(str(tmp_path / "net.pt"), channels=3)


def test_shipped_network_is_small_and_loads():
    shipped = available_unrolled()
    assert "unrolled-hqs-gray" in shipped
    record = shipped["unrolled-hqs-gray"]
    assert record["size_bytes"] <= 10 * 10 ** 6 and record["architecture"]["n_layers"] <= 8
    model = load_unrolled("auto", channels=1)
    assert model.n_layers == record["architecture"]["n_layers"]
    assert [round(s, 6) for s in model.sigmas().tolist()] == [round(s, 6) for s in record["sigmas"]]
    from distinv.models import WEIGHTS_DIR

    card = (WEIGHTS_DIR / "MODEL_CARD.md").read_text()  # the card describes these weights, not earlier ones
    assert "## unrolled-hqs-gray\n" in card and record["sha256"] in card


@pytest.mark.parametrize("call, error, message", [
    (lambda: _tiny(0), ValueError, r"n_layers must be an integer >= 1, got 0"),
    (lambda: UnrolledHQS(DRUNet(1, 1, nc=[8, 8, 8, 8], nb=1, pretrained=None), 2, cg_iterations=0), ValueError,
     r"cg_iterations must be an integer >= 1, got 0"),
    (lambda: UnrolledHQS(DRUNet(1, 1, nc=[8, 8, 8, 8], nb=1, pretrained=None), 2, sigma_start=-0.1), ValueError,
     r"sigma_start must be a finite number > 0, got -0.1"),
    (lambda: UnrolledHQS(torch.nn.Identity(), 2), TypeError, r"denoiser must be a deepinv DRUNet, got Identity"),
    (lambda: load_unrolled("unrolled-nonexistent"), ValueError,
     r"unrolled_weights must be one of \[.*\] or a path to a \.pt file, got 'unrolled-nonexistent'"),
    (lambda: split_config({"solver": "unrolled", "unrolled_weights": ""}), ValueError,
     r"unrolled_weights must be a name, 'auto' or a path, got ''"),
])
def test_bad_input_is_named(call, error, message):
    with pytest.raises(error, match=message):
        call()
