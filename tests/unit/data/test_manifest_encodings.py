"""Issue 28.2: manifests saved by spreadsheets in UTF-8 (with or without BOM) or UTF-16 (with BOM) read the same;
Latin-1 is one line naming the file, the byte and the fix, never a UnicodeDecodeError."""

import codecs

import pytest

from medtl.data.manifest import read_manifest
from medtl.data.splits import read_splits_file
from medtl.domain.targets import read_image_column
from medtl.errors import InputError

TEXT = "image,label,patient_id\nröntgen_1.png,0,Pätient-1\nröntgen_2.png,1,Pätient-2\n"
ENCODINGS = {"utf-8": b"", "utf-8-sig": b"", "utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_utf8_and_utf16_manifests_read_identically(tmp_path, encoding):
    reference = tmp_path / "reference.csv"
    reference.write_bytes(TEXT.encode("utf-8"))
    path = tmp_path / f"{encoding}.csv"
    path.write_bytes(ENCODINGS[encoding] + TEXT.replace("\n", "\r\n").encode(encoding))
    ours, theirs = read_manifest(path, "classification"), read_manifest(reference, "classification")
    assert [(c.image.name, c.label, c.patient_key) for c in ours.cases] == \
        [(c.image.name, c.label, c.patient_key) for c in theirs.cases]
    assert [p.name for p in read_image_column(path)] == ["röntgen_1.png", "röntgen_2.png"]


def test_a_latin1_manifest_is_one_line_with_the_byte_and_the_fix(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(TEXT.encode("latin-1"))
    with pytest.raises(InputError) as error:
        read_manifest(path, "classification")
    message = str(error.value)
    offset = TEXT.encode("latin-1").index("ö".encode("latin-1"))
    assert "manifest excel.csv is not UTF-8" in message and f"byte {offset} " in message
    assert "CSV UTF-8" in message and "\n" not in message
    with pytest.raises(InputError, match="adapt.target_manifest excel.csv is not UTF-8"):
        read_image_column(path)


def test_a_utf16_splits_file_reads_and_a_latin1_one_is_refused_clearly(tmp_path):
    from types import SimpleNamespace

    cases = [SimpleNamespace(case_id="a"), SimpleNamespace(case_id="b")]
    path = tmp_path / "splits.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + "case_id,split\na,train\nb,test\n".encode("utf-16-le"))
    assert read_splits_file(path, cases)[0] == ["train", "test"]
    path.write_bytes("case_id,split,note\na,train,é\nb,test,\n".encode("latin-1"))
    with pytest.raises(InputError, match="cv.splits_file splits.csv is not UTF-8"):
        read_splits_file(path, cases)
