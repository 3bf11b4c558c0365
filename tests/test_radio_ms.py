"""Reading Measurement Sets written here with python-casacore: Stokes I, weights, flags, channels, per-rank
blocks equal to one read, and clear errors."""

import numpy as np
import pytest

from distinv.radio.ms import (VisibilityBlock, open_measurement_set, read_rows, read_visibilities,
                              rows_for_rank)
from radio_cases import SPEED_OF_LIGHT, write_tiny_ms

FREQS = np.array([1.0e9, 1.2e9, 1.5e9])


def _case(tmp_path, n_rows=7, correlations=("XX", "XY", "YX", "YY"), **kwargs):
    rng = np.random.default_rng(1)
    uvw = rng.normal(0, 100, size=(n_rows, 3))
    shape = (n_rows, FREQS.size, len(correlations))
    data = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    data = data.astype(np.complex64).astype(np.complex128)
    path = write_tiny_ms(tmp_path / "tiny.ms", uvw, data, FREQS, correlations=correlations, **kwargs)
    return path, uvw, data


def test_stokes_i_uvw_in_wavelengths_and_order(tmp_path):
    path, uvw, data = _case(tmp_path)
    info = open_measurement_set(path)
    assert info.correlations == ("XX", "XY", "YX", "YY") and info.stokes_i == "(XX + YY) / 2"
    assert info.n_rows == 7 and info.weight_column == "WEIGHT"
    np.testing.assert_allclose(info.phase_centre_rad, (1.0, -0.5))
    block = read_visibilities(path)
    assert block.n_visibilities == 7 * 3 == block.n_samples
    np.testing.assert_allclose(block.vis, ((data[:, :, 0] + data[:, :, 3]) / 2).reshape(-1))
    expected_uvw = (uvw[:, None, :] * FREQS[None, :, None] / SPEED_OF_LIGHT).reshape(-1, 3)
    np.testing.assert_allclose(block.uvw, expected_uvw, rtol=1e-12)
    np.testing.assert_allclose(block.weight, 2.0)  # w_I = 1 / (1/4 + 1/4) with unit weights


@pytest.mark.parametrize("correlations, rule, expected", [
    (("RR", "RL", "LR", "LL"), "(RR + LL) / 2", lambda d: (d[..., 0] + d[..., 3]) / 2),
    (("I",), "I", lambda d: d[..., 0]),
    (("XX",), "XX (single parallel hand", lambda d: d[..., 0]),
    (("YY", "XX"), "(XX + YY) / 2", lambda d: (d[..., 0] + d[..., 1]) / 2),
])
def test_stokes_i_from_the_correlations_present(tmp_path, correlations, rule, expected):
    path, _, data = _case(tmp_path, correlations=correlations)
    info = open_measurement_set(path)
    assert info.stokes_i.startswith(rule)
    np.testing.assert_allclose(read_visibilities(path).vis, expected(data).reshape(-1))


def test_flags_drop_samples_and_ignore_unused_correlations(tmp_path):
    flag = np.zeros((7, 3, 4), bool)
    flag[1, 2, 0] = True  # XX of row 1, channel 2: dropped
    flag[2, :, 1] = True  # XY only: not used for I, kept
    flag_row = np.zeros(7, bool)
    flag_row[4] = True
    path, _, data = _case(tmp_path, flag=flag, flag_row=flag_row)
    block = read_visibilities(path)
    keep = np.ones((7, 3), bool)
    keep[1, 2] = False
    keep[4] = False
    assert block.n_visibilities == keep.sum() == 21 - 4 and block.n_samples == 21
    np.testing.assert_allclose(block.vis, ((data[:, :, 0] + data[:, :, 3]) / 2)[keep])


