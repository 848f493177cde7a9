"""Episode sampling (patient-disjoint, balanced, seeded, worker-independent, refusals) and the meta-training loop
(resume bit for bit, every method)."""

import numpy as np
import pytest
import torch

from medtl.config import MetaConfig, TrainConfig
from medtl.errors import InputError
from medtl.meta.episodes import EpisodeImages, EpisodeSampler, build_families
from medtl.meta.loop import fit_meta
from medtl.meta.methods import build_meta_method
from medtl.models import create_model


def pool(n_patients=30, images_per_patient=2, seed=0):
    """Two label columns over the same images; a few patients have images of both classes of column 'a'."""
    rng = np.random.default_rng(seed)
    patients = [f"p{p}" for p in range(n_patients) for _ in range(images_per_patient)]
    column_a = [int(p) % 2 if int(p) % 7 else i % 2 for i, p in enumerate(x[1:] for x in patients)]
    column_b = [int(rng.integers(3)) for _ in patients]
    images = [rng.normal(size=(1, 12, 12)).astype(np.float32) for _ in patients]
    families = build_families(["set:a", "set:b"], [column_a, column_b], [["x", "y"], ["u", "v", "w"]], patients)
    return images, families, patients


@pytest.mark.parametrize("ways,shots,queries", [(2, 3, 2), (3, 2, 2)])
def test_episodes_are_patient_disjoint_balanced_and_a_function_of_seed_and_number(ways, shots, queries):
    images, families, patients = pool()
    families = families if ways == 2 else families[1:]  # column a has two classes: no 3-way task
    sampler = EpisodeSampler(families, ways, shots, queries, seed=5)
    seen_families = set()
    for number in range(40):
        episode = sampler.episode(number)
        seen_families.add(episode.family)
        chosen = [patients[i] for i in episode.support + episode.query]
        assert len(set(chosen)) == len(chosen), "no patient twice in an episode (support and query disjoint)"
        assert sorted(episode.support_labels) == sorted(list(range(ways)) * shots)
        assert sorted(episode.query_labels) == sorted(list(range(ways)) * queries)
        family = next(f for f in families if f.name == episode.family)
        for index, label in zip(episode.support + episode.query, episode.support_labels + episode.query_labels):
            class_index = family.class_names.index(episode.classes[label])
            assert index in family.patients[class_index][patients[index]], "each image carries its class"
        again = EpisodeSampler(families, ways, shots, queries, seed=5).episode(number)
        assert again == episode
    assert seen_families == {f.name for f in families}
    other = EpisodeSampler(families, ways, shots, queries, seed=6)
    assert any(other.episode(n) != sampler.episode(n) for n in range(5))


def test_episodes_are_the_same_under_any_worker_count():
    images, families, _ = pool()
    sampler = EpisodeSampler(families, 2, 2, 2, seed=1)
    batches = {}
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(EpisodeImages(sampler, images, 10, 6), batch_size=None,
                                             num_workers=workers)
        batches[workers] = list(loader)
    for a, b in zip(batches[0], batches[2]):
        assert all(torch.equal(x, y) if torch.is_tensor(x) else x == y for x, y in zip(a, b))


def test_a_source_that_cannot_form_an_n_way_task_is_refused_with_the_counts():
    _, families, _ = pool(n_patients=8)
    with pytest.raises(InputError, match=r"set:a: 2 class\(es\), patients per class: x \d+, y \d+") as error:
        EpisodeSampler(families, 2, 4, 2, seed=0)
    assert "meta.shots" in str(error.value)
    with pytest.raises(InputError, match="set:b"):
        EpisodeSampler(pool()[1], 4, 1, 1, seed=0)  # 4 ways: column b has 3 classes


@pytest.mark.parametrize("name,learn", [("maml", True), ("fomaml", False), ("anil", True), ("protonet", False)])
def test_a_resumed_meta_training_equals_the_uninterrupted_one_bit_for_bit(name, learn, tmp_path):
    images, families, _ = pool()
    meta = MetaConfig(ways=2, shots=2, queries=2, episodes_per_epoch=3, tasks_per_step=2, inner_lr=0.1,
                      learn_inner_lr=learn)

    def train(epochs, state):
        torch.manual_seed(0)
        model = create_model("tiny-resnet", dims=2, num_classes=2, pretrained="none")
        method = build_meta_method(name, model, meta)
        sampler = EpisodeSampler(families, 2, 2, 2, seed=3)
        history = fit_meta(method, model, sampler, images, TrainConfig(epochs=epochs, lr=0.01, device="cpu"),
                           meta, state, seed=3)
        return model, method, history

    whole, whole_method, whole_history = train(3, tmp_path / "whole.pt")
    train(1, tmp_path / "split.pt")  # interrupted after one epoch: its checkpoint is what a resume finds
    resumed, resumed_method, resumed_history = train(3, tmp_path / "split.pt")
    assert resumed_history == whole_history
    assert [h["episodes"] for h in whole_history] == [3, 6, 9]
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    for a, b in zip(whole_method.modules(), resumed_method.modules()):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    changed = any(not torch.equal(v, create_model("tiny-resnet", dims=2, num_classes=2,
                                                  pretrained="none").state_dict()[k])
                  for k, v in whole.state_dict().items() if "running" not in k and "num_batches" not in k)
    assert changed, "meta-training changed the network"
