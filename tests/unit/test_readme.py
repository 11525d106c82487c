"""The README's generated tables, its links, and ARCHITECTURE.md's map stay true to the project.

The inputs and outputs tables are generated (devtools/readme_tables.py, `make docs`) from
Pulumi.yaml and nomad_vault_setup/outputs.py; a change to either must reach the README. Every
relative link in the README, docs/ and ARCHITECTURE.md must land on a file and, with an anchor,
on a heading of that file. No Pulumi engine and no server: plain file reads.
"""

import re
from collections import Counter
from pathlib import Path

import pytest

from devtools import readme_tables
from devtools.readme_tables import (
    MarkerError,
    generated_tables,
    render_inputs,
    render_outputs,
    replace_sections,
    section,
)

ROOT = readme_tables.PROJECT_DIR
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "ARCHITECTURE.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINKED_FILES = [README, ARCHITECTURE, *DOCS]
# The folders whose every file ARCHITECTURE.md's map names.
MAPPED = {"nomad_vault_setup": "*.py", "devtools": "*.py", "bench": "*.py", "docs": "*.md"}

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")


@pytest.mark.parametrize("table", readme_tables.TABLES)
def test_readme_tables_are_generated_from_their_sources(table: str) -> None:
    expected = generated_tables()[table]
    found = section(README.read_text(encoding="utf-8"), table)
    assert found == expected, (
        f"README.md's {table} table differs from {readme_tables.SOURCES[table]}: run `make docs`"
    )


def test_the_inputs_table_has_a_row_per_config_key_in_order() -> None:
    project = {
        "name": "p",
        "config": {
            "p:flag": {"type": "boolean", "default": False, "description": "on | off"},
            "p:names": {"type": "array", "items": {"type": "string"}, "default": ["a"]},
            "p:required": {"type": "string", "description": "no default"},
            "vault:address": "http://x",
        },
    }
    rows = render_inputs(project).splitlines()[2:]
    assert rows == [
        "| `flag` | boolean | `false` | on \\| off |",
        '| `names` | list of strings | `["a"]` |  |',
        "| `required` | string | — (required) | no default |",
        "| `vault:address` | — | `http://x` |  |",
    ]


def test_the_outputs_table_says_which_outputs_are_keyed_by_cluster() -> None:
    table = render_outputs({"a": "per cluster", "b": "the `whole` stack"}, frozenset({"b"}))
    assert table.splitlines()[2:] == [
        "| `a` | per cluster | a map keyed by cluster name |",
        "| `b` | the `whole` stack | one value for the stack |",
    ]


def test_writing_the_tables_changes_only_the_text_between_markers() -> None:
    text = "intro\n<!-- inputs:start -->\nold\n<!-- inputs:end -->\noutro\n"
    updated = replace_sections(text, {"inputs": "new table\n"})
    assert updated == "intro\n<!-- inputs:start -->\nnew table\n<!-- inputs:end -->\noutro\n"
    assert replace_sections(updated, {"inputs": "new table\n"}) == updated


@pytest.mark.parametrize(
    "text",
    [
        "no markers at all",
        "<!-- inputs:start -->\n<!-- inputs:start -->\n<!-- inputs:end -->",
        "<!-- inputs:end -->\n<!-- inputs:start -->",
    ],
)
def test_missing_repeated_or_reversed_markers_are_refused(text: str) -> None:
    with pytest.raises(MarkerError):
        section(text, "inputs")


def _prose(text: str) -> str:
    """Markdown without fenced code blocks and code spans (links there are not links)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`+[^`]*`+", "", line))
    return "\n".join(lines)


def _anchors(text: str) -> set[str]:
    """The anchors GitHub gives a file's headings: lowercase, punctuation dropped, spaces to
    hyphens, and -1, -2 ... after repeats."""
    seen: Counter[str] = Counter()
    anchors = set()
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        match = None if fenced else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            anchors.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
            seen[slug] += 1
    return anchors


def _broken_links(path: Path) -> list[str]:
    broken = []
    for target in LINK.findall(_prose(path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (
            resolved.is_dir() or anchor not in _anchors(resolved.read_text(encoding="utf-8"))
        ):
            broken.append(f"{target}: no heading with that anchor")
    return broken


@pytest.mark.parametrize("path", LINKED_FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_lands_on_a_file_and_heading(path: Path) -> None:
    assert _broken_links(path) == []


def test_the_docs_the_readme_promises_exist() -> None:
    readme = README.read_text(encoding="utf-8")
    linked = {Path(target.partition("#")[0]) for target in LINK.findall(_prose(readme))}
    assert {doc.relative_to(ROOT) for doc in DOCS} <= linked, "a doc the README never links"


def _mapped_paths() -> set[str]:
    """The paths ARCHITECTURE.md's map names: one per line, two spaces per folder level."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    block = text.split("## Map of the code", 1)[1].split("```", 2)[1]
    paths, folders = set(), []
    for line in block.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name = line.split()[0]
        folders = folders[:depth]
        path = "/".join([*folders, name.rstrip("/")])
        paths.add(path)
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
    return paths


def test_the_architecture_map_matches_the_tree() -> None:
    mapped = _mapped_paths()
    missing = sorted(path for path in mapped if not (ROOT / path).exists())
    on_disk = {
        str(file.relative_to(ROOT))
        for folder, pattern in MAPPED.items()
        for file in (ROOT / folder).rglob(pattern)
        if "__pycache__" not in file.parts
    }
    unmapped = sorted(on_disk - mapped)
    assert (missing, unmapped) == ([], []), (
        "ARCHITECTURE.md's map of the code is out of step with the tree: "
        f"named but absent {missing}, present but not named {unmapped}"
    )
