"""Published weight layouts, each proved with a fixture file made by the reference implementation
(Hugging Face transformers for DINOv2 / ViT, MONAI for SwinUNETR and SegResEncoder): every tensor
accounted for and outputs equal to the reference's; damaged files are refused whole."""

from contextlib import contextmanager

import pytest
import torch
from safetensors.torch import save_file

import medtl
from medtl.errors import WeightsError
from medtl.models import weights
from medtl.models.adapt import AdaptationReport, transfer_state
from medtl.models.backbones import get_backbone_spec

transformers = pytest.importorskip("transformers")
TOL = 1e-5


@contextmanager
def published(path, spec_name: str, source: str, layout: str, arch=(), dims: int = 2):
    """``path`` registered and installed as the ``source`` weights of ``spec_name`` (restored afterwards)."""
    key = f"fixture-{spec_name}-{source}"
    weights.register_weight_file(weights.WeightFile(key, f"https://origin.invalid/{path.name}", None, layout,
                                                    dims=dims, arch=tuple(arch), cache_name=f"{key}-{path.name}",
                                                    revision="abc1234", terms=f"terms of {key}"))
    weights.import_weights(path, key)
    spec = get_backbone_spec(spec_name)
    saved = spec.sources
    object.__setattr__(spec, "sources", {source: {dims: key}})
    try:
        yield
    finally:
        object.__setattr__(spec, "sources", saved)


def _jitter(module: torch.nn.Module) -> None:
    """Move every parameter off its initial value, so a tensor loaded into the wrong place shows."""
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)


def _dinov2_reference(tmp_path, registers: int = 0):
    config_class = transformers.Dinov2WithRegistersConfig if registers else transformers.Dinov2Config
    model_class = transformers.Dinov2WithRegistersModel if registers else transformers.Dinov2Model
    extra = {"num_register_tokens": registers} if registers else {}
    config = config_class(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=128,
                          image_size=32, patch_size=8, **extra)
    reference = model_class(config).eval()
    _jitter(reference)
    reference.save_pretrained(tmp_path / "hf")
    return reference, tmp_path / "hf" / "model.safetensors"


@pytest.mark.parametrize("registers", [0, 2])
def test_hugging_face_dinov2_file_loads_strictly_and_matches_the_reference(tmp_path, registers):
    reference, path = _dinov2_reference(tmp_path, registers)
    with published(path, "tiny-vit", "dinov2", "hf-vit", arch=[("registers", registers),
                                                                  ("antialias", registers > 0)]):
        model = medtl.create_model("tiny-vit", dims=2, num_classes=2, in_channels=3, pretrained="dinov2",
                                   download=False).eval()
    report = model.adaptation
    assert (report.licence, report.revision) == ("terms of fixture-tiny-vit-dinov2", "abc1234")
    assert not report.unexpected and not report.new.get("backbone.*")
    assert len(report.loaded) == len(model.backbone.state_dict())
    assert list(report.dropped) == ["backbone.embeddings.mask_token"]
    for size in (32, 48, 40):  # the stored 4x4 grid, and interpolated position tables (square and not)
        image = torch.randn(2, 3, size, 40 if size == 40 else size)
        with torch.no_grad():
            expected = reference(pixel_values=image).last_hidden_state
            ours = model.backbone.tokens(image)[0][-1]
        torch.testing.assert_close(ours, expected, atol=TOL, rtol=0)


def test_grayscale_folding_of_the_patch_embedding_is_exact(tmp_path):
    """A gray image through the folded (summed) patch embedding = the RGB model on the image repeated 3 times."""
    reference, path = _dinov2_reference(tmp_path)
    with published(path, "tiny-vit", "dinov2", "hf-vit"):
        model = medtl.create_model("tiny-vit", dims=2, num_classes=2, pretrained="dinov2", download=False).eval()
    assert "sum of 3 input channels" in model.adaptation.adapted["backbone.patch_embed.proj.weight"]
    gray = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.backbone.tokens(gray)[0][-1],
                                   reference(pixel_values=gray.repeat(1, 3, 1, 1)).last_hidden_state,
                                   atol=TOL, rtol=0)


