"""Run gridstat's rollup SQL in DuckDB and compare every figure with the
rollups gridstat wrote: an independent engine over the same curated Parquet.

usage: python duckdb_rollups.py SCRIPT.json LAKE SCRATCH
(benchmarks/tests/it/duckdb.rs runs it with `python -c`)
"""
import json
import math
import sys

import duckdb

script, lake, scratch = sys.argv[1:4]
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
for statement in json.load(open(script)):
    con.execute(statement)

problems = []
for table in ["daily", "cumulative"]:
    theirs = con.execute(
        f"SELECT * FROM read_parquet('{scratch}/{table}.parquet') ORDER BY dt, level, area_code"
    )
    columns = [d[0] for d in theirs.description]
    theirs = theirs.fetchall()
    ours = con.execute(
        f"SELECT {', '.join(columns)} FROM read_parquet('{lake}/rollups/{table}/*/*.parquet', "
        "hive_partitioning = true, hive_types_autocast = false) ORDER BY dt, level, area_code"
    ).fetchall()
    if len(ours) != len(theirs):
        problems.append(f"{table}: {len(ours)} rows from gridstat, {len(theirs)} from DuckDB")
        continue
    for mine, other in zip(ours, theirs):
        for name, a, b in zip(columns, mine, other):
            # DataFusion's percentile_cont truncates the interpolation
            # weight to 6 decimals: up to 1e-6 of the gap between the two
            # neighbouring values (documented in docs/schema.md).
            tolerance = 1e-4 if "resolve_hours" in name else 0.0
            same = (a is None and b is None) or (
                a is not None
                and b is not None
                and math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=tolerance)
                if isinstance(a, (int, float)) or isinstance(b, (int, float))
                else a == b
            )
            if not same:
                problems.append(f"{table} {mine[:5]} {name}: gridstat {a!r}, DuckDB {b!r}")
    print(f"{table}: {len(ours)} rows, {len(columns)} columns compared")

# The data-quality counts, from the raw tables (the script's last table):
# the kinds the reference counts from them. The checks against case_state
# and the rollups (case updates, coverage) and the resends are gridstat's.
raw_kinds = "('raw_visits', 'curated_visits', 'raw_cases', 'curated_cases', 'late_arrivals', 'quarantined')"
theirs = con.execute("SELECT dt, kind, class, count FROM quality ORDER BY ALL").fetchall()
ours = con.execute(
    f"SELECT dt, kind, class, count FROM read_parquet('{lake}/rollups/quality/*.parquet') "
    f"WHERE kind IN {raw_kinds} ORDER BY ALL"
).fetchall()
if ours != theirs:
    problems.append(f"quality: gridstat {len(ours)} rows, DuckDB {len(theirs)}, first difference "
                    f"{next(((a, b) for a, b in zip(ours, theirs) if a != b), None)}")
print(f"quality: {len(ours)} rows compared")

# The raw tables read whole, ids included (ingest writes `submission_id`
# with DELTA_LENGTH_BYTE_ARRAY): DuckDB's own deduplication of each day's
# raw submission ids counts the rows of gridstat's curated tables, which
# gridstat's quality table (read above) holds.
quality = ours
for kind in ["visits", "cases"]:
    theirs = con.execute(
        f"SELECT CAST(dt AS VARCHAR), COUNT(DISTINCT submission_id) FROM raw_{kind} GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    ours = [(str(dt), count) for dt, what, _, count in quality if what == f"curated_{kind}"]
    if ours != theirs or not ours:
        problems.append(f"raw {kind}: DuckDB's distinct ids per day {theirs[:3]}…, gridstat's curated rows {ours[:3]}…")
    print(f"raw {kind}: {len(ours)} days compared")

if problems:
    print("\n".join(problems[:20]), file=sys.stderr)
    sys.exit(1)
