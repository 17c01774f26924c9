"""bqhold's flows: the local command, the pipelines and their Prefect flows.

Importing this package first tells polars' allocator (jemalloc) to hand freed pages back at once
instead of after ~10 s, unless the user set their own: otherwise each batch's memory stays
resident while the next batch allocates afresh, and under a memory limit the guard loses a
third of its budget to it (docs/design.md, Invariant 8). jemalloc reads the setting once, when
polars is first imported, so it is set here, before any module imports polars; deployments whose
entrypoint is a file get it from the image (Dockerfile) and their job variables (prefect.yaml).
"""

import os

ALLOCATOR_SETTINGS = {"_RJEM_MALLOC_CONF": "dirty_decay_ms:0,muzzy_decay_ms:0"}

for _name, _value in ALLOCATOR_SETTINGS.items():
    os.environ.setdefault(_name, _value)
