"""``medtl merge``: combine the output folders of ``medtl predict --shard I/N`` runs.

Refuses anything that would not be the result of one unsharded run: folders of
different jobs, a missing or repeated shard, an unfinished shard, a key twice.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from .._version import __version__
from ..errors import InputError
from ..plumbing.atomic import link_or_copy, read_csv, write_csv, write_json
from ..plumbing.paths import contained
from ..rundir import PredictDir
from .items import SKIPPED_COLUMNS


def _load_shard(folder: Path) -> dict:
    for name in ("job.json", "predict.json", "predictions.csv", "skipped.csv"):
        if not (folder / name).exists():
            raise InputError(f"{folder} is not a finished `medtl predict` folder (no {name}); finish that shard "
                             "by re-running its `medtl predict ... --shard I/N` command")
    job = json.loads(PredictDir(folder).job.read_text())
    summary = json.loads(PredictDir(folder).summary.read_text())
    if summary.get("unfinished"):
        raise InputError(f"shard {job['shard']} in {folder} has {summary['unfinished']} unfinished item(s); "
                         "re-run its command to finish it")
    columns, rows = read_csv(folder / "predictions.csv")
    _, skipped = read_csv(folder / "skipped.csv")
    return {"folder": folder, "job": job, "summary": summary, "columns": columns, "rows": rows, "skipped": skipped}


def _check_same_job(shards: list[dict]) -> int:
    first = {k: v for k, v in shards[0]["job"].items() if k != "shard"}
    for shard in shards[1:]:
        job = {k: v for k, v in shard["job"].items() if k != "shard"}
        differs = sorted(k for k in first if job.get(k) != first[k])
        if differs:
            raise InputError(f"{shard['folder']} belongs to a different job than {shards[0]['folder']} "
                             f"({', '.join(differs)} differ); merge only the shards of one predict command")
    numbers = [tuple(int(x) for x in s["job"]["shard"].split("/")) for s in shards]
    count = numbers[0][1]
    if any(n != count for _, n in numbers):
        raise InputError(f"shards were cut into different numbers of parts: {[s['job']['shard'] for s in shards]}")
    seen = Counter(i for i, _ in numbers)
    repeated = sorted(i for i, c in seen.items() if c > 1)
    missing = sorted(set(range(1, count + 1)) - set(seen))
    if repeated or missing:
        raise InputError(f"shards must be 1..{count} once each: missing {missing}, repeated {repeated}")
    return count


_OUTPUT_NAME = re.compile(r"(masks|probs|seg|maps)/[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _link_or_copy(shard: Path, out: Path, name: str) -> None:
    """Bring one mask/probability/SEG file of a shard into ``out``.

    ``name`` comes from a CSV cell, so it is only trusted when it is a plain file name in
    one of the output folders and resolves inside both folders.
    """
    if not _OUTPUT_NAME.fullmatch(name):
        raise InputError(f"a shard's predictions.csv names the output file {name!r}, which is not a medtl output "
                         "name; the shard folder was edited or is not a medtl predict folder")
    source, target = contained(shard, name), contained(out, name)
    if not source.is_file():
        raise InputError(f"shard {shard}: its predictions.csv lists {name}, which is missing from the shard folder; "
                         "re-run that shard (`medtl predict ... --shard I/N` with the same --out resumes it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    link_or_copy(source, target)


def merge_shards(folders: list[str | Path], out: str | Path) -> dict:
    """Write the merged predictions.csv, skipped.csv and predict.json into ``out``; returns the summary."""
    from ..rundir import check_output_folder

    out = Path(out)
    folders = [Path(f) for f in folders]
    check_output_folder(out, "predict")
    if any(out.resolve() == f.resolve() for f in folders):
        raise InputError(f"--out {out} is one of the shard folders; merge into a new folder")
    shards = sorted((_load_shard(f) for f in folders), key=lambda s: int(s["job"]["shard"].split("/")[0]))
    count = _check_same_job(shards)
    columns = shards[0]["columns"]
    key_column = columns[0]
    rows = [row for shard in shards for row in shard["rows"]]
    keys = Counter(row[key_column] for row in rows)
    twice = [k for k, c in keys.items() if c > 1]
    if twice:
        raise InputError(f"{len(twice)} key(s) appear in more than one shard (e.g. {twice[0]}); the shard folders "
                         "do not come from one sharded job")
    # multitask runs prefix each task's columns ("lesion.mask_file", "nodule.explain_file")
    file_columns = [c for c in columns if c.rsplit(".", 1)[-1] in ("mask_file", "seg_file", "prob_files", "explain_file")]
    for shard in shards:
        for row in shard["rows"]:
            for column in file_columns:
                for name in filter(None, (row.get(column) or "").split(";")):
                    _link_or_copy(shard["folder"], out, name)
    skipped = [row for shard in shards for row in shard["skipped"]]
    folder = PredictDir(out)
    write_csv(folder.predictions, columns, rows)
    write_csv(folder.skipped, SKIPPED_COLUMNS, skipped)
    summaries = [s["summary"] for s in shards]
    summary = {"medtl_version": __version__, "merged_from": [s["job"]["shard"] for s in shards], "shards": count,
               "model_id": summaries[0]["model_id"], "input_kind": summaries[0]["input_kind"],
               "predicted": len(rows), "skipped_rows": len(skipped),
               "skipped_items": sum(s["skipped_items"] for s in summaries),
               "skip_rows_by_reason": dict(Counter(r["reason"] for r in skipped).most_common())}
    if summaries[0]["input_kind"] == "export":
        files = sum(s["files_in_shard"] for s in summaries)
        if files != summaries[0]["files_found"]:
            raise InputError(f"the shards account for {files} files but the export has {summaries[0]['files_found']};"
                             " was the export folder changed between shard runs? re-run the shards")
        summary.update(files_found=files, files_predicted=sum(s["files_predicted"] for s in summaries),
                       files_skipped=len(skipped))
    write_json(folder.summary, summary)
    write_json(folder.job, {**shards[0]["job"], "shard": f"merged 1..{count}"})
    return summary
