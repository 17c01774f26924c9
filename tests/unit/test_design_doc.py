"""docs/design.md stays citable and true to the tree: every `docs/design.md, <section>` in the
repository names one of its sections, every repository path it names exists, and its lists of
summary keys and exit codes are the code's."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from bqhold.tasks.core.errors import ExitCode
from bqhold.tasks.core.summary import RunSummary

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design.md"
# Where references to the design live: the packages, the tests, the bench, and the project's files.
SEARCHED = ("flows", "tasks", "blocks", "tests", "bench", "docs", ".ci", "README.md", "prefect.yaml", "Dockerfile")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".txt", ""}
REFERENCE = re.compile(r"docs/design\.md,[ \t]*(?P<section>[^\n]*)")
CONTINUATION = re.compile(r"^[\s#*\"'>]*")  # comment or docstring markers before a wrapped section name
OLD_NAME = "DESIGN" + ".md"  # the contract outside the repository, which code must not cite
REPOSITORY_PATH = re.compile(r"`((?:flows|tasks|blocks|tests|bench|docs)/[^`\s]*)`")


def design_text() -> str:
    return DESIGN.read_text(encoding="utf-8")


def headings(text: str) -> list[str]:
    """The design's headings, outside code blocks."""
    found, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6} (.+)", line)):
            found.append(match[1].strip())
    return found


def section_names(text: str) -> list[str]:
    """What a reference may cite: each heading up to its colon, e.g. "invariant 7", "commit order"."""
    return [heading.split(":")[0].strip().lower() for heading in headings(text)]


def section_body(text: str, name: str) -> str:
    """The lines under the `## name` heading, up to the next heading of that level."""
    match = re.search(rf"^## {re.escape(name)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"docs/design.md has no '## {name}' section"
    return match[1]


def searched_files() -> list[Path]:
    files = []
    for name in SEARCHED:
        path = ROOT / name
        candidates = path.rglob("*") if path.is_dir() else [path]
        files += [
            f
            for f in candidates
            if f.is_file() and f.suffix in TEXT_SUFFIXES and "__pycache__" not in f.parts and "out" not in f.parts
        ]
    return sorted(files)


def cited(section: str, names: list[str]) -> bool:
    """True when `section` (what follows the reference's comma) starts with one of `names` as whole words."""
    lowered = section.lower()
    return any(
        lowered.startswith(name) and (len(lowered) == len(name) or not lowered[len(name)].isalnum()) for name in names
    )


def references() -> list[tuple[str, int, str]]:
    """Every `docs/design.md, <section>` in the repository: (file, line number, section text)."""
    found = []
    for path in searched_files():
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for number, line in enumerate(lines, start=1):
            for match in REFERENCE.finditer(line):
                section = match["section"].strip()
                if not section and number < len(lines):  # the section name wrapped onto the next line
                    section = CONTINUATION.sub("", lines[number]).strip()
                if not section.startswith("<"):  # `docs/design.md, <section>` describes the form itself
                    found.append((str(path.relative_to(ROOT)), number, section))
    return found


def test_every_reference_names_a_section_of_the_design() -> None:
    names = section_names(design_text())
    refs = references()
    stale = [f"{file}:{line}: {section!r}" for file, line, section in refs if not cited(section, names)]
    assert not stale, (
        "these references name no heading of docs/design.md (cite the part of a heading before its colon, "
        "e.g. 'docs/design.md, invariant 7' or 'docs/design.md, Commit order'):\n" + "\n".join(stale)
    )
    assert len(refs) >= 10, "the references in code and tests were not found: is SEARCHED right?"


def test_a_renamed_section_is_caught_with_its_file_and_line() -> None:
    names = section_names("## Commit order\n### Invariant 1: Bounded memory\n```\n## not a heading\n```\n")
    assert names == ["commit order", "invariant 1"]
    assert cited("Commit order).", names) and cited("invariant 1", names)
    assert not cited("invariant 12", names) and not cited("Commit orders", names) and not cited("not a heading", names)


def test_nothing_cites_the_contract_outside_the_repository() -> None:
    here = Path(__file__).resolve()
    citing = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in searched_files()
        if path != here
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1)
        if OLD_NAME in line
    ]
    assert not citing, f"cite docs/design.md and its section instead of {OLD_NAME}: " + ", ".join(citing)


def test_every_repository_path_the_design_names_exists() -> None:
    missing = sorted({path for path in REPOSITORY_PATH.findall(design_text()) if not (ROOT / path).exists()})
    assert not missing, f"docs/design.md names files that are gone (update it): {missing}"


def test_the_design_lists_every_summary_key_and_no_other() -> None:
    listed = re.findall(r"^- `([a-z_0-9]+)`:", section_body(design_text(), "Summary keys"), re.MULTILINE)
    assert listed == [field.name for field in fields(RunSummary)], (
        "docs/design.md, Summary keys lists these keys in this order; RunSummary has other ones"
    )


def test_the_design_lists_every_exit_code() -> None:
    table = section_body(design_text(), "Exit codes")
    listed = {int(code) for row in re.findall(r"^\| ([0-9 /]+) \|", table, re.MULTILINE) for code in row.split("/")}
    codes = {value for name, value in vars(ExitCode).items() if name.isupper()}
    assert listed == codes
