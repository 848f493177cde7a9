"""Federated training against explicit references: one client is ordinary training, one full-batch local step
per round is pooled gradient descent (FedSGD), FedProx with mu = 0 is FedAvg, client isolation (another site's
labels never change a client's update; the server sees weights and counts only), resume bit for bit."""

import copy

import numpy as np
import pytest
import torch

import medtl.train.federated as federated
from medtl.config import load_config
from medtl.data.dataset import PreparedCase
from medtl.models import create_model
from medtl.train.federated import fit_federated
from medtl.train.loop import make_loader
from medtl.train.trainer import epoch_seed

BASE = ["model.backbone=tiny-resnet-gn", "model.pretrained=none", "data.image_size=32", "data.augment.enabled=false",
        "train.weight_decay=0", "train.lr=0.01"]


def cases(sites=("a", "b"), per_site=6, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for s, site in enumerate(sites):
        for i in range(per_site):
            case = PreparedCase(f"{site}{i}", f"{site}p{i}", f"{site}p{i}", i % 2,
                                rng.normal(size=(1, 32, 32)).astype(np.float32), None, "")
            case.site = site
            out.append(case)
    return out


def model():
    torch.manual_seed(0)
    return create_model("tiny-resnet-gn", dims=2, num_classes=2, pretrained="none")


def train(config, data, path, mu=0.0):
    net = model()
    result = fit_federated(net, data, config, path, 0, mu)
    return net, result


def test_one_client_one_round_is_ordinary_training_on_its_batches(tmp_path):
    data = cases(sites=("a",))
    config = load_config(None, [*BASE, "fed.rounds=1", "fed.local_epochs=1", "train.batch_size=4"])
    net, _ = train(config, data, tmp_path / "s.pt")
    reference = model()
    optimiser = torch.optim.AdamW(reference.parameters(), lr=0.01, weight_decay=0)
    client_seed = int(np.random.default_rng((0, 0, 0)).integers(2**31 - 1))
    torch.manual_seed(epoch_seed(client_seed, 0))
    reference.train()
    for images, targets, _ in make_loader(data, config, epoch_seed(client_seed, 0)):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(reference(images), targets).backward()
        optimiser.step()
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(net.state_dict()[key], value, atol=1e-6, rtol=0, msg=key)


def test_one_full_batch_step_per_round_is_pooled_gradient_descent(tmp_path):
    data = cases(per_site=4) + cases(sites=("c",), per_site=8, seed=1)  # unequal clients: weighting matters
    config = load_config(None, [*BASE, "fed.rounds=1", "fed.local_epochs=1", "train.batch_size=64",
                                "train.optimizer=sgd"])
    net, _ = train(config, data, tmp_path / "s.pt")
    pooled = model()
    images = torch.from_numpy(np.stack([c.image for c in data]))
    targets = torch.tensor([c.label for c in data])
    pooled.train()
    optimiser = torch.optim.SGD(pooled.parameters(), lr=0.01, momentum=0.9)
    torch.nn.functional.cross_entropy(pooled(images), targets).backward()
    optimiser.step()
    for key, value in pooled.state_dict().items():
        torch.testing.assert_close(net.state_dict()[key], value, atol=1e-5, rtol=1e-5, msg=key)


def test_fedprox_with_mu_zero_is_fedavg_and_a_positive_mu_pulls_toward_the_global_weights(tmp_path):
    config = load_config(None, [*BASE, "fed.rounds=2", "fed.local_epochs=2", "train.batch_size=4"])
    avg, _ = train(config, cases(), tmp_path / "a.pt")
    prox0, _ = train(config, cases(), tmp_path / "b.pt", mu=0.0)
    prox, _ = train(config, cases(), tmp_path / "c.pt", mu=10.0)
    start = model().state_dict()
    assert all(torch.equal(v, prox0.state_dict()[k]) for k, v in avg.state_dict().items())

    def moved(net):
        return sum(float((net.state_dict()[k] - v).pow(2).sum()) for k, v in start.items() if v.is_floating_point())
    assert moved(prox) < moved(avg)


def test_a_clients_update_never_depends_on_another_sites_labels_and_the_server_sees_weights_only(tmp_path,
                                                                                               monkeypatch):
    config = load_config(None, [*BASE, "fed.rounds=1", "train.batch_size=4"])
    received = []
    real = federated.aggregate

    def recording(updates):
        received.append(copy.deepcopy(updates))
        return real(updates)

    monkeypatch.setattr(federated, "aggregate", recording)
    data = cases()
    train(config, data, tmp_path / "a.pt")
    permuted = cases()
    for case in permuted:
        if case.site == "b":
            case.label = 1 - case.label  # another hospital's labels, changed
    train(config, permuted, tmp_path / "b.pt")
    first, second = received
    for (weight, state), (weight2, state2) in zip(first, second):
        assert isinstance(weight, int) and set(state) == set(model().state_dict())
        assert all(isinstance(v, torch.Tensor) for v in state.values())
    client_a, client_a_again = first[0][1], second[0][1]
    assert all(torch.equal(v, client_a_again[k]) for k, v in client_a.items()), "site a's update is its own"
    assert any(not torch.equal(v, second[1][1][k]) for k, v in first[1][1].items()), "site b's labels mattered"


def test_a_resumed_federated_run_equals_the_uninterrupted_one(tmp_path):
    def run(rounds, path, batch_norm="average"):
        config = load_config(None, [*BASE, f"fed.rounds={rounds}", "train.batch_size=4", "fed.clients_per_round=1",
                                    f"fed.batch_norm={batch_norm}", "model.backbone=tiny-resnet"])
        torch.manual_seed(0)
        net = create_model("tiny-resnet", dims=2, num_classes=2, pretrained="none")
        result = fit_federated(net, cases(), config, path, 0, 0.0)
        return net, result

    for batch_norm in ("average", "local"):
        whole, whole_result = run(3, tmp_path / f"w{batch_norm}.pt", batch_norm)
        run(1, tmp_path / f"r{batch_norm}.pt", batch_norm)
        resumed, resumed_result = run(3, tmp_path / f"r{batch_norm}.pt", batch_norm)
        assert resumed_result.history == whole_result.history
        assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in whole.state_dict().items())
        assert [h["clients"] for h in whole_result.history] == [1, 1, 1]


