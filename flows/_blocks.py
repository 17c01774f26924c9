"""Blocks named by a flow run's options, loaded at run time (never at import), and the pieces
every bqhold flow shares around them."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from prefect.client.schemas.objects import State
from prefect.states import Cancelled, Failed

from bqhold.tasks.core.errors import BqholdError, Interrupted, without_tracebacks
from bqhold.tasks.core.options import JobOptions, default_table, options_from


def with_blocks(options: JobOptions) -> JobOptions:
    """`options` with what the blocks they name set, for each option not given a value of its
    own (an explicit value beats the block's); then a table named nowhere is derived from the
    input's name, and the combination is checked. The blocks (and prefect-gcp's, which the
    BigQueryTarget composes: ~40 MB of Google clients) are imported only when a block is named."""
    changes = {}
    if options.staging_area or options.bigquery_target:
        from bqhold.blocks import BigQueryTarget, StagingArea, load_block

        for block_class, name in ((StagingArea, options.staging_area), (BigQueryTarget, options.bigquery_target)):
            if name:
                block = load_block(block_class, name).option_values()
                changes |= {
                    key: value for key, value in block.items() if value is not None and not options.explicit(key)
                }
    if not (changes.get("table") or options.table) and options.input:
        changes["table"] = default_table(options.input)
    if changes:  # validated like any other value
        options = options_from({**options.model_dump(), **changes})
    return options.check_combination()


AGENT_KEY_VARIABLE = "BQHOLD_AGENT_API_KEY"


def agent_api_key(options: JobOptions) -> str | None:
    """The agent's API key: from the Secret block --agent-api-key-block names, else the
    BQHOLD_AGENT_API_KEY environment variable, else none (a local service may need none)."""
    if options.agent_api_key_block:
        from prefect.blocks.system import Secret

        from bqhold.blocks import load_block

        return str(load_block(Secret, options.agent_api_key_block).get())
    return os.environ.get(AGENT_KEY_VARIABLE) or None


def flow_outcome(work: Callable[[], dict[str, Any]]) -> dict[str, Any] | State:
    """What a bqhold flow returns: what `work()` returns, or the final state of an error bqhold
    raised on purpose (anything else fails the flow run with its traceback, as Prefect does)."""
    try:
        return work()
    except BqholdError as exc:
        return final_state(exc)


def final_state(error: BqholdError) -> State:
    """The flow run's final state for an error bqhold raised on purpose: Cancelled after a stop
    signal, else Failed — with the one-line message, and no traceback pinning frames."""
    state = Cancelled if isinstance(error, Interrupted) else Failed
    return state(message=str(error), data=without_tracebacks(error))
