"""Issue 35.1: a kill at any moment of replacing an export's files leaves the old export or the new one, and the
next run recovers it (before: the old files were deleted first, and a kill left a folder without model.json)."""

import json

import pytest

from medtl.plumbing import swap


def _export(folder, tag, members):
    folder.mkdir(parents=True, exist_ok=True)
    for member in members:
        (folder / member).write_text(f"{tag}:{member}")
    (folder / "preprocessing.json").write_text(f"{tag}:spec")
    (folder / "model.json").write_text(json.dumps({"tag": tag, "members": members}))


def _state(folder):
    """The tag of the complete export in ``folder``, or fail when it is a mixture."""
    model = json.loads((folder / "model.json").read_text())
    files = {p.name for p in folder.iterdir() if p.is_file()}
    assert files == {"model.json", "preprocessing.json", *model["members"]}, files  # nothing missing, nothing stale
    for name in files - {"model.json"}:
        assert (folder / name).read_text().startswith(model["tag"] + ":")
    return model["tag"]


class Killed(BaseException):
    pass


def _moves(tmp_path):
    out, staging = tmp_path / "out", tmp_path / "out" / ".incomplete"
    _export(out, "old", ["fold0.onnx", "fold1.onnx"])
    _export(staging, "new", ["fold1.onnx"])
    return out, staging


def test_an_uninterrupted_swap_leaves_the_new_export_only(tmp_path):
    out, staging = _moves(tmp_path)
    swap.swap_in(staging, out, ["model.json", "preprocessing.json", "fold0.onnx", "fold1.onnx"], "model.json")
    assert _state(out) == "new" and not (out / swap.ASIDE).exists() and not staging.exists()


@pytest.mark.parametrize("kill_at", range(8))  # 4 old files aside, then 3 new ones in, then the clean-up
def test_a_kill_at_any_move_leaves_a_whole_export_after_recovery(tmp_path, monkeypatch, kill_at):
    out, staging = _moves(tmp_path)
    calls = []
    real = swap._move

    def move(source, target):
        if len(calls) == kill_at:
            raise Killed
        calls.append(source.name)
        real(source, target)

    monkeypatch.setattr(swap, "_move", move)
    try:
        swap.swap_in(staging, out, ["model.json", "preprocessing.json", "fold0.onnx", "fold1.onnx"], "model.json")
    except Killed:
        pass
    monkeypatch.setattr(swap, "_move", real)
    swap.recover(out, "model.json")
    expected = "new" if kill_at >= 7 else "old"  # model.json's arrival (the 7th move) commits the new export
    assert _state(out) == expected and not (out / swap.ASIDE).exists()


def test_a_kill_while_the_old_files_are_deleted_keeps_the_new_export(tmp_path, monkeypatch):
    out, staging = _moves(tmp_path)

    def killed(path, *args, **kwargs):
        raise Killed

    monkeypatch.setattr(swap.shutil, "rmtree", killed)
    with pytest.raises(Killed):
        swap.swap_in(staging, out, ["model.json", "preprocessing.json", "fold0.onnx", "fold1.onnx"], "model.json")
    monkeypatch.undo()
    assert "completed" in swap.recover(out, "model.json")
    assert _state(out) == "new" and not (out / swap.ASIDE).exists()


@pytest.mark.parametrize("planted", [swap.ASIDE, ".incomplete"])
def test_a_planted_link_where_a_working_folder_goes_is_refused_not_followed(tmp_path, planted):
    """Issue 28.8: a planted `.incomplete` link crashed export with FileExistsError (and a `.previous` link would
    have sent the recovery's moves and deletions elsewhere)."""
    from medtl.errors import InputError

    out, _ = _moves(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("keep")
    link = out / planted
    if link.exists():
        import shutil
        shutil.rmtree(link)
    link.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(InputError, match="is a link, not a folder medtl made"):
        swap.recover(out, "model.json") if planted == swap.ASIDE else swap.check_own(link)
    assert (elsewhere / "precious.txt").read_text() == "keep"
