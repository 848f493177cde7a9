"""Issue 28.14: skip reasons say what is wrong: a PNG manifest without patient ids is NO_PATIENT_ID (not 30 lines of
IMAGE_UNREADABLE for images that are fine), a missing file names its manifest line, and the console says each kind
once with the first case's detail."""

import logging

from medtl.config import load_config
from medtl.data.dataset import prepare_cases
from medtl.data.manifest import read_manifest
from medtl.plumbing.redact import public_detail
from tests.copies import write_manifest, write_originals


def test_a_png_manifest_without_patient_ids_is_one_line_with_the_real_reason(tmp_path, caplog):
    rows = [{"image": r["image"], "label": r["label"]} for r in write_originals(tmp_path, n=6, size=32)]
    rows.append({"image": "missing.png", "label": 1})
    manifest = read_manifest(write_manifest(tmp_path / "m.csv", rows), "classification")
    config = load_config(None, ["data.image_size=32"])
    with caplog.at_level(logging.WARNING, logger="medtl"):
        cases, skipped = prepare_cases(manifest, config, None, progress=False)
    assert not cases and [s["reason"] for s in skipped] == ["NO_PATIENT_ID"] * 6 + ["FILE_NOT_FOUND"]
    assert "manifest line 2 has no patient_id" in skipped[0]["detail"]
    assert "manifest line 8" in skipped[-1]["detail"]
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 2 and lines[0].startswith("6 case(s) skipped: NO_PATIENT_ID; first: case ")
    assert "IMAGE_UNREADABLE" not in caplog.text


def test_a_long_detail_is_cut_at_a_word_and_marked():
    detail = public_detail(ValueError("case 1: " + "colour image; set data.rgb: luminance to convert it " * 10))
    assert detail.endswith(" [...]") and len(detail) <= 240 and not detail[:-6].endswith("conv")
