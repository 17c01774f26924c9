"""Names BigQuery accepts for projects, datasets and tables: its own rules, not stricter ones.

- A **table** name is 1 to 1,024 UTF-8 bytes of letters, marks and numbers of any script,
  connectors (`_`), dashes and spaces (Unicode categories L, M, N, Pc, Pd, Zs): `Orders`,
  `orders-2026`, `ventes 2026`, `注文` are all tables. BigQuery tells `Orders` from `orders`.
- A **dataset** name is 1 to 1,024 ASCII letters, digits and underscores.
- A **project** id is 6 to 30 lower-case ASCII letters, digits and hyphens, starting with a
  letter and not ending with a hyphen; a domain-scoped one is prefixed `example.com:`.

None of them can hold a quote, a backtick or a dot, so a valid name is safe inside backticks
(BigQuery) or double quotes (DuckDB).
"""

from __future__ import annotations

import re
import unicodedata

from bqhold.tasks.core.errors import ConfigError

MAX_NAME_BYTES = 1024
_TABLE_CATEGORIES = frozenset({"Pc", "Pd", "Zs"})
_DATASET = re.compile(r"[A-Za-z0-9_]{1,1024}")
_PROJECT = re.compile(r"(?:[a-z0-9-]+(?:\.[a-z0-9-]+)+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]")


def _table_char(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "LMN" or category in _TABLE_CATEGORIES


def table_problem(name: str) -> str | None:
    """Why BigQuery would refuse `name` as a table name, or None when it accepts it."""
    if not name:
        return "it is empty"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"it is longer than {MAX_NAME_BYTES:,} bytes"
    wrong = sorted({char for char in name if not _table_char(char)})
    if wrong:
        return f"it holds {', '.join(repr(char) for char in wrong)}"
    return None


def check_table(name: str) -> str:
    """`name` if BigQuery accepts it as a table name, else a ConfigError saying why."""
    problem = table_problem(name)
    if problem is not None:
        raise ConfigError(
            f"table name {name!r} is not one BigQuery accepts ({problem}): use letters, digits, underscores,"
            " dashes and spaces, at most 1,024 bytes"
        )
    return name


def check_dataset(name: str) -> str:
    """`name` if BigQuery accepts it as a dataset name, else a ConfigError saying why."""
    if not _DATASET.fullmatch(name):
        raise ConfigError(
            f"dataset name {name!r} is not one BigQuery accepts: ASCII letters, digits and underscores, at most 1,024"
        )
    return name


def check_project(project: str) -> str:
    """`project` if it is a Google Cloud project id, else a ConfigError saying why."""
    if not _PROJECT.fullmatch(project):
        raise ConfigError(
            f"project id {project!r} is not a Google Cloud project id: 6 to 30 lower-case letters, digits and"
            " hyphens, starting with a letter (domain-scoped: example.com:my-project)"
        )
    return project
