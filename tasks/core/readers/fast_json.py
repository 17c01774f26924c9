"""The guarded fast parse of a JSONL block: pyarrow, with the schema learnt from earlier batches.

pyarrow's `read_json` told the schema parses a block 2-3x faster than polars infers one, but it
is not the authority: it accepts invalid UTF-8 and `NaN`/`Inf`, reads a `null` line as an all-null row
(a file of them crashes it) and two objects on one line as two rows, and with a schema given it
cannot say what the exact path (jsonl.py, json_kinds.py) would infer for this batch: a field
absent or all null, floats that are all whole numbers, keys in another order. So it runs only
behind guards, and answers None at any doubt; the caller then parses the batch exactly. What
pyarrow refuses by itself (a number in a string field, a bool in an int field, a fraction in an
int field, an object where a string was, duplicate keys, a lone surrogate, a raw control
character) raises, which is a doubt too. What it returns is the frame the exact path returns.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from bqhold.tasks.core.flatten import path_column
from bqhold.tasks.core.readers.blocks import LineBlock, byte_positions
from bqhold.tasks.core.readers.json_kinds import rounded_integers
from bqhold.tasks.core.readers.nesting import MAX_DEPTH, nesting_problem

_OPEN = (ord("{"), ord("["))
_BLOCK_BYTES = 1 << 20  # pyarrow's own default
_SCALARS = {
    pl.Int64: pa.int64(),
    pl.Float64: pa.float64(),
    pl.Boolean: pa.bool_(),
    pl.String: pa.string(),
    pl.Null: pa.null(),
}


def _arrow_type(dtype: pl.DataType, in_list: bool = False) -> pa.DataType | None:
    """The type pyarrow's JSON reader reads `dtype` as; None for one it does not read, or not
    safely: nulls in a list (their offsets break across pyarrow's blocks, apache/arrow#51305)."""
    if isinstance(dtype, pl.Struct):
        fields = [(inner.name, _arrow_type(inner.dtype, in_list)) for inner in dtype.fields]
        return None if any(kind is None for _, kind in fields) else pa.struct(fields)
    if isinstance(dtype, pl.List):
        inner = _arrow_type(dtype.inner, in_list=True)
        return None if inner is None else pa.list_(inner)
    if in_list and dtype == pl.Null:
        return None
    return _SCALARS.get(dtype.base_type())


def _well_framed(block: LineBlock, buffer: np.ndarray) -> bool:
    """Every line is one object: it starts with `{` and ends with `}` (before blanks and its line break)."""
    if not (buffer[block.starts] == ord("{")).all():
        return False
    last = block.ends - 1
    last -= buffer[last] == ord("\n")
    last -= buffer[last] == ord("\r")
    odd = np.flatnonzero(buffer[last] != ord("}"))
    view = block.view()
    return all(
        bytes(view[block.starts[i] : block.ends[i]]).rstrip().endswith(b"}") for i in odd.tolist()
    )  # rare: blanks after the object


def _shallow(block: LineBlock, buffer: np.ndarray) -> bool:
    """No record nests deeper than the exact path parses: brackets counted per line, and the few
    lines with many of them measured (brackets inside strings count, which only costs a look)."""
    brackets = byte_positions(buffer, _OPEN)
    per_line = np.bincount(np.searchsorted(block.starts, brackets, side="right") - 1, minlength=block.count)
    view = block.view()
    return not any(
        nesting_problem(bytes(view[block.starts[i] : block.ends[i]])) for i in np.flatnonzero(per_line > MAX_DEPTH)
    )


def _valid_utf8(block: LineBlock) -> bool:
    """The block is UTF-8 throughout (pyarrow itself lets invalid bytes into strings)."""
    bounds = pa.py_buffer(np.array([0, block.size], dtype=np.int64))
    whole = pa.Array.from_buffers(pa.large_string(), 1, [None, bounds, pa.py_buffer(block.view())])
    try:
        whole.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _plain(block: LineBlock) -> bool:
    """The cheap byte guards: nothing pyarrow would read otherwise than the exact path."""
    buffer = np.frombuffer(block.view(), dtype=np.uint8)
    return _well_framed(block, buffer) and _shallow(block, buffer) and _valid_utf8(block)


def _covers(value: object, dtype: pl.DataType) -> bool:
    """Whether `value` holds every field of `dtype`, in its order, down to the last level: then the
    exact path, inferring fields in the order it meets them, orders them as `dtype` does."""
    if isinstance(dtype, pl.Struct):
        names = [inner.name for inner in dtype.fields]
        return (
            isinstance(value, dict)
            and list(value) == names
            and all(_covers(value[inner.name], inner.dtype) for inner in dtype.fields)
        )
    if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct | pl.List):
        return isinstance(value, list) and bool(value) and _covers(value[0], dtype.inner)
    return True


