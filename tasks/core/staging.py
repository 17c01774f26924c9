"""Turn one raw batch into what HOLD₂ stages: the pure middle of the batch path.

read (RawBatch) -> transform -> flatten -> conform to the staged schema -> key checks and
dedupe -> error-rate check -> rows with `_run_id`, `_batch`, `_loaded_at`, `_row_hash`. The only
outside question, "which of these keys are already staged?", is asked through `already_staged`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from tasks.core.checkpoint import Counters
from tasks.core.errors import ConfigError, DataErrorRateExceeded
from tasks.core.flatten import field_column, flatten
from tasks.core.records import (
    INTERNAL_COLUMNS,
    LINE_COLUMN,
    OFFSET_COLUMN,
    QUARANTINE_REASON,
    QuarantineEntry,
    RawBatch,
)
from tasks.core.schema import ColumnType, Schema, conform

Transform = Callable[[pl.DataFrame], pl.DataFrame]


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


def key_column(key: str) -> str:
    """The flattened column a `--key` names (`user.id` -> `user__id`)."""
    return field_column(key)


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


def _rejections(frame: pl.DataFrame, source: str) -> list[QuarantineEntry]:
    if frame.is_empty():
        return []
    reasons = frame[QUARANTINE_REASON].to_list()
    lines, offsets = (
        frame[column].to_list() if column in frame.columns else [None] * frame.height
        for column in (LINE_COLUMN, OFFSET_COLUMN)
    )
    records = frame.drop([c for c in INTERNAL_COLUMNS if c in frame.columns]).write_ndjson().splitlines()
    return [
        QuarantineEntry(source, line, offset, reason, record)
        for line, offset, reason, record in zip(lines, offsets, reasons, records, strict=True)
    ]


def _split_rejected(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    if QUARANTINE_REASON not in frame.columns:
        return frame, frame.clear()
    bad = pl.col(QUARANTINE_REASON).is_not_null()
    return frame.filter(~bad).drop(QUARANTINE_REASON), frame.filter(bad)


def _check_error_rate(ctx: BatchContext, read: int, quarantined: list[QuarantineEntry]) -> None:
    if read < _MIN_RECORDS_FOR_RATE or len(quarantined) <= ctx.max_error_rate * read:
        return
    first = quarantined[0]
    raise DataErrorRateExceeded(
        f"{ctx.source}: {len(quarantined):,} of {read:,} records in batch {ctx.batch} are bad "
        f"(limit {ctx.max_error_rate:.0%}); first at line {first.line}: {first.reason}. "
        "Fix the input, or raise --max-error-rate to quarantine them and go on"
    )


def prepare_batch(
    raw: RawBatch,
    transform: Transform,
    known: Schema,
    ctx: BatchContext,
    already_staged: KeyLookup,
) -> PreparedBatch:
    """Everything between reading a batch and writing it to HOLD₂."""
    quarantined = list(raw.quarantined)
    transformed = transform(raw.frame)
    # A field named like one of bqhold's own columns is staged under another name (`f__batch`).
    flat = flatten(transformed, keep=INTERNAL_COLUMNS, reserved=frozenset(META_COLUMNS))
    kept, rejected = _split_rejected(flat)
    quarantined += _rejections(rejected, ctx.source)

    conformed = conform(kept, known, passthrough=INTERNAL_COLUMNS, text=ctx.text_columns)
    quarantined += _rejections(conformed.rejected, ctx.source)
    rows = conformed.frame

    keys = key_hashes = None
    duplicates = 0
    owners: frozenset[str] = frozenset()
    if ctx.key is not None and rows.height:
        column = key_column(ctx.key)
        if column not in kept.columns and column not in known:
            raise ConfigError(
                f"{ctx.source}: key field {ctx.key!r} is not in the records (batch {ctx.batch}); check --key"
            )
        if column not in rows.columns:  # null in every record of this batch
            rows = rows.with_columns(pl.lit(None, dtype=pl.String).alias(column))
        missing = rows.with_columns(
            pl.when(pl.col(column).is_null()).then(pl.lit(f"missing key field '{ctx.key}'")).alias(QUARANTINE_REASON)
        )
        rows, no_key = _split_rejected(missing)
        quarantined += _rejections(no_key, ctx.source)
        keys = rows[column].cast(pl.String)
        probe = already_staged(keys)
        owners = probe.owners
        duplicate = ~keys.is_first_distinct() | probe.staged
        duplicates = int(duplicate.sum())
        rows, keys, key_hashes = rows.filter(~duplicate), keys.filter(~duplicate), probe.hashes.filter(~duplicate)

    quarantined.sort(key=lambda entry: entry.line or 0)
    _check_error_rate(ctx, raw.records_read, quarantined)
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
        new_columns=conformed.new_columns,
        counters=counters,
        bytes_per_row=raw.bytes_read / raw.records_read if raw.records_read else 0.0,
        depends_on=owners,
    )
