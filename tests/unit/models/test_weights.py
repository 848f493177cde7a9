"""Weight files: download through a mirror with hash checks, offline errors, import, safe loading."""

import os
import pickle

import pytest
import torch

import medtl
from medtl.cli import main
from medtl.models import weights
from medtl.models.backbones import get_backbone_spec
from tests.unit.models.conftest import save_canonical, torchvision_densenet_layout


def fake_entry(key, filename, prefix, layout="torchvision", **extra):
    return weights.register_weight_file(weights.WeightFile(key, f"https://origin.invalid/{filename}", prefix,
                                                           layout, **extra))


@pytest.fixture
def tiny_imagenet(tmp_path, monkeypatch):
    """A tiny-resnet '3-channel ImageNet' checkpoint in torchvision layout (with an fc)."""
    net = get_backbone_spec("tiny-resnet").builder(2, 3)
    state = {**net.state_dict(), "fc.weight": torch.randn(1000, 64), "fc.bias": torch.randn(1000)}
    path, prefix = save_canonical(state, tmp_path, "tiny-resnet")
    entry = fake_entry("tiny-resnet-imagenet", path.name, prefix)
    # frozen dataclass: swap the spec's sources for this test
    spec = get_backbone_spec("tiny-resnet")
    object.__setattr__(spec, "sources", {"imagenet": {2: entry.key}})
    yield path, entry, net
    object.__setattr__(spec, "sources", {})


def test_download_through_mirror_with_matching_hash(tiny_imagenet, http_server, monkeypatch):
    path, entry, _ = tiny_imagenet
    folder, base = http_server
    (folder / path.name).write_bytes(path.read_bytes())
    monkeypatch.setenv(weights.MIRROR_ENV, base + "/")
    model = medtl.create_model("tiny-resnet", dims=2, num_classes=2, pretrained="imagenet")
    assert (weights.cache_dir() / path.name).exists()
    report = model.adaptation
    assert report.adapted == {"backbone.conv1.weight": "sum of 3 input channels"}
    assert set(report.dropped) == {"backbone.fc.weight", "backbone.fc.bias"}
    assert report.new == {"head.*": "classification head, freshly initialised"}
    assert report.sha256.startswith(entry.sha256)


def test_download_with_wrong_hash_is_refused_and_not_cached(tiny_imagenet, http_server, monkeypatch):
    path, entry, _ = tiny_imagenet
    folder, base = http_server
    tampered = bytearray(path.read_bytes())
    tampered[-20] ^= 0xFF
    (folder / path.name).write_bytes(bytes(tampered))
    monkeypatch.setenv(weights.MIRROR_ENV, base)
    with pytest.raises(weights.WeightsError, match="refused"):
        medtl.create_model("tiny-resnet", dims=2, num_classes=2, pretrained="imagenet")
    assert not (weights.cache_dir() / path.name).exists()
    assert not any(weights.cache_dir().iterdir())


def test_offline_error_names_file_hash_and_fix(tiny_imagenet, monkeypatch):
    path, entry, _ = tiny_imagenet
    monkeypatch.setenv(weights.MIRROR_ENV, "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(weights.WeightsError) as error:
        medtl.create_model("tiny-resnet", dims=2, num_classes=2, pretrained="imagenet")
    message = str(error.value)
    assert path.name in message and entry.sha256 in message and "medtl weights import" in message


def test_import_verifies_and_installs(tiny_imagenet, tmp_path):
    path, entry, _ = tiny_imagenet
    installed = weights.import_weights(path)
    assert installed == weights.cache_dir() / path.name
    model = medtl.create_model("tiny-resnet", dims=2, num_classes=2, pretrained="imagenet", download=False)
    assert model.adaptation.file == path.name
    bad = tmp_path / "other" / path.name
    bad.parent.mkdir()
    bad.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(weights.WeightsError, match="corrupt or a different version"):
        weights.import_weights(bad)


def test_cli_weights_list_and_import(tiny_imagenet, capsys):
    from medtl.cli import main

    path, _, _ = tiny_imagenet
    assert main(["weights", "import", str(path)]) == 0
    assert main(["weights", "list"]) == 0
    assert "cached   tiny-resnet-imagenet" in capsys.readouterr().out


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned_by_pickle",))


def test_checkpoint_that_runs_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"conv1.weight": _Exploit()}, f, protocol=2)
    with pytest.raises(weights.WeightsError, match="weights_only=True"):
        medtl.create_model("tiny-resnet", dims=2, num_classes=2, pretrained=str(path))
    assert not (tmp_path / "pwned_by_pickle").exists()


