"""Imports go downwards (docs/design.md, Package layering): every import of every module, those
inside functions included, stays within what its package may use."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE, STORAGE, WAREHOUSES = "bqhold.tasks.core", "bqhold.tasks.storage", "bqhold.tasks.warehouses"
AGENTS = "bqhold.tasks.agents"


@dataclass(frozen=True)
class Layer:
    """A package's modules, the bqhold packages they may import, and outside packages they must not."""

    modules: tuple[Path, ...]
    allowed: tuple[str, ...]
    forbidden: tuple[str, ...] = ()


def python_files(folder: str, recursive: bool = True) -> tuple[Path, ...]:
    found = (ROOT / folder).rglob("*.py") if recursive else (ROOT / folder).glob("*.py")
    return tuple(sorted(found))


LAYERS = {
    "tasks/core": Layer(python_files("tasks/core"), (CORE,), ("prefect", "prefect_gcp", "google")),
    "tasks/storage": Layer(python_files("tasks/storage"), (CORE, STORAGE), ("prefect", "prefect_gcp", "google")),
    "tasks/warehouses": Layer(python_files("tasks/warehouses"), (CORE, STORAGE, WAREHOUSES, "bqhold.blocks")),
    "tasks/agents": Layer(python_files("tasks/agents"), (CORE, AGENTS), ("prefect", "prefect_gcp", "google")),
    "tasks/*.py": Layer(python_files("tasks", recursive=False), ("bqhold.tasks",)),
    "blocks": Layer(python_files("blocks"), (CORE, "bqhold.blocks")),
}


def within(module: str, package: str) -> bool:
    """True when `module` is `package` or under it (`google` covers `google.cloud`, not `google_crc32c`)."""
    return module == package or module.startswith(package + ".")


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def violations(layer: Layer, root: Path = ROOT) -> list[str]:
    """Each import of the layer's modules that it may not make, as `path:line imports module`."""
    found = []
    for path in layer.modules:
        for line, module in imported(path):
            ours_elsewhere = within(module, "bqhold") and not any(within(module, p) for p in layer.allowed)
            if ours_elsewhere or any(within(module, p) for p in layer.forbidden):
                found.append(f"{path.relative_to(root)}:{line} imports {module}")
    return found


def test_each_package_imports_only_the_layers_below_it() -> None:
    assert all(layer.modules for layer in LAYERS.values()), "a layer's folder has moved: update LAYERS"
    found = [f"{name}: {line}" for name, layer in LAYERS.items() for line in violations(layer)]
    assert not found, "imports against docs/design.md, Package layering:\n" + "\n".join(found)


def test_a_core_module_importing_prefect_or_google_inside_a_function_is_named(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text(
        "import google_crc32c\n"
        "from bqhold.tasks.core.errors import ConfigError\n"
        "def late():\n"
        "    from google.cloud import bigquery\n"
        "    import prefect.flows\n"
        "    from bqhold.tasks.storage.hold_store import HoldStore\n"
    )
    core = LAYERS["tasks/core"]
    assert violations(Layer((module,), core.allowed, core.forbidden), tmp_path) == [
        "probe.py:4 imports google.cloud",
        "probe.py:5 imports prefect.flows",
        "probe.py:6 imports bqhold.tasks.storage.hold_store",
    ]
