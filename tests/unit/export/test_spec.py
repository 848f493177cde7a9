"""preprocessing.json: a round trip rebuilds the same data config; newer or malformed files are refused;
a torch.export program from a folder is never loaded (its loader unpickles)."""

import json

import pytest

from medtl.config import load_config
from medtl.errors import InputError
from medtl.export.networks import load_network
from medtl.export.spec import NetworkIO, PreprocessingSpec, describe_steps, read_spec, write_spec
from medtl.tasks import task_of


def spec_for(config) -> PreprocessingSpec:
    data = config.data.model_dump(mode="json", exclude={"manifest", "augment", "patches_per_case",
                                                        "foreground_ratio", "resample_mask"})
    size = config.data.image_size if config.data.mode == "resize" else config.data.patch_size
    output = "voxel_logits" if task_of(config).uses_mask else "class_logits"
    return PreprocessingSpec(task=config.task, class_names=["0", "1"], data=data,
                             steps=describe_steps(config.data, task_of(config).uses_mask),
                             normalisation={"subtrahend": 0.449, "divisor": 0.226},
                             network=NetworkIO(input_shape=["batch", 1, *size], output=output,
                                               channel_adaptation="sum"),
                             output_geometry="one probability per class", batch_size=4)


@pytest.mark.parametrize("overrides", [
    ["data.image_size=[64,64]", "data.intensity=range", "data.value_range=[0,255]"],
    ["data.dims=3", "data.spacing=[1.5,1.5,2]", "data.intensity=window", "data.window=[40,400]",
     "data.image_size=[32,64,64]"],
    ["data.dims=3", "task=segmentation", "data.mode=patch", "data.patch_size=[32,64,64]",
     "data.sliding_window.overlap=0.25", "data.sliding_window.blend=constant"],
])
def test_a_round_trip_rebuilds_exactly_the_preprocessing(overrides, tmp_path):
    config = load_config(None, overrides)
    write_spec(tmp_path / "preprocessing.json", spec_for(config))
    assert (tmp_path / "preprocessing.schema.json").is_file()
    rebuilt = read_spec(tmp_path / "preprocessing.json").config()
    keep = {"manifest", "augment", "patches_per_case", "foreground_ratio", "resample_mask"}
    assert rebuilt.data.model_dump(exclude=keep) == config.data.model_dump(exclude=keep)
    assert rebuilt.task == config.task and rebuilt.train.batch_size == 4


def test_a_newer_or_malformed_spec_is_refused(tmp_path):
    path = tmp_path / "preprocessing.json"
    write_spec(path, spec_for(load_config(None)))
    raw = json.loads(path.read_text())
    path.write_text(json.dumps({**raw, "version": raw["version"] + 1}))
    with pytest.raises(InputError, match="upgrade medtl"):
        read_spec(path)
    path.write_text(json.dumps({**raw, "unknown_step": 1}))
    with pytest.raises(InputError, match="does not match the preprocessing schema"):
        read_spec(path)
    path.write_text("{not json")
    with pytest.raises(InputError, match="not readable JSON"):
        read_spec(path)
    path.write_text(json.dumps({**raw, "version": "1"}))  # issue 28.5: a string version crashed the comparison
    with pytest.raises(InputError, match="version: Input should be a valid integer"):
        read_spec(path)
    path.write_text(json.dumps([raw]))
    with pytest.raises(InputError, match="JSON list"):
        read_spec(path)
    path.write_text(json.dumps({**raw, "network": {**raw["network"], "input_shape": ["batch", 1, 48, 48]}}))
    with pytest.raises(InputError, match="does not match the data settings"):
        read_spec(path)
    path.write_text(json.dumps({**raw, "class_names": ["0", "0"]}))
    with pytest.raises(InputError, match="class names repeat"):
        read_spec(path)


def test_a_torch_export_program_from_a_folder_is_not_loaded(tmp_path):
    (tmp_path / "m.pt2").write_bytes(b"anything")
    with pytest.raises(InputError, match="runs ONNX exports only"):
        load_network(tmp_path / "m.pt2", dense_output=False)