def test_weights_inverse_variance_spectrum_first_and_zero_dropped(tmp_path):
    weight = np.ones((7, 4))
    weight[:, 0], weight[:, 3] = 1.0, 3.0
    spectrum = np.ones((7, 3, 4))
    spectrum[:, :, 0] = 2.0
    spectrum[3, 1, 3] = 0.0  # zero weight on YY: that sample goes
    path, _, _ = _case(tmp_path, weight=weight, weight_spectrum=spectrum)
    assert open_measurement_set(path).weight_column == "WEIGHT_SPECTRUM"
    block = read_visibilities(path)
    assert block.n_visibilities == 20
    np.testing.assert_allclose(block.weight, 1 / (0.25 / 2 + 0.25 / 1))  # spectrum: w_XX = 2, w_YY = 1
    from_weight = read_visibilities(path, weight_column="WEIGHT")
    assert from_weight.n_visibilities == 21
    np.testing.assert_allclose(from_weight.weight, 1 / (0.25 / 1 + 0.25 / 3))  # = 3
    np.testing.assert_allclose(read_visibilities(path, weight_column="none").weight, 1.0)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_rank_blocks_join_to_the_one_rank_read(tmp_path, world):
    flag_row = np.zeros(7, bool)
    flag_row[[0, 5]] = True
    path, _, _ = _case(tmp_path, flag_row=flag_row)
    whole = read_visibilities(path)
    info = open_measurement_set(path)
    bounds = [rows_for_rank(info.n_rows, world, rank) for rank in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == 7
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    joined = VisibilityBlock.concatenate([read_rows(info, *b) for b in bounds])
    for name in ("uvw", "vis", "weight"):
        np.testing.assert_array_equal(getattr(joined, name), getattr(whole, name))
    assert joined.rows == (0, 7) and joined.n_samples == whole.n_samples


def test_rows_for_rank_balances_contiguous_blocks():
    sizes = [b - a for a, b in (rows_for_rank(11, 4, r) for r in range(4))]
    assert sizes == [3, 3, 3, 2]
    assert rows_for_rank(5, 5, 4) == (4, 5)


def test_more_ranks_than_rows(tmp_path):
    with pytest.raises(ValueError, match=r"world=8 ranks but the Measurement Set has only n_rows=7 rows.*at most 7"):
        rows_for_rank(7, 8, 0)
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\), got 2"):
        rows_for_rank(7, 2, 2)


def test_not_a_measurement_set(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_measurement_set(tmp_path / "missing.ms")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="is not a Measurement Set: not a casacore table"):
        open_measurement_set(tmp_path / "plain")
    from casacore.tables import makescacoldesc, maketabdesc, table

    table(str(tmp_path / "other.tab"), maketabdesc([makescacoldesc("X", 0.0)]), nrow=2, ack=False).close()
    with pytest.raises(ValueError, match="is not a Measurement Set: it has no SPECTRAL_WINDOW subtable"):
        open_measurement_set(tmp_path / "other.tab")


def test_missing_column_names_the_available_ones(tmp_path):
    path, _, _ = _case(tmp_path, extra_columns=("MODEL_DATA",))
    with pytest.raises(ValueError, match=r"column='CORRECTED_DATA' is not in .*the data columns are DATA, MODEL_DATA"):
        open_measurement_set(path, column="CORRECTED_DATA")
    with pytest.raises(ValueError, match=r"weight_column='WEIGHT_SPECTRUM' is not in .*weight columns are WEIGHT"):
        open_measurement_set(path, weight_column="WEIGHT_SPECTRUM")
    with pytest.raises(ValueError, match=r"weight_column must be one of .*got 'SIGMA'"):
        open_measurement_set(path, weight_column="SIGMA")
    assert read_visibilities(path, column="MODEL_DATA").vis.tolist() == [0j] * 21


def test_all_rows_flagged(tmp_path):
    path, _, _ = _case(tmp_path, flag_row=np.ones(7, bool))
    assert read_rows(open_measurement_set(path), 0, 3).n_visibilities == 0  # one block may be empty
    with pytest.raises(ValueError, match=r"all rows of .* are flagged .* in column 'DATA': no visibility left among "
                                         r"its 7 rows"):
        read_visibilities(path)


def test_no_stokes_i_from_cross_hands_only(tmp_path):
    path, _, _ = _case(tmp_path, correlations=("XY", "YX"))
    with pytest.raises(ValueError, match="cannot form Stokes I .* from the correlations XY, YX"):
        open_measurement_set(path)


def test_bad_row_range(tmp_path):
    path, _, _ = _case(tmp_path)
    with pytest.raises(ValueError, match=r"0 <= start < stop <= 7, got start=3, stop=9"):
        read_rows(path, 3, 9)
