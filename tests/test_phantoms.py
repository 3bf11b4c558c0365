"""distinv.tomography.phantoms: exact z-slabs, seeds, sampling, texture, Shepp–Logan, seed policy."""

import numpy as np
import pytest
import torch

from distinv.tomography import phantoms
from distinv.tomography.phantoms import (
    PRIOR_TRAINING_SEEDS,
    PRIOR_VALIDATION_SEEDS,
    check_phantom_seed,
    phantom,
    shepp_logan_phantom,
    textured_phantom,
    textured_phantom_slice,
)

SIZE = 40  # two z-blocks of BLOCK_SLICES = 32


@pytest.fixture(scope="module")
def volume() -> torch.Tensor:
    return textured_phantom(SIZE, seed=7)


@pytest.mark.parametrize("z_range", [(0, 1), (5, 37), (31, 33), (32, 40), (39, 40), (0, SIZE)])
def test_z_range_equals_the_slices_of_the_whole_volume_bit_for_bit(volume, z_range):
    z0, z1 = z_range
    slab = textured_phantom(SIZE, seed=7, z_range=z_range)
    assert slab.shape == (z1 - z0, SIZE, SIZE)
    assert torch.equal(slab, volume[z0:z1])


def test_slabs_of_ranks_with_other_thread_counts_reassemble_the_volume(volume):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        slabs = [textured_phantom(SIZE, seed=7, z_range=r) for r in ((0, 13), (13, 27), (27, SIZE))]
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(torch.cat(slabs), volume)


def test_same_seed_repeats_and_two_seeds_differ(volume):
    assert torch.equal(textured_phantom(SIZE, seed=7), volume)
    other = textured_phantom(SIZE, seed=8)
    assert (other - volume).abs().mean() > 0.02


def test_values_lie_in_unit_interval_with_air_outside_and_bright_structures(volume):
    assert volume.dtype == torch.float32
    assert volume.min() == 0 and volume.max() <= 1
    assert volume[0, 0, 0] == 0 and volume[SIZE // 2, SIZE // 2, 0] == 0  # corner, edge: air
    assert volume.max() > 0.8  # shell / inserts
    assert 0.1 < volume[volume > 0].median() < 0.6  # mostly soft tissue


def test_sizes_differ_only_by_sampling():
    # voxel i of N = 20 sits at the coordinate of voxel 3 i + 1 of N = 60
    coarse = textured_phantom(20, seed=3)
    fine = textured_phantom(60, seed=3)[1::3, 1::3, 1::3]
    diff = (fine - coarse).abs()
    assert (diff > 1e-5).float().mean() < 0.005  # a boundary voxel may flip (coordinate rounding)
    assert diff.median() == 0


def test_textured_is_not_piecewise_constant_unlike_shepp_logan():
    def equal_neighbours(x: torch.Tensor) -> float:
        inside = (x[:, :, 1:] > 0) & (x[:, :, :-1] > 0)
        return float((x[:, :, 1:] == x[:, :, :-1])[inside].float().mean())

    assert equal_neighbours(textured_phantom(48, seed=1)) < 0.05
    assert equal_neighbours(shepp_logan_phantom(48)) > 0.8


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_a_slice_computed_alone_equals_the_volumes_slice(volume, axis):
    index = 17
    alone = textured_phantom_slice(SIZE, seed=7, axis=axis, index=index)
    expected = volume.select(axis, index)
    assert alone.shape == expected.shape
    torch.testing.assert_close(alone, expected, rtol=0, atol=1e-6)


def test_dtype_is_honoured(volume):
    x = textured_phantom(SIZE, seed=7, z_range=(3, 5), dtype=torch.float64)
    assert x.dtype == torch.float64
    torch.testing.assert_close(x, volume[3:5].double(), rtol=0, atol=0)


def test_shepp_logan_is_astras_rescaled_and_sliced():
    import astra

    full = shepp_logan_phantom(32)
    data_id, reference = astra.data3d.shepp_logan(astra.create_vol_geom(32, 32, 32), modified=True)
    astra.data3d.delete(data_id)
    assert full.min() == 0 and full.max() == 1
    expected = (reference - reference.min()) / (reference.max() - reference.min())
    np.testing.assert_allclose(full.numpy(), expected, rtol=0, atol=1e-7)
    assert torch.equal(shepp_logan_phantom(32, z_range=(10, 20)), full[10:20])


def test_phantom_dispatches_by_kind(volume):
    assert torch.equal(phantom("textured", SIZE, seed=7, z_range=(2, 4)), volume[2:4])
    assert torch.equal(phantom("shepp-logan", 16), shepp_logan_phantom(16))
    assert phantoms.PHANTOMS == ("textured", "shepp-logan")
    with pytest.raises(ValueError, match=r"kind must be one of \('textured', 'shepp-logan'\), got 'ct'"):
        phantom("ct", 16)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"size": 15}, ValueError, r"size must be an integer in \[16, 2048\], got 15"),
        ({"size": 4096}, ValueError, r"size must be an integer in \[16, 2048\], got 4096"),
        ({"size": 32.0}, TypeError, r"size must be an integer, got 32.0 \(float\)"),
        ({"seed": -1}, ValueError, "seed must be an integer >= 0, got -1"),
        ({"z_range": (5, 5)}, ValueError, r"z_range must satisfy 0 <= z0 < z1 <= size=32, got \(5, 5\)"),
        ({"z_range": (0, 33)}, ValueError, r"z_range must satisfy 0 <= z0 < z1 <= size=32, got \(0, 33\)"),
        ({"z_range": (0.0, 3)}, TypeError, r"z_range must be None or two integers \(z0, z1\), got"),
        ({"dtype": torch.int32}, TypeError, "dtype must be a floating torch.dtype, got torch.int32"),
    ],
)
def test_textured_phantom_refuses_bad_input(kwargs, error, message):
    arguments = {"size": 32, "seed": 0, **kwargs}
    with pytest.raises(error, match=message):
        textured_phantom(**arguments)


