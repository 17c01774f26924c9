"""The Dockerfile and prefect.yaml, checked without a Docker engine or a server.

The Dockerfile is parsed: a pinned base image, a non-root user, no secrets, every COPY source
present and inside the build context (.dockerignore), dependencies installed before the source
is copied, its WORKDIR the one prefect.yaml's cloud pull step sets. Its install commands are then
run as written in a fresh virtualenv that sees the suite's installed dependencies (see `_with_the_suites_dependencies`).

prefect.yaml is loaded as `prefect deploy` loads it: parameters fit the flows' signatures, job
variables fit the pools' base job templates (from Prefect and prefect-gcp), schedules are valid,
and nothing is built or pushed by default. That every flow of the registry has a deployment on
each pool, and nothing else has one, is checked in tests/unit/test_pipeline_registry.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bqhold.flows._pipelines import all_flows, pipelines

ROOT = Path(__file__).resolve().parents[2]
SELF_HOSTED_POOL, CLOUD_RUN_POOL = "bqhold-process", "bqhold-cloud-run"
SECRET_NAME = re.compile(r"(?i)(secret|token|passw|api_?key|credential|private|access_?key|auth)")
SECRET_VALUE = re.compile(
    r"(-----BEGIN|AIza[0-9A-Za-z_-]{20}|pnu_[0-9A-Za-z]{20}|ghp_[0-9A-Za-z]{20}|[A-Za-z0-9+/]{40,})"
)


# --- Dockerfile ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse_dockerfile(path: Path = ROOT / "Dockerfile") -> list[Instruction]:
    """Instructions in order, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation line"
    return instructions


def all_of(keyword: str) -> list[str]:
    return [i.args for i in parse_dockerfile() if i.keyword == keyword]


def copy_sources(args: str) -> tuple[list[str], str]:
    """A COPY's sources and destination (flags such as --chown dropped)."""
    parts = [p for p in args.split() if not p.startswith("--")]
    return parts[:-1], parts[-1]


def env_pairs() -> dict[str, str]:
    pairs = {}
    for args in all_of("ENV"):
        for name, value in re.findall(r"(\w+)=(\"[^\"]*\"|\S+)", args):
            pairs[name] = value.strip('"')
    return pairs


def workdir() -> str:
    (path,) = all_of("WORKDIR")
    return path


def test_base_image_is_an_exact_python_version_matching_the_project() -> None:
    (base,) = all_of("FROM")
    match = re.fullmatch(r"python:(3)\.(\d+)\.(\d+)-slim(-[a-z]+)?", base)
    assert match, f"base image {base!r} is not an exact python:X.Y.Z-slim tag"
    pyproject = (ROOT / "pyproject.toml").read_text()
    low, high = re.search(r'requires-python = ">=3\.(\d+),<3\.(\d+)"', pyproject).groups()
    assert int(low) <= int(match[2]) < int(high), base


def test_runs_as_a_non_root_user() -> None:
    instructions = parse_dockerfile()
    users = [i.args for i in instructions if i.keyword == "USER"]
    assert users, "no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users
    last_user = max(n for n, i in enumerate(instructions) if i.keyword == "USER")
    assert all(i.keyword != "RUN" for i in instructions[last_user:]), "RUN after USER: an install as the runtime user"


def test_no_secrets_in_env_or_args() -> None:
    arguments = {a.split("=")[0]: [*a.split("=", 1), ""][1] for a in all_of("ARG")}
    for name, value in {**env_pairs(), **arguments}.items():
        assert not SECRET_NAME.search(name), f"{name} looks like a secret baked into the image"
        assert not SECRET_VALUE.search(value), f"{name}={value!r} looks like a secret"
    assert not all_of("ADD"), "ADD fetches and unpacks: COPY only"
    assert not any(re.search(r"\b(curl|wget)\b", run) for run in all_of("RUN")), "downloads outside pip"


