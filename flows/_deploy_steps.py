"""Steps that `prefect deploy` runs from prefect.yaml, where you deploy (not in flow runs).

A step's failure would otherwise be Prefect's traceback and "An exception occurred."; these
print one `bqhold:` line and stop the deploy (SystemExit passes Prefect's step runner, which
wraps only Exceptions), before the deployment they guard is created.
"""

from __future__ import annotations

import os
import sys


def require_env(name: str, why: str) -> dict[str, str]:
    """The value of environment variable `name` as the step's `value`, or stop the deploy."""
    value = os.environ.get(name, "").strip()
    if not value:
        print(f"bqhold: {name} is not set: {why}", file=sys.stderr)
        raise SystemExit(1)
    return {"value": value}
