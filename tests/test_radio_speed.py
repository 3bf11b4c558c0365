"""The backends' benchmark on a tiny case: what it reports, and that the backends agree."""

import pytest

from distinv.radio.speed import main, measure_backends


def test_measure_backends_reports_times_ratios_and_agreement():
    result = measure_backends(npix=32, n_visibilities=600, repeats=1, threads=1)
    assert (result["npix"], result["n_visibilities"], result["threads"], result["repeats"]) == (32, 600, 1, 1)
    for backend in ("finufft", "deepinv"):
        assert result[backend]["A_s"] > 0 and result[backend]["A_adjoint_s"] > 0
    for op in ("A", "A_adjoint"):
        ratio = result["speedup_finufft_over_deepinv"][op]
        assert ratio == pytest.approx(result["deepinv"][f"{op}_s"] / result["finufft"][f"{op}_s"])
        assert result["relative_difference"][op] < 3e-3  # torchkbnufft's own accuracy


def test_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["--vis", "1.5"])
    assert "--vis must be a whole number >= 1, got 1.5" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"repeats must be an integer >= 1, got 0"):
        measure_backends(16, 10, repeats=0)
