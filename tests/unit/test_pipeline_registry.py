"""The registry of flows (flows/_pipelines.py), prefect.yaml and the pipelines' unit tests agree.

Adding a pipeline is one file in flows/, its deployments in prefect.yaml and its unit test;
each failure here says which of them is missing and what to write.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from prefect import Flow

from bqhold.flows._pipelines import RUN_COMMANDS, FlowEntry, all_flows, pipelines
from bqhold.tasks.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PIPELINE_TESTS = ROOT / "tests" / "unit" / "pipelines"
# (the pool's part of a deployment's name, the pool): a flow's deployments are MODULE-self-hosted and
# MODULE-cloud-run, unique names the UI's list of deployments tells apart.
SELF_HOSTED, CLOUD_RUN = ("self-hosted", "bqhold-process"), ("cloud-run", "bqhold-cloud-run")
# A pipeline's deployments, as prefect.yaml writes those of the shipped ones (its anchors are defined above them).
PIPELINE_DEPLOYMENTS = {
    SELF_HOSTED: """
  - name: {name}-self-hosted
    entrypoint: {entrypoint}
    description: {description}
    tags: [bqhold, {name}]
    parameters:
      <<: *params_self_hosted
      input: bqhold-data/inbox/{name}-*.jsonl
      table: {name}
    schedules: *nightly
    concurrency_limit: *one_at_a_time
    work_pool: *self_hosted
    pull: *pull_checkout
""",
    CLOUD_RUN: """
  - name: {name}-cloud-run
    entrypoint: {entrypoint}
    description: {description}
    tags: [bqhold, {name}]
    parameters:
      <<: *params_cloud_run
      input: gs://my-bqhold/inbox/{name}-*.jsonl  # set your bucket
      table: {name}
    schedules: *nightly
    concurrency_limit: *one_at_a_time
    work_pool: *cloud_run
    build: *build_cloud_run
    pull: *pull_image
""",
}


def prefect_yaml_text() -> str:
    return (ROOT / "prefect.yaml").read_text()


def deployed(text: str) -> list[dict]:
    return yaml.safe_load(text)["deployments"]


def deployment_name(entry: FlowEntry, target: tuple[str, str]) -> str:
    """The name of a flow's deployment on a pool: `generic-self-hosted`."""
    return f"{entry.module}-{target[0]}"


def deployment_snippet(entry: FlowEntry, target: tuple[str, str]) -> str:
    """The prefect.yaml entry a pipeline needs on a pool, ready to paste."""
    description = json.dumps(entry.load_module().PIPELINE.description)  # quoted: a description may hold ': '
    return PIPELINE_DEPLOYMENTS[target].format(entrypoint=entry.entrypoint, name=entry.module, description=description)


def missing_deployments(entry: FlowEntry, targets: list[tuple[str, str]]) -> str:
    """What to add to prefect.yaml for a flow that has no deployment on some pools."""
    lacks = " or ".join(f"{deployment_name(entry, (part, pool))!r} on pool {pool}" for part, pool in targets)
    lack = f"prefect.yaml has no deployment of {entry.entrypoint} named {lacks}"
    if not entry.pipeline:
        return f"{lack}; add them like flows/redeliver.py's"
    snippets = "".join(deployment_snippet(entry, target) for target in targets)
    return (
        f"flows/{entry.module}.py defines pipeline {entry.module!r} but {lack}; add these to prefect.yaml's "
        f"`deployments:`, after the other pipelines' (then set `input` to where the files arrive):\n{snippets}"
    )


def fail_with(problems: list[str]) -> None:
    """Fail with every problem found, each a message that says what to do (no assertion noise)."""
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def test_each_flow_module_defines_its_flow_under_the_registrys_names():
    problems = []
    for entry in all_flows():
        try:
            flow = entry.load_flow()
        except ConfigError as missing:
            problems.append(str(missing))
            continue
        if not isinstance(flow, Flow):
            problems.append(f"flows/{entry.module}.py: {entry.function} is not a flow; = pipeline_flow(PIPELINE)")
        elif flow.name != entry.flow_name:
            problems.append(
                f"flows/{entry.module}.py: {entry.function} is named {flow.name!r}; name it {entry.flow_name!r}"
            )
    fail_with(problems)


