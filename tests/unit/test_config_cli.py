import subprocess
import sys

import pytest

from medtl.cli import build_parser, main
from medtl.config import load_config
from medtl.errors import ConfigError


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: segmentation\ndata:\n  manifest: data/m.csv\n  dims: 3\n")
    config = load_config(path, ["train.epochs=3", "cv.folds=4", "compare=[scratch]", "train.lr=0.01"])
    assert config.task == "segmentation" and config.data.dims == 3
    assert config.train.epochs == 3 and config.cv.folds == 4 and config.compare == ["scratch"]
    assert config.data.manifest == (tmp_path / "data" / "m.csv").resolve()


@pytest.mark.parametrize("override,message", [
    ("train.epoch=3", "did you mean 'train.epochs'"),
    ("modle.backbone=x", "did you mean 'model'"),
    ("train.epochs=0", "greater than or equal to 1"),
    ("task=detection", "'task' = 'detection'"),
    ("noequals", "key=value"),
])
def test_bad_keys_and_values_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: classification\ntrain: [\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(path)


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


def test_every_shipped_config_validates():
    from pathlib import Path

    configs = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        load_config(path)
