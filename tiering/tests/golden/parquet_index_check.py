#!/usr/bin/env python3
"""Reads a tierlog segment index (a plain Parquet file) with two independent readers, pyarrow and
DuckDB, and prints what they see as one JSON object (tiering/tests/index_interop.rs compares it with
what tierlog wrote).

  parquet_index_check.py FILE OFFSET TIMESTAMP

pyarrow: the schema, the row count, the row groups, and for every column chunk whether it has
min/max statistics, a column index and an offset index (the page index a reader prunes with).
DuckDB: aggregates over the whole file, the batch holding OFFSET, and the first batch whose
max_timestamp is >= TIMESTAMP, each by an SQL filter on the index columns.

Pinned versions (scripts/test.sh installs them with --require-hashes): pyarrow 26.0.1, duckdb 2.0.0.
"""
import json
import sys

import duckdb
import pyarrow.parquet as pq


def main():
    path, offset, ts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    f = pq.ParquetFile(path)
    md = f.metadata
    table = f.read()
    chunks = []
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        for c in range(rg.num_columns):
            col = rg.column(c)
            stats = col.statistics
            chunks.append({
                "row_group": g,
                "column": col.path_in_schema,
                "rows": rg.num_rows,
                "min": stats.min if stats is not None and stats.has_min_max else None,
                "max": stats.max if stats is not None and stats.has_min_max else None,
                "column_index": col.has_column_index,
                "offset_index": col.has_offset_index,
            })
    con = duckdb.connect()
    agg = con.execute(
        "SELECT count(*), min(base_offset), max(last_offset), sum(record_count), sum(size)::BIGINT,"
        " min(first_timestamp), max(max_timestamp) FROM read_parquet(?)",
        [path],
    ).fetchone()
    cols = "base_offset, last_offset, position, size, crc, producer_id, record_count"
    by_offset = con.execute(
        f"SELECT {cols} FROM read_parquet(?) WHERE base_offset <= ? AND last_offset >= ?",
        [path, offset, offset],
    ).fetchall()
    by_time = con.execute(
        f"SELECT {cols} FROM read_parquet(?) WHERE max_timestamp >= ? ORDER BY base_offset LIMIT 1",
        [path, ts],
    ).fetchall()
    print(json.dumps({
        "pyarrow": {
            "schema": [[fld.name, str(fld.type), fld.nullable] for fld in table.schema],
            "rows": table.num_rows,
            "row_groups": md.num_row_groups,
            "base_offset": table.column("base_offset").to_pylist(),
            "crc": table.column("crc").to_pylist(),
            "chunks": chunks,
        },
        "duckdb": {
            "aggregate": list(agg),
            "by_offset": [list(r) for r in by_offset],
            "by_time": [list(r) for r in by_time],
        },
    }))


if __name__ == "__main__":
    main()
