"""bqhold's flows: the local command, the pipelines and their Prefect flows.

Importing this package first sets how the allocators hand freed memory back, unless the user set
their own (docs/design.md, invariant 8):

- polars' jemalloc returns freed pages at once, instead of keeping them 0.5-1 s for reuse:
  otherwise a batch's memory is still resident while the next batch and the read ahead
  allocate. jemalloc reads the setting once, when polars is first imported, so it is set here,
  before any module imports polars; deployments whose entrypoint is a file get it from the
  image (Dockerfile) and their job variables (prefect.yaml) too.
- glibc maps large blocks and keeps to two arenas (`memory.tune_heap`).

On 5M events with a 200-character text, peak RSS 556-570 MB with neither, 493-515 with glibc's
and 462-466 with both, at ~10% of the staging rate for jemalloc's (docs/design.md, invariant 8).
"""

import os

from bqhold.tasks.core.memory import tune_heap

ALLOCATOR_SETTINGS = {"_RJEM_MALLOC_CONF": "dirty_decay_ms:0,muzzy_decay_ms:0"}

for _name, _value in ALLOCATOR_SETTINGS.items():
    os.environ.setdefault(_name, _value)
tune_heap()
