"""Meta-learning as a user runs it: the source stage's leak guard and cache key, and ``medtl fewshot``."""

import csv
import json
from pathlib import Path

import pytest

from medtl.cli import main
from medtl.config import dump_config, load_config
from medtl.samples.meta_sets import write_meta_source
from medtl.samples.sample_sets import write_radiograph_set

CONFIG = Path(__file__).parents[2] / "configs" / "sample_meta2d.yaml"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("meta")
    write_meta_source(root / "source", 24, 32, seed=3)
    write_radiograph_set(root / "target", 8, 2, 32, seed=4)
    write_radiograph_set(root / "held_out", 10, 1, 32, seed=5)
    return root


def settings(data, *extra):
    source = data / "source" / "manifest.csv"
    values = [f"data.manifest={data / 'target' / 'manifest.csv'}", "model.backbone=tiny-resnet",
              "data.image_size=[32,32]", f"source.manifest={source}", "source.epochs=1", "meta.episodes_per_epoch=4",
              f"meta.sources=[{{manifest: {source}, columns: [lung, nodule]}}]", *extra]
    return [item for value in values for item in ("--set", value)]


def test_meta_sources_holding_target_images_are_refused(data, tmp_path, capsys):
    target = data / "target" / "manifest.csv"
    leaking = settings(data, f"meta.sources=[{{manifest: {target}, columns: [label]}}]", "meta.shots=1",
                       "meta.queries=1")
    assert main(["pretrain", str(CONFIG), *leaking]) == 2
    assert "holds images of the target run" in capsys.readouterr().err


def test_the_cached_stage_is_reused_and_relabelling_a_column_trains_a_new_one(data, tmp_path, capsys):
    assert main(["pretrain", str(CONFIG), *settings(data)]) == 0
    first = capsys.readouterr().out
    assert main(["pretrain", str(CONFIG), *settings(data)]) == 0
    assert "reused" in capsys.readouterr().out
    relabelled = tmp_path / "relabelled.csv"
    rows = list(csv.DictReader((data / "source" / "manifest.csv").open()))
    rows[0]["lung"] = "left" if rows[0]["lung"] == "right" else "right"  # one label corrected
    with relabelled.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "images").symlink_to(data / "source" / "images")
    moved = settings(data, f"meta.sources=[{{manifest: {relabelled}, columns: [lung, nodule]}}]")
    assert main(["pretrain", str(CONFIG), *moved]) == 0
    again = capsys.readouterr().out
    assert "trained" in again and first.split()[2] != again.split()[2], "a relabelled column is another model"


def test_fewshot_scores_the_same_episodes_with_every_solver_reproducibly(data, tmp_path, capsys):
    checkpoint = tmp_path / "maml.safetensors"
    assert main(["pretrain", str(CONFIG), "--out", str(checkpoint), *settings(data)]) == 0
    config = tmp_path / "config.yaml"
    config.write_text(dump_config(load_config(CONFIG, settings(data)[1::2])))
    held_out = data / "held_out" / "manifest.csv"
    runs = []
    for out in ("a", "b"):
        args = ["fewshot", str(checkpoint), str(held_out), "--config", str(config), "--shots", "2", "--queries", "2",
                "--episodes", "3", "--finetune-steps", "2", "--out", str(tmp_path / out), "--quiet"]
        assert main(args) == 0
        runs.append(json.loads((tmp_path / out / "fewshot.json").read_text()))
    printed = capsys.readouterr().out
    assert "maml 1 step(s)" in printed and "linear probe" in printed and "fine-tune 2 steps" in printed
    assert "query accuracy after adaptation" in printed
    summary = runs[0]
    assert summary == runs[1], "same episodes, same seeds: the same scores"
    solvers = [s["solver"] for s in summary["solvers"]]
    assert solvers[0].endswith("maml 1 step(s)") and len(solvers) == 3
    episodes = list(csv.DictReader((tmp_path / "a" / "episodes.csv").open()))
    assert len(episodes) == 3 * len(solvers)
    assert all(0 <= float(r["accuracy"]) <= 1 and 0 <= float(r["auc"]) <= 1 for r in episodes)
    for entry in summary["solvers"][1:]:
        assert entry["difference_from_first"]["accuracy"]["n"] == 3
    assert any("episodes share patients" in n for n in summary["notes"])
    # episodes from the meta-learning source itself: refused, or reported with --allow-overlap
    source = data / "source" / "manifest.csv"
    leaking = ["fewshot", str(checkpoint), str(source), "--config", str(config), "--column", "lung", "--episodes",
               "1", "--finetune-steps", "1", "--out", str(tmp_path / "c"), "--quiet"]
    assert main(leaking) == 2
    assert "trained on" in capsys.readouterr().err
    assert main([*leaking, "--allow-overlap"]) == 0
    assert any("trained on" in n for n in json.loads((tmp_path / "c" / "fewshot.json").read_text())["notes"])
