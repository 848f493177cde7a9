"""Issue 28.4: a command's --out never is, nor lies inside, another command's folder: `medtl predict RUN ... --out
RUN` overwrote the cv run's predictions.csv, metrics.json and report (exit 0, results lost). Checked for every
command pair, before anything is written."""

import json

import pytest
import yaml

from medtl.cli import main


def _folder(root, kind):
    """A folder of ``kind`` as medtl leaves it (its marker files and one result file to protect)."""
    root.mkdir(parents=True)
    if kind == "run":
        (root / "run.json").write_text("{}")
        (root / "metrics.json").write_text('{"mine": true}')
    elif kind == "export":
        (root / "model.json").write_text('{"members": []}')
        (root / "preprocessing.json").write_text("{}")
    else:
        (root / "job.json").write_text("{}")
        (root / "predictions.csv").write_text("key\n")
    return root


def _snapshot(root):
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _commands(tmp_path, out):
    manifest = tmp_path / "m.csv"
    manifest.write_text("image,label,patient_id\na.png,0,p\n")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"manifest": str(manifest)}, "model": {"pretrained": "none"}}))
    run = tmp_path / "source_run"
    return {"cv": ["cv", str(config), "--out", str(out)],
            "predict": ["predict", str(run), str(manifest), "--out", str(out)],
            "evaluate": ["evaluate", str(run), str(manifest), "--out", str(out)],
            "export": ["export", str(run), "--out", str(out)]}


KIND_OF = {"cv": "run", "predict": "predict", "evaluate": "predict", "export": "export"}


PAIRS = [(command, existing, inside) for command in KIND_OF for existing in ("run", "export", "predict")
         for inside in (False, True) if KIND_OF[command] != existing]  # the same kind is a resume, or a shard


@pytest.mark.parametrize("command,existing,inside", PAIRS)
def test_a_command_refuses_another_commands_folder_and_anything_inside_it(tmp_path, capsys, command, existing,
                                                                          inside):
    folder = _folder(tmp_path / "existing", existing)
    before = _snapshot(folder)
    out = folder / "sub" if inside else folder
    assert main(_commands(tmp_path, out)[command] + ["--quiet"]) == 2
    error = capsys.readouterr().err
    assert f"--out {out.resolve()}" in error and ("lies inside" in error) == inside
    assert _snapshot(folder) == before and not (folder / "sub").exists()  # nothing written


def test_the_refusal_names_what_the_folder_is(tmp_path, capsys):
    run = _folder(tmp_path / "run", "run")
    assert main(_commands(tmp_path, run)["predict"] + ["--quiet"]) == 2
    assert "is a `medtl cv` run folder" in capsys.readouterr().err
    assert json.loads((run / "metrics.json").read_text()) == {"mine": True}
