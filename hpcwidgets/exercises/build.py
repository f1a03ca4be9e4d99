"""Solution notebooks → exercise notebooks (``hpcwidgets workshop build``).

``solutions/`` is the single source. In a code cell, a solution region is the lines from
``# BEGIN SOLUTION`` to ``# END SOLUTION``; ``# HINT: …`` lines just above it stay in the exercise
and become the message of the ``raise NotImplementedError(…)`` that replaces the region (at the
region's indentation). Outputs and execution counts are cleared, metadata is kept, and the JSON is
written deterministically (sorted keys, one-space indent, a final newline) so that
``build --check`` can compare files byte for byte.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HpcWidgetsError
from ..files import write_file

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
HINT = "# HINT:"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
DEFAULT_HINT = "write your answer here"


class NotebookFormatError(HpcWidgetsError, ValueError):
    """A solution notebook whose solution markers or cells are malformed."""


@dataclass(frozen=True)
class BuildResult:
    written: tuple[Path, ...]
    unchanged: tuple[Path, ...]
    stale: tuple[Path, ...]       # with check=True: files that differ or are missing
    extra: tuple[Path, ...]       # exercises without a solution


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def strip_solutions(source: str, where: str = "") -> tuple[str, int]:
    """The cell text with each solution region replaced; also how many regions there were."""
    lines = source.split("\n")
    out: list[str] = []
    regions = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == END:
            raise NotebookFormatError(f"{where}: {END} on line {i + 1} has no {BEGIN} before it")
        if line.strip() != BEGIN:
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == END), None)
        if end is None:
            raise NotebookFormatError(f"{where}: {BEGIN} on line {i + 1} is never closed; add {END}")
        if any(lines[j].strip() == BEGIN for j in range(i + 1, end)):
            raise NotebookFormatError(f"{where}: solution regions cannot nest (line {i + 1})")
        hints = []
        k = len(out) - 1
        while k >= 0 and out[k].strip().startswith(HINT):
            hints.insert(0, out[k].strip()[len(HINT):].strip())
            k -= 1
        message = " ".join(hints) or DEFAULT_HINT
        out.append(f"{indent}raise NotImplementedError({json.dumps('Exercise: ' + message, ensure_ascii=False)})")
        regions += 1
        i = end + 1
    return "\n".join(out), regions


def _split_lines(text: str) -> list[str]:
    """nbformat's on-disk form of a multi-line string: a list of lines keeping their newlines."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def exercise_from_solution(nb: dict[str, Any], where: str = "") -> dict[str, Any]:
    """A new notebook dict: solution regions replaced, outputs cleared, metadata kept."""
    out = copy.deepcopy(nb)
    if out.get("nbformat") != 4:
        raise NotebookFormatError(f"{where}: nbformat {out.get('nbformat')} is not supported; save it as version 4")
    total = 0
    params = 0
    for n, cell in enumerate(out.get("cells", [])):
        src = _source(cell)
        tags = cell.get("metadata", {}).get("tags", [])
        if "parameters" in tags:
            params += 1
        if cell.get("cell_type") == "code":
            src, regions = strip_solutions(src, f"{where} cell {n}")
            total += regions
            cell["outputs"] = []
            cell["execution_count"] = None
        elif BEGIN in src:
            raise NotebookFormatError(f"{where} cell {n}: solution regions belong in code cells")
        cell["source"] = _split_lines(src)
        cell.get("metadata", {}).pop("execution", None)
    if params != 1:
        raise NotebookFormatError(f"{where}: expected exactly one cell tagged 'parameters', found {params}")
    if total == 0:
        raise NotebookFormatError(f"{where}: no solution region ({BEGIN} … {END}); an exercise needs one")
    meta = out.setdefault("metadata", {})
    meta["kernelspec"] = dict(KERNELSPEC)
    meta.pop("papermill", None)
    meta.pop("widgets", None)
    return out


def dumps(nb: dict[str, Any]) -> str:
    """Deterministic notebook JSON."""
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise NotebookFormatError(f"{path}: not valid notebook JSON: {exc.msg} (line {exc.lineno})") from None


def build(solutions: Path, exercises: Path, *, check: bool = False) -> BuildResult:
    """Write (or, with ``check``, only compare) ``exercises/NAME.ipynb`` for every solution."""
    solutions, exercises = Path(solutions), Path(exercises)
    sources = sorted(solutions.glob("*.ipynb"))
    if not sources:
        raise HpcWidgetsError(f"no solution notebooks in {solutions}")
    written, unchanged, stale = [], [], []
    for src in sources:
        text = dumps(exercise_from_solution(load(src), str(src)))
        target = exercises / src.name
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            unchanged.append(target)
            continue
        if check:
            stale.append(target)
            continue
        # generated from the solution (the single source): replaced whole, atomically, never over a device or pipe
        write_file(target, text, force=True)
        written.append(target)
    names = {s.name for s in sources}
    extra = tuple(p for p in sorted(exercises.glob("*.ipynb")) if p.name not in names)
    return BuildResult(tuple(written), tuple(unchanged), tuple(stale), extra)


_NUMBERED = re.compile(r"ex\d\d-[a-z0-9-]+\.ipynb")


def check_names(solutions: Path) -> list[str]:
    """Problems with the solution file names (``exNN-topic.ipynb``)."""
    return [f"{p.name}: name solution notebooks exNN-topic.ipynb (lower case, digits, -)"
            for p in sorted(Path(solutions).glob("*.ipynb")) if not _NUMBERED.fullmatch(p.name)]
