"""The CLI's flags, the flows' parameters (a deployment's form in the Prefect UI) and the blocks'
fields all come from the one option declaration, and agree with it: names, defaults, help."""

from __future__ import annotations

import argparse

import pytest
from prefect.utilities.callables import parameter_schema

from bqhold.blocks import BigQueryTarget, StagingArea
from bqhold.flows._parameters import ON_RUN_DEFAULTS
from bqhold.flows._pipelines import RUN_COMMANDS
from bqhold.flows.generic import generic_flow
from bqhold.flows.run import build_parser, dispatch
from bqhold.flows.web_events import web_events_flow
from bqhold.tasks.core.options import ALL_OPTIONS, declared, flag


def _flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {action.dest: action for action in parser._actions if action.option_strings}


def _as_typed(value):
    """A default as a user types it (the UI form and the CLI both take paths and lists as text)."""
    if isinstance(value, frozenset):
        return ",".join(sorted(value)) or ""
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def test_every_option_is_a_flag_with_its_declared_help():
    flags = _flags(build_parser())

    for name in ALL_OPTIONS:
        assert flags[name].option_strings == [flag(name)], name
        assert flags[name].help.startswith(declared(name).description), name


def test_the_cli_and_a_deployment_show_the_same_default():
    flags = _flags(build_parser())
    schema = parameter_schema(generic_flow).properties

    for name in ALL_OPTIONS:
        if name in ("input", "key"):  # the one the flow requires, and the pipeline's own key
            continue
        default = _as_typed(declared(name).default)
        assert schema[name].get("default", "") == default, name
        if default not in (None, False, ""):
            help_text = flags[name].help.replace(",", "")
            assert f"(default {default})" in help_text or "default:" in help_text, name


def test_a_deployment_form_has_each_options_help_and_the_pipelines_key():
    for pipeline_flow, key in ((generic_flow, None), (web_events_flow, "event_id")):
        schema = parameter_schema(pipeline_flow)

        assert schema.required == ["input"]
        assert schema.properties["key"].get("default") == key
        for name in ALL_OPTIONS:
            assert schema.properties[name]["description"] == declared(name).description, name


@pytest.mark.parametrize("command", RUN_COMMANDS, ids=lambda entry: entry.module)
def test_each_commands_flags_are_its_flows_parameters(command, capsys):
    with pytest.raises(SystemExit):
        dispatch([command.module, "--help"], "bqhold")
    shown = capsys.readouterr().out
    flow_parameters = parameter_schema(command.load_flow()).properties

    for name in command.options:
        assert flag(name) in shown, (command, name)
        assert flow_parameters[name].get("default") == ON_RUN_DEFAULTS.get(name, _as_typed(declared(name).default))
    assert set(flow_parameters) - set(command.options) <= {"run_id", "apply"}, command


def test_blocks_hold_options_as_declared():
    target_options = {"table", "location", "write_mode", "partition_by", "cluster_by", "schema_update"}
    for block, fields in ((StagingArea, {"batch_size", "memory_limit_mb"}), (BigQueryTarget, target_options)):
        for name in fields:
            field = block.model_fields[name]
            assert (field.default, field.description) == (declared(name).default, declared(name).description), name
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        StagingArea(hold_dir="/data/hold", batch_size=0)


def test_bqhold_alone_and_the_main_jobs_help_list_every_command(capsys):
    code = dispatch([], "bqhold")
    alone = capsys.readouterr().out
    with pytest.raises(SystemExit):
        dispatch(["--help"], "python flows/run.py")
    main_help = capsys.readouterr().out

    assert code == 2
    for command in ("run", "redeliver", "cleanup", "abandon", "repair", "report", "replay"):
        assert f"\n  {command} " in alone and f"\n  {command} " in main_help, command