def test_each_pipeline_is_named_like_its_file():
    assert {"generic", "web_events"} <= {entry.module for entry in pipelines()}
    problems = []
    for entry in pipelines():
        pipeline = getattr(entry.load_module(), "PIPELINE", None)
        if pipeline is None:
            problems.append(f"flows/{entry.module}.py must define PIPELINE = Pipeline({entry.module!r}, ...)")
        elif pipeline.name != entry.module:
            problems.append(
                f"flows/{entry.module}.py defines pipeline {pipeline.name!r}; name it {entry.module!r} like its file"
            )
    fail_with(problems)


def test_each_pipeline_has_a_unit_test_of_its_transform():
    problems = [
        f"flows/{entry.module}.py defines pipeline {entry.module!r} but has no unit test; create "
        f"{test.relative_to(ROOT)}: run its transform on a small file with bqhold.tasks.core.pipeline.preview "
        "and assert the rows a user would check (like tests/unit/pipelines/test_web_events.py)"
        for entry in pipelines()
        if not (test := PIPELINE_TESTS / f"test_{entry.module}.py").exists()
    ]
    names = {entry.module for entry in pipelines()}
    problems += [
        f"{test.relative_to(ROOT)} tests pipeline {name!r}, which flows/ has not; remove it"
        for test in sorted(PIPELINE_TESTS.glob("test_*.py"))
        if (name := test.stem.removeprefix("test_")) not in names
    ]
    fail_with(problems)


def test_prefect_yaml_deploys_every_flow_on_each_pool_and_nothing_else():
    deployments = deployed(prefect_yaml_text())
    targets = {(d["entrypoint"], d["name"], d["work_pool"]["name"]) for d in deployments}
    problems = []
    for entry in all_flows():
        missing = [
            target
            for target in (CLOUD_RUN, SELF_HOSTED)
            if (entry.entrypoint, deployment_name(entry, target), target[1]) not in targets
        ]
        if missing:
            problems.append(missing_deployments(entry, missing))
    registered = {entry.entrypoint for entry in all_flows()}
    problems += [
        f"prefect.yaml deploys {entrypoint} ({name!r} on {pool}), which is no flow of bqhold's: flows/ has no such "
        f"pipeline, and flows/_pipelines.py lists only {[entry.module for entry in RUN_COMMANDS]}; remove it"
        for entrypoint, name, pool in sorted(targets)
        if entrypoint not in registered
    ]
    fail_with(problems)
    expected = {
        (entry.entrypoint, deployment_name(entry, target), target[1])
        for entry in all_flows()
        for target in (CLOUD_RUN, SELF_HOSTED)
    }
    assert targets == expected, f"deployed on unknown pools: {sorted(targets - expected)}"
    assert len(deployments) == len(targets), "two deployments share a flow and a name"
    names = [d["name"] for d in deployments]
    assert len(set(names)) == len(names), f"two deployments share a name: {sorted(names)}"


def test_the_deployments_suggested_for_a_new_pipeline_are_like_the_shipped_ones():
    generic = next(entry for entry in pipelines() if entry.module == "generic")
    snippets = "".join(deployment_snippet(generic, target) for target in PIPELINE_DEPLOYMENTS)
    shipped, suggested = deployed(prefect_yaml_text()), deployed(prefect_yaml_text() + snippets)[-2:]
    for new in suggested:
        (old,) = [d for d in shipped if (d["entrypoint"], d["name"]) == (new["entrypoint"], new["name"])]
        same = ("tags", "schedules", "concurrency_limit", "work_pool", "build", "pull")
        assert {key: new.get(key) for key in same} == {key: old.get(key) for key in same}, new["name"]
        assert new["parameters"].keys() - {"table"} == old["parameters"].keys() - {"table"}
