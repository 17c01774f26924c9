"""The local_embeddings pipeline end to end with the real model: 4,000 records, killed in the
middle of a batch, resumed: every record once, no committed record embedded again, the answers
kept before the kill used, and the vectors the model's own. Needs the `models` extra; skipped,
saying so, where it is not installed."""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import duckdb
import numpy
import pytest

from bqhold.tasks.core.faults import KILL_ENV
from tests.conftest import Workspace

pytest.importorskip("sentence_transformers", reason="the models extra is not installed (pip install -e '.[models]')")

RECORDS, BATCH, CHUNK = 4_000, 1_000, 256
WORDS = ("river", "market", "engine", "garden", "signal", "harbour", "ledger", "violin", "glacier", "pepper")


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    chance = random.Random(7)
    path = tmp_path / "docs.jsonl"
    with path.open("w") as out:
        for n in range(RECORDS):
            text = " ".join(chance.choice(WORDS) for _ in range(chance.randint(2, 12))) + f" {n}"
            out.write(json.dumps({"id": n, "text": text}) + "\n")
    return path


@pytest.mark.slow
def test_killed_mid_batch_it_resumes_without_embedding_a_committed_record_again(
    workspace: Workspace, docs: Path
) -> None:
    args = ("--pipeline", "local_embeddings", "--input", str(docs), "--key", "id", "--batch-size", str(BATCH))
    calls_per_batch = -(-BATCH // CHUNK)  # 4: the first batch's calls, then two of the second's
    killed = workspace.cli(*args, env={KILL_ENV: f"answers_kept@{calls_per_batch + 2}"})
    assert killed.code == -signal.SIGKILL, killed.output

    resumed = workspace.cli(*args)

    assert resumed.code == 0, resumed.output
    assert "resuming run" in resumed.output and "from batch 1" in resumed.output
    usage = resumed.summary["agent"]
    assert usage["reused"] == 2 * CHUNK  # the second batch's answers kept before the kill
    assert usage["records_answered"] <= RECORDS  # over both processes: nothing embedded twice
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT id) FROM docs").fetchone() == (RECORDS, RECORDS)
        sample = con.execute("SELECT text, embedding FROM docs USING SAMPLE 20 ROWS").fetchall()

    from bqhold.tasks.agents.sentence_model import load_model

    own = load_model("cpu").encode([text for text, _ in sample]).tolist()
    numpy.testing.assert_allclose([vector for _, vector in sample], own, atol=1e-5)
