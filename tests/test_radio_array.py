"""The shipped MeerKAT layout: 64 dishes, baselines from 29 m to 7.7 km, its reference, and the file format."""

import numpy as np
import pytest

from distinv.radio.array import ARRAYS, load_array, read_array_csv


def test_meerkat_has_64_dishes_and_its_baseline_range():
    meerkat = load_array("meerkat")
    assert meerkat.n_antennas == 64 and meerkat.names[0] == "m000" and meerkat.names[-1] == "m063"
    assert meerkat.n_baselines == 2016 == len(meerkat.baselines())
    lengths = meerkat.baseline_lengths()
    assert 29.0 < lengths.min() < 29.5 and 7690 < lengths.max() < 7710
    assert np.all(meerkat.diameters == 13.5)
    assert (meerkat.latitude_deg, meerkat.longitude_deg, meerkat.altitude_m) == pytest.approx(
        (-30.7111, 21.4438, 1086.6), abs=1e-3)
    # the dense core: 44 of the dishes within 1 km of the reference, the rest out to 8 km of baseline
    assert int((np.hypot(meerkat.enu[:, 0], meerkat.enu[:, 1]) < 1000).sum()) == 44


def test_baselines_are_q_minus_p():
    meerkat = load_array()
    pairs = meerkat.antenna_pairs()
    assert np.all(pairs[:, 0] < pairs[:, 1])
    np.testing.assert_array_equal(meerkat.baselines()[5], meerkat.enu[pairs[5, 1]] - meerkat.enu[pairs[5, 0]])


def test_file_header_names_source_and_licence():
    header = "\n".join(line for line in ARRAYS["meerkat"].read_text().splitlines() if line.startswith("#"))
    for needed in ("Source:", "ska-sa/astrokat", "BSD 2-Clause License", "Copyright (c) 2018, ska-sa"):
        assert needed in header


def test_subset_and_errors(tmp_path):
    assert load_array().subset(5).n_baselines == 10
    with pytest.raises(ValueError, match=r"n_antennas must be between 2 and 64, got 65"):
        load_array().subset(65)
    with pytest.raises(ValueError, match=r"name must be one of \['meerkat'\], got 'vla'"):
        load_array("vla")
    bad = tmp_path / "bad.csv"
    bad.write_text("# latitude_deg: 1\n# longitude_deg: 2\nname,east_m,north_m,up_m,diameter_m\na,0,0,0,1\nb,1,0,0,1\n")
    with pytest.raises(ValueError, match="header comments lack altitude_m"):
        read_array_csv(bad)
    bad.write_text("# latitude_deg: 1\n# longitude_deg: 2\n# altitude_m: 3\nname,x,y,z,d\na,0,0,0,1\n")
    with pytest.raises(ValueError, match="the column header must be name,east_m,north_m,up_m,diameter_m"):
        read_array_csv(bad)
