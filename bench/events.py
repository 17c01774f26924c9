"""Deterministic nested JSON events (~350 bytes each) for the sample, the tests and the benchmarks.

    python bench/events.py OUT.jsonl --rows 1000000 [--duplicate-rate 0.01] [--bad-lines] [--text-chars 200]

The same arguments always produce the same bytes. Duplicates repeat an earlier event
exactly (same `event_id`), as an at-least-once producer would. `--text-chars N` adds a `text`
field of N characters of words (a comment, a message body), the long text field of issue 11's
benchmark; without it the bytes are those of earlier versions.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from pathlib import Path

TYPES = ("page_view", "page_view", "page_view", "click", "click", "signup", "purchase")
COUNTRIES = ("DE", "FR", "US", "GB", "NL", "ES", "IT", "PL", "SE", "BR", "JP", "IN")
PLANS = ("free", "free", "pro", "team", "enterprise")
DEVICES = (
    ("ios", "17.4", "iPhone 15"),
    ("android", "14", "Pixel 8"),
    ("macos", "14.3", "MacBook Air"),
    ("windows", "11", "Surface Laptop"),
    ("linux", "6.8", "ThinkPad X1"),
)
PATHS = ("/", "/pricing", "/docs/getting-started", "/blog/exactly-once", "/signup", "/checkout", "/account")
SOURCES = ("google", "newsletter", "twitter", "direct", "partner")
WORDS = (
    "the",
    "order",
    "arrived",
    "late",
    "but",
    "support",
    "was",
    "helpful",
    "and",
    "quick",
    "delivery",
    "package",
    "great",
    "price",
    "would",
    "buy",
    "again",
    "size",
    "fits",
    "colour",
    "café",
    "naïve",
)

# Lines that a real feed sends now and then; each must end up in quarantine, with its line.
BAD_LINES = (
    b'{"event_id": "evt_bad_truncated", "type": "click", "user": {"id": 1\n',
    b'["an", "array", "is", "not", "an", "event"]\n',
    b'{"event_id": "evt_bad_bytes", "type": "click", "note": "caf\xe9 \xff"}\n',
    b"this line is not JSON at all\n",
)


def text(chars: int, rng: random.Random) -> str:
    """`chars` characters of words."""
    return " ".join(rng.choices(WORDS, k=chars // 3 + 1))[:chars]


def event(index: int, rng: random.Random, text_chars: int = 0) -> dict:
    """The event with number `index` (with a `text` field of `text_chars` characters unless 0)."""
    kind = rng.choice(TYPES)
    os_name, os_version, model = rng.choice(DEVICES)
    user_id = rng.randrange(1, 50_000)
    second = index * 7 % 86_400
    record = {
        "event_id": f"evt_{index:09d}",
        "type": kind,
        "ts": f"2026-11-{1 + index % 28:02d}T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
        f".{index % 1000:03d}Z",
        "user": {"id": user_id, "country": rng.choice(COUNTRIES), "plan": rng.choice(PLANS)},
        "device": {"os": os_name, "version": os_version, "model": model},
        "context": {
            "page": {"path": rng.choice(PATHS), "referrer": None if rng.random() < 0.4 else "https://www.example.org/"},
            "utm": {"source": rng.choice(SOURCES)},
        },
        "properties": {
            "amount": round(rng.uniform(5, 500), 2) if kind == "purchase" else None,
            "currency": "EUR" if kind == "purchase" else None,
            "items": rng.randrange(1, 6),
        },
        "tags": rng.sample(["mobile", "beta", "returning", "promo", "vip"], k=rng.randrange(0, 3)),
    }
    if text_chars:
        record["text"] = text(text_chars, rng)
    return record


def lines(
    rows: int, seed: int = 7, duplicate_rate: float = 0.01, bad_lines: bool = False, text_chars: int = 0
) -> Iterator[bytes]:
    """`rows` event lines (duplicates included), with BAD_LINES spread through if asked."""
    rng = random.Random(seed)
    recent: list[bytes] = []
    bad_at = {rows * (i + 1) // (len(BAD_LINES) + 1): line for i, line in enumerate(BAD_LINES)} if bad_lines else {}
    index = 0
    for position in range(rows):
        if position in bad_at:
            yield bad_at[position]
        if recent and rng.random() < duplicate_rate:
            yield rng.choice(recent)
            continue
        line = json.dumps(event(index, rng, text_chars), separators=(",", ":")).encode() + b"\n"
        index += 1
        recent.append(line)
        if len(recent) > 1000:
            recent.pop(0)
        yield line


def write(
    path: Path, rows: int, seed: int = 7, duplicate_rate: float = 0.01, bad_lines: bool = False, text_chars: int = 0
) -> Path:
    """Write the events to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        buffer = []
        for line in lines(rows, seed, duplicate_rate, bad_lines, text_chars):
            buffer.append(line)
            if len(buffer) >= 10_000:
                handle.write(b"".join(buffer))
                buffer.clear()
        handle.write(b"".join(buffer))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--duplicate-rate", type=float, default=0.01)
    parser.add_argument("--bad-lines", action="store_true")
    parser.add_argument("--text-chars", type=int, default=0, help="add a `text` field of this many characters")
    args = parser.parse_args()
    write(args.out, args.rows, args.seed, args.duplicate_rate, args.bad_lines, args.text_chars)


if __name__ == "__main__":
    main()
