"""Shared test helpers: real-component gating and argv-printing stand-in programs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REQUIRE_REAL = os.environ.get("HPCW_REQUIRE_REAL") == "1"


def need(ok: bool, reason: str) -> None:
    """Skip when a real component is missing, or fail when HPCW_REQUIRE_REAL=1 (CI)."""
    if ok:
        return
    if REQUIRE_REAL:
        pytest.fail(f"HPCW_REQUIRE_REAL=1 but a real component is missing: {reason}")
    pytest.skip(reason)


def need_tool(name: str, why: str = "") -> str:
    """A program's path: next to the test interpreter first (.venv/bin/shellcheck), then on PATH."""
    beside = Path(sys.executable).parent / name
    path = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which(name)
    need(path is not None, f"{name} is not installed{': ' + why if why else ''}")
    return path  # type: ignore[return-value]


STANDIN = """#!{python} -IS
import json, os, sys
with open(os.environ["HPCW_ARGV_LOG"], "a", encoding="utf-8") as fh:
    fh.write(json.dumps({{"prog": os.path.basename(sys.argv[0]), "argv": sys.argv[1:]}}) + "\\n")
"""


def stand_ins(directory: Path, names: list[str]) -> Path:
    """Create programs that append their argv as JSON lines to $HPCW_ARGV_LOG."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        p = directory / name
        p.write_text(STANDIN.format(python=sys.executable))
        p.chmod(0o755)
    return directory


def run_with_stand_ins(script: str, tmp_path: Path, names: list[str], env: dict[str, str] | None = None) -> list[dict]:
    """Run bash text with stand-ins first on PATH; return the recorded invocations."""
    bindir = stand_ins(tmp_path / "bin", names)
    log = tmp_path / "argv.jsonl"
    log.write_text("")
    full_env = {"PATH": f"{bindir}:/usr/bin:/bin", "HPCW_ARGV_LOG": str(log), "HOME": str(tmp_path)}
    full_env.update(env or {})
    proc = subprocess.run(["bash", "-c", script], env=full_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"bash failed ({proc.returncode}): {proc.stderr}\n--- script ---\n{script}"
    return [json.loads(line) for line in log.read_text().splitlines() if line]


def reachable_addresses() -> list[str]:
    """This machine's addresses other than loopback and link-local (``hostname -I``)."""
    import ipaddress
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    except OSError:
        return []
    return [a for a in out if not ipaddress.ip_address(a.split("%")[0]).is_link_local]
