"""The predict journal survives a partial last line and never duplicates."""


from medtl.predict.journal import Journal


def test_journal_ignores_a_partial_last_line_and_never_duplicates(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.append({"key": "a", "status": "ok"})
    journal.append({"key": "b", "status": "ok"})
    journal.append({"key": "a", "status": "ok"})  # already committed: ignored
    journal.close()
    with open(path, "a") as f:
        f.write('{"key": "c", "sta')  # a writer killed mid-line
    reopened = Journal(path)
    assert list(reopened.records) == ["a", "b"] and "c" not in reopened
    reopened.append({"key": "c", "status": "ok"})
    reopened.close()
    assert [line.count('"key"') for line in path.read_text().splitlines()] == [1, 1, 1]
    assert list(Journal(path).records) == ["a", "b", "c"]
