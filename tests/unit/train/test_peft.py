"""Parameter-efficient strategies in the training loop: only what the strategy names trains, checkpoints hold only
that (bound to the base by its hash), and a resumed LoRA fit equals an uninterrupted one bit for bit."""

import numpy as np
import pytest
import torch

import medtl
from medtl.config import load_config
from medtl.data.dataset import PreparedCase
from medtl.errors import WeightsError
from medtl.models.lora import merge_lora
from medtl.train.loop import fit, predict

SIZE = 32


def cases(n=12):
    rng = np.random.default_rng(0)
    return [PreparedCase(f"c{i}", f"p{i}", f"p{i}", i % 2, rng.normal(size=(1, SIZE, SIZE)).astype(np.float32),
                         None, "") for i in range(n)]


def config(strategy, backbone="tiny-vit", **extra):
    overrides = [f"data.image_size={SIZE}", "train.epochs=3", "train.batch_size=4", "train.device=cpu",
                 f"finetune.strategy={strategy}", f"model.backbone={backbone}", "train.lr=0.01"]
    return load_config(None, overrides + [f"{k}={v}" for k, v in extra.items()])


def model(backbone="tiny-vit", seed=0):
    torch.manual_seed(seed)
    return medtl.create_model(backbone, dims=2, num_classes=2, pretrained="none")


def snapshot(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def interrupted_after_first_epoch(m, cfg, state):
    def stop(record):
        if record["epoch"] == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(m, cases(), cfg, state, seed=3, on_epoch=stop)


def test_lora_trains_adapters_and_head_only_and_resumes_exactly(tmp_path):
    cfg = config("lora")
    reference = model()
    base = snapshot(reference)
    fit(reference, cases(), cfg, tmp_path / "ref" / "state.pt", seed=3)
    after = snapshot(reference)
    assert all(torch.equal(after[k], v) for k, v in base.items() if k.startswith("backbone.")
               and "qkv" not in k and "attn.proj" not in k)
    assert all(torch.equal(after[k.replace(".attn.qkv.", ".attn.qkv.base.").replace(".attn.proj.",
                                                                                 ".attn.proj.base.")], v)
               for k, v in base.items() if "qkv" in k or "attn.proj" in k), "the wrapped base layers stay frozen"
    assert any(bool(v.abs().sum() > 0) for k, v in after.items() if ".lora_b." in k), "the (zero-started) adapters trained"
    assert not torch.equal(after["head.fc.weight"], base["head.fc.weight"])

    interrupted = model()
    interrupt_state = tmp_path / "run" / "state.pt"
    interrupted_after_first_epoch(interrupted, cfg, interrupt_state)
    saved = torch.load(interrupt_state, weights_only=True)["model"]
    assert len(saved["base_sha256"]) == 64 and saved["tensors"]
    assert all(k.startswith("head.") or ".lora_" in k for k in saved["tensors"]), "adapters and head, not the base"
    full_state = tmp_path / "full" / "state.pt"
    interrupted_after_first_epoch(model(), config("full"), full_state)
    assert interrupt_state.stat().st_size < full_state.stat().st_size / 4
    resumed = model()  # a fresh process: the same pretrained base, adapters and head from the checkpoint
    fit(resumed, cases(), cfg, interrupt_state, seed=3)
    assert all(torch.equal(v, snapshot(resumed)[k]) for k, v in after.items())


def test_a_lora_checkpoint_is_refused_on_another_base(tmp_path):
    cfg = config("lora")
    state = tmp_path / "state.pt"
    interrupted_after_first_epoch(model(), cfg, state)
    with pytest.raises(WeightsError, match="frozen base"):
        fit(model(seed=1), cases(), cfg, state, seed=3)


def test_model_selection_keeps_the_small_best_file_and_the_merged_model_predicts_the_same(tmp_path):
    cfg = config("lora", **{"train.selection": "best_inner"})
    m = model()
    data = cases()
    result = fit(m, data[:8], cfg, tmp_path / "state.pt", seed=3, inner_cases=data[8:],
                 inner_score=lambda outputs, scored: -float(np.mean([o[0] for o in outputs])))
    best = tmp_path / "best.safetensors"
    assert best.exists() and result.tuned is not None
    from safetensors import safe_open

    with safe_open(str(best), "pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith("head.") or ".lora_" in k for k in keys)
    result.tuned.load(best)
    before = np.stack(predict(m, data, cfg, torch.device("cpu")))
    merge_lora(m)
    np.testing.assert_allclose(np.stack(predict(m, data, cfg, torch.device("cpu"))), before, atol=1e-5)


@pytest.mark.parametrize("strategy, trains", [
    ("bitfit", lambda k: k.endswith(".bias")),
    ("norm-only", lambda k: ".norm" in k or k.startswith("backbone.norm.")),
])
def test_bitfit_and_norm_only_train_exactly_their_tensors(tmp_path, strategy, trains):
    m = model()
    base = snapshot(m)
    fit(m, cases(), config(strategy), tmp_path / "state.pt", seed=3)
    after = snapshot(m)
    changed = {k for k, v in base.items() if k.startswith("backbone.") and not torch.equal(after[k], v)}
    assert changed and all(trains(k) for k in changed), sorted(changed)[:5]
    assert not torch.equal(after["head.fc.weight"], base["head.fc.weight"])


def test_bitfit_on_a_cnn_keeps_batchnorm_statistics_frozen(tmp_path):
    m = model("tiny-resnet")
    base = snapshot(m)
    fit(m, cases(), config("bitfit", "tiny-resnet"), tmp_path / "state.pt", seed=3)
    after = snapshot(m)
    assert all(torch.equal(after[k], v) for k, v in base.items() if "running_" in k and k.startswith("backbone."))


@pytest.mark.parametrize("case_type", ["patch", "multitask"])
def test_lora_in_patch_mode_and_multitask_resumes_exactly_and_keeps_the_base(tmp_path, case_type):
    """The PEFT contract holds for every case type: patch-mode segmentation (patches, sliding-window scoring) and a
    multi-task model (two heads, learned loss weights) train only adapters and heads, and resume bit for bit."""
    from tests.unit.train import test_loop, test_multitask_step

    if case_type == "patch":
        data, cfg = test_loop.segmentation_cases(), test_loop.patch_config(**{"finetune.strategy": "lora"})

        def build():
            torch.manual_seed(0)
            return medtl.create_model("tiny-resnet", dims=2, num_classes=2, task="segmentation")
    else:
        data, cfg = test_multitask_step.cases(), test_multitask_step.config(**{"finetune.strategy": "lora"})

        def build():
            return test_multitask_step.multitask_model()

    reference = build()
    base = snapshot(reference)
    fit(reference, data, cfg, tmp_path / "ref" / "state.pt", seed=3)
    after = snapshot(reference)
    frozen = [k for k in base if k.startswith("backbone.") and "running_" not in k and "num_batches" not in k]
    assert all(torch.equal(after.get(k, after.get(k.rsplit(".", 1)[0] + ".base." + k.rsplit(".", 1)[1])), base[k])
               for k in frozen), "the pretrained backbone stays frozen"
    assert any(bool(v.abs().sum() > 0) for k, v in after.items() if ".lora_b." in k)
    interrupted_state = tmp_path / "run" / "state.pt"

    def stop(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(build(), data, cfg, interrupted_state, seed=3, on_epoch=stop)
    resumed = build()
    fit(resumed, data, cfg, interrupted_state, seed=3)
    assert all(torch.equal(v, snapshot(resumed)[k]) for k, v in after.items())
    merge_lora(resumed)
    assert set(snapshot(resumed)) == set(base)