def test_progress_counts_rounds_for_a_federated_arm_and_epochs_otherwise():
    from medtl.train.methods import method_class

    federated_config = load_config(None, ["train.method=fedprox", "fed.rounds=7", "train.epochs=3"])
    plain = load_config(None, ["train.epochs=3"])
    assert method_class(federated_config).loop_epochs(federated_config) == 7
    assert method_class(plain).loop_epochs(plain) == 3


def test_a_multitask_model_trains_federated_and_learned_loss_weights_are_refused(tmp_path):
    from medtl.errors import ConfigError

    tasks = ("tasks=[{name: nodule, kind: classification, column: label}, "
             "{name: lesion, kind: segmentation, column: mask}]")
    config = load_config(None, [*BASE, "task=multitask", tasks, "multitask.weighting=equal", "train.method=fedavg",
                                "fed.rounds=1", "train.batch_size=4"])
    data = cases()
    for case in data:
        case.labels = {"nodule": case.label}
        case.mask_data = (np.asarray(case.image) > 1).astype(np.int16)
    torch.manual_seed(0)
    net = create_model("tiny-resnet-gn", dims=2, num_classes={"nodule": 2, "lesion": 2}, pretrained="none",
                       task="multitask", task_kinds={"nodule": "classification", "lesion": "segmentation"})
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fit_federated(net, data, config, tmp_path / "s.pt", 0, 0.0)
    assert any(not torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ConfigError, match="learned loss weights would stay with each client"):
        config.derive({"multitask.weighting": "uncertainty"})


def test_each_client_weights_its_loss_by_its_own_class_balance(tmp_path):
    data = cases(sites=("a",), per_site=8)
    for case in data[:6]:
        case.label = 0  # 6 vs 2: balanced weights change this client's loss
    nets = {}
    for weights in ("none", "balanced"):
        config = load_config(None, [*BASE, "fed.rounds=1", "train.batch_size=8", f"train.class_weights={weights}"])
        nets[weights], _ = train(config, data, tmp_path / f"{weights}.pt")
    assert any(not torch.equal(v, nets["balanced"].state_dict()[k]) for k, v in nets["none"].state_dict().items())
