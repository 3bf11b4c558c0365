"""The multi-frame deblurring problem: shapes, adjointness, rank-independent data, bad input."""

import pytest
import torch
from deepinv.distributed import DistributedContext

import distinv
from distinv.problems.images import (
    DeblurringConfig, distributed_problem, ground_truth, make_physics, measure, physics_factory,
)

SMALL = dict(size=40, K=3, sigma_n=0.02, blur_sigma=(1.5, 0.5))
VARIANTS = [
    dict(SMALL),
    dict(SMALL, downsample=2),
    dict(SMALL, padding="valid", channels=1),
    dict(SMALL, padding="reflect", use_fft=False),
]


@pytest.mark.parametrize("kwargs", VARIANTS, ids=lambda k: f"{k.get('padding', 'circular')}-s{k.get('downsample', 1)}")
def test_factory_shapes_match_config(kwargs):
    cfg = DeblurringConfig(**kwargs)
    x = ground_truth(cfg)
    assert x.shape == (1, cfg.channels, cfg.size, cfg.size)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    for k in range(cfg.K):
        physics = physics_factory(k, torch.device("cpu"), {"problem": cfg.to_dict()})
        y = physics.A(x)
        assert y.shape == (1, cfg.channels, cfg.measurement_size, cfg.measurement_size)
        assert physics.A_adjoint(y).shape == x.shape


@pytest.mark.parametrize("kwargs", VARIANTS, ids=lambda k: f"{k.get('padding', 'circular')}-s{k.get('downsample', 1)}")
def test_operators_are_adjoint(kwargs):
    cfg = DeblurringConfig(**kwargs)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(1, cfg.channels, cfg.size, cfg.size, generator=generator, dtype=torch.float64)
    for k in range(cfg.K):
        physics = make_physics(k, cfg).to(torch.float64)
        y = torch.randn(physics.A(x).shape, generator=generator, dtype=torch.float64)
        lhs = torch.sum(physics.A(x) * y)
        rhs = torch.sum(x * physics.A_adjoint(y))
        assert torch.allclose(lhs, rhs, rtol=1e-9), (lhs.item(), rhs.item())


def test_frames_differ_by_angle_and_kernels_sum_to_one():
    cfg = DeblurringConfig(**SMALL)
    kernels = [cfg.kernel(k) for k in range(cfg.K)]
    for kernel in kernels:
        assert kernel.shape[-1] == cfg.kernel_size
        assert torch.isclose(kernel.sum(), torch.tensor(1.0))
    assert not torch.allclose(kernels[0], kernels[1])


def test_noise_level_and_seed():
    cfg = DeblurringConfig(**dict(SMALL, sigma_n=0.1))
    x = ground_truth(cfg)
    physics = make_physics(0, cfg)
    residual = measure(0, x, physics, cfg) - physics.A(x)
    assert abs(residual.std().item() - 0.1) < 0.01
    other_frame = measure(1, x, physics, cfg) - physics.A(x)
    assert not torch.allclose(residual, other_frame)
    other_seed = DeblurringConfig(**dict(SMALL, sigma_n=0.1, seed=5))
    assert not torch.allclose(residual, measure(0, x, physics, other_seed) - physics.A(x))


def _rank_measurements(problem: dict) -> list:
    cfg = DeblurringConfig(**problem)
    with DistributedContext(device_mode="cpu") as ctx:
        x = ground_truth(cfg)
        physics, y = distributed_problem(cfg, ctx, x)
        from distinv.distributed import comm

        gathered = [None] * ctx.world_size
        comm.all_gather_object(gathered, {k: t for k, t in enumerate(y) if t is not None}, site="test.gather")
    return gathered


@pytest.mark.parametrize("nprocs", [2, 3])
def test_distributed_measurements_equal_single_process(nprocs):
    cfg = DeblurringConfig(**SMALL)
    x = ground_truth(cfg)
    reference = [measure(k, x, make_physics(k, cfg), cfg) for k in range(cfg.K)]
    per_rank = distinv.launch(_rank_measurements, cfg.to_dict(), nprocs=nprocs, timeout=120)
    owners = {k: rank for rank, frames in enumerate(per_rank) for k in frames}
    assert sorted(owners) == list(range(cfg.K))
    assert len(set(owners.values())) == min(nprocs, cfg.K)
    for rank, frames in enumerate(per_rank):
        for k, y in frames.items():
            assert torch.equal(y, reference[k])


def test_upsampled_ground_truth_and_gray():
    cfg = DeblurringConfig(size=1024, channels=1, image="camera")
    x = ground_truth(cfg)
    assert x.shape == (1, 1, 1024, 1024)


@pytest.mark.parametrize("kwargs, message", [
    (dict(size=20), r"size must be larger than the blur kernel \(23 pixels"),
    (dict(size=9000), r"size must be an integer in \[8, 8192\], got 9000"),
    (dict(K=0), r"K must be an integer >= 1, got 0"),
    (dict(sigma_n=-0.1), r"sigma_n must be a number >= 0, got -0.1"),
    (dict(blur_sigma=(1.0,)), r"blur_sigma must be two numbers > 0"),
    (dict(downsample=3), r"downsample must be 1 or 2, got 3"),
    (dict(channels=2), r"channels must be 1 \(gray\) or 3 \(color\), got 2"),
    (dict(padding="zeros"), r"padding must be one of .*got 'zeros'"),
    (dict(image="no_such_image"), r"image must be one of .*got 'no_such_image'"),
])
def test_bad_input_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeblurringConfig(**kwargs)


def test_bad_types_and_factory_kwargs():
    with pytest.raises(TypeError, match=r"K must be an integer, got 2.5"):
        DeblurringConfig(K=2.5)
    with pytest.raises(ValueError, match=r"factory_kwargs must hold the key 'problem'"):
        physics_factory(0, torch.device("cpu"), None)
    with pytest.raises(ValueError, match=r"index must be an integer in \[0, 2\], got 3"):
        DeblurringConfig(**SMALL).kernel(3)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("downsample", [1, 2])
def test_circular_fft_operator_equals_deepinv_blur(channels, downsample):
    """The circular case uses BlurFFT (kernel transform kept): the same operator as Blur(padding='circular')."""
    from deepinv.physics import Blur, BlurFFT

    config = DeblurringConfig(size=48, K=3, channels=channels, downsample=downsample, blur_sigma=(2.0, 0.6))
    for k in range(config.K):
        fast = make_physics(k, config)
        blur = fast if downsample == 1 else fast.physics_list[0]  # applied first
        assert isinstance(blur, BlurFFT)
        reference = Blur(filter=config.kernel(k), padding="circular", use_fft=True)
        if downsample > 1:
            reference = fast.physics_list[-1] * reference
        x = torch.rand(2, channels, 48, 48, generator=torch.Generator().manual_seed(k))
        y = fast.A(x)
        assert torch.allclose(y, reference.A(x), atol=1e-6)
        assert torch.allclose(fast.A_adjoint(y), reference.A_adjoint(y), atol=1e-6)