def test_a_2d_vit_inflated_to_3d_gives_the_2d_output_on_a_depth_constant_volume(tmp_path):
    _, path = _dinov2_reference(tmp_path)
    with published(path, "tiny-vit", "dinov2", "hf-vit"):
        flat = medtl.create_model("tiny-vit", dims=2, num_classes=2, pretrained="dinov2", download=False).eval()
        deep = medtl.create_model("tiny-vit", dims=3, num_classes=2, pretrained="dinov2", download=False).eval()
    assert "repeated over 8 depths" in deep.adaptation.adapted["backbone.patch_embed.pos_embed"]
    assert "inflated 2D->3D" in deep.adaptation.adapted["backbone.patch_embed.proj.weight"]
    image = torch.randn(2, 1, 32, 32)
    volume = image.unsqueeze(2).expand(-1, -1, 8, -1, -1)  # one patch deep
    with torch.no_grad():
        torch.testing.assert_close(deep.backbone.tokens(volume)[0][-1], flat.backbone.tokens(image)[0][-1],
                                   atol=TOL, rtol=0)
        deep.head.load_state_dict(flat.head.state_dict())  # the same (fresh) head on both
        torch.testing.assert_close(deep(volume), flat(image), atol=TOL, rtol=0)


def _vit_reference(tmp_path):
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                                    intermediate_size=128, image_size=32, patch_size=8)
    reference = transformers.ViTModel(config).eval()
    _jitter(reference)
    return reference


def test_hugging_face_vit_file_loads_strictly_and_matches_the_reference(tmp_path):
    reference = _vit_reference(tmp_path)
    reference.save_pretrained(tmp_path / "hf")
    arch = [("layerscale", False), ("eps", 1e-12)]
    with published(tmp_path / "hf" / "model.safetensors", "tiny-vit", "imagenet", "hf-vit", arch=arch):
        model = medtl.create_model("tiny-vit", dims=2, num_classes=2, in_channels=3, pretrained="imagenet",
                                   download=False).eval()
    report = model.adaptation
    assert not report.unexpected and len(report.loaded) == len(model.backbone.state_dict())
    assert sorted(report.dropped) == ["backbone.pooler.dense.bias", "backbone.pooler.dense.weight"]
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.backbone.tokens(image)[0][-1], reference(pixel_values=image).last_hidden_state,
                                   atol=TOL, rtol=0)


def _timm_names(reference) -> dict:
    """The Hugging Face ViT's tensors under timm's (and the original DINOv2 files') names."""
    hf = reference.state_dict()
    out = {"cls_token": hf["embeddings.cls_token"], "pos_embed": hf["embeddings.position_embeddings"],
           "patch_embed.proj.weight": hf["embeddings.patch_embeddings.projection.weight"],
           "patch_embed.proj.bias": hf["embeddings.patch_embeddings.projection.bias"],
           "norm.weight": hf["layernorm.weight"], "norm.bias": hf["layernorm.bias"],
           "head.weight": torch.zeros(1000, 32), "head.bias": torch.zeros(1000)}
    for i in range(4):
        block = f"layers.{i}."
        for kind in ("weight", "bias"):
            out[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat([hf[f"{block}attention.{p}_proj.{kind}"] for p in "qkv"])
            out[f"blocks.{i}.attn.proj.{kind}"] = hf[f"{block}attention.o_proj.{kind}"]
            out[f"blocks.{i}.norm1.{kind}"] = hf[f"{block}layernorm_before.{kind}"]
            out[f"blocks.{i}.norm2.{kind}"] = hf[f"{block}layernorm_after.{kind}"]
            out[f"blocks.{i}.mlp.fc1.{kind}"] = hf[f"{block}mlp.fc1.{kind}"]
            out[f"blocks.{i}.mlp.fc2.{kind}"] = hf[f"{block}mlp.fc2.{kind}"]
    return out


def test_timm_layout_loads_strictly_and_matches_the_reference(tmp_path):
    reference = _vit_reference(tmp_path)
    save_file(_timm_names(reference), str(tmp_path / "model.safetensors"))
    arch = [("layerscale", False), ("eps", 1e-12)]
    with published(tmp_path / "model.safetensors", "tiny-vit", "imagenet", "timm-vit", arch=arch):
        model = medtl.create_model("tiny-vit", dims=2, num_classes=2, in_channels=3, pretrained="imagenet",
                                   download=False).eval()
    assert not model.adaptation.unexpected and sorted(model.adaptation.dropped) == ["backbone.head.bias",
                                                                                    "backbone.head.weight"]
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.backbone.tokens(image)[0][-1], reference(pixel_values=image).last_hidden_state,
                                   atol=TOL, rtol=0)


