"""The access audit for people: a table per cluster and Nomad namespace, the findings, the
answer to `--who-can-read`, and a Mermaid graph (namespace → job → what it reads) for those
who would rather look than read. Pure text from an `Audit`."""

from __future__ import annotations

import json
import unicodedata
from collections import defaultdict
from itertools import groupby

from .access import Job, JobAccess
from .audit import Audit, as_json, kv_hint, read_paths, request_path, summary

MAX_CELL = 60


def printable(text: str) -> str:
    """`text` with what a terminal acts on or hides (control characters and escape sequences,
    line breaks, unusual spaces, lone surrogates, combining marks, blank fillers) written as
    Python escapes, and `\\` doubled, so a job ID that Nomad accepts can neither forge or hide
    a line of a report nor pass for another ID."""
    return "".join(
        char
        if char != "\\" and char.isprintable() and not _invisible(char)
        else char.encode("unicode_escape").decode()
        for char in text
    )


# Printable to Python yet drawn as nothing: Hangul fillers, the braille blank, ...
_BLANK_FILLERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")


def _invisible(char: str) -> bool:
    return char in _BLANK_FILLERS or unicodedata.category(char).startswith("M")


def _cell(text: str) -> str:
    text = printable(text)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _roles(access: JobAccess) -> str:
    names = [
        token.role.name + ("(refused)" if token.refused else "" if token.may_use else "(?)")
        for token in access.tokens
    ]
    return ", ".join(names) or "-"


def as_text(audit: Audit) -> str:
    """Per cluster and namespace: each job, the roles it can log in with, what it reads, and
    its findings; then every finding, most severe first."""
    codes: dict[tuple[str, Job | None], list[str]] = defaultdict(list)
    for finding in audit.findings:
        codes[(finding.cluster, finding.job)].append(f"{finding.severity}:{finding.code}")
    lines = [f"Access audit on {audit.server}: {len(audit.accesses)} job(s) checked"]
    if not audit.accesses:
        lines.append(
            "No jobs: the list is empty, or the Nomad token sees none (it needs list-jobs in"
            " every namespace). Nothing was checked."
        )

    def key(access: JobAccess) -> tuple[str, str]:
        return access.cluster.name, access.job.namespace

    for (cluster, namespace), group in groupby(sorted(audit.accesses, key=key), key=key):
        title = f"cluster {cluster}, " if cluster else ""
        lines += ["", printable(f"{title}Nomad namespace {namespace}")]
        rows = [["JOB", "ROLES", "READS", "OTHER JOBS IT READS", "FINDINGS"]]
        for access in group:
            others = audit.reads_jobs.get((cluster, access.job), [])
            rows.append(
                [
                    printable(str(access.job)),
                    printable(_roles(access)),
                    _cell(", ".join(read_paths(access)) or "nothing"),
                    _cell(", ".join(map(str, others)) or "-"),
                    ", ".join(codes[(cluster, access.job)]) or "-",
                ]
            )
        lines += ["  " + line for line in _table(rows)]
    counts = summary(audit)
    lines += ["", "Findings: " + ", ".join(f"{n} {severity}" for severity, n in counts.items())]
    for finding in audit.findings:
        where = f"[{finding.cluster}] " if finding.cluster else ""
        subject = printable(f"{where}{finding.subject}")
        message = printable(finding.message)
        lines.append(f"  {finding.severity.upper():6} {finding.code}: {subject}: {message}")
    return "\n".join(lines)


def who_can_read_text(audit: Audit, path: str) -> str:
    readers = audit.who_can_read(path)
    shown = printable(request_path(path))
    if not readers:
        hint = kv_hint(audit, path)
        return f"No job can read {shown}." + (
            f" ({printable(hint)}: ask about that.)" if hint else ""
        )
    lines = [f"{len(readers)} job(s) can read {shown}:"]
    for access, roles in readers:
        where = f"cluster {access.cluster.name}, " if access.cluster.name else ""
        lines.append(printable(f"  {where}{access.job} (role {', '.join(roles)})"))
    return "\n".join(lines)


def who_can_read_json(audit: Audit, path: str) -> str:
    readers = [
        {
            "cluster": access.cluster.name,
            "region": access.job.region,
            "namespace": access.job.namespace,
            "id": access.job.id,
            "roles": roles,
        }
        for access, roles in audit.who_can_read(path)
    ]
    return json.dumps({"path": request_path(path), "readers": readers}, indent=2)


def as_mermaid(audit: Audit) -> str:
    """`graph LR`: a subgraph per namespace holding its jobs, an edge from each job to the
    paths it reads, a red dotted edge to each other job whose secrets it reads."""
    ids: dict[tuple[str, object], str] = {}

    def node(kind: str, key: object) -> str:
        """The node's Mermaid ID, by what it stands for (two jobs never share one)."""
        return ids.setdefault((kind, key), f"{kind[0]}{len(ids)}")

    def label(text: str) -> str:
        return json.dumps(text.replace('"', "'"))

    lines = ["graph LR"]
    edges = []
    for (cluster, namespace), group in groupby(
        sorted(audit.accesses, key=lambda a: (a.cluster.name, a.job.namespace)),
        key=lambda a: (a.cluster.name, a.job.namespace),
    ):
        title = f"{cluster}: namespace {namespace}" if cluster else f"namespace {namespace}"
        lines.append(f"  subgraph {node('namespace', (cluster, namespace))}[{label(title)}]")
        for access in group:
            job = node("job", (cluster, access.job))
            lines.append(f"    {job}[{label(access.job.id)}]")
            for path in read_paths(access):
                edges.append(f"  {job} --> {node('path', path)}[{label(path)}]")
            for other in audit.reads_jobs.get((cluster, access.job), []):
                edges.append(f"  {job} -. reads .-> {node('job', (cluster, other))}")
        lines.append("  end")
    crossing = sum(1 for edge in edges if "-. reads .->" in edge)
    lines += edges
    if crossing:
        lines.append(
            "  linkStyle "
            + ",".join(str(index) for index, edge in enumerate(edges) if "-. reads .->" in edge)
            + " stroke:#d00"
        )
    return "\n".join(lines)


def render(audit: Audit, output_format: str) -> str:
    if output_format == "json":
        return json.dumps(as_json(audit), indent=2)
    if output_format == "mermaid":
        return as_mermaid(audit)
    return as_text(audit)
