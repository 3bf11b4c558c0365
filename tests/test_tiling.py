"""Tiled denoiser on one process: exact mode == untiled network, blending, alignment, batching, errors."""

import pytest
import torch

from distinv.tiling import TiledDenoiser, TilingConfig
from nets import DownUpNet, ThreeConvNet

SHAPES = {2: (1, 2, 333, 517), 3: (1, 2, 37, 45, 53)}
PATCH = {2: 64, 3: 16}


def _signal(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _net(cls, shape):
    return cls(channels=shape[1], dim=len(shape) - 2).double()


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("cls", [ThreeConvNet, DownUpNet])
def test_exact_mode_equals_untiled_network(cls, dim):
    shape = SHAPES[dim]
    net, x = _net(cls, shape), _signal(shape)
    config = TilingConfig(patch=PATCH[dim], overlap=cls.radius, blend="crop", exact=True, align=cls.align)
    tiled = TiledDenoiser(net, config)
    assert tiled.grid(shape).counts[0] > 1
    torch.testing.assert_close(tiled(x, 0.1), net(x, 0.1), rtol=0, atol=1e-12)


def test_halo_smaller_than_receptive_field_or_misaligned_windows_are_not_exact():
    shape = SHAPES[2]
    x = _signal(shape)
    net = _net(ThreeConvNet, shape)
    short = TiledDenoiser(net, TilingConfig(patch=64, overlap=2, blend="crop", exact=True, align=1))
    assert (short(x, 0.1) - net(x, 0.1)).abs().max() > 1e-3
    net = _net(DownUpNet, shape)  # stride 2: windows must start on even samples
    misaligned = TiledDenoiser(net, TilingConfig(patch=64, overlap=6, blend="crop", exact=True, align=1))
    assert any(start % 2 for start, _ in misaligned.grid(shape).axes[0].windows)
    assert (misaligned(x, 0.1) - net(x, 0.1)).abs().max() > 1e-3


def test_smooth_blending_is_exact_when_ramps_stay_a_receptive_field_away_from_window_edges():
    shape = SHAPES[2]
    net, x = _net(ThreeConvNet, shape), _signal(shape)
    inside = TiledDenoiser(net, TilingConfig(patch=64, overlap=6, ramp=0.5, align=1))  # weights vanish 3 from edges
    torch.testing.assert_close(inside(x, 0.1), net(x, 0.1), rtol=0, atol=1e-12)
    to_edge = TiledDenoiser(net, TilingConfig(patch=64, overlap=6, ramp=1.0, align=1))
    assert (to_edge(x, 0.1) - net(x, 0.1)).abs().max() > 1e-4


class Recorder(torch.nn.Module):
    """A pointwise 'denoiser' that records the shapes it is called with."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, sigma):
        self.calls.append(tuple(x.shape))
        return x * (1 + sigma)


@pytest.mark.parametrize("blend", ["smooth", "crop"])
@pytest.mark.parametrize("shape", [(1, 1, 333, 517), (2, 3, 5, 7), (1, 1, 37, 45, 53), (1, 1, 3, 200)])
def test_weights_are_a_partition_of_unity_and_windows_are_aligned(shape, blend):
    recorder = Recorder()
    tiled = TiledDenoiser(recorder, TilingConfig(patch=32 if len(shape) == 5 else 128, overlap=8, blend=blend,
                                                 max_batch_size=None))
    x = _signal(shape)
    torch.testing.assert_close(tiled(x, 0.5), 1.5 * x, rtol=0, atol=1e-12)
    processed = 0
    for call in recorder.calls:
        assert all(size % 8 == 0 for size in call[2:]), call
        volume = 1
        for size in call[2:]:
            volume *= size
        processed += volume * call[0] // shape[0]
    signal = 1
    for size in shape[2:]:
        signal *= size
    assert processed / signal == pytest.approx(tiled.work_multiplier(shape))


def test_max_batch_size_limits_windows_per_call_without_changing_the_result():
    shape = (2, 2, 150, 130)
    net, x = _net(ThreeConvNet, shape), _signal(shape)
    sigma = torch.tensor([0.1, 0.3], dtype=torch.float64)
    results, calls = {}, {}
    for max_batch_size in (1, 3, None):
        recorder = Recorder()
        tiled = TiledDenoiser(lambda w, s: recorder(w, 0) * 0 + net(w, s),
                              TilingConfig(patch=32, overlap=3, blend="crop", max_batch_size=max_batch_size, align=1))
        results[max_batch_size] = tiled(x, sigma)
        assert max(call[0] for call in recorder.calls) <= shape[0] * (max_batch_size or 100)
        calls[max_batch_size] = len(recorder.calls)
    assert calls[1] > calls[3] > calls[None]
    for value in results.values():
        torch.testing.assert_close(value, net(x, sigma), rtol=0, atol=1e-12)  # per-sample sigma follows its tiles


def test_bfloat16_autocast_and_channels_last():
    shape = (1, 2, 96, 80)
    net = ThreeConvNet(channels=2)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    base = TilingConfig(patch=32, overlap=3, blend="crop", exact=True, align=1)
    reference = net(x, 0.1)
    last = TiledDenoiser(net, TilingConfig(**{**base.__dict__, "channels_last": True}))(x, 0.1)
    torch.testing.assert_close(last, reference, rtol=1e-5, atol=1e-5)
    weights = [p for p in net.parameters() if p.ndim == 4]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
                           for p in weights)  # the network itself runs channels-last, not only its input
    low = TiledDenoiser(net, TilingConfig(**{**base.__dict__, "autocast_dtype": torch.bfloat16}))(x, 0.1)
    assert low.dtype == torch.float32
    error = (low - reference).abs().max().item()
    assert 0 < error < 0.05 * reference.abs().max().item()


def test_channels_last_3d_network():
    shape = (1, 2, 21, 18, 19)
    net = ThreeConvNet(channels=2, dim=3)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(4))
    reference = net(x, 0.1)
    config = TilingConfig(patch=8, overlap=3, blend="crop", exact=True, align=1, channels_last=True)
    torch.testing.assert_close(TiledDenoiser(net, config)(x, 0.1), reference, rtol=1e-5, atol=1e-5)
    weights = [p for p in net.parameters() if p.ndim == 5]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in weights)


@pytest.mark.parametrize("blend, exact", [("crop", True), ("smooth", False)])
def test_backward_matches_single_process_gradient(blend, exact):
    shape = (1, 2, 70, 58)
    net = _net(ThreeConvNet, shape)
    x = _signal(shape).requires_grad_(True)
    probe = _signal(shape, 9)
    tiled = TiledDenoiser(net, TilingConfig(patch=24, overlap=6, blend=blend, exact=exact, align=1))
    (tiled(x, 0.2) * probe).sum().backward()
    tiled_grads = [x.grad.clone()] + [p.grad.clone() for p in net.parameters()]
    x.grad = None
    net.zero_grad()
    (net(x, 0.2) * probe).sum().backward()
    untiled_grads = [x.grad] + [p.grad for p in net.parameters()]
    for a, b in zip(tiled_grads, untiled_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"overlap must be smaller than patch \(axis 0\): got overlap=64 >= patch=64"):
        TilingConfig(patch=64, overlap=64)
    with pytest.raises(ValueError, match="patch must be >= 1, got 0"):
        TilingConfig(patch=0)
    with pytest.raises(ValueError, match=r"overlap must be >= 0, got \(4, -1\)"):
        TilingConfig(patch=(32, 32), overlap=(4, -1))
    with pytest.raises(ValueError, match="exact=True needs blend='crop'"):
        TilingConfig(exact=True)
    with pytest.raises(ValueError, match="blend must be one of"):
        TilingConfig(blend="average")
    with pytest.raises(ValueError, match=r"schedule must be one of \('static', 'dynamic'\), got 'greedy'"):
        TilingConfig(schedule="greedy")
    with pytest.raises(ValueError, match="schedule='dynamic' needs layout='replicated'"):
        TilingConfig(schedule="dynamic", layout="sharded")
    with pytest.raises(ValueError, match="layout must be one of"):
        TilingConfig(layout="split")
    with pytest.raises(ValueError, match=r"ramp must be a number in \(0, 1\], got 0"):
        TilingConfig(ramp=0)
    with pytest.raises(TypeError, match="config must be a TilingConfig"):
        TiledDenoiser(Recorder(), {"patch": 64})
    tiled = TiledDenoiser(Recorder(), TilingConfig(patch=(32, 32), overlap=4))
    with pytest.raises(ValueError, match=r"x must be \(B, C, H, W\) or \(B, C, D, H, W\), got a 3-D tensor"):
        tiled(torch.zeros(1, 8, 8), 0.1)
    with pytest.raises(ValueError, match="patch has 2 values but the signal has 3 spatial axes"):
        tiled(torch.zeros(1, 1, 8, 8, 8), 0.1)
    with pytest.raises(ValueError, match=r"one value per batch element \(2\), got shape \(3,\)"):
        tiled(torch.zeros(2, 1, 8, 8), torch.ones(3))


def test_stacked_rows_cut_and_paste_across_pieces():
    from distinv.tiling.windows import StackedRows

    full = torch.arange(2 * 9 * 4, dtype=torch.float64).view(1, 2, 9, 4)
    pieces = StackedRows((full[:, :, 0:2].clone(), full[:, :, 2:7].clone(), full[:, :, 7:9].clone()), first=10)
    torch.testing.assert_close(pieces.cut(11, 18, (slice(1, 3),)), full[:, :, 1:8, 1:3], rtol=0, atol=0)
    pieces.paste(11, 18, (slice(1, 3),), torch.ones(1, 2, 7, 2, dtype=torch.float64), add=True)
    expected = full.clone()
    expected[:, :, 1:8, 1:3] += 1
    torch.testing.assert_close(torch.cat(pieces.parts, dim=2), expected, rtol=0, atol=0)
    with pytest.raises(IndexError, match=r"rows \[9, 12\) are not all held: held rows are \[10, 19\)"):
        pieces.cut(9, 12, ())
