"""The fast parse never changes what is delivered: the same inputs through `--parser fast` and
`--parser exact`, whole runs of the CLI into HOLD₂ and the warehouse, give the same segments,
column types and quarantine files, byte for byte (each run's `_loaded_at` aside).

Batches are small so the fast parse really runs (it needs a schema learnt from a batch before),
and each input mixes clean batches, which it parses, with the cases its guards must leave to the
exact parse.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pytest

from tests.conftest import ROOT, Workspace

RUN_ID = "differential"
_LOADED_AT = re.compile(rb'"_loaded_at":"[^"]*"')


def sample(root: Path) -> tuple[Path, list[str]]:
    """The bundled sample (nested events, duplicates, a few bad lines)."""
    return ROOT / "flows" / "sample" / "events.jsonl", ["--key", "event_id", "--batch-size", "400"]


def flights(root: Path) -> tuple[Path, list[str]]:
    """nycflights13-like flights: a CSV of 20,000 rows with nulls (cancelled flights), converted to JSONL."""
    rng = random.Random(13)
    carriers = ["UA", "AA", "B6", "DL", "EV", "MQ", "US", "WN", "VX", "FL"]
    airports = ["EWR", "JFK", "LGA", "ATL", "ORD", "LAX", "SFO", "MIA", "BOS", "IAH"]
    rows = []
    for n in range(20_000):
        month, day, sched = 1 + n * 12 // 20_000, 1 + n % 28, rng.choice([515, 529, 540, 600, 1230, 1815, 2359])
        cancelled = rng.random() < 0.03
        delay = None if cancelled else rng.randint(-20, 300)
        rows.append(
            {
                "year": 2013,
                "month": month,
                "day": day,
                "dep_time": None if cancelled else sched + (delay or 0),
                "sched_dep_time": sched,
                "dep_delay": delay,
                "carrier": rng.choice(carriers),
                "flight": rng.randint(1, 6000),
                "tailnum": None if rng.random() < 0.01 else f"N{rng.randint(100, 999)}{rng.choice('ABCUW')}",
                "origin": rng.choice(airports[:3]),
                "dest": rng.choice(airports[3:]),
                "air_time": None if cancelled else round(rng.uniform(30, 600), 1),
                "distance": rng.randint(80, 4983),
                "time_hour": f"2013-{month:02d}-{day:02d} {sched // 100:02d}:00:00",
            }
        )
    csv = root / "flights.csv"
    pl.DataFrame(rows).write_csv(csv)
    path = root / "flights.jsonl"
    pl.read_csv(csv).write_ndjson(path)
    return path, ["--batch-size", "3000"]


def event(number: int, **changes: object) -> dict:
    return {
        "id": f"e{number}",
        "n": number,
        "amount": number + 0.25,
        "ok": number % 3 == 0,
        "tags": ["a", "b"][: number % 3],
        "user": {"name": f"u{number % 7}", "zip": f"{number % 90000:05d}"},
        **changes,
    }


def lines_of(records: list[dict]) -> list[bytes]:
    return [json.dumps(record, ensure_ascii=False).encode() for record in records]


def changing(root: Path) -> tuple[Path, list[str]]:
    """Fields that arrive late, and fields whose type changes, batch after batch."""
    records = [event(n) for n in range(1000)]
    records += [event(n, coupon=f"c{n}") for n in range(1000, 2000)]  # a late field
    records += [event(n, n=f"#{n}") for n in range(2000, 2500)]  # INT64 becomes text: quarantined
    records += [event(n, amount=n) for n in range(2500, 3000)]  # a float field written as integers
    records += [event(n, user={"name": "x", "zip": f"{n}", "tier": n % 4}) for n in range(3000, 4000)]  # nested
    path = root / "changing.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines_of(records)))
    return path, ["--key", "id", "--batch-size", "250", "--max-error-rate", "1"]


GUARD_LINES = [
    b'{"id": "bad-utf8", "n": 1, "user": {"name": "\xff\xfe"}}',
    b"null",
    b'{"id": "twice-a", "n": 1}{"id": "twice-b", "n": 2}',
    b'{"id": "nan", "n": 1, "amount": NaN}',
    b'{"id": "inf", "n": 1, "amount": Infinity}',
    b'{"id": "short-inf", "n": 1, "amount": -Inf}',
    b"",
    b"   ",
    b'{"id": "deep", "n": 1, "x": ' + b'{"a": ' * 30 + b"1" + b"}" * 30 + b"}",
    b'{"id": "lone-surrogate", "n": 1, "user": {"name": "\\ud800"}}',
    b'{"id": "dup", "n": 1, "n": 2}',
    b'{"id": "str-in-int", "n": "1"}',
]


def guarded(root: Path) -> tuple[Path, list[str]]:
    """Every guard's case, each in a batch of its own among clean batches: bad bytes and lines,
    lists of nulls, deep nesting, a 20 MB string."""
    lines = lines_of([event(n) for n in range(6000)])
    for index, line in enumerate(GUARD_LINES):
        lines[300 + index * 400 + 17] = line
    for n in range(5000, 5200):  # a batch whose lists hold only nulls, and one whose lists are all empty
        lines[n] = lines_of([event(n, tags=[None, None])])[0]
    for n in range(5200, 5400):
        lines[n] = lines_of([event(n, tags=[])])[0]
    lines[5700] = lines_of([event(5700, user={"name": "y" * (20 * 1024 * 1024), "zip": "00000"})])[0]
    path = root / "guarded.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path, ["--key", "id", "--batch-size", "200", "--max-error-rate", "1"]


def staged_and_delivered(workspace: Workspace) -> dict[str, object]:
    """What a run left: its segments (without `_loaded_at`), quarantine files, column types of HOLD₂
    and of the warehouse, and which read stages ran fast."""
    run = workspace.hold / "runs" / RUN_ID
    segments = {}
    for path in sorted((run / "segments").iterdir()):
        if path.suffix == ".parquet":
            rows = pl.read_parquet(path).drop("_loaded_at")
            segments[path.name] = (rows.schema, rows.to_dicts())
        else:
            segments[path.name] = _LOADED_AT.sub(b"", path.read_bytes())
    quarantine = {
        str(path.relative_to(run)): path.read_bytes()
        for path in sorted(run.rglob("*"))
        if path.is_file() and "quarantine" in path.relative_to(run).parts
    }
    types = "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns ORDER BY ALL"
    with duckdb.connect(str(workspace.hold / "hold.duckdb"), read_only=True) as con:
        hold_types = [row for row in con.execute(types).fetchall() if row[0] == "staged"]
        stages = dict(con.execute("SELECT stage, count(*) FROM pipeline_metrics GROUP BY stage").fetchall())
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        warehouse_types = con.execute(types).fetchall()
    return {
        "segments": segments,
        "quarantine": quarantine,
        "hold_types": hold_types,
        "warehouse_types": warehouse_types,
        "fast_reads": stages.get("read:fast", 0),
    }


COMPARED = ("rows_read", "rows_written", "rows_quarantined", "duplicates_skipped", "rows_loaded", "batches", "verified")


@pytest.mark.parametrize("make", [sample, flights, changing, guarded], ids=lambda make: make.__name__)
def test_the_fast_parse_delivers_exactly_what_the_exact_parse_delivers(
    tmp_path: Path, prefect_api: str, make: Callable[[Path], tuple[Path, list[str]]]
) -> None:
    data, options = make(tmp_path)
    left = {}
    for parser in ("exact", "fast"):
        workspace = Workspace(tmp_path / parser, prefect_api)
        workspace.root.mkdir()
        result = workspace.cli("--input", str(data), "--run-id", RUN_ID, "--table", "t", "--parser", parser, *options)
        assert result.code == 0, result.output
        left[parser] = ({key: result.summary[key] for key in COMPARED}, staged_and_delivered(workspace))

    (exact_summary, exact), (fast_summary, fast) = left["exact"], left["fast"]
    assert fast_summary == exact_summary
    assert exact["fast_reads"] == 0 and fast["fast_reads"] > 0  # the fast parse really ran
    for part in ("hold_types", "warehouse_types", "quarantine"):
        assert fast[part] == exact[part], part
    assert fast["segments"].keys() == exact["segments"].keys()
    for name, segment in exact["segments"].items():
        assert fast["segments"][name] == segment, name
