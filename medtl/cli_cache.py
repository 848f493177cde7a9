"""The ``medtl cache`` command line: the shared prepared-case cache (docs/cache.md)."""

from __future__ import annotations

import argparse


def _cmd_cache(args: argparse.Namespace) -> int:
    from .data.case_cache import CaseCache, age_of, cache_bound_bytes

    cache = CaseCache()
    bound = cache_bound_bytes()
    if args.action == "prune":
        stale = cache.remove_stale_staging()
        damaged = cache.verify() if args.verify else []
        limit = None if args.max_gb is None else int(args.max_gb * 1e9)
        report = cache.evict(limit, everything=args.all)
        print(f"removed {report['removed']} entries ({report['freed_bytes'] / 1e9:.3f} GB), "
              f"{len(damaged)} damaged entries, {stale} interrupted writes; kept {report['kept_in_use']} entries "
              f"in use by running jobs; the cache holds {report['bytes_after'] / 1e9:.3f} GB now")
        return 0
    entries = cache.entries()
    total = sum(e.size for e in entries)
    held = cache.leased()
    print(f"cache: {cache.root}")
    print(f"entries: {len(entries)}, {total / 1e9:.3f} GB of a {bound / 1e9:g} GB bound (MEDTL_CACHE_GB)")
    print(f"in use by running jobs: {sum(e.digest in held for e in entries)} entries")
    if entries:
        print(f"least recently used: {age_of(entries[0].last_used)} ago; most recently: "
              f"{age_of(entries[-1].last_used)} ago")
    if args.verify:
        damaged = cache.verify()
        print(f"verified every checksum: {len(damaged)} damaged entries removed (prepared again when next needed)")
    return 0


def add_cache_command(commands) -> None:
    """Register ``medtl cache info|prune`` on the CLI's subcommands."""
    cache = commands.add_parser(
        "cache", help="the prepared-case cache shared by every run: info, prune",
        description="Prepared cases (decoded, resampled, normalised) are cached once for every run in "
                    "$MEDTL_HOME/cache/cases, keyed by the files' content and the preprocessing, bounded by "
                    "MEDTL_CACHE_GB (default 20; least recently used entries go first, never one a running job "
                    "holds). info: where, how much, what is in use; prune: enforce the bound now (or --max-gb, "
                    "or --all) and clear interrupted writes.")
    cache.add_argument("action", choices=["info", "prune"])
    cache.add_argument("--max-gb", type=float, metavar="GB", help="prune: bound to enforce (default MEDTL_CACHE_GB)")
    cache.add_argument("--all", action="store_true", help="prune: every entry no running job holds")
    cache.add_argument("--verify", action="store_true",
                       help="also check every entry's checksums (damaged ones are removed)")
    cache.set_defaults(run_command=_cmd_cache)
