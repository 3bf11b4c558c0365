"""distinv.tomography.walnut on a miniature of the Walnut archive's layout, fully offline."""

import http.server
import json
import math
import threading
import zipfile

import numpy as np
import pytest
import tifffile

from distinv.tomography import walnut
from distinv.tomography.walnut import (
    WalnutScan,
    binned_vectors,
    download,
    load_scan,
    prepare_walnut,
    read_tube,
)
from data_scripts_loader import load_data_script

ROWS, COLS = 6, 4  # oriented detector (the real one is 972 x 768)
VIEWS = 8  # one turn; the geometry file has VIEWS + 1 rows, the last repeating the first
DARK, FLAT_BEFORE, FLAT_AFTER = 100, 1100, 900  # mean flat 1000: t = (P - 100) / 900
SOD, SDD, PIXEL = 66.0, 199.0, 0.15  # mm


def counts(file_index: int) -> np.ndarray:
    """The oriented image of ``scan_{file_index}``: distinct, known counts per file and pixel."""
    r, c = np.meshgrid(np.arange(ROWS), np.arange(COLS), indexing="ij")
    image = DARK + 10 * (file_index + 1) * (r + 1) + 3 * c
    if file_index == 5:
        image[0, 0], image[0, 1], image[0, 2] = 550, 1000, 50  # t = 1/2, 1, negative
    return image.astype(np.uint16)


def geometry_rows() -> np.ndarray:
    rows = []
    for k in range(VIEWS + 1):
        a = 2 * math.pi * k / VIEWS
        radial = np.array([math.sin(a), -math.cos(a), 0.0])
        source, centre = SOD * radial, -(SDD - SOD) * radial
        u, v = PIXEL * np.array([math.cos(a), math.sin(a), 0.0]), np.array([0.0, 0.0, PIXEL])
        rows.append(np.concatenate([source, centre, u, v]))
    return np.array(rows)


def to_raw(oriented: np.ndarray) -> np.ndarray:
    """The scanner's portrait read-out of an oriented image (the inverse of orient_raw_image)."""
    return np.ascontiguousarray(oriented.T[::-1, :])


def write_tube(tube_dir, geometry=None, dead_flat_pixel=True):
    tube_dir.mkdir(parents=True, exist_ok=True)
    np.savetxt(tube_dir / "scan_geom_corrected.geom", geometry_rows() if geometry is None else geometry)
    tifffile.imwrite(tube_dir / "di000000.tif", to_raw(np.full((ROWS, COLS), DARK, np.uint16)))
    for name, level in (("io000000.tif", FLAT_BEFORE), ("io000001.tif", FLAT_AFTER)):
        flat = np.full((ROWS, COLS), level, np.uint16)
        if dead_flat_pixel:
            flat[ROWS - 1, COLS - 1] = DARK  # flat == dark: no signal there
        tifffile.imwrite(tube_dir / name, to_raw(flat))
    for j in range(VIEWS + 1):
        tifffile.imwrite(tube_dir / f"scan_{j:06d}.tif", to_raw(counts(j)))
    return tube_dir


def expected_line_integrals(file_index: int) -> np.ndarray:
    t = (counts(file_index).astype(np.float64) - DARK) / (1000.0 - DARK)
    t[ROWS - 1, COLS - 1] = np.inf  # dead flat pixel
    return -np.log(np.where(np.isfinite(t) & (t > walnut.TRANSMISSION_FLOOR), t, walnut.TRANSMISSION_FLOOR))


@pytest.fixture
def extracted(tmp_path):
    """An extracted archive: root/Walnut1/Projections/tubeV2/..."""
    root = tmp_path / "Walnuts"
    write_tube(root / "Walnut1" / "Projections" / "tubeV2")
    return root


@pytest.fixture
def archive(tmp_path, extracted):
    """Walnut1.zip with tubeV2 and a decoy tubeV1 (which must not be extracted)."""
    path = tmp_path / "served" / "Walnut1.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as bundle:
        for file in sorted((extracted / "Walnut1").rglob("*")):
            bundle.write(file, file.relative_to(extracted).as_posix())
        bundle.writestr("Walnut1/Projections/tubeV1/scan_000000.tif", b"decoy")
        bundle.writestr("Walnut1/Reconstructions/full_AGD_50_000000.tiff", b"decoy")
    return path


def quiet(message: str) -> None:
    pass


