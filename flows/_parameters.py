"""Flow parameters derived from the option declaration (tasks/core/options.py).

`@takes_options(...)` gives a flow one parameter per option it names — the type, default and
help of the declaration — in its signature and docstring, which is what Prefect validates and
what the UI renders as a deployment's form. The flow's function itself takes `options:
JobOptions` beside its own parameters: no option is listed, defaulted or documented twice.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from bqhold.tasks.core.options import ALL_OPTIONS, base_type, declared, literal_choices, options_from

OPTIONS_PARAMETER = "options"


def option_parameter(name: str, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    """The flow parameter of option `name`: plain types (paths and lists of fields are text,
    as typed in the UI), the declared default unless the flow gives another."""
    field = declared(name)
    kind = base_type(field)
    choices = literal_choices(field)
    annotation: Any = kind if not choices else field.annotation
    value = field.default if default is inspect.Parameter.empty else default
    if value is None:
        annotation = annotation | None
    elif kind is str and not choices:
        value = str(value) if not isinstance(value, frozenset) else ",".join(sorted(value))
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=value, annotation=annotation)


def takes_options(
    names: Iterable[str] = ALL_OPTIONS, *, defaults: dict[str, Any] | None = None, required: Iterable[str] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a flow function `fn(own..., options: JobOptions)`: its signature becomes its own
    parameters followed by the options `names` (those in `required` without a default, those in
    `defaults` with that default), and it is called with the options validated into `options`."""
    names, defaults, required = tuple(names), defaults or {}, set(required)

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(fn).parameters.values() if p.name != OPTIONS_PARAMETER]
        first = [option_parameter(name).replace(default=inspect.Parameter.empty) for name in names if name in required]
        rest = [
            option_parameter(name, defaults.get(name, inspect.Parameter.empty))
            for name in names
            if name not in required
        ]
        positional = [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in [*first, *own]]
        signature = inspect.Signature([*positional, *rest], return_annotation=inspect.signature(fn).return_annotation)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            given = dict(bound.arguments)
            values = {name: given.pop(name) for name in names}
            return fn(**given, **{OPTIONS_PARAMETER: options_from(values)})

        del call.__wrapped__  # Prefect must see this signature, not fn's
        call.__signature__ = signature
        call.__doc__ = _with_args_section(fn.__doc__ or "", [p.name for p in [*first, *rest]])
        return call

    return wrap


def _with_args_section(doc: str, names: list[str]) -> str:
    """`doc` with a Google-style Args section for the options `names`: the one place Prefect
    reads a parameter's help from, for the UI form."""
    lines = [f"    {name}: {declared(name).description}" for name in names]
    return f"{inspect.cleandoc(doc)}\n\nArgs:\n" + "\n".join(lines)


# A command on a run reaches, by default, the warehouse the run was delivered to.
ON_RUN_DEFAULTS: dict[str, Any] = {"warehouse": None}
