"""CLI flags derived from the option declaration (tasks/core/options.py).

Each option becomes `--its-name` with the declared type, choices and help, in an argument group
per concern. Flags left out stay out of the parsed arguments (argparse.SUPPRESS), so what the
user typed is told apart from the defaults, and only that is passed on to the flow: the flow's
own defaults (the declaration's) fill in the rest.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Iterable
from typing import Any

from bqhold.tasks.core.options import base_type, declared, flag, group_of, literal_choices

METAVARS = {"string_columns": "FIELD,...", "hold_dir": "DIR", "warehouse": "URL"}


def add_option_flags(
    parser: argparse.ArgumentParser, names: Iterable[str], defaults: dict[str, Any] | None = None
) -> None:
    """Add a flag for each option `names`; `defaults` are a command's own (as its flow's signature has them)."""
    groups: dict[type, Any] = {}
    for name in names:
        group = group_of(name)
        if group not in groups:
            groups[group] = parser.add_argument_group(inspect.getdoc(group).splitlines()[0].rstrip("."))
        groups[group].add_argument(flag(name), dest=name, default=argparse.SUPPRESS, **_argument(name, defaults or {}))


def _argument(name: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """add_argument's settings for option `name`."""
    field = declared(name)
    default = defaults.get(name, field.default)
    help_text = field.description or ""
    if default not in (None, False, "", frozenset()) and "default:" not in help_text:
        help_text += f" (default {_shown(default)})"
    kind = base_type(field)
    if kind is bool:
        return {"action": "store_true", "help": help_text}
    choices = literal_choices(field)
    settings = {"type": kind, "help": help_text, "metavar": METAVARS.get(name)}
    return {**settings, "choices": choices, "metavar": None} if choices else settings


def _shown(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else f"{value}"


def given(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The options among `names` the user typed, by name."""
    return {name: getattr(args, name) for name in names if hasattr(args, name)}


def as_flags(values: dict[str, Any]) -> list[str]:
    """Options by name back to the command line: `{"batch_size": 10}` -> `["--batch-size", "10"]`."""
    words: list[str] = []
    for name, value in values.items():
        if value is True:
            words.append(flag(name))
        elif value not in (None, False):
            words += [flag(name), str(value)]
    return words
