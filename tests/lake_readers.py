"""Read every table of a gridstat lake with pyarrow, Polars and DuckDB, as a
data team would (Hive partitioning, nothing converted first), and check
that all three see what DataFusion sees.

usage: lake_readers.py LAKE FIGURES.json

FIGURES.json, written by the Rust test from DataFusion, holds per table its
prefix, partition columns, rows per `dt` partition and per column the
figures `figures()` below computes. The three readers must also agree with
each other on every value of every row (a digest over all columns).
"""
import datetime
import hashlib
import json
import math
import sys

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

lake, figures_file = sys.argv[1:3]
expected = json.load(open(figures_file))
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def with_pyarrow(root):
    return ds.dataset(root, format="parquet", partitioning="hive").to_table()


def with_polars(root):
    return pl.read_parquet(f"{root}/**/*.parquet", hive_partitioning=True).to_arrow()


def with_duckdb(root):
    con = duckdb.connect()
    result = con.sql(f"SELECT * FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true)")
    # Newer DuckDB names it to_arrow_table(); older releases fetch_arrow_table().
    if hasattr(result, "to_arrow_table"):
        return result.to_arrow_table()
    return result.fetch_arrow_table()


def plain(column):
    """One chunked column as a plain (not dictionary, not view) Arrow array."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_large_string(array.type) or pa.types.is_string_view(array.type):
        array = array.cast(pa.string())
    return array


def as_text(value):
    """What DataFusion's CAST(… AS VARCHAR) gives for an aggregate."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.date,)):
        return value.isoformat()
    return str(value)


def figures(array):
    """The per-column figures the Rust test asks DataFusion for."""
    t = array.type
    out = {"count": str(len(array) - array.null_count)}
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        out["sum"] = as_text(pc.sum(array).as_py())
    elif pa.types.is_string(t):
        out["distinct"] = str(pc.count_distinct(array).as_py())
        bounds = pc.min_max(array)
        out["min"], out["max"] = as_text(bounds["min"].as_py()), as_text(bounds["max"].as_py())
    elif pa.types.is_boolean(t):
        out["sum"] = str(pc.sum(array.cast(pa.int64())).as_py() or 0)
    elif pa.types.is_date32(t):
        bounds = pc.min_max(array)
        out["min"], out["max"] = as_text(bounds["min"].as_py()), as_text(bounds["max"].as_py())
    return out


def normal(value):
    """A value in a form equal across readers: times as UTC microseconds."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return ("ts", (value - EPOCH) // datetime.timedelta(microseconds=1))
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return [normal(v) for v in value]
    if isinstance(value, dict):
        return sorted((k, normal(v)) for k, v in value.items())
    return value


def digest(table, columns):
    rows = zip(*(plain(table.column(c)).to_pylist() for c in columns))
    lines = sorted(repr([normal(v) for v in row]) for row in rows)
    return hashlib.md5("\n".join(lines).encode()).hexdigest(), len(lines)


def same(a, b):
    if a == b:
        return True
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    except (TypeError, ValueError):
        return False


problems = []
for name, want in expected.items():
    root = f"{lake}/{want['prefix']}"
    partitions = want["partitions"]
    columns = sorted(c for c in want["columns"] if c not in partitions)
    digests, compared = {}, 0
    for reader, read in [("pyarrow", with_pyarrow), ("polars", with_polars), ("duckdb", with_duckdb)]:
        try:
            table = read(root)
        except Exception as e:  # a reader that cannot open the table at all
            problems.append(f"{name}: {reader} failed: {e}")
            continue
        missing = [c for c in want["columns"] if c not in table.column_names]
        if missing:
            problems.append(f"{name}: {reader} has no column {missing}")
            continue
        if "dt" in partitions:
            per_dt = {}
            for dt in table.column("dt").to_pylist():
                per_dt[as_text(dt)] = per_dt.get(as_text(dt), 0) + 1
            if per_dt != want["rows_by_dt"]:
                problems.append(f"{name}: {reader} rows by dt {per_dt}, DataFusion {want['rows_by_dt']}")
        elif table.num_rows != want["rows"]:
            problems.append(f"{name}: {reader} {table.num_rows} rows, DataFusion {want['rows']}")
        for column in columns:
            got = figures(plain(table.column(column)))
            for figure, value in got.items():
                compared += 1
                theirs = want["columns"][column].get(figure)
                if not same(value, theirs):
                    problems.append(f"{name}.{column} {figure}: {reader} {value!r}, DataFusion {theirs!r}")
        digests[reader] = digest(table, columns)
    if len(set(digests.values())) > 1:
        problems.append(f"{name}: the readers' rows differ: {digests}")
    print(f"{name}: {want['rows']} rows, {len(columns)} columns, {compared} figures compared, "
          f"every value read alike by {sorted(digests)}")

if problems:
    print("\n".join(problems[:30]), file=sys.stderr)
    sys.exit(1)