def test_slice_refuses_bad_axis_and_index():
    with pytest.raises(ValueError, match=r"axis must be 0 \(axial\), 1 \(coronal\) or 2 \(sagittal\), got 3"):
        textured_phantom_slice(16, 0, axis=3, index=0)
    with pytest.raises(ValueError, match=r"index must be an integer in \[0, 15\], got 16"):
        textured_phantom_slice(16, 0, axis=0, index=16)


def test_reserved_seed_ranges_are_large_and_disjoint():
    assert len(PRIOR_TRAINING_SEEDS) >= 100_000 and len(PRIOR_VALIDATION_SEEDS) >= 10_000
    assert not set(range(PRIOR_TRAINING_SEEDS.start, PRIOR_TRAINING_SEEDS.stop)) & set(
        range(PRIOR_VALIDATION_SEEDS.start, PRIOR_VALIDATION_SEEDS.stop))


@pytest.mark.parametrize("seed", [0, 12345, PRIOR_TRAINING_SEEDS.start - 1, PRIOR_VALIDATION_SEEDS.stop])
def test_check_phantom_seed_accepts_free_seeds(seed):
    assert check_phantom_seed(seed) == seed


@pytest.mark.parametrize(
    "seed, range_name",
    [
        (PRIOR_TRAINING_SEEDS.start, "PRIOR_TRAINING_SEEDS"),
        (PRIOR_TRAINING_SEEDS.stop - 1, "PRIOR_TRAINING_SEEDS"),
        (PRIOR_VALIDATION_SEEDS.start, "PRIOR_VALIDATION_SEEDS"),
        (PRIOR_VALIDATION_SEEDS.stop - 1, "PRIOR_VALIDATION_SEEDS"),
    ],
)
def test_check_phantom_seed_refuses_reserved_seeds_naming_parameter_and_range(seed, range_name):
    reserved = getattr(phantoms, range_name)
    message = (rf"phantom_seed={seed} lies in {range_name} = range\({reserved.start}, {reserved.stop}\), "
               r"reserved for the CT prior's (training|validation) phantoms")
    with pytest.raises(ValueError, match=message):
        check_phantom_seed(seed, name="phantom_seed")


def test_check_phantom_seed_refuses_negative_and_non_integer_seeds():
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -3"):
        check_phantom_seed(-3)
    with pytest.raises(TypeError, match=r"seed must be an integer, got True \(bool\)"):
        check_phantom_seed(True)
