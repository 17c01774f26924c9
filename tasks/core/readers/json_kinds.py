"""One kind per JSON field in a batch: the records that disagree go to quarantine; none is coerced.

polars infers one type per field for a whole batch and quietly makes the other values fit it:
`1` beside `"x"` becomes the text `"1"`, an object beside a string becomes JSON text, `true`
merged into integers becomes `1`. So a batch is first parsed strictly, strings allowed only
where the JSON holds a string, which costs next to nothing when the kinds agree. When they do
not, each record's fields are read in Python: every field keeps the kind most records give it
(the first record's on a tie), a record with another kind goes to quarantine with the reason,
and the rest is parsed with exactly those types. The values of an array (at any depth) are one
field: a record whose array holds a value of another kind goes to quarantine too, unless the
arrays mix kinds in at least half the records that have them (a tuple, rather than a list with
a stray value): those are kept as JSON text. `--string-columns` fields take any scalar as text,
and an array they name is kept as its JSON text, whatever its values.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import polars as pl

from bqhold.tasks.core.flatten import path_column
from bqhold.tasks.core.schema import text_hint
from bqhold.tasks.core.text_values import MAX_EXACT_FLOAT_INT

Path = tuple[str | None, ...]
ITEM = None  # the path step into an array's values
_INT64 = range(-(2**63), 2**63)
_NUMBERS = frozenset({"int", "int64", "bigint", "float"})
_SCALARS = _NUMBERS | {"bool", "string"}
# What a field of each winning kind takes besides nulls: a FLOAT64 takes integers it holds
# exactly, a STRING takes numbers and booleans as their text (as a STRING column always has).
_TAKES = {
    "int": frozenset({"int", "int64"}),
    "float": frozenset({"int", "float"}),
    "string": _SCALARS,
    "text": _SCALARS,
}
_SCALAR_WINNERS = frozenset({"int", "float", "bool", "string"})
_EXPECTED = {
    "int": "INT64",
    "float": "FLOAT64",
    "bool": "BOOL",
    "string": "a string",
    "object": "an object",
    "array": "an array",
}
_GOT = {"string": "a string", "object": "an object", "array": "an array"}
_DTYPES = {"int": pl.Int64(), "float": pl.Float64(), "bool": pl.Boolean(), "null": pl.Null()}


class KindsDisagree(ValueError):
    """A strict parse found a value polars would have changed to fit its field's type."""


# -- the strict parse: the common path ----------------------------------------------------


def _strict(dtype: pl.DataType, path: Path, text: frozenset[str]) -> pl.DataType:
    """`dtype` with every string made strict (Categorical refuses numbers, booleans, objects)."""
    if isinstance(dtype, pl.Struct):
        return pl.Struct([pl.Field(f.name, _strict(f.dtype, (*path, f.name), text)) for f in dtype.fields])
    if isinstance(dtype, pl.List):
        return pl.List(_strict(dtype.inner, (*path, ITEM), text))
    if ITEM not in path and path_column(path) in text:
        return pl.String()
    return pl.Categorical() if dtype == pl.String else dtype


def _relaxed(dtype: pl.DataType) -> pl.DataType:
    if isinstance(dtype, pl.Struct):
        return pl.Struct([pl.Field(f.name, _relaxed(f.dtype)) for f in dtype.fields])
    if isinstance(dtype, pl.List):
        return pl.List(_relaxed(dtype.inner))
    return pl.String() if dtype == pl.Categorical else dtype


def _float_leaves(expr: pl.Expr, dtype: pl.DataType) -> Iterator[pl.Expr]:
    if isinstance(dtype, pl.Struct):
        for inner in dtype.fields:
            yield from _float_leaves(expr.struct.field(inner.name), inner.dtype)
    elif dtype == pl.Float64:
        yield expr


