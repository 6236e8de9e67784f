"""Where a job's batch spends its time: each SQL statement and each COMMIT, timed.

    python -m bench.jobprofile points_expire --as-of 2026-02-15T12:00:00+00:00 \\
        [--batches 20] [--batch-size 5000]

Runs `--batches` batches of the job (DATABASE_URL: a copy of the jobs'
template, bench/jobs.py) and prints the wall time summed per kind of
statement (its first words) and for the COMMITs, where deferred foreign-key
checks run. The batches are committed: run it on a copy.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections import defaultdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job")
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    import django

    django.setup()
    from django.db import connection

    from core.jobs import as_of_parse, jobs

    spent: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)

    def timed(execute, sql, params, many, context):
        words = re.sub(r"\s+", " ", sql.strip())[:60]
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent[words] += time.perf_counter() - started
            count[words] += 1

    connection.ensure_connection()
    commit = connection._commit

    def timed_commit():
        started = time.perf_counter()
        try:
            return commit()
        finally:
            spent["COMMIT"] += time.perf_counter() - started
            count["COMMIT"] += 1

    connection._commit = timed_commit
    spec = jobs()[args.job]
    options = {"max_batches": args.batches}
    if args.batch_size:
        options["batch_size"] = args.batch_size
    started = time.perf_counter()
    with connection.execute_wrapper(timed):
        result = spec.func(as_of=as_of_parse(args.as_of), **options)
    total = time.perf_counter() - started
    print(f"{result} in {total:.2f} s ({result.rows / total:,.0f} rows/s)")
    for words, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"  {seconds:7.2f} s {seconds / total:5.0%}  x{count[words]:<5} {words}")
    print(f"  {total - sum(spent.values()):7.2f} s  the rest (Python, the driver)")


if __name__ == "__main__":
    main()
