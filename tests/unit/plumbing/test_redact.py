"""Error details written to outputs lose paths that may hold patient names."""


from medtl.errors import InputError
from medtl.plumbing.redact import public_detail


def test_error_details_lose_paths_that_may_hold_names():
    detail = public_detail(InputError("case 7: no loadable DICOM image in /data/DOE^JOHN_12345/CT (3 files)"))
    assert "DOE" not in detail and "<path>" in detail and "3 files" in detail