def _swin_reference():
    from monai.networks.nets import SwinUNETR

    reference = SwinUNETR(in_channels=1, out_channels=2, feature_size=12, num_heads=(3, 3, 3, 3)).eval()
    _jitter(reference)
    return reference


def test_swinunetr_self_supervised_file_loads_like_monai_load_from(tmp_path):
    """model_swinvit.pt layout (MONAI's SwinUNETR.load_from reads it): the encoder loads whole, pretext heads drop."""
    from monai.networks.nets import SwinUNETR

    source = _swin_reference()
    state = {f"module.{k}".replace(".mlp.linear1.", ".mlp.fc1.").replace(".mlp.linear2.", ".mlp.fc2."): v
             for k, v in source.swinViT.state_dict().items()}
    state.update({"module.rotation_head.weight": torch.zeros(4, 192), "module.contrastive_head.weight":
                  torch.zeros(512, 192), "module.norm.weight": torch.ones(192), "module.conv.0.weight":
                  torch.zeros(96, 192, 1, 1, 1)})
    torch.save({"state_dict": state}, tmp_path / "model_swinvit.pt")
    reference = SwinUNETR(in_channels=1, out_channels=2, feature_size=12, num_heads=(3, 3, 3, 3)).eval()
    reference.load_from(torch.load(tmp_path / "model_swinvit.pt", weights_only=True))
    with published(tmp_path / "model_swinvit.pt", "tiny-swin", "swin-ssl", "swinvit-ssl", dims=3):
        model = medtl.create_model("tiny-swin", dims=3, num_classes=2, pretrained="swin-ssl", download=False).eval()
    report = model.adaptation
    assert not report.unexpected and len(report.loaded) == len(model.backbone.state_dict())
    assert len(report.dropped) == 4 and all("pretext" in why for why in report.dropped.values())
    volume = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        for ours, expected in zip(model.backbone(volume), reference.swinViT(volume, normalize=True)):
            torch.testing.assert_close(ours, expected, atol=TOL, rtol=0)


def test_swinunetr_disruptive_autoencoder_file_loads_like_monai_filter(tmp_path):
    """ssl_pretrained_weights.pth layout, as MONAI's filter_swinunetr + copy_model_state read it."""
    from monai.networks.nets import SwinUNETR
    from monai.networks.utils import copy_model_state

    source = _swin_reference()
    state = {}
    for key, value in source.swinViT.state_dict().items():
        # filter_swinunetr drops characters 18-19 of every non-embedding key ("encoder.layers1.0." + 2 + rest)
        state["encoder." + (key if key.startswith("patch_embed") else key[:10] + "0." + key[10:])] = value
    state.update({"encoder.mask_token": torch.zeros(1, 12), "encoder.norm.weight": torch.ones(192),
                  "out.conv.conv.weight": torch.zeros(1, 12, 1, 1, 1)})
    torch.save({"model": state}, tmp_path / "ssl_pretrained_weights.pth")
    reference = SwinUNETR(in_channels=1, out_channels=2, feature_size=12, num_heads=(3, 3, 3, 3)).eval()
    copy_model_state(reference, torch.load(tmp_path / "ssl_pretrained_weights.pth", weights_only=True)["model"],
                     filter_func=__import__("monai.networks.nets.swin_unetr", fromlist=["x"]).filter_swinunetr)
    with published(tmp_path / "ssl_pretrained_weights.pth", "tiny-swin", "swin-dae", "swin-dae", dims=3):
        model = medtl.create_model("tiny-swin", dims=3, num_classes=2, pretrained="swin-dae", download=False).eval()
    assert not model.adaptation.unexpected and len(model.adaptation.dropped) == 3
    volume = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        for ours, expected in zip(model.backbone(volume), reference.swinViT(volume, normalize=True)):
            torch.testing.assert_close(ours, expected, atol=TOL, rtol=0)


def test_ct_fm_segresnet_encoder_file_loads_strictly_and_matches_monai(tmp_path):
    from monai.networks.nets.segresnet_ds import SegResEncoder

    reference = SegResEncoder(spatial_dims=3, init_filters=8, in_channels=1, blocks_down=(1, 1, 1, 1, 1)).eval()
    _jitter(reference)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(tmp_path / "model.safetensors"))
    with published(tmp_path / "model.safetensors", "tiny-segresnet", "ct-fm", "ct-fm", dims=3):
        model = medtl.create_model("tiny-segresnet", dims=3, num_classes=2, pretrained="ct-fm",
                                   download=False).eval()
    assert not model.adaptation.unexpected and not model.adaptation.dropped
    volume = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        ours, levels = model.backbone(volume), reference(volume)
    for mine, theirs in zip(ours[:4], levels[1:]):
        torch.testing.assert_close(mine, theirs, atol=TOL, rtol=0)
    torch.testing.assert_close(ours[4].mean(dim=(2, 3, 4)), levels[-1].mean(dim=(2, 3, 4)), atol=TOL, rtol=0)


