"""Turn one raw batch into what HOLD₂ stages: the pure middle of the batch path.

read (RawBatch) -> transform (positions carried) -> flatten -> conform to the staged schema -> key checks and
dedupe -> error-rate check -> rows with `_run_id`, `_batch`, `_loaded_at`, `_row_hash`. The only
outside question, "which of these keys are already staged?", is asked through `already_staged`.
"""

from __future__ import annotations

import json as json_module
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from bqhold.tasks.core.checkpoint import Counters
from bqhold.tasks.core.column_types import ColumnType, Schema, polars_type
from bqhold.tasks.core.errors import ConfigError, DataErrorRateExceeded, InputError
from bqhold.tasks.core.flatten import Nesting, field_column, field_expr, flatten
from bqhold.tasks.core.records import (
    INTERNAL_COLUMNS,
    LINE_COLUMN,
    OFFSET_COLUMN,
    QUARANTINE_REASON,
    QuarantineEntry,
    RawBatch,
    RecordFormat,
)
from bqhold.tasks.core.schema import Conformed, conform

Transform = Callable[[pl.DataFrame], pl.DataFrame]
# An agent's answers for a batch's rows: the rows, each with the agent's output columns, or the
# reason it rejected the record in `_quarantine_reason` (tasks/core/agents/session.py).
Answers = Callable[[pl.DataFrame], pl.DataFrame]


@dataclass(frozen=True)
class KeyProbe:
    """What HOLD₂ says of a batch's keys: which are staged already, and each key's hash (kept so
    registering the new keys does not hash them a second time)."""

    staged: pl.Series  # bool, one per key
    hashes: pl.Series  # opaque to staging: handed back with the keys that are kept
    owners: frozenset[str] = frozenset()  # the runs that staged the keys found


KeyLookup = Callable[[pl.Series], KeyProbe]
ROW_HASH = "_row_hash"
# The columns bqhold adds to every staged row: which run and batch, when, and a hash of its content.
META_COLUMNS: Schema = {
    "_run_id": ColumnType.STRING,
    "_batch": ColumnType.INT64,
    "_loaded_at": ColumnType.TIMESTAMP,
    ROW_HASH: ColumnType.INT64,
}
# What verification groups a run's rows by; a table without them holds no run of bqhold's yet.
RUN_COLUMNS = frozenset({"_run_id", "_batch"})
# 31 bits: a batch's sum stays far from INT64's limit (2^32 rows of 2^31) in BigQuery's SUM.
_ROW_HASH_MASK = (1 << 31) - 1
_ROW_HASH_SEED = 20_261_129
_MIN_RECORDS_FOR_RATE = 20
MAX_COLUMNS = 10_000  # BigQuery's limit of columns per table, bqhold's own included


@dataclass(frozen=True)
class BatchContext:
    """What the staging of one batch needs to know besides the data."""

    run_id: str
    batch: int
    source: str
    loaded_at: datetime
    key: str | None = None
    max_error_rate: float = 0.05
    text_columns: frozenset[str] = frozenset()  # staged as STRING whatever their values (--string-columns)
    nesting: Nesting = "record"  # what nested objects become (--nesting)
    declared: Schema = field(default_factory=dict)  # column types the pipeline declares (Pipeline.column_types)


@dataclass
class PreparedBatch:
    """Rows ready for HOLD₂, the keys they register, and what was set aside."""

    rows: pl.DataFrame
    keys: pl.Series | None
    key_hashes: pl.Series | None
    quarantined: list[QuarantineEntry]
    new_columns: Schema  # columns the staged table gains, or widens to the type given
    counters: Counters
    bytes_per_row: float = field(default=0.0)
    depends_on: frozenset[str] = frozenset()  # runs whose keys made this batch skip records


def row_hashes(rows: pl.DataFrame) -> pl.Series:
    """Each row's content hash (31 bits), whatever the order of its columns.

    polars' row hash is stable within one polars version (pinned in pyproject.toml), not across
    versions; that is enough, because it is computed once, here, and stored with the row: the
    ledger's per-batch sum and the warehouse's SUM(_row_hash) both add the stored values.
    """
    if not rows.width:
        return pl.Series(ROW_HASH, [0] * rows.height, dtype=pl.Int64)
    hashed = rows.select(sorted(rows.columns)).hash_rows(seed=_ROW_HASH_SEED)
    return (hashed & _ROW_HASH_MASK).cast(pl.Int64).alias(ROW_HASH)


def _json_rows(frame: pl.DataFrame) -> list[bytes]:
    """Each row of `frame` as one line of JSON, without bqhold's own columns."""
    return frame.drop([c for c in INTERNAL_COLUMNS if c in frame.columns]).write_ndjson().encode().splitlines()


def _rows_by_offset(raw: RawBatch, offsets: list[int | None]) -> dict[int, bytes]:
    """The records at `offsets` as read (a Parquet row has no bytes of its own), as JSON."""
    wanted = sorted({offset for offset in offsets if offset is not None})
    if not wanted or OFFSET_COLUMN not in raw.frame.columns:
        return {}
    rows = raw.frame.filter(pl.col(OFFSET_COLUMN).is_in(wanted))
    return dict(zip(rows[OFFSET_COLUMN].to_list(), _json_rows(rows), strict=True))


