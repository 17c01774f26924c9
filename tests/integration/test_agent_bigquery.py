"""The embeddings pipeline into BigQuery (the emulator, through the real client): the vector is a
REPEATED FLOAT64 column, as the table's schema from the API says, and its values are the service's."""

from __future__ import annotations

import json
from pathlib import Path

from google.cloud import bigquery

from bqhold.flows.embeddings import embeddings_flow
from tests.agent_service import EmbeddingService, ServiceBehaviour, fake_embedding
from tests.bigquery_checks import table_id, warehouse_url


def test_embeddings_land_as_a_repeated_float64_column(
    prefect_api, tmp_path: Path, bigquery_emulator_env, bigquery_client: bigquery.Client, bigquery_dataset
) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": n, "text": f"text {n}"}) + "\n" for n in range(30)))

    with EmbeddingService(ServiceBehaviour(api_key=None)) as service:
        summary = embeddings_flow(
            input=str(docs),
            key="id",
            agent_url=service.url,
            warehouse=warehouse_url(bigquery_dataset),
            hold_dir=str(tmp_path / "hold"),
        )

    assert summary["verified"] and summary["rows_loaded"] == 30
    table = table_id(bigquery_dataset, "docs")
    fields = {field.name: (field.field_type, field.mode) for field in bigquery_client.get_table(table).schema}
    assert fields["embedding"] in (("FLOAT", "REPEATED"), ("FLOAT64", "REPEATED")), fields
    rows = bigquery_client.query(f"SELECT id, text, embedding FROM `{table}` ORDER BY id").result()
    assert [(row["id"], list(row["embedding"])) for row in rows] == [
        (n, fake_embedding(f"text {n}")) for n in range(30)
    ]