# A .dockerignore matcher with Docker's rules: patterns in order, the last that matches the path
# or one of its parent directories decides; `!` re-includes; `*` stays within a directory, `**`
# crosses directories.
def _dockerignore_rules() -> list[tuple[bool, re.Pattern]]:
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        regex = ""
        for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
        rules.append((negate, re.compile(regex)))
    return rules


def in_build_context(relative: str) -> bool:
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, regex in _dockerignore_rules():
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negate
    return not excluded


def copied_files() -> list[str]:
    """Every file the Dockerfile's COPY instructions take from the repository."""
    files = []
    for args in all_of("COPY"):
        sources, _ = copy_sources(args)
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"COPY {source}: no such file in the repository"
            found = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            files += [str(p.relative_to(ROOT)) for p in found if "__pycache__" not in p.parts]
    return files


def test_every_copied_file_exists_and_is_in_the_build_context() -> None:
    files = copied_files()
    assert "pyproject.toml" in files and "README.md" in files  # the build reads both
    assert any(f.startswith("flows/") for f in files) and any(f.startswith("blocks/") for f in files)
    missing = [f for f in files if not in_build_context(f)]
    assert not missing, f".dockerignore leaves out what the Dockerfile copies: {missing[:10]}"


def test_the_build_context_leaves_out_everything_else() -> None:
    for path in (
        ".git/HEAD",
        ".venv/bin/python",
        "bench/out/events-1000.jsonl",
        "bqhold-data/hold/hold.duckdb",
        "tests/conftest.py",
        ".env",
        "service-account.json",
        "flows/__pycache__/run.cpython-311.pyc",
    ):
        assert not in_build_context(path), f"{path} would be sent to the Docker build"


def test_dependencies_are_installed_before_the_source_is_copied() -> None:
    instructions = parse_dockerfile()
    copies = [n for n, i in enumerate(instructions) if i.keyword == "COPY"]
    installs = [n for n, i in enumerate(instructions) if i.keyword == "RUN" and "pip install" in i.args]
    assert copy_sources(instructions[copies[0]].args)[0] == ["pyproject.toml"], (
        "the first COPY must be pyproject.toml alone"
    )
    assert copies[0] < installs[0] < copies[1], "dependencies must be installed between the two"
    assert "--no-deps" in instructions[installs[-1]].args and "pip check" in instructions[installs[-1]].args


def test_workdir_is_where_the_cloud_deployments_pull_step_goes() -> None:
    directories = {
        step["prefect.deployments.steps.set_working_directory"]["directory"]
        for d in deployments()
        if d["work_pool"]["name"] == CLOUD_RUN_POOL
        for step in d["pull"]
    }
    assert directories == {workdir()}


def test_the_cloud_deployments_keep_hold_in_a_bucket_and_the_image_a_volume_for_local_runs() -> None:
    (volume,) = all_of("VOLUME")
    assert "/data" in volume
    assert any("ln -s /data" in run and "chown" in run for run in all_of("RUN"))
    for d in deployments():
        if d["work_pool"]["name"] == CLOUD_RUN_POOL:
            # A StagingArea block names the bucket (hold_url); no volume, no hold_dir of their own.
            assert d["parameters"]["staging_area"] == "bqhold-hold", d["name"]
            assert "hold_dir" not in d["parameters"], d["name"]


