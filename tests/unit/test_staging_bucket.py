"""--staging-bucket: a gs:// bucket and folder or a GcsBucket block name; objects named per segment."""

from __future__ import annotations

import pytest

from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.options import options_from
from bqhold.tasks.core.staging_bucket import StagingBucket, gs_uri, object_name, parse_staging_bucket


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gs://my-bucket", StagingBucket(bucket="my-bucket")),
        ("gs://my-bucket/", StagingBucket(bucket="my-bucket")),
        ("gs://my-bucket/loads", StagingBucket(bucket="my-bucket", folder="loads/")),
        ("gs://my-bucket//loads//eu/", StagingBucket(bucket="my-bucket", folder="loads/eu/")),
        ("gs://data.example.com/x", StagingBucket(bucket="data.example.com", folder="x/")),
        ("prod-staging", StagingBucket(block="prod-staging")),
    ],
)
def test_bucket_urls_and_block_names(value, expected):
    assert parse_staging_bucket(value) == expected


@pytest.mark.parametrize(
    ("value", "named"),
    [
        *((value, repr(value)) for value in ("gs://", "gs://My-Bucket", "gs://ab", "gs://-bucket", "gs://a..b")),
        ("gs://" + "a" * 64, "a" * 64),
        ("gs://bucket/../other", "'../other' may not contain '.' or '..'"),
        *((value, repr(value)) for value in ("s3://bucket", "Prod Staging", "")),
    ],
)
def test_anything_else_is_refused_naming_what_is_wrong(value, named):
    with pytest.raises(ConfigError) as info:
        parse_staging_bucket(value)

    assert named in str(info.value)


def test_each_segment_is_one_object_under_its_hold_dir_and_run():
    name = object_name("loads/", "3fa29c1b7d0e", "20261123-abc", "runs/20261123-abc/segments/batch-000007.jsonl")

    assert name == "loads/bqhold/3fa29c1b7d0e/20261123-abc/batch-000007.jsonl"
    assert gs_uri("b", name) == "gs://b/loads/bqhold/3fa29c1b7d0e/20261123-abc/batch-000007.jsonl"
    assert object_name("loads/", "other", "20261123-abc", "batch-000007.jsonl") != name, "another hold dir's run"


def test_options_refuse_a_bad_bucket_and_a_bucket_for_duckdb():
    bigquery = {"input": "x.jsonl", "table": "x", "warehouse": "bigquery://proj-1/ds"}
    staged = options_from({**bigquery, "staging_bucket": "gs://stage/x"}).check_combination()
    assert staged.staging_bucket == "gs://stage/x"

    with pytest.raises(ConfigError, match="gs://BUCKET"):
        options_from({**bigquery, "staging_bucket": "gs://UPPER"})
    with pytest.raises(ConfigError, match="BigQuery warehouses only"):
        options_from({"input": "x.jsonl", "table": "x", "staging_bucket": "gs://stage"}).check_combination()
