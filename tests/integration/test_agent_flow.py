"""An agent pipeline's flow under a real Prefect engine: what its calls cost is shown as an
artifact, and agent options given to a pipeline without an agent are refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

from prefect.artifacts import Artifact

from bqhold.flows.embeddings import embeddings_flow
from bqhold.flows.generic import generic_flow
from bqhold.tasks.core.errors import ExitCode, exit_code_for
from tests.agent_service import EmbeddingService, ServiceBehaviour


def params(tmp_path: Path, **extra) -> dict:
    return {"hold_dir": str(tmp_path / "hold"), "warehouse": f"duckdb://{tmp_path / 'warehouse.duckdb'}", **extra}


def test_the_cost_of_the_calls_is_an_artifact_with_the_estimated_price(prefect_api, tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    text = "forty characters, or ten tokens, of text"
    docs.write_text("".join(json.dumps({"id": n, "text": text}) + "\n" for n in range(100)))

    with EmbeddingService(ServiceBehaviour(api_key=None)) as service:
        summary = embeddings_flow(
            input=str(docs), agent_url=service.url, agent_chunk_size=10, agent_price_per_mtok=20.0, **params(tmp_path)
        )
        paid = service.total_paid()

    usage = summary["agent"]
    assert usage["calls"] == 1  # 100 equal texts: one distinct input, sent once
    assert usage["reused"] == 0 and usage["records_rejected"] == 0
    assert paid == 1 and usage["tokens"] == len(text) // 4  # as the service counts them
    assert usage["estimated_cost"] == 20.0 * 10 / 1e6
    artifact = Artifact.get("bqhold-agent-usage")
    rows = {row["what"]: row["value"] for row in json.loads(artifact.data)}
    assert rows["calls sent (retries and split chunks included)"] == "1"
    assert rows["tokens (as the service reported them)"] == "10"


def test_agent_options_for_a_pipeline_without_an_agent_are_refused(prefect_api, tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": 1}\n')

    state = generic_flow(input=str(docs), agent_url="http://127.0.0.1:1/v1", return_state=True, **params(tmp_path))

    error = state.result(raise_on_failure=False)
    assert exit_code_for(error) == ExitCode.UNUSABLE_INPUT
    assert str(error).startswith("--agent-url applies to agent pipelines only"), error


def test_the_api_key_comes_from_a_secret_block_and_never_shows(prefect_api, tmp_path: Path, caplog) -> None:
    from prefect.blocks.system import Secret

    secret = "sk-from-a-block-8765"
    Secret(value=secret).save("bqhold-test-agent-key", overwrite=True)
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": n, "text": f"text {n}"}) + "\n" for n in range(20)))

    with EmbeddingService(ServiceBehaviour(api_key=secret)) as service:
        summary = embeddings_flow(
            input=str(docs), agent_url=service.url, agent_api_key_block="bqhold-test-agent-key", **params(tmp_path)
        )
        missing = embeddings_flow(
            input=str(docs),
            agent_url=service.url,
            agent_api_key_block="no-such-block",
            return_state=True,
            **params(tmp_path / "other"),
        )

    assert summary["verified"] and summary["agent"]["records_answered"] == 20
    error = missing.result(raise_on_failure=False)
    assert exit_code_for(error) == ExitCode.UNUSABLE_INPUT and "no-such-block" in str(error), error
    assert secret not in caplog.text and secret not in json.dumps(summary)
