"""An agent written as one function over a chunk of inputs (`FunctionAgent`), sync or async, run
by the real session and call runner: each record gets its output, a refused input is set aside
with the reason, and a second session on the same run sends nothing again."""

from __future__ import annotations

import asyncio

import polars as pl
import pytest

from bqhold.tasks.core.agents.session import AgentSession
from bqhold.tasks.core.agents.spec import AgentLimits, FunctionAgent, Rejected
from bqhold.tasks.core.column_types import ColumnType
from bqhold.tasks.core.records import OFFSET_COLUMN, QUARANTINE_REASON
from bqhold.tasks.core.stop import StopRequest

ROWS = pl.DataFrame({"word": ["alpha", "beta", "no", "delta"], OFFSET_COLUMN: [0, 10, 20, 30]})


def shout(words: list[dict]) -> list[dict]:
    if any(len(word["word"]) < 3 for word in words):
        raise Rejected("too short to shout")
    return [{"loud": word["word"].upper()} for word in words]


@pytest.mark.parametrize("kind", ["sync", "async", "sync returning a coroutine"])
def test_a_function_answers_each_record_and_kept_answers_are_not_asked_again(tmp_path, kind):
    calls = []

    def counted(words):
        calls.append(len(words))
        return shout(words)

    async def counted_later(words):
        calls.append(len(words))
        await asyncio.sleep(0.001)
        return shout(words)

    def session() -> AgentSession:
        agent = FunctionAgent(
            name="shout",
            outputs={"loud": ColumnType.STRING},
            limits=AgentLimits(concurrency=2, chunk_size=2),
            function={"sync": counted, "async": counted_later}.get(kind, lambda words: counted_later(words)),
        )
        return AgentSession(agent, tmp_path, StopRequest())

    first = session()
    try:
        answered = first.answer(ROWS, 0)
    finally:
        first.close()
    assert answered["loud"].to_list() == ["ALPHA", "BETA", None, "DELTA"]
    assert answered[QUARANTINE_REASON].to_list() == [
        None,
        None,
        "agent shout rejected the record: too short to shout",
        None,
    ]

    asked = len(calls)
    again = session()
    try:
        again.answer(ROWS, 0)
    finally:
        again.close()
    assert len(calls) == asked  # every answer, the refusal too, came from the call log