# ---------------------------------------------------------------------------------------------
# correction, orientation, order
# ---------------------------------------------------------------------------------------------
def test_flat_dark_log_values_match_hand_computed_numbers(extracted):
    scan = read_tube(extracted / "Walnut1" / "Projections" / "tubeV2", progress=quiet)
    assert scan.projections.shape == (ROWS, VIEWS, COLS) and scan.projections.dtype == np.float32
    # geometry row 3 is scan_000005 (files run backwards: row k <-> scan_{8 - k})
    view = scan.projections[:, 3, :]
    assert view[0, 0] == pytest.approx(math.log(2), abs=1e-6)  # P = 550: t = 450 / 900
    assert view[0, 1] == 0  # P = 1000 = flat: t = 1
    assert view[0, 2] == pytest.approx(-math.log(1e-3), abs=1e-5)  # P = 50 < dark: clipped, 6.9078
    assert view[ROWS - 1, COLS - 1] == pytest.approx(6.907755, abs=1e-5)  # dead flat pixel
    # row 1 of scan_000005 away from the special pixels: P = 100 + 60 * 2 + 3 c
    for c in range(COLS):
        assert view[1, c] == pytest.approx(-math.log((120 + 3 * c) / 900), abs=1e-6)


def test_every_view_holds_its_file_in_the_geometrys_orientation(extracted):
    scan = read_tube(extracted / "Walnut1" / "Projections" / "tubeV2", progress=quiet)
    for k in range(VIEWS):
        np.testing.assert_allclose(scan.projections[:, k, :], expected_line_integrals(VIEWS - k),
                                   rtol=0, atol=1e-6)
    assert scan.metadata["projection_files"][:2] == ["scan_000008.tif", "scan_000007.tif"]
    assert scan.metadata["geometry_row_indices"] == list(range(VIEWS))  # the repeated row is dropped