def test_real_size_imagenet_layouts_map_completely(tmp_path, monkeypatch):
    """torchvision ResNet-18 / DenseNet-121 (old key style) and EfficientNet-B0 files load with no gaps."""
    from monai.networks.nets import EfficientNetBN

    layouts = {
        "resnet18": {**get_backbone_spec("resnet18").builder(2, 3).state_dict(),
                     "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)},
        "densenet121": {**torchvision_densenet_layout(get_backbone_spec("densenet121").builder(2, 3).state_dict()),
                        "classifier.weight": torch.zeros(1000, 1024), "classifier.bias": torch.zeros(1000)},
        "efficientnet-b0": EfficientNetBN("efficientnet-b0", pretrained=False, spatial_dims=2).state_dict(),
    }
    for name, state in layouts.items():
        path, prefix = save_canonical(state, tmp_path, name)
        entry = weights.WEIGHT_FILES[f"{name}-imagenet"]
        fake_entry(entry.key, path.name, prefix, entry.layout)
        weights.import_weights(path)
        model = medtl.create_model(name, dims=3, num_classes=2, pretrained="imagenet", download=False)
        report = model.adaptation
        assert not report.unexpected, (name, report.unexpected[:3])
        assert report.dropped and len(report.loaded) + len(report.adapted) == len(model.backbone.state_dict())
        assert all("inflated" in note for note in report.adapted.values())


def test_medicalnet_layout(tmp_path, capsys):
    net = get_backbone_spec("resnet18").builder(3, 1, shortcut_type="A", bias_downsample=True)
    state = {"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}
    state["state_dict"]["module.conv_seg.0.weight"] = torch.zeros(32, 512, 3, 3, 3)
    torch.save(state, tmp_path / "resnet_18_23dataset.pth")
    fake_entry("resnet18-medicalnet", "resnet_18_23dataset.pth", None, "medicalnet", dims=3, in_channels=1,
               arch=(("shortcut_type", "A"), ("bias_downsample", True)))
    assert main(["weights", "import", str(tmp_path / "resnet_18_23dataset.pth")]) == 0
    assert "UNVERIFIED" in capsys.readouterr().out  # no published hash: never called verified
    model = medtl.create_model("resnet18", dims=3, num_classes=2, pretrained="medicalnet", download=False)
    assert model.adaptation.adapted == {}
    assert list(model.adaptation.dropped) == ["backbone.conv_seg.0.weight"]
    assert not any("downsample" in k for k in model.backbone.state_dict())  # shortcut A has no parameters


def test_a_mirror_that_never_answers_times_out(tiny_imagenet, monkeypatch):
    import socket
    import threading
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    monkeypatch.setenv(weights.MIRROR_ENV, f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.setenv("MEDTL_DOWNLOAD_TIMEOUT", "1")
    started = time.monotonic()
    with pytest.raises(weights.WeightsUnavailableError, match="timed out"):
        weights.ensure_weights(weights.WEIGHT_FILES["tiny-resnet-imagenet"], progress=False)
    assert time.monotonic() - started < 10 and socket.getdefaulttimeout() is None
    listener.close()


def test_published_weights_serve_patch_mode_segmentation(tiny_imagenet, tmp_path):
    """ImageNet 2D weights inflated to 3D and MedicalNet weights under the U-Net decoder, predicting by windows."""
    from medtl.config import load_config
    from medtl.models.sliding import network_logits

    path, entry, _ = tiny_imagenet
    weights.import_weights(path)
    data = load_config(None, ["task=segmentation", "data.dims=3", "data.mode=patch", "data.patch_size=32"]).data
    volume = torch.randn(1, 1, 20, 40, 50)  # larger than a window in-plane, smaller along the slices
    inflated = medtl.create_model("tiny-resnet", dims=3, num_classes=3, task="segmentation", pretrained="imagenet",
                                  download=False).eval()
    assert inflated.adaptation.adapted and all("inflated" in n for n in inflated.adaptation.adapted.values())

    net = get_backbone_spec("resnet18").builder(3, 1, shortcut_type="A", bias_downsample=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}},
               tmp_path / "resnet_18_23dataset.pth")
    fake_entry("resnet18-medicalnet", "resnet_18_23dataset.pth", None, "medicalnet", dims=3, in_channels=1,
               arch=(("shortcut_type", "A"), ("bias_downsample", True)))
    assert main(["weights", "import", str(tmp_path / "resnet_18_23dataset.pth")]) == 0
    medicalnet = medtl.create_model("resnet18", dims=3, num_classes=3, task="segmentation", pretrained="medicalnet",
                                    download=False).eval()
    assert medicalnet.adaptation.loaded and not medicalnet.adaptation.adapted
    for model in (inflated, medicalnet):
        with torch.no_grad():
            logits = network_logits(model, volume, data, torch.device("cpu"))
        assert logits.shape == (1, 3, 20, 40, 50) and torch.isfinite(logits).all()