def _rejections(frame: pl.DataFrame, raw: RawBatch, source: str) -> list[QuarantineEntry]:
    """Quarantine entries for rejected rows, each pointing back to the record as read: its
    bytes in a text source, else the row as read, else (position lost) the row as it is now."""
    if frame.is_empty():
        return []
    reasons = frame[QUARANTINE_REASON].to_list()
    lines, offsets = (
        frame[column].to_list() if column in frame.columns else [None] * frame.height
        for column in (LINE_COLUMN, OFFSET_COLUMN)
    )
    text = raw.format is not RecordFormat.ROWS
    as_read = {} if text else _rows_by_offset(raw, offsets)
    entries = []
    for index, (line, offset, reason) in enumerate(zip(lines, offsets, reasons, strict=True)):
        size = raw.spans.size_at(offset) if text else None
        record = None if size is not None else as_read.get(offset) or _json_rows(frame.slice(index, 1))[0]
        entries.append(QuarantineEntry(source, line, offset, reason, raw.format, size, record))
    return entries


def _split_rejected(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    if QUARANTINE_REASON not in frame.columns:
        return frame, frame.clear()
    bad = pl.col(QUARANTINE_REASON).is_not_null()
    return frame.filter(~bad).drop(QUARANTINE_REASON), frame.filter(bad)


def _check_error_rate(ctx: BatchContext, raw: RawBatch, quarantined: list[QuarantineEntry]) -> None:
    """Stop on a batch that is mostly bad, and on a file that is all bad whatever its size
    (then it is rather not the format its name says): staging nothing is not a success."""
    read, bad = raw.records_read, len(quarantined)
    if not bad or ctx.max_error_rate >= 1:
        return
    first = quarantined[0]
    whole_file = raw.start.offset == 0 and raw.exhausted
    if whole_file and bad == read:
        raise DataErrorRateExceeded(
            f"{ctx.source}: none of its {read:,} record(s) can be staged; first at line {first.line}: "
            f"{first.reason}. Is it the format its name says? Fix the input, or pass --max-error-rate 1 "
            "to quarantine them and go on"
        )
    if read < _MIN_RECORDS_FOR_RATE or bad <= ctx.max_error_rate * read:
        return
    raise DataErrorRateExceeded(
        f"{ctx.source}: {bad:,} of {read:,} records in batch {ctx.batch} are bad "
        f"(limit {ctx.max_error_rate:.0%}); first at line {first.line}: {first.reason}. "
        "Fix the input, or raise --max-error-rate to quarantine them and go on"
    )


def _check_width(ctx: BatchContext, known: Schema, new_columns: Schema) -> None:
    """Refuse a batch that would give the table more columns than BigQuery allows."""
    total = len(known.keys() | new_columns.keys()) + len(META_COLUMNS)  # new_columns: new or widened
    if total > MAX_COLUMNS:
        raise InputError(
            f"{ctx.source}: batch {ctx.batch} would give the table {total:,} columns (bqhold's "
            f"{len(META_COLUMNS)} included), more than the {MAX_COLUMNS:,} BigQuery allows; keep fewer fields "
            "with a pipeline's transform (--pipeline), or split the records"
        )


def _check_answer_types(ctx: BatchContext, known: Schema, outputs: Conformed) -> None:
    """An agent's outputs have the types it declares; a staged column of another type for one of
    them (the agent changed) cannot take them."""
    if outputs.rejected.height:
        reason = outputs.rejected[QUARANTINE_REASON][0]
        raise ConfigError(
            f"{ctx.source}: the agent's answers do not fit the columns staged for this table ({reason}); "
            "stage them into another table with --table"
        )


def _in_json(rows: pl.DataFrame, key: str, json: frozenset[str]) -> pl.Expr | None:
    """A key field inside an object staged as JSON text (`--nesting json`), read from that text."""
    parts = key.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        holder = ".".join(parts[:cut])
        if field_column(holder) in json and (text := field_expr(rows.schema, holder)) is not None:
            path = "$" + "".join(f"[{json_module.dumps(part)}]" for part in parts[cut:])
            return text.str.json_path_match(path)
    return None


def _key_value(
    ctx: BatchContext, rows: pl.DataFrame, read: pl.DataFrame, known: Schema, json: frozenset[str]
) -> pl.Expr:
    """Where the key field is in the batch's rows (a column, a record's field, a field of JSON
    text); null where this batch brings no value for it at all; a ConfigError if the records
    never have it."""
    assert ctx.key is not None
    found = field_expr(rows.schema, ctx.key)
    if found is None:
        found = _in_json(rows, ctx.key, json)
    if found is not None:
        return found
    staged = pl.Schema({name: polars_type(kind) for name, kind in known.items()})
    if field_expr(read.schema, ctx.key) is None and field_expr(staged, ctx.key) is None:
        raise ConfigError(f"{ctx.source}: key field {ctx.key!r} is not in the records (batch {ctx.batch}); check --key")
    return pl.lit(None, dtype=pl.String)  # null in every record of this batch


def _name_of(transform: Transform) -> str:
    """Where a transform is defined (`bqhold.flows.web_events.transform`), for a message."""
    return f"{getattr(transform, '__module__', '?')}.{getattr(transform, '__qualname__', repr(transform))}"


def apply_transform(transform: Transform, frame: pl.DataFrame) -> pl.DataFrame:
    """The transform's rows, each still carrying its record's source position (`__line`, `__offset`).

    A transform that keeps one row per record, in order, may drop the position columns (a
    `select` of the fields it wants): they are put back by row. One that filters, explodes or
    reorders rows must keep them, as polars' `filter`, `explode` and `sort` do by themselves;
    dropping them there would point quarantined rows at the wrong records, so it is refused.
    """
    rows = transform(frame)
    lost = [column for column in (LINE_COLUMN, OFFSET_COLUMN) if column in frame.columns and column not in rows.columns]
    if not lost:
        return rows
    if rows.height != frame.height:
        raise ConfigError(
            f"transform {_name_of(transform)} turned {frame.height:,} records into "
            f"{rows.height:,} rows and dropped {', '.join(lost)}: a rejected row could not point back to its record; "
            "keep those columns when rows are filtered or exploded (polars' filter and explode keep them)"
        )
    return rows.with_columns(frame[column] for column in lost)


def prepare_batch(
    raw: RawBatch,
    transform: Transform,
    known: Schema,
    ctx: BatchContext,
    already_staged: KeyLookup,
    answers: Answers | None = None,
) -> PreparedBatch:
    """Everything between reading a batch and writing it to HOLD₂. With an agent (`answers`),
    its calls come last: only for records that are staged, after dedupe, so no duplicate and no
    record that cannot be staged is ever paid for."""
    quarantined = list(raw.quarantined)
    transformed = apply_transform(transform, raw.frame)
    # A field named like one of bqhold's own columns is staged under another name (`f__batch`).
    flat = flatten(transformed, keep=INTERNAL_COLUMNS, reserved=frozenset(META_COLUMNS), nesting=ctx.nesting)
    kept, rejected = _split_rejected(flat.frame)
    quarantined += _rejections(rejected, raw, ctx.source)

    conformed = conform(
        kept, known, passthrough=INTERNAL_COLUMNS, text=ctx.text_columns, json=flat.json, declared=ctx.declared
    )
    _check_width(ctx, known, conformed.new_columns)
    quarantined += _rejections(conformed.rejected, raw, ctx.source)
    rows = conformed.frame

    keys = key_hashes = None
    duplicates = 0
    owners: frozenset[str] = frozenset()
    if ctx.key is not None and rows.height:
        key = _key_value(ctx, rows, kept, known, flat.json)
        missing = rows.with_columns(
            pl.when(key.is_null()).then(pl.lit(f"missing key field '{ctx.key}'")).alias(QUARANTINE_REASON)
        )
        rows, no_key = _split_rejected(missing)
        quarantined += _rejections(no_key, raw, ctx.source)
        keys = rows.select(key.cast(pl.String)).to_series()
        probe = already_staged(keys)
        owners = probe.owners
        duplicate = ~keys.is_first_distinct() | probe.staged
        duplicates = int(duplicate.sum())
        rows, keys, key_hashes = rows.filter(~duplicate), keys.filter(~duplicate), probe.hashes.filter(~duplicate)

    new_columns = conformed.new_columns
    if answers is not None and rows.height:
        answered = answers(rows)
        accepted = answered[QUARANTINE_REASON].is_null()
        quarantined += _rejections(answered.filter(~accepted), raw, ctx.source)
        outputs = conform(answered.filter(accepted).drop(QUARANTINE_REASON), known, frozenset(rows.columns))
        _check_answer_types(ctx, known, outputs)
        rows, new_columns = outputs.frame, new_columns | outputs.new_columns
        if keys is not None:
            keys, key_hashes = keys.filter(accepted), key_hashes.filter(accepted)

    quarantined.sort(key=lambda entry: entry.line or 0)
    _check_error_rate(ctx, raw, quarantined)
    content = rows.drop(INTERNAL_COLUMNS, strict=False)
    staged = content.with_columns(
        pl.lit(ctx.run_id).alias("_run_id"),
        pl.lit(ctx.batch, dtype=pl.Int64).alias("_batch"),
        pl.lit(ctx.loaded_at).dt.convert_time_zone("UTC").dt.cast_time_unit("us").alias("_loaded_at"),
        row_hashes(content),
    )
    counters = Counters(
        rows_read=raw.records_read,
        rows_written=staged.height,
        rows_quarantined=len(quarantined),
        duplicates_skipped=duplicates,
    )
    return PreparedBatch(
        rows=staged,
        keys=keys,
        key_hashes=key_hashes,
        quarantined=quarantined,
        new_columns=new_columns,
        counters=counters,
        bytes_per_row=raw.bytes_read / raw.records_read if raw.records_read else 0.0,
        depends_on=owners,
    )