def _damaged(tmp_path, how: str):
    _, path = _dinov2_reference(tmp_path)
    from safetensors.torch import load_file

    state = load_file(str(path))
    target = tmp_path / "damaged" / "model.safetensors"
    target.parent.mkdir()
    key = "encoder.layer.2.mlp.fc1.weight"
    if how == "truncated":
        target.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return target, "truncated"
    if how == "wrong shape":
        state[key] = torch.zeros(64, 32)
    elif how == "nan":
        state[key] = state[key].clone()
        state[key][0, 0] = float("nan")
    elif how == "renamed":
        state["encoder.layer.2.mlp.dense_in.weight"] = state.pop(key)
    save_file(state, str(target))
    return target, "blocks.2.mlp.fc1.weight"


@pytest.mark.parametrize("how", ["truncated", "wrong shape", "nan", "renamed"])
def test_a_damaged_file_is_a_weights_error_naming_the_key(tmp_path, how):
    path, named = _damaged(tmp_path, how)
    key = "fixture-damaged"
    weights.register_weight_file(weights.WeightFile(key, "https://origin.invalid/model.safetensors", None, "hf-vit",
                                                    cache_name=f"{key}.safetensors"))
    if how == "truncated":
        with pytest.raises(WeightsError, match=named):  # refused before it reaches the cache
            weights.import_weights(path, key)
        return
    weights.import_weights(path, key)
    spec = get_backbone_spec("tiny-vit")
    object.__setattr__(spec, "sources", {"dinov2": {2: key}})
    try:
        with pytest.raises(WeightsError, match=named):
            medtl.create_model("tiny-vit", dims=2, num_classes=2, pretrained="dinov2", download=False)
    finally:
        object.__setattr__(spec, "sources", {})


def test_a_refused_load_leaves_the_module_untouched(tmp_path):
    net = get_backbone_spec("tiny-vit").builder(2, 1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    source = {k: v + 1 for k, v in before.items()}
    source["blocks.3.mlp.fc2.weight"] = torch.full_like(before["blocks.3.mlp.fc2.weight"], float("inf"))
    with pytest.raises(WeightsError, match="blocks.3.mlp.fc2.weight"):
        transfer_state(net, source, AdaptationReport("test"), first_conv=None, in_channels=1, input_adapt="sum",
                       inflate="mean")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_an_ambiguous_file_name_needs_the_key(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"x": torch.zeros(1)}, str(path))
    with pytest.raises(WeightsError, match="--as KEY"):
        weights.import_weights(path)


def test_every_published_file_states_its_licence_and_rad_dino_its_revision_and_terms():
    for weight in weights.WEIGHT_FILES.values():
        assert weight.licence and weight.licence != "see the publisher", weight.key
    rad_dino = weights.WEIGHT_FILES["rad-dino"]
    assert "d5647c0" in rad_dino.url and rad_dino.revision.startswith("d5647c0")
    assert "MSRLA" in rad_dino.licence and "MIT" in rad_dino.licence  # today's terms, and what came before
    names = [w.filename for w in weights.WEIGHT_FILES.values()]
    assert len(names) == len(set(names)), "every file has its own name in the cache"
    for spec in get_backbone_spec("vit-s16"), get_backbone_spec("dinov2-vitb14"), get_backbone_spec("swin-unetr"):
        for files in spec.sources.values():
            assert all(key in weights.WEIGHT_FILES for key in files.values())


def test_cli_imports_a_hugging_face_file_under_the_key_it_is_given(tmp_path, capsys):
    from medtl.cli import main

    _, path = _dinov2_reference(tmp_path)
    assert main(["weights", "import", str(path), "--as", "dinov2-vits14"]) == 0
    assert "UNVERIFIED" in capsys.readouterr().out  # Hugging Face publishes no hash: never called verified
    assert (weights.cache_dir() / "dinov2-vits14-model.safetensors").exists()
    assert main(["weights", "import", str(path), "--as", "dinov2-vits41"]) != 0
