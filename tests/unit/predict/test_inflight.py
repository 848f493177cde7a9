"""In-flight marks: named safely, readable back by key, and undone after a clean interruption."""

from medtl.predict.inflight import InflightMarks


def test_marks_survive_hostile_keys_and_restore_undoes_only_this_run(tmp_path):
    marks = InflightMarks(tmp_path / "inflight")
    crashed, hostile = "series-a", "../../escape\\nx"
    marks.begin(crashed)  # left by a process that died earlier
    before = marks.suspects()
    assert before == {crashed: 1}
    marks.begin(crashed)
    marks.begin(hostile)
    assert marks.suspects() == {crashed: 2, hostile: 1}
    assert all(p.parent == tmp_path / "inflight" for p in (tmp_path / "inflight").iterdir())
    assert not (tmp_path / "escape").exists()
    marks.restore(before)  # Ctrl-C: what was in flight was not a crash
    assert marks.suspects() == {crashed: 1}
    marks.end(crashed)
    assert marks.suspects() == {}
