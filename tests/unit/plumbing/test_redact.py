"""Error details written to outputs lose paths that may hold patient names; UIDs go, IP addresses stay."""

import pytest

from medtl.errors import InputError
from medtl.plumbing.redact import public_detail, redact


def test_error_details_lose_paths_that_may_hold_names():
    detail = public_detail(InputError("case 7: no loadable DICOM image in /data/DOE^JOHN_12345/CT (3 files)"))
    assert "DOE" not in detail and "<path>" in detail and "3 files" in detail


def test_log_records_and_warnings_lose_paths_and_uids(tmp_path):
    import logging

    from medtl.plumbing.redact import PhiFilter, redact

    assert redact("read /data/DOE^JOHN_12345/1.dcm uid 1.2.840.113619.2.55.3") == "read <path> uid <uid>"
    assert redact("shard 2/4, 3/10 done, see https://example.org/x") == "shard 2/4, 3/10 done, see https://example.org/x"
    assert "medtl/plumbing" in redact(__import__("medtl.plumbing.redact").plumbing.redact.__file__)
    record = logging.LogRecord("pydicom", logging.WARNING, __file__, 1, "bad value in %s (%s)",
                               ("/exports/DOE^JOHN/x.dcm", "1.2.3.4.5.6"), None)
    PhiFilter().filter(record)
    assert record.getMessage() == "bad value in <path> (<uid>)"


def test_the_cli_routes_pydicom_warnings_through_the_filter(tmp_path):
    import subprocess
    import sys

    from medtl.samples.synthetic import SeriesSpec, phantom_volume, write_series

    paths = write_series(tmp_path / "DOE^JOHN_12345", SeriesSpec(stored=phantom_volume((3, 8, 8)),
                                                                  patient_id="DOE^JOHN_12345"))
    code = ("import logging, warnings; from medtl.cli import main; "
            f"main(['scan', {str(tmp_path)!r}, '--out', {str(tmp_path / 'o')!r}, '--quiet']); "
            f"warnings.warn('reading {paths[0]} failed for 1.2.840.99999.1.2.3'); "
            f"logging.getLogger('pydicom').error('bad tag in {paths[1]} of 1.2.840.99999.4.5.6')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "DOE" not in result.stderr and "1.2.840.99999" not in result.stderr
    assert "<path>" in result.stderr and "<uid>" in result.stderr


@pytest.mark.parametrize("address", ["tcp://192.168.1.20:8786", "10.0.0.5:6379", "127.0.0.1", "http://172.16.4.2:5000",
                                     "1.1.1.1"])
def test_ip_addresses_stay_readable_so_a_user_can_fix_them(address):
    """Issue 35.5: redaction turned IPv4 addresses into <uid>, hiding which scheduler or server to fix."""
    assert redact(f"cannot reach the scheduler at {address}") == f"cannot reach the scheduler at {address}"


@pytest.mark.parametrize("uid", ["1.2.840.113619.2.55.3", "1.2.3.4.5.6", "2.25.329800735698586629295641978511506172918",
                                 "1.3.6.1.4.1.9590.100.1.2.2"])
def test_dicom_uids_of_every_form_are_still_redacted(uid):
    assert redact(f"series {uid} has 3 frames") == "series <uid> has 3 frames"