def rounded_integers(frame: pl.DataFrame) -> bool:
    """Whether a float field holds a whole number from 2**53 on: an integer that may have lost digits."""
    checks = [
        (((leaf >= MAX_EXACT_FLOAT_INT) | (leaf <= -MAX_EXACT_FLOAT_INT)) & (leaf == leaf.floor())).any()
        for name, dtype in frame.schema.items()
        for leaf in _float_leaves(pl.col(name), dtype)
    ]
    return bool(checks) and any(frame.select(checks).row(0))


def parse_strictly(records: list[bytes], text: frozenset[str] = frozenset()) -> pl.DataFrame:
    """The records as a frame with polars' own types, or KindsDisagree / a polars error when a
    field's kinds disagree (the caller then screens the records)."""
    data = b"".join(records)
    inferred = pl.scan_ndjson(io.BytesIO(data), infer_schema_length=None).collect_schema()
    frame = pl.read_ndjson(io.BytesIO(data), schema={n: _strict(t, (n,), text) for n, t in inferred.items()})
    frame = frame.cast({name: _relaxed(dtype) for name, dtype in frame.schema.items()})
    if rounded_integers(frame):
        raise KindsDisagree("an integer beside floats would lose digits")
    return frame


# -- screening the records one by one: the path when kinds disagree -----------------------


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        if -MAX_EXACT_FLOAT_INT <= value <= MAX_EXACT_FLOAT_INT:
            return "int"
        return "int64" if value in _INT64 else "bigint"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


def _walk(value: object, path: Path, seen: dict[tuple[Path, str], None]) -> None:
    """Add (path, kind) of `value` and of everything inside it to `seen`, in the order met (a dict,
    not a set: the fields' order must not depend on the process's string hashing)."""
    kind = _kind(value)
    seen[(path, kind)] = None
    if kind == "object":
        for key, inner in value.items():
            _walk(inner, (*path, key), seen)
    elif kind == "array":
        for inner in value:
            _walk(inner, (*path, ITEM), seen)


def _family(kind: str) -> str:
    return "number" if kind in _NUMBERS else kind


@dataclass
class _Field:
    """What the records of a batch hold at one path."""

    records: dict[str, int] = field(default_factory=dict)  # kind -> how many records
    first: dict[str, int] = field(default_factory=dict)  # family -> first record with it

    def winner(self, text: bool) -> str:
        """The kind the field keeps."""
        kinds = {kind for kind in self.records if kind != "null"}
        if not kinds:
            return "null"
        if text and kinds <= _SCALARS:
            return "text"
        families: dict[str, int] = {}
        for kind in kinds:
            families[_family(kind)] = families.get(_family(kind), 0) + self.records[kind]
        family = max(families, key=lambda f: (families[f], -self.first[f]))
        if family == "number":
            return "float" if "float" in kinds else "int"
        return family


def _takes(winner: str, kind: str) -> bool:
    return kind == "null" or kind == winner or kind in _TAKES.get(winner, ())


def _array_path(path: Path) -> Path:
    """The field an array value belongs to (`("lines", ITEM, "qty")` -> `("lines",)`)."""
    return path[: path.index(ITEM)] if ITEM in path else path


def _values_at(value: object, path: Path) -> Iterator[object]:
    """Every value at `path` in `value`, arrays walked into."""
    if not path:
        yield value
    elif path[0] is ITEM:
        for item in value if isinstance(value, list) else ():
            yield from _values_at(item, path[1:])
    elif isinstance(value, dict) and path[0] in value:
        yield from _values_at(value[path[0]], path[1:])


def _named(path: Path) -> str:
    """A path as a user reads it: `lines[].qty`."""
    return ".".join("[]" if step is ITEM else step for step in path).replace(".[]", "[]")


def _reason(record: dict, path: Path, kind: str, winner: str) -> str:
    got = _GOT.get(kind) or json.dumps(next(v for v in _values_at(record, path) if _kind(v) == kind))[:100]
    hint = text_hint(path_column(_array_path(path))) if kind in _SCALARS and winner in _SCALAR_WINNERS else ""
    return f"field '{_named(path)}': expected {_EXPECTED[winner]}, got {got}{hint}"


