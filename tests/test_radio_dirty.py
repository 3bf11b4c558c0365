"""The dirty image of an MS: the source on its pixel with its flux, 3 ranks equal to 1, the command
line, and clear errors (aliasing, flags, ranks, paths, columns, overwriting)."""

import json

import numpy as np
import pytest

from distinv.radio.dirty import DirtyImageConfig, dirty_image, main
from radio_cases import dirty_and_aliasing_rank, point_source_ms

NPIX, CELL, FLUX, OFFSET = 48, 2.0, 1.5, (5, -7)
ROW, COL = NPIX // 2 + OFFSET[0], NPIX // 2 + OFFSET[1]


@pytest.fixture(scope="module")
def source_ms(tmp_path_factory):
    return point_source_ms(tmp_path_factory.mktemp("dirty") / "point.ms", offset_pixels=OFFSET, cell_arcsec=CELL,
                           flux=FLUX, n_rows=301, flag_rows=(3, 100, 299))


@pytest.fixture(scope="module")
def one_rank(source_ms):
    return dirty_image(str(source_ms), NPIX, CELL, nprocs=1)


def test_source_on_its_pixel_with_its_flux(one_rank):
    image = one_rank["image"]
    assert image.shape == (NPIX, NPIX)
    assert np.unravel_index(image.argmax(), image.shape) == (ROW, COL)
    assert image[ROW, COL] == pytest.approx(FLUX, rel=1e-5)
    assert one_rank["n_visibilities"] == (301 - 3) * 2 and one_rank["stokes_i"] == "(XX + YY) / 2"


def test_three_ranks_equal_one_rank_and_raise_the_same_error(source_ms, one_rank):
    """Rows split 101/100/100 (3 flagged rows among them); every rank refuses the same coarse cell."""
    import distinv

    good = DirtyImageConfig(str(source_ms), NPIX, CELL)
    result = distinv.launch(dirty_and_aliasing_rank, good, DirtyImageConfig(str(source_ms), NPIX, 9.0), nprocs=3)
    np.testing.assert_allclose(result["image"], one_rank["image"], rtol=0, atol=1e-12)
    assert result["n_visibilities"] == one_rank["n_visibilities"]
    assert result["sum_weights"] == one_rank["sum_weights"]
    errors = result["aliasing_errors"]
    assert len(errors) == 3 and len(set(errors)) == 1
    assert errors[0].startswith("cell=9 arcsec is too large for the longest baseline")


def test_deepinv_backend_agrees(source_ms, one_rank):
    reference = dirty_image(str(source_ms), NPIX, CELL, backend="deepinv")["image"]
    assert np.abs(reference - one_rank["image"]).max() < 3e-3 * FLUX


def test_command_line_writes_and_refuses_to_overwrite(source_ms, one_rank, tmp_path, capsys):
    out = tmp_path / "dirty.npy"
    argv = [str(source_ms), "--npix", str(NPIX), "--cell", str(CELL), "--out", str(out)]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["peak"] == pytest.approx(FLUX, rel=1e-5) and summary["nprocs"] == 1
    np.testing.assert_array_equal(np.load(out), one_rank["image"])
    out.write_bytes(b"keep")
    assert main(argv) == 2
    assert "dirty.npy exists: pass --force to overwrite it" in capsys.readouterr().err
    assert out.read_bytes() == b"keep"
    assert main(argv + ["--force"]) == 0
    np.testing.assert_array_equal(np.load(out), one_rank["image"])


def test_command_line_errors(source_ms, tmp_path, capsys):
    out = tmp_path / "x.npy"
    assert main([str(tmp_path / "none.ms"), "--npix", "8", "--cell", "1", "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([str(source_ms), "--npix", "8", "--cell", "1", "--column", "CORRECTED_DATA", "--out", str(out)]) == 2
    assert "column='CORRECTED_DATA' is not in" in capsys.readouterr().err
    assert not out.exists()


def test_cell_too_large_is_aliasing(source_ms):
    with pytest.raises(ValueError, match=r"cell=9 arcsec is too large for the longest baseline: max \|u\|, \|v\| = "
                                         r"\d+(\.\d+)? wavelengths needs cell <= .* = 2.2\d* arcsec.*aliases"):
        dirty_image(str(source_ms), NPIX, 9.0)


def test_all_rows_flagged(tmp_path):
    path = point_source_ms(tmp_path / "flagged.ms", n_rows=4, flag_rows=range(4))
    with pytest.raises(ValueError, match=r"all rows of .*flagged.ms' are flagged .*among its 4 rows"):
        dirty_image(str(path), NPIX, CELL)


def test_more_ranks_than_rows(tmp_path):
    path = point_source_ms(tmp_path / "two.ms", n_rows=2)
    with pytest.raises(ValueError, match=r"world=3 ranks but the Measurement Set has only n_rows=2 rows"):
        dirty_image(str(path), NPIX, CELL, nprocs=3)


def test_bad_config():
    with pytest.raises(ValueError, match=r"cell_arcsec must be a positive number of arcseconds, got 0"):
        DirtyImageConfig("x.ms", 8, 0)
    with pytest.raises(ValueError, match=r"npix must be an integer >= 2, got 1.5"):
        DirtyImageConfig("x.ms", 1.5, 1.0)
    with pytest.raises(ValueError, match=r"backend must be one of \('finufft', 'deepinv', 'cufinufft'\), got 'cuda'"):
        DirtyImageConfig("x.ms", 8, 1.0, backend="cuda")