def _run_as_written(command: str, cwd: Path, venv: Path) -> None:
    # The image's ENV, except the no-cache switch: a re-run of this test reuses pip's cache.
    env = {
        **os.environ,
        **env_pairs(),
        "VIRTUAL_ENV": str(venv),
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("PIP_NO_CACHE_DIR", None)
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"RUN {command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def _closure(names: list[str]) -> set[str]:
    """The installed distributions `names` need, themselves included (extras and markers as pip reads them)."""
    needed: set[str] = set()
    queue = [Requirement(name) for name in names]
    while queue:
        requirement = queue.pop()
        key = canonicalize_name(requirement.name)
        if key in needed:
            continue
        needed.add(key)
        for text in metadata.distribution(requirement.name).requires or []:
            inner = Requirement(text)
            extras = requirement.extras or {""}
            if inner.marker is None or any(inner.marker.evaluate({"extra": extra}) for extra in extras):
                queue.append(inner)
    return needed


def _with_the_suites_dependencies(venv: Path, tmp_path: Path) -> None:
    """Let `venv` see, from this suite's environment, exactly the distributions the project's
    dependencies need (linked into one folder, a path entry of `venv`). They were installed from
    the same pins by the README's test command, on a clean machine in CI; installing them all again
    here took 60-115 s of the suite's 15 minutes. So the Dockerfile's first pip command finds them
    there, and the test proves what is the Dockerfile's own: its commands run as written, the
    project installs beside the dependencies (not editable), `pip check` passes, the flows import."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    linked = tmp_path / "dependencies"
    linked.mkdir()
    for name in _closure(dependencies):
        dist = metadata.distribution(name)
        for top in {Path(str(file)).parts[0] for file in dist.files or []} - {"..", "__pycache__"}:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (linked / top).exists():
                (linked / top).symlink_to(source)
    [site] = (venv / "lib").glob("python*/site-packages")
    (site / "zz-suite-dependencies.pth").write_text(f"{linked}\n")


def test_the_dockerfile_installs_the_project_in_a_clean_environment(tmp_path: Path) -> None:
    """COPY what the Dockerfile copies, then run its pip commands verbatim in a new virtualenv."""
    context = tmp_path / "opt-bqhold"  # stands for WORKDIR
    context.mkdir()
    for args in all_of("COPY"):
        sources, destination = copy_sources(args)
        for source in sources:
            target = context / destination / (Path(source).name if destination.endswith("/") else "")
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(ROOT / source, target)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    _with_the_suites_dependencies(venv, tmp_path)

    for instruction in parse_dockerfile():  # RUNs that install; the user/volume one needs root
        if instruction.keyword == "RUN" and "pip " in instruction.args:
            _run_as_written(instruction.args, context, venv)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    flow_modules = ", ".join(f"bqhold.flows.{entry.module}" for entry in all_flows())
    check = (
        f"import {flow_modules}, bqhold.tasks, bqhold.blocks, prefect, prefect_gcp;"
        "print(bqhold.flows.generic.__file__); print(prefect.__version__)"
    )
    done = subprocess.run(
        [python, "-c", check],
        cwd=outside,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    module_file, version = done.stdout.split()
    assert Path(module_file).is_relative_to(venv) and version == "3.8.8", (
        done.stdout
    )  # installed, not read from the checkout
    # What a Cloud Run flow run does after its pull step: load the entrypoint from WORKDIR.
    load = (
        "from prefect.flows import load_flow_from_entrypoint as load; print(load('flows/generic.py:generic_flow').name)"
    )
    done = subprocess.run(
        [python, "-c", load],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PREFECT_HOME": str(tmp_path / "prefect")},
    )
    assert done.returncode == 0 and done.stdout.strip() == "bqhold-generic", done.stderr


# --- prefect.yaml ---------------------------------------------------------------------------------


def prefect_yaml() -> dict:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())


def deployments() -> list[dict]:
    return prefect_yaml()["deployments"]


def pipeline_entrypoints() -> set[str]:
    """`flows/<module>.py:<module>_flow` of every pipeline (the registry, flows/_pipelines.py)."""
    return {entry.entrypoint for entry in pipelines()}


def load_flow(entrypoint: str):
    from prefect.flows import load_flow_from_entrypoint

    path, name = entrypoint.split(":")
    return load_flow_from_entrypoint(f"{ROOT / path}:{name}")


# Flows that work on one run already in HOLD₂: run on demand with its run_id, never scheduled.
ON_DEMAND = {entry.entrypoint for entry in all_flows() if not entry.scheduled}


def test_parameters_fit_the_flows() -> None:
    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.schema_tools import validate

    for d in deployments():
        flow = load_flow(d["entrypoint"])
        schema = parameter_schema(flow.fn).model_dump_for_openapi()
        on_demand = d["entrypoint"] in ON_DEMAND  # needs a run_id, given per run
        runs = [d.get("parameters") or {}] + [
            {**(d.get("parameters") or {}), **s.get("parameters", {})} for s in d.get("schedules") or []
        ]
        for parameters in runs:
            validate(parameters, schema, raise_on_error=True, ignore_required=on_demand)
        if "input" in schema["properties"]:
            assert d["parameters"]["input"], d["name"]


def test_job_variables_fit_the_work_pools_templates() -> None:
    from prefect.utilities.schema_tools import validate
    from prefect.workers.process import ProcessWorker
    from prefect_gcp.workers.cloud_run_v2 import CloudRunWorkerV2

    templates = {
        SELF_HOSTED_POOL: ProcessWorker.get_default_base_job_template(),
        CLOUD_RUN_POOL: CloudRunWorkerV2.get_default_base_job_template(),
    }
    for d in deployments():
        variables = d["work_pool"].get("job_variables") or {}
        schema = templates[d["work_pool"]["name"]]["variables"]
        assert set(variables) <= set(schema["properties"]), (
            d["entrypoint"],
            d["name"],
            set(variables) - set(schema["properties"]),
        )
        validate(variables, schema, raise_on_error=True, ignore_required=True)
        assert variables["env"]["PREFECT_LOGGING_EXTRA_LOGGERS"] == "bqhold"
        if d["work_pool"]["name"] == CLOUD_RUN_POOL:
            # The build step's: BQHOLD_IMAGE, required (the model's pipeline: that image with the models extra).
            assert variables["image"] in ("{{ image.value }}", "{{ image.value }}-models")
            assert {"cpu", "memory", "timeout"} <= set(variables)
            assert variables["max_retries"] == 0  # Prefect retries resume from HOLD₂; Cloud Run's would not be seen


def test_schedules_are_valid_and_only_the_dry_run_is_on() -> None:
    from prefect.client.schemas.schedules import CronSchedule

    for d in deployments():
        for schedule in d.get("schedules") or []:
            CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone"))
            if schedule["active"]:
                assert d["entrypoint"].startswith("flows/cleanup.py") and schedule["parameters"]["apply"] is False, d
        if d["entrypoint"] in pipeline_entrypoints():
            assert len(d["schedules"]) == 1 and d["schedules"][0]["active"] is False
        if d["entrypoint"] in ON_DEMAND:
            assert not d.get("schedules")


def test_pull_steps_and_no_image_build_by_default() -> None:
    spec = prefect_yaml()
    assert spec["push"] is None
    (build,) = spec["build"]  # only records this checkout's path, for the self-hosted pull step
    step = build["prefect.deployments.steps.run_shell_script"]
    assert step["id"] == "checkout" and step["script"] == "pwd"
    for d in deployments():
        (pull,) = d["pull"]
        directory = pull["prefect.deployments.steps.set_working_directory"]["directory"]
        assert directory == ("{{ checkout.stdout }}" if d["work_pool"]["name"] == SELF_HOSTED_POOL else workdir())
        assert "push" not in d
        if d["work_pool"]["name"] == SELF_HOSTED_POOL:
            assert "build" not in d
        else:  # only checks that BQHOLD_IMAGE is set, and hands it to the job variables
            (step,) = d["build"]
            assert step["bqhold.flows._deploy_steps.require_env"]["name"] == "BQHOLD_IMAGE"
    first = deployments()[0]  # `deploy --all` without an image stops there, having created nothing
    assert first["work_pool"]["name"] == CLOUD_RUN_POOL