def test_binning_and_view_subsampling(extracted):
    tube = extracted / "Walnut1" / "Projections" / "tubeV2"
    scan = read_tube(tube, binning=2, every=3, progress=quiet)
    assert scan.projections.shape == (ROWS // 2, 3, COLS // 2)
    assert scan.metadata["geometry_row_indices"] == [0, 3, 6]
    for index, row in enumerate((0, 3, 6)):
        full = expected_line_integrals(VIEWS - row)
        block_means = full.reshape(ROWS // 2, 2, COLS // 2, 2).mean(axis=(1, 3))
        np.testing.assert_allclose(scan.projections[:, index, :], block_means, rtol=0, atol=1e-6)
    np.testing.assert_allclose(scan.vectors, binned_vectors(geometry_rows()[[0, 3, 6]], (ROWS, COLS), 2))
    # by hand: file 8 (row 0), top-left 2 x 2 block, P = 190, 280 (+3 on the second column)
    by_hand = -(math.log(90 / 900) + math.log(93 / 900) + math.log(180 / 900) + math.log(183 / 900)) / 4
    assert scan.projections[0, 0, 0] == pytest.approx(by_hand, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------------------------
def test_vector_conversion_of_a_constructed_row():
    row = np.array([[0.0, -SOD, 0.0, 0.0, SDD - SOD, 0.0, PIXEL, 0.0, 0.0, 0.0, 0.0, PIXEL]])
    vectors = binned_vectors(row, detector_shape=(5, 7), binning=2)[0]
    source, centre, u, v = vectors[:3], vectors[3:6], vectors[6:9], vectors[9:]
    np.testing.assert_allclose(source, [0.0, -SOD, 0.0])
    # 4 of 5 rows and 6 of 7 columns kept: the centre moves half a pixel back along u and v
    np.testing.assert_allclose(centre, [-PIXEL / 2, SDD - SOD, -PIXEL / 2])
    np.testing.assert_allclose(np.linalg.norm(u), 2 * PIXEL)
    np.testing.assert_allclose(np.linalg.norm(v), 2 * PIXEL)
    beam = np.array([0.0, 1.0, 0.0])  # source -> detector centre, before the shift
    assert abs(u @ v) < 1e-12 and abs(u @ beam) < 1e-12 and abs(v @ beam) < 1e-12  # orthogonal
    assert np.linalg.norm(source) == pytest.approx(SOD)  # source to rotation axis
    assert (centre - source)[1] == pytest.approx(SDD)  # source to detector
    in_voxels = WalnutScan(np.zeros((2, 1, 3), np.float32), vectors[None]).vectors_in_voxels(0.1)[0]
    assert np.linalg.norm(in_voxels[:3]) == pytest.approx(SOD / 0.1)
    assert np.linalg.norm(in_voxels[6:9]) == pytest.approx(2 * PIXEL / 0.1)


def test_unbinned_vectors_are_the_files_rows_and_make_an_astra_geometry(extracted):
    scan = read_tube(extracted / "Walnut1" / "Projections" / "tubeV2", progress=quiet)
    np.testing.assert_array_equal(scan.vectors, geometry_rows()[:VIEWS])
    geometry = scan.astra_geometry(voxel_size_mm=0.1)
    assert geometry["type"] == "cone_vec"
    assert (geometry["DetectorRowCount"], geometry["DetectorColCount"]) == (ROWS, COLS)
    np.testing.assert_allclose(geometry["Vectors"], geometry_rows()[:VIEWS] / 0.1)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def test_wrong_geometry_row_count_names_both_counts(tmp_path):
    tube = write_tube(tmp_path / "tube", geometry=geometry_rows()[:VIEWS])
    with pytest.raises(ValueError, match=r"has 9 projection files \(scan_\*\.tif\) but "
                                         r"scan_geom_corrected\.geom has 8 rows"):
        read_tube(tube, progress=quiet)


def test_missing_files_are_named(tmp_path):
    tube = write_tube(tmp_path / "tube")
    (tube / "scan_000004.tif").unlink()
    with pytest.raises(ValueError, match="has 8 projection files .* has 9 rows"):
        read_tube(tube, progress=quiet)
    tube = write_tube(tmp_path / "tube2")
    (tube / "di000000.tif").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing image .*tube2/di000000\.tif"):
        read_tube(tube, progress=quiet)
    (tube / "scan_geom_corrected.geom").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing geometry file .*scan_geom_corrected\.geom"):
        read_tube(tube, progress=quiet)
    tube = write_tube(tmp_path / "tube3")
    for flat in tube.glob("io*.tif"):
        flat.unlink()
    with pytest.raises(FileNotFoundError, match=r"no flat field \(io\*\.tif\)"):
        read_tube(tube, progress=quiet)
    with pytest.raises(FileNotFoundError, match="expected the extracted layout Walnut1/Projections/tubeV2/"):
        walnut.find_tube_dir(tmp_path / "nowhere", 1, 2)


def test_bad_geometry_and_settings_are_refused(tmp_path):
    tube = write_tube(tmp_path / "tube", geometry=geometry_rows()[:, :11])
    with pytest.raises(ValueError, match="has rows of 11 numbers, expected 12"):
        read_tube(tube, progress=quiet)
    tube = write_tube(tmp_path / "tube2")
    with pytest.raises(ValueError, match=r"binning=7 exceeds the detector \(6, 4\)"):
        read_tube(tube, binning=7, progress=quiet)
    with pytest.raises(ValueError, match="every must be an integer >= 1, got 0"):
        read_tube(tube, every=0, progress=quiet)
    with pytest.raises(ValueError, match=r"walnut must be an integer in \[1, 42\], got 43"):
        walnut.walnut_url(43)
    with pytest.raises(ValueError, match=r"walnut=9: .* https://doi.org/10\.5281/zenodo\.2686970"):
        walnut.walnut_url(9)
    with pytest.raises(ValueError, match=r"tube must be an integer in \[1, 3\], got 4"):
        prepare_walnut(1, 4, tmp_path / "out", from_dir=tmp_path)
    with pytest.raises(ValueError, match="binning must be an integer >= 1, got 0"):  # before any download
        prepare_walnut(1, 2, tmp_path / "out", url="http://127.0.0.1:9/never", binning=0)


# ---------------------------------------------------------------------------------------------
# the pipeline: --from-dir, file:// download, resume over HTTP, the CLI
# ---------------------------------------------------------------------------------------------
def test_from_dir_and_file_url_give_the_same_npz(tmp_path, extracted, archive):
    local = prepare_walnut(1, 2, tmp_path / "local", from_dir=extracted, binning=2, progress=quiet)
    fetched = prepare_walnut(1, 2, tmp_path / "fetched", url=archive.as_uri(), binning=2, progress=quiet)
    assert fetched.name == "walnut1_tube2_bin2_every1.npz"
    a, b = load_scan(local), load_scan(fetched)
    np.testing.assert_array_equal(a.projections, b.projections)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert b.metadata["licence"].startswith("CC BY 4.0") and "Der Sarkissian" in b.metadata["source"]
    assert b.metadata["url"] == archive.as_uri() and b.metadata["doi"] == "10.5281/zenodo.2686725"
    assert (b.metadata["walnut"], b.metadata["tube"], b.metadata["binning"]) == (1, 2, 2)
    extracted_tubes = {p.name for p in (tmp_path / "fetched" / "extracted" / "Walnut1" / "Projections").iterdir()}
    assert extracted_tubes == {"tubeV2"}  # only the orbit asked for
    recorded = (tmp_path / "fetched" / "Walnut1.zip.sha256").read_text().split()[0]
    assert recorded == walnut._digest(archive, "sha256")
    with pytest.raises(FileExistsError, match="pass --force to overwrite it"):
        prepare_walnut(1, 2, tmp_path / "fetched", url=archive.as_uri(), binning=2, progress=quiet)


def test_a_replaced_zip_fails_its_recorded_digest(tmp_path, archive):
    prepare_walnut(1, 2, tmp_path / "out", url=archive.as_uri(), progress=quiet)
    with open(tmp_path / "out" / "Walnut1.zip", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(ValueError, match="sha256 of .*Walnut1.zip is [0-9a-f]{64}, expected [0-9a-f]{64}"):
        prepare_walnut(1, 2, tmp_path / "out", url=archive.as_uri(), force=True, progress=quiet)


def test_download_checks_size_and_digests(tmp_path, archive):
    size = archive.stat().st_size
    with pytest.raises(ValueError, match=f"has {size} bytes, expected {size + 1}"):
        download(archive.as_uri(), tmp_path / "a.zip", size=size + 1, progress=quiet)
    assert not (tmp_path / "a.zip").exists()  # only a complete, checked file gets the name
    with pytest.raises(ValueError, match="md5 of .* is [0-9a-f]{32}, expected 0{32}"):
        download(archive.as_uri(), tmp_path / "b.zip", md5="0" * 32, progress=quiet)
    sha = walnut._digest(archive, "sha256")
    path = download(archive.as_uri(), tmp_path / "c.zip", size=size, sha256=sha, progress=quiet)
    assert path.read_bytes() == archive.read_bytes()


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``payload``, honouring ``Range: bytes=N-`` when ``ranges`` is true."""

    payload = b""
    ranges = True
    seen: list = []

    def do_GET(self):
        header = self.headers.get("Range")
        type(self).seen.append(header)
        start = int(header.split("=")[1].rstrip("-")) if (header and self.ranges) else 0
        body = self.payload[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("ranges", [True, False])
def test_interrupted_download_resumes_or_restarts(tmp_path, archive, ranges):
    payload = archive.read_bytes()
    handler = type("Handler", (_RangeHandler,), {"payload": payload, "ranges": ranges, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        target = tmp_path / "Walnut1.zip"
        half = len(payload) // 2
        (tmp_path / "Walnut1.zip.part").write_bytes(payload[:half])  # a download cut midway
        messages = []
        download(f"http://127.0.0.1:{server.server_port}/Walnut1.zip", target, size=len(payload),
                 progress=messages.append)
    finally:
        server.shutdown()
        server.server_close()
    assert handler.seen == [f"bytes={half}-"]
    assert target.read_bytes() == payload
    assert not (tmp_path / "Walnut1.zip.part").exists()
    assert any("restarting" in m for m in messages) == (not ranges)


def test_command_line(tmp_path, extracted):
    script = load_data_script("fetch_walnut")
    out = tmp_path / "out"
    path = script.main(["--walnut", "1", "--tube", "2", "--out", str(out), "--from-dir", str(extracted),
                        "--bin", "2", "--every", "2"])
    assert path == out / "walnut1_tube2_bin2_every2.npz"
    with np.load(path, allow_pickle=False) as npz:
        assert npz["projections"].shape == (ROWS // 2, VIEWS // 2, COLS // 2)
        assert npz["vectors"].shape == (VIEWS // 2, 12)
        metadata = json.loads(str(npz["metadata"]))
    assert metadata["every"] == 2 and metadata["geometry_row_indices"] == [0, 2, 4, 6]
    with pytest.raises(FileExistsError, match="pass --force to overwrite it"):
        script.main(["--walnut", "1", "--out", str(out), "--from-dir", str(extracted), "--bin", "2",
                     "--every", "2"])
