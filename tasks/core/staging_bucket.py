"""Parse `--staging-bucket`, and name the objects a run's segments are staged as.

A value starting with `gs://` names a bucket (and optionally a folder in it) reached with the
same credentials as BigQuery; anything else is the name of a prefect-gcp `GcsBucket` block,
which brings its own bucket, folder and credentials.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from bqhold.tasks.core.errors import ConfigError

# Google's rules: 3-63 characters (dotted names up to 222), lower case, digits, -, _ and dots,
# starting and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_BLOCK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class StagingBucket:
    """Where load files are staged: a bucket and folder, or a GcsBucket block that names them."""

    bucket: str | None = None
    folder: str = ""  # "" or ends with "/"
    block: str | None = None


def folder_path(folder: str) -> str:
    """A folder inside a bucket, normalised to "" or "a/b/"."""
    parts = [part for part in folder.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise ConfigError(f"staging bucket folder {folder!r} may not contain '.' or '..'")
    return "/".join(parts) + "/" if parts else ""


def parse_gs_url(value: str, what: str) -> StagingBucket:
    """The bucket and folder a `gs://BUCKET[/FOLDER]` URL names, or a ConfigError naming `what`."""
    bucket, _, folder = value.removeprefix("gs://").partition("/")
    valid = _BUCKET.fullmatch(bucket) and ".." not in bucket and ("." in bucket or len(bucket) <= 63)
    if not value.startswith("gs://") or not valid:
        raise ConfigError(f"{what} {value!r} must be gs://BUCKET[/FOLDER] with a valid bucket name")
    return StagingBucket(bucket=bucket, folder=folder_path(folder))


def parse_staging_bucket(value: str) -> StagingBucket:
    """The staging place `value` names, or a ConfigError saying what is wrong with it."""
    if value.startswith("gs://"):
        return parse_gs_url(value, "staging bucket")
    if not _BLOCK_NAME.fullmatch(value):
        raise ConfigError(
            f"staging bucket {value!r} must be gs://BUCKET[/FOLDER] or the name of a prefect-gcp GcsBucket block"
        )
    return StagingBucket(block=value)


def object_name(folder: str, hold_id: str, run_id: str, segment: str) -> str:
    """The object a segment file is staged as: one per segment, named by hold dir, run and file,
    so a retry or a re-run finds the objects it already uploaded, and another hold dir using the
    same run id never takes them for its own."""
    return f"{folder}bqhold/{hold_id}/{run_id}/{PurePosixPath(segment).name}"


def gs_uri(bucket: str, name: str) -> str:
    """The `gs://` URI of an object, as load jobs take it."""
    return f"gs://{bucket}/{name}"
