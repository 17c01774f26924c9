"""The Cloud Storage emulator the tests run answers generation preconditions as GCS does (412),
through tests/emulator/gcs_preconditions.py: a one-writer lease and fencing by generation can be
tested against it."""

from __future__ import annotations

import pytest
from google.api_core.exceptions import PreconditionFailed


def test_an_object_is_created_only_if_absent_when_asked(gcs_bucket):
    gcs_bucket.blob("lease").upload_from_string(b"first", if_generation_match=0)

    with pytest.raises(PreconditionFailed):
        gcs_bucket.blob("lease").upload_from_string(b"second", if_generation_match=0)
    assert gcs_bucket.blob("lease").download_as_bytes() == b"first"


def test_a_write_or_delete_holds_only_against_the_generation_it_names(gcs_bucket):
    lease = gcs_bucket.blob("lease")
    lease.upload_from_string(b"one", if_generation_match=0)
    lease.reload()
    taken = lease.generation

    gcs_bucket.blob("lease").upload_from_string(b"two", if_generation_match=taken)  # renewed
    with pytest.raises(PreconditionFailed):  # a stale writer, fenced
        gcs_bucket.blob("lease").upload_from_string(b"stale", if_generation_match=taken)
    with pytest.raises(PreconditionFailed):
        gcs_bucket.blob("lease").delete(if_generation_match=taken)
    assert gcs_bucket.blob("lease").download_as_bytes() == b"two"


def test_writes_without_preconditions_are_unchanged(gcs_bucket):
    gcs_bucket.blob("plain").upload_from_string(b"a")
    gcs_bucket.blob("plain").upload_from_string(b"b")
    gcs_bucket.blob("plain").delete()

    assert list(gcs_bucket.list_blobs()) == []
