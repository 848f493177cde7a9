"""Target images carry no label by construction, whatever the target manifest holds."""

import dataclasses

import numpy as np
import pytest

from medtl.domain.targets import TargetImage, read_image_column, target_images_of
from medtl.errors import InputError


def test_a_target_image_has_no_label_or_mask_field():
    names = {f.name for f in dataclasses.fields(TargetImage)}
    assert names == {"image_data", "image_hash", "group"}  # group: the opaque patient key, for grouped cross-fitting


def test_target_images_of_prepared_cases_keep_only_the_pixels():
    class Case:
        image_data, image_hash, label, mask_data, patient_key = np.ones((1, 4, 4)), "h", 1, np.ones((1, 4, 4)), "p"
        group_key = "g"

    [image] = target_images_of([Case()])
    assert image.image_hash == "h" and np.array_equal(image.image, np.ones((1, 4, 4))) and image.group == "g"
    assert not hasattr(image, "label") and not hasattr(image, "mask_data")


def test_only_the_image_column_is_read(tmp_path):
    (tmp_path / "a.csv").write_text("label,image,notes\nnot-a-class,x/1.png,\"a, b\"\n,x/2.png,\n")
    (tmp_path / "b.csv").write_text("image\nx/1.png\nx/2.png\n")
    assert read_image_column(tmp_path / "a.csv") == read_image_column(tmp_path / "b.csv")
    assert read_image_column(tmp_path / "b.csv")[0] == (tmp_path / "x" / "1.png").resolve()


def test_a_target_manifest_without_images_is_refused(tmp_path):
    (tmp_path / "c.csv").write_text("path\nx.png\n")
    with pytest.raises(InputError, match="needs an 'image' column"):
        read_image_column(tmp_path / "c.csv")
    with pytest.raises(InputError):
        read_image_column(tmp_path / "missing.csv")