class Screening:
    """The kinds of a batch's fields, counted record by record, then decided."""

    def __init__(self, text: frozenset[str] = frozenset()) -> None:
        self.text = text
        self.fields: dict[Path, _Field] = {}  # in order of first appearance
        self.signatures: dict[frozenset[tuple[Path, str]], int] = {}  # records mostly share one
        self.record_signature: dict[int, int] = {}  # record index -> its signature's number
        self.mixed: set[Path] = set()  # arrays kept as JSON text (see _mixed_arrays)

    def add(self, index: int, record: dict) -> None:
        """Count one record's (path, kind) pairs."""
        seen: dict[tuple[Path, str], None] = {}
        _walk(record, (), seen)
        self.record_signature[index] = self.signatures.setdefault(frozenset(seen), len(self.signatures))
        for path, kind in seen:
            here = self.fields.setdefault(path, _Field())
            here.records[kind] = here.records.get(kind, 0) + 1
            here.first.setdefault(_family(kind), index)

    def decide(self, raw: Callable[[int], bytes]) -> tuple[dict[int, str], dict[str, pl.DataType]]:
        """The records to quarantine (index -> reason; `raw(index)` is decoded again for those)
        and the schema that parses the others without changing a value."""
        winners = self._winners()
        self.mixed = self._mixed_arrays(winners)
        winners = self._winners()
        order = {path: position for position, path in enumerate(self.fields)}
        misfits = {}
        for signature, number in self.signatures.items():
            wrong = [(order[p], p, kind) for p, kind in signature if self._misfit(p, kind, winners)]
            if wrong:
                misfits[number] = min(wrong)[1:]
        rejected = {}
        for index, number in self.record_signature.items():
            if number in misfits:
                path, kind = misfits[number]
                rejected[index] = _reason(json.loads(raw(index)), path, kind, winners[path])
        return rejected, self._schema(winners)

    def _winners(self) -> dict[Path, str]:
        return {
            path: "text" if ITEM in path and self._array_as_text(path) else here.winner(self._as_text(path))
            for path, here in self.fields.items()
        }

    def _misfit(self, path: Path, kind: str, winners: dict[Path, str]) -> bool:
        return not _takes(winners[path], kind) and not (ITEM in path and self._array_as_text(path))

    def _mixed_arrays(self, winners: dict[Path, str]) -> set[Path]:
        """Arrays whose values mix kinds in at least half the records that have values in them
        (rather a tuple than a list with a stray value): kept as JSON text, not quarantined."""
        records = Counter(self.record_signature.values())
        having: Counter[Path] = Counter()
        wrong: Counter[Path] = Counter()
        for signature, number in self.signatures.items():
            for array in {_array_path(p) for p, _ in signature if ITEM in p}:
                having[array] += records[number]
            for array in {_array_path(p) for p, kind in signature if ITEM in p and self._misfit(p, kind, winners)}:
                wrong[array] += records[number]
        return {array for array, count in wrong.items() if count * 2 >= having[array]}

    def _as_text(self, path: Path) -> bool:
        return bool(path) and ITEM not in path and path_column(path) in self.text

    def _array_as_text(self, path: Path) -> bool:
        """Whether `path` is inside an array kept as its JSON text: named by --string-columns, or
        one whose values mix kinds in most records."""
        return path_column(_array_path(path)) in self.text or _array_path(path) in self.mixed

    def _schema(self, winners: dict[Path, str]) -> dict[str, pl.DataType]:
        children: dict[Path, list[Path]] = {}
        for path in self.fields:
            if path and path[-1] is not ITEM:
                children.setdefault(path[:-1], []).append(path)

        def dtype(path: Path) -> pl.DataType:
            winner = winners[path]
            if (winner == "array" and self._array_as_text(path)) or winner in ("string", "text"):
                return pl.String()
            if winner == "object":
                return pl.Struct([pl.Field(child[-1], dtype(child)) for child in children.get(path, [])])
            if winner == "array":
                item = (*path, ITEM)
                return pl.List(dtype(item) if item in winners else pl.Null())
            return _DTYPES[winner]

        return {path[0]: dtype(path) for path in children.get((), [])}
