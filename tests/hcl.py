"""Parse HCL as Nomad reads its agent config (and Vault its policies): with Go's HCL1.

The parser is the small Go program in tests/hcl1/ (github.com/hashicorp/hcl v1, the version
Nomad pins). It is built once per source hash into tests/hcl1/.bin/ (git-ignored) with the
`go` toolchain, which fetches the module from the Go module proxy on first use; without `go`
the tests that parse HCL fail, they are never skipped. HCL1 decodes every block to a list of
maps: `vault { enabled = true }` -> {"vault": [{"enabled": True}]}; `vault_block` flattens
that for the one `vault {}` block of a rendered Nomad config.
"""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

SOURCE_DIR = Path(__file__).parent / "hcl1"
_SOURCES = ("go.mod", "go.sum", "main.go")
_BUILD_TIMEOUT = 300

_built: Path | None = None
_build_error: str | None = None


class HCLError(ValueError):
    """Go's HCL1 parser refused the text (the message is its error)."""


def _build() -> Path:
    digest = hashlib.sha256()
    for name in _SOURCES:
        digest.update(name.encode() + b"\0" + (SOURCE_DIR / name).read_bytes() + b"\0")
    binary = SOURCE_DIR / ".bin" / f"hcl1json-{digest.hexdigest()[:16]}"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise RuntimeError(
            "the Go toolchain ('go') is not on PATH: the HCL tests parse Nomad's config with "
            f"Go's HCL1 ({SOURCE_DIR}). Install Go (https://go.dev/dl/) and run the tests again."
        )
    binary.parent.mkdir(exist_ok=True)
    # Build to a temporary name, then rename: concurrent sessions never see half a binary.
    fd, partial = tempfile.mkstemp(dir=binary.parent, prefix=".build-")
    os.close(fd)
    try:
        result = subprocess.run(
            [go, "build", "-mod=readonly", "-buildvcs=false", "-trimpath", "-o", partial, "."],
            cwd=SOURCE_DIR,
            capture_output=True,
            text=True,
            timeout=_BUILD_TIMEOUT,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"'go build' of the HCL1 test parser in {SOURCE_DIR} failed (it needs the "
                f"Go module proxy the first time):\n{result.stderr.strip()}"
            )
        os.replace(partial, binary)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return binary


def hcl1_binary() -> Path:
    """The built parser; the test fails (never skips) when it cannot be built."""
    global _built, _build_error
    if _built is None and _build_error is None:
        try:
            _built = _build()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
            _build_error = str(error)
    if _build_error is not None:
        pytest.fail(_build_error, pytrace=False)
    assert _built is not None
    return _built


def parse_hcl(text: str) -> dict[str, Any]:
    """HCL text -> what Go's HCL1 decodes it to (blocks are lists of maps); HCLError if it
    does not parse."""
    result = subprocess.run([hcl1_binary()], input=text.encode(), capture_output=True, timeout=60)
    if result.returncode == 1:
        raise HCLError(result.stderr.decode().strip())
    if result.returncode != 0:
        raise RuntimeError(f"the HCL1 parser failed: {result.stderr.decode().strip()}")
    return json.loads(result.stdout)


def parse_hcl_many(texts: list[str]) -> list[dict[str, Any] | HCLError]:
    """parse_hcl for many texts in one process: each a decoded map, or an HCLError."""
    result = subprocess.run(
        [hcl1_binary(), "-batch"],
        input=json.dumps(texts).encode(),
        capture_output=True,
        timeout=60,
        check=True,
    )
    return [
        HCLError(item["error"]) if "error" in item else item["value"]
        for item in json.loads(result.stdout)
    ]


def _flatten(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _flatten(item) for key, item in value.items()}
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        assert len(value) == 1, f"a block given more than once: {value!r}"
        return _flatten(value[0])
    return value


def vault_block(text: str) -> dict[str, Any]:
    """The one `vault {}` block of a Nomad config, nested blocks as plain dicts:
    {"enabled": True, "default_identity": {"aud": [...], "ttl": "1h"}}."""
    document = parse_hcl(text)
    assert set(document) == {"vault"}, f"expected only a vault block, got {sorted(document)}"
    (block,) = document["vault"]
    return _flatten(block)
