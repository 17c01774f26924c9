"""The jobs bqhold is measured against, each run in its own process by bench/bound.py.

    python bench/rivals.py duckdb INPUT.jsonl WORKDIR   # the bound: DuckDB's one statement
    python bench/rivals.py dlt INPUT.jsonl WORKDIR      # dlt, Parquet load files, into DuckDB

Both do the job of `flows/run.py --key event_id`: dedupe by `event_id`, nested objects
flattened into `a__b` columns, lists as JSON text (dlt: child tables, its default). Prints the
rows written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

KEY = "event_id"
PAGE_ROWS = 10_000  # dlt takes lists of records: one per page is its fast path


def flat_columns(kind: str, path: tuple[str, ...] = ()) -> Iterator[str]:
    """SELECT terms for one DuckDB column type at `path`: structs flattened into `a__b`, lists as
    JSON text, anything else as it is (the generic pipeline's output columns)."""
    source = ".".join(f'"{part}"' for part in path)
    alias = "__".join(path)
    if kind.startswith("STRUCT("):
        import duckdb

        for name, member in duckdb.sqltype(kind).children:
            yield from flat_columns(str(member), (*path, name))
    elif kind.endswith("[]"):
        yield f'to_json({source})::VARCHAR AS "{alias}"'
    else:
        yield f'{source} AS "{alias}"'


def duckdb_job(source: Path, work: Path) -> int:
    """Issue 11's bound: DISTINCT ON the key, flattened, into a table, then COPY to JSONL."""
    import duckdb

    connection = duckdb.connect()
    described = connection.execute("DESCRIBE SELECT * FROM read_json_auto(?)", [str(source)]).fetchall()
    terms = [term for name, kind, *_ in described for term in flat_columns(kind, (name,))]
    connection.execute(
        f'CREATE TABLE t AS SELECT DISTINCT ON ("{KEY}") {", ".join(terms)} FROM read_json_auto(?)', [str(source)]
    )
    connection.execute(f"COPY t TO '{work / 'out.jsonl'}' (FORMAT json)")
    return connection.execute("SELECT count(*) FROM t").fetchone()[0]


def pages(source: Path) -> Iterator[list[dict]]:
    """The records of a JSONL file, PAGE_ROWS at a time."""
    page: list[dict] = []
    with open(source, "rb") as handle:
        for line in handle:
            page.append(json.loads(line))
            if len(page) == PAGE_ROWS:
                yield page
                page = []
    if page:
        yield page


def dlt_job(source: Path, work: Path) -> int:
    """dlt as its docs show it: a merge on the key (dedupes), Parquet load files, DuckDB destination.
    Lists become child tables, dlt's default (it has no 'list as JSON text' of its own)."""
    import dlt

    pipeline = dlt.pipeline(
        pipeline_name="bench",
        pipelines_dir=str(work / "pipelines"),
        destination=dlt.destinations.duckdb(str(work / "dlt.duckdb")),
        dataset_name="bench",
    )
    resource = dlt.resource(pages(source), name="events", write_disposition="merge", primary_key=KEY)
    pipeline.run(resource, loader_file_format="parquet")
    with pipeline.sql_client() as client:
        return client.execute_sql("SELECT count(*) FROM events")[0][0]


JOBS = {"duckdb": duckdb_job, "dlt": dlt_job}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=sorted(JOBS))
    parser.add_argument("source", type=Path)
    parser.add_argument("work", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(JOBS[args.job](args.source, args.work))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
