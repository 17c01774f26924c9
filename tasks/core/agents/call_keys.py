"""A call's key: what it asks (the input) and of whom (the agent's name and identity: model,
prompt, parameters), hashed. Equal keys get equal answers, so an answer is reused only for the
same question: a changed prompt or model is a new call, never a stale answer."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import xxhash


def _canonical(value: Any) -> str:
    """`value` as JSON that is equal for equal values (keys sorted, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def call_keys(name: str, identity: Mapping[str, Any], values: Iterable[Any]) -> list[str]:
    """The call key of each input value, as 32 hex digits (XXH3-128: fixed by its specification)."""
    asker = _canonical({"agent": name, "identity": dict(identity)}) + "\n"
    return [xxhash.xxh3_128_hexdigest((asker + _canonical(value)).encode()) for value in values]
