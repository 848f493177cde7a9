"""The medtl command: help for every subcommand, exit codes, console script, README reason codes."""

import subprocess
import sys

import pytest

from medtl.cli import build_parser, main


def test_every_subcommand_has_help():
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices
    for name, sub in subcommands.items():
        assert sub.format_help().startswith("usage: medtl " + name)


def test_version_and_config_error_exit_codes(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert main(["config", "--set", "train.epoch=2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean" in err


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "medtl.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "medtl" in result.stdout


def test_readme_documents_every_reason_code():
    from pathlib import Path

    from medtl.io.reasons import Reason

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    missing = [r.name for r in Reason if f"`{r.name}`" not in readme]
    assert not missing, f"README lacks reason codes: {missing}"


def test_evaluate_help_does_not_promise_export_folders_and_an_export_folder_is_refused_clearly(tmp_path, capsys):
    """Issue 35.4: `medtl evaluate --help` said it takes an export folder; it refused one with an unrelated error."""
    import json

    from medtl.cli import main

    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "or of `medtl export`" not in text and "not an export folder" in text
    export = tmp_path / "export"
    export.mkdir()
    (export / "model.json").write_text(json.dumps({"members": []}))
    (export / "preprocessing.json").write_text("{}")
    (tmp_path / "m.csv").write_text("image,label,patient_id\na.png,0,p\n")
    assert main(["evaluate", str(export), str(tmp_path / "m.csv"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "is an export folder" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_weights_list_says_where_each_missing_file_comes_from(capsys, tmp_path, monkeypatch):
    """Issue 28.16: offline, a user must be able to fetch a weight file elsewhere: URL, expected hash, licence."""
    from medtl.cli import main
    from medtl.models.weights import WEIGHT_FILES

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: everything missing
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    first = next(iter(WEIGHT_FILES.values()))
    assert f"from {first.url}" in out and f"licence: {first.licence}" in out and "sha256" in out


def test_the_predict_summary_names_the_unit_of_every_count():
    """Issue 28.19: "2 unusable (NOT_DICOM 40)" mixed series with the files of skipped.csv."""
    from medtl.cli_predict import _predict_counts

    summary = {"predicted": 3, "skipped_items": 2, "skip_rows_by_reason": {"NOT_DICOM": 40, "TOO_LARGE": 1},
               "files_predicted": 300, "files_skipped": 41, "files_in_shard": 341}
    line = _predict_counts(summary, export=True)
    assert line == ("3 series predicted, 2 series unusable; files: 300 predicted, 41 skipped (by reason: NOT_DICOM "
                    "40, TOO_LARGE 1) of 341")
    assert _predict_counts({**summary, "skip_rows_by_reason": {"FILE_NOT_FOUND": 2}}, export=False) == (
        "3 case(s) predicted, 2 unusable (by reason: FILE_NOT_FOUND 2)")


@pytest.mark.heavy
def test_a_torchrun_rank_exits_with_its_code_and_its_output_flushed(tmp_path):
    """Under torchrun (WORLD_SIZE > 1) `python -m medtl` leaves by os._exit after its work (the interpreter's teardown
    can abort a rank and make torchrun restart a finished run): the exit code and every printed line survive."""
    import os

    env = {**os.environ, "WORLD_SIZE": "2"}
    listed = subprocess.run([sys.executable, "-m", "medtl", "models"], capture_output=True, text=True, env=env)
    assert listed.returncode == 0 and listed.stdout.rstrip().endswith("2D weights inflate to 3D")
    failed = subprocess.run([sys.executable, "-m", "medtl", "config", str(tmp_path / "missing.yaml")],
                            capture_output=True, text=True, env=env)
    assert failed.returncode == 2 and "missing.yaml" in failed.stderr + failed.stdout