def _inferred_alike(chunks: list[pa.Array], first: object) -> bool:
    """Whether the exact path infers the type pyarrow was told for these values (a column's
    chunks, not combined: that would copy them): at every level a value other than null (else it
    infers null), and among floats one written as a float (else it infers integers): a fraction,
    or the first record's value (`first`, as json.loads read it). And whether it reads them at
    all: no float NaN or infinite (pyarrow reads the literals `NaN`, `Inf` and `Infinity`, which
    are not JSON)."""
    if not chunks:
        return False
    kind = chunks[0].type
    if pa.types.is_null(kind):
        return True
    if sum(chunk.null_count for chunk in chunks) == sum(len(chunk) for chunk in chunks):
        return False
    if pa.types.is_struct(kind):  # flatten(): a null struct's fields are null
        inner_first = first if isinstance(first, dict) else {}
        fields = [chunk.flatten() for chunk in chunks]
        return all(
            _inferred_alike([inner[index] for inner in fields], inner_first.get(field.name))
            for index, field in enumerate(kind)
        )
    if pa.types.is_list(kind):
        return _inferred_alike(
            [chunk.flatten() for chunk in chunks], first[0] if isinstance(first, list) and first else None
        )
    if not pa.types.is_floating(kind):
        return True
    if any(pc.all(pc.is_finite(chunk)).as_py() is False for chunk in chunks):
        return False
    return isinstance(first, float) or any(
        bool((values != np.floor(values)).any()) for values in (c.drop_null().to_numpy() for c in chunks)
    )


def _as_inferred(table: pa.Table, first_line: bytes, learnt: pl.Schema) -> bool:
    """Whether the exact path would infer `learnt` for these records."""
    try:
        first = json.loads(first_line)
    except ValueError:
        return False
    if not _covers(first, pl.Struct(learnt)):
        return False
    return all(_inferred_alike(table[name].chunks, first[name]) for name in table.column_names)


def _text_leaves_ok(dtype: pl.DataType, path: tuple[str, ...], text: frozenset[str]) -> bool:
    """Whether every field read as text (outside lists) was learnt as a string, as the exact path
    reads it whatever the batch holds (a batch whose records disagreed may have learnt another type)."""
    if isinstance(dtype, pl.Struct):
        return all(_text_leaves_ok(inner.dtype, (*path, inner.name), text) for inner in dtype.fields)
    return isinstance(dtype, pl.List) or path_column(path) not in text or dtype == pl.String


def fast_frame(block: LineBlock, learnt: pl.Schema, text: frozenset[str] = frozenset()) -> pl.DataFrame | None:
    """The block's records parsed by pyarrow with `learnt`, exactly as the exact path would parse
    them with `text` fields read as text; None at any doubt. Once pyarrow has parsed them the
    block's bytes are released (see LineBlock.release)."""
    fields = [(name, _arrow_type(dtype)) for name, dtype in learnt.items()]
    if not block.count or any(kind is None for _, kind in fields):
        return None
    if not all(_text_leaves_ok(dtype, (name,), text) for name, dtype in learnt.items()) or not _plain(block):
        return None
    options = pa_json.ParseOptions(explicit_schema=pa.schema(fields), unexpected_field_behavior="infer")
    # pyarrow parses in blocks (in parallel) that must each hold whole lines.
    reading = pa_json.ReadOptions(block_size=max(_BLOCK_BYTES, int(block.sizes().max()) + 1))
    try:
        source = pa.BufferReader(pa.py_buffer(block.view()))
        # The system allocator, so the table's memory goes back when it is freed (pyarrow's own
        # pool keeps it: +50 MB of peak RSS per 50k-row batch of 600-byte records, measured).
        table = pa_json.read_json(
            source, read_options=reading, parse_options=options, memory_pool=pa.system_memory_pool()
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    first = bytes(block.view()[: block.ends[0]])
    del source
    block.release()  # parsed: the bytes go before the frame is made (they are read again if needed)
    if table.num_rows != block.count or table.schema != pa.schema(fields) or not _as_inferred(table, first, learnt):
        return None
    frame = _to_polars(table)
    if list(frame.schema.items()) != list(learnt.items()) or rounded_integers(frame):
        return None
    return frame


def _to_polars(table: pa.Table) -> pl.DataFrame:
    """The table as a polars frame, converted a column at a time, each arrow column freed once
    converted (polars copies strings): the batch is not held twice whole."""
    columns = []
    while table.num_columns:
        columns.append(pl.from_arrow(table.column(0)).alias(table.column_names[0]))
        table = table.remove_column(0)
    return pl.DataFrame(columns)


def _unordered(dtype: pl.DataType) -> object:
    """`dtype` with the fields of every struct in name order: what stays when order is set aside."""
    if isinstance(dtype, pl.Struct):
        return tuple(sorted((inner.name, _unordered(inner.dtype)) for inner in dtype.fields))
    if isinstance(dtype, pl.List):
        return ("list", _unordered(dtype.inner))
    return dtype


def next_learnt(learnt: pl.Schema | None, parsed: pl.Schema) -> pl.Schema:
    """The schema to try on the next batch after one parsed with `parsed`: `parsed`, unless it is
    `learnt` in another order (the exact path orders the fields of records it had to screen by
    chance), which would only send the next batch exact too."""
    if learnt is not None and _unordered(pl.Struct(learnt)) == _unordered(pl.Struct(parsed)):
        return learnt
    return parsed
