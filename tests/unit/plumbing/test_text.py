"""User text files: UTF-8 (BOM or not) and UTF-16 with BOM decode to the same text; anything else is one line
naming the file, the byte offset and the fix."""

import codecs

import pytest

from medtl.errors import InputError
from medtl.plumbing.text import read_user_text

TEXT = "image,label\nröntgen.png,1\n"


@pytest.mark.parametrize("data", [TEXT.encode("utf-8"), codecs.BOM_UTF8 + TEXT.encode("utf-8"),
                                  codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"),
                                  codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be")])
def test_every_supported_encoding_reads_the_same_text(tmp_path, data):
    path = tmp_path / "m.csv"
    path.write_bytes(data)
    assert read_user_text(path, "manifest") == TEXT


def test_latin1_names_the_file_the_offset_and_the_fix(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(TEXT.encode("latin-1"))
    with pytest.raises(InputError) as error:
        read_user_text(path, "cv.splits_file")
    message = str(error.value)
    offset = TEXT.encode("latin-1").index("ö".encode("latin-1"))
    assert message.startswith("cv.splits_file m.csv is not UTF-8") and f"byte {offset} (0xf6)" in message
    assert "CSV UTF-8" in message and "iconv" in message and "\n" not in message
