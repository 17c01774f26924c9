"""A domain pipeline: product analytics events into a typed, analysis-ready table.

Input: the nested events of the bundled sample (`event_id`, `type`, `ts`, `user{...}`,
`device{...}`, `context{page, utm}`, `properties{...}`, `tags`). Output: one row per event
with a real TIMESTAMP, the fields analysts query, and `is_mobile` / `revenue_eur` derived.
An event whose `ts` is not a timestamp is quarantined with the reason.
"""

from __future__ import annotations

import polars as pl

from bqhold.flows._runner import pipeline_flow
from bqhold.tasks.core.pipeline import Pipeline
from bqhold.tasks.core.records import QUARANTINE_REASON
from bqhold.tasks.core.text_values import parse_timestamp

MOBILE_OS = ("ios", "android")


def _field(path: str) -> pl.Expr:
    """A nested field by dotted path, null when any part is missing."""
    head, *rest = path.split(".")
    expr = pl.col(head)
    for part in rest:
        expr = expr.struct.field(part)
    return expr


def _nested(frame: pl.DataFrame, path: str, dtype: pl.DataType) -> pl.Expr:
    """The field at `path`, or a typed null when no record of the batch has it."""
    head, *rest = path.split(".")
    dtype_here = frame.schema.get(head)
    if dtype_here is None:
        return pl.lit(None, dtype=dtype).alias(path.replace(".", "_"))
    for part in rest:
        if not isinstance(dtype_here, pl.Struct) or part not in {f.name for f in dtype_here.fields}:
            return pl.lit(None, dtype=dtype).alias(path.replace(".", "_"))
        dtype_here = next(f.dtype for f in dtype_here.fields if f.name == part)
    return _field(path).cast(dtype, strict=False).alias(path.replace(".", "_"))


def transform(frame: pl.DataFrame) -> pl.DataFrame:
    """Nested events -> one typed row per event."""
    raw_ts = _nested(frame, "ts", pl.String)
    ts = parse_timestamp(raw_ts)
    amount = _nested(frame, "properties.amount", pl.Float64)
    currency = _nested(frame, "properties.currency", pl.String)
    return frame.select(
        _nested(frame, "event_id", pl.String).alias("event_id"),
        _nested(frame, "type", pl.String).alias("event_type"),
        ts.alias("event_ts"),
        _nested(frame, "user.id", pl.Int64).alias("user_id"),
        _nested(frame, "user.country", pl.String).alias("country"),
        _nested(frame, "user.plan", pl.String).alias("plan"),
        _nested(frame, "device.os", pl.String).alias("os"),
        _nested(frame, "context.page.path", pl.String).alias("page_path"),
        _nested(frame, "context.utm.source", pl.String).alias("utm_source"),
        _nested(frame, "device.os", pl.String).is_in(MOBILE_OS).alias("is_mobile"),
        pl.when(currency == "EUR").then(amount).alias("revenue_eur"),
        pl.when(ts.is_null())
        .then(pl.format("ts is not a timestamp: {}", raw_ts.fill_null("(missing)")))
        .alias(QUARANTINE_REASON),
    )


PIPELINE = Pipeline(
    name="web_events",
    transform=transform,
    description="Product analytics events as a typed table (event_ts, user, page, revenue).",
    default_key="event_id",
    partition_by="event_ts:DAY",
    cluster_by="event_type,country",
    column_descriptions={
        "event_ts": "when the event happened (UTC)",
        "revenue_eur": "the amount of a purchase in EUR; null for other currencies and events",
        "is_mobile": "the device runs iOS or Android",
    },
)
web_events_flow = pipeline_flow(PIPELINE)
