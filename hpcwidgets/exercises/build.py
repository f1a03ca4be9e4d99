"""Solution notebooks → exercise notebooks (``hpcwidgets workshop build``).

``solutions/`` is the single source. In a code cell, a solution region is the lines from
``# BEGIN SOLUTION`` to ``# END SOLUTION``; ``# HINT: …`` lines just above it stay in the exercise
and become the message of the ``raise NotImplementedError(…)`` that replaces the region (at the
region's indentation). Outputs and execution counts are cleared, metadata is kept, and the JSON is
written deterministically (sorted keys, one-space indent, a final newline) so that
``build --check`` can compare files byte for byte.

Learners answer in ``exercises/``, so a build never replaces their work unasked. Each exercise records a
digest of its cells as built (``metadata.hpcwidgets.built_cells``: the cells' types and sources, what a
learner types; JupyterLab keeps notebook metadata when it saves). A notebook that differs from the fresh
build is rewritten when its cells are still the ones recorded (``solutions/`` changed since) or already
the fresh ones (only outputs differ); otherwise it holds a learner's edits and is replaced only with
``force``, which first keeps it as ``NAME.ipynb.bak`` (or ``.bak.1`` …, never over an earlier backup).
A notebook without a record, or not readable as one, cannot be told apart and is treated as edited.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import HpcWidgetsError
from ..files import write_file

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
HINT = "# HINT:"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
DEFAULT_HINT = "write your answer here"
#: the key under the notebook's ``metadata.hpcwidgets`` where the build records the digest of the cells it wrote
RECORD = "built_cells"


class NotebookFormatError(HpcWidgetsError, ValueError):
    """A solution notebook whose solution markers or cells are malformed."""


@dataclass(frozen=True)
class BuildResult:
    written: tuple[Path, ...]
    unchanged: tuple[Path, ...]
    stale: tuple[Path, ...]       # with check=True: missing, or out of date with solutions/ and holding no edits
    edited: tuple[Path, ...]      # holding a learner's edits and left as they are (with check=True, or without force)
    backups: tuple[tuple[Path, Path], ...]  # with force: (notebook, where the learner's version was kept)
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
    own = meta.setdefault("hpcwidgets", {})
    if not isinstance(own, dict):
        raise NotebookFormatError(f"{where}: metadata.hpcwidgets must be an object ({{\"matrix\": [...]}})")
    own[RECORD] = cells_digest(out)
    return out


def cells_digest(nb: dict[str, Any]) -> str:
    """SHA-256 of the cells' types and sources, in order: what a learner changes when answering (outputs,
    cell ids and metadata, which running or saving a notebook changes, are left out)."""
    cells = [[cell.get("cell_type", ""), _source(cell)] for cell in nb.get("cells", [])]
    return hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode("utf-8")).hexdigest()


def holds_edits(text: str, fresh: dict[str, Any]) -> bool:
    """Whether the exercise notebook ``text`` holds a learner's edits that replacing it with ``fresh`` would lose:
    its cells are neither the fresh ones nor the ones its build recorded. A file that is not a notebook, or
    one without a record (written by hand or by an older build), cannot be told apart: it counts as edited."""
    try:
        nb = json.loads(text)
        digest = cells_digest(nb)
        if digest == fresh["metadata"]["hpcwidgets"][RECORD]:
            return False
        return digest != nb["metadata"]["hpcwidgets"][RECORD]
    except (ValueError, LookupError, AttributeError, TypeError):
        return True


def dumps(nb: dict[str, Any]) -> str:
    """Deterministic notebook JSON."""
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise NotebookFormatError(f"{path}: not valid notebook JSON: {exc.msg} (line {exc.lineno})") from None


def build(solutions: Path, exercises: Path, *, check: bool = False, force: bool = False,
          only: Sequence[str] = ()) -> BuildResult:
    """Write (or, with ``check``, only compare) ``exercises/NAME.ipynb`` for every solution, or for the ones
    ``only`` names (see :func:`select`). A notebook holding a learner's edits is left as it is unless ``force``,
    and then kept as a backup first."""
    solutions, exercises = Path(solutions), Path(exercises)
    sources = sorted(solutions.glob("*.ipynb"))
    if not sources:
        raise HpcWidgetsError(f"no solution notebooks in {solutions}")
    written, unchanged, stale, edited, backups = [], [], [], [], []
    for src in select(sources, only) if only else sources:
        fresh = exercise_from_solution(load(src), str(src))
        text = dumps(fresh)
        target = exercises / src.name
        current = target.read_bytes().decode("utf-8", "replace") if target.exists() else None
        if current == text:
            unchanged.append(target)
            continue
        learners = current is not None and holds_edits(current, fresh)
        if check or (learners and not force):
            (edited if learners else stale).append(target)
            continue
        # atomically, never over a device or pipe; a learner's version is kept under a name that was free
        saved = write_file(target, text, force=True, backup=learners).backup
        written.append(target)
        if saved is not None:
            backups.append((target, saved))
    names = {s.name for s in sources}
    extra = tuple(p for p in sorted(exercises.glob("*.ipynb")) if p.name not in names)
    return BuildResult(tuple(written), tuple(unchanged), tuple(stale), tuple(edited), tuple(backups), extra)


def select(sources: Sequence[Path], names: Sequence[str]) -> list[Path]:
    """The solution notebooks that ``names`` pick, each by its number (``ex07``), its name with or without
    ``.ipynb``, or the path of its exercise; HpcWidgetsError naming the choices for a name that picks none
    or several."""
    chosen: list[Path] = []
    for name in names:
        key = Path(name).name.removesuffix(".ipynb")
        hits = [s for s in sources if s.stem == key or s.stem.startswith(key + "-")]
        if len(hits) > 1:
            raise HpcWidgetsError(f"{name!r} names several exercises ({', '.join(s.stem for s in hits)}); "
                                  "give more of the name")
        if not hits:
            raise HpcWidgetsError(f"there is no exercise {name!r}; name one of {', '.join(s.stem for s in sources)} "
                                  f"(the part before the first '-' will do, e.g. {sources[0].stem.split('-')[0]})")
        chosen += [hit for hit in hits if hit not in chosen]
    return chosen


_NUMBERED = re.compile(r"ex\d\d-[a-z0-9-]+\.ipynb")


def check_names(solutions: Path) -> list[str]:
    """Problems with the solution file names (``exNN-topic.ipynb``)."""
    return [f"{p.name}: name solution notebooks exNN-topic.ipynb (lower case, digits, -)"
            for p in sorted(Path(solutions).glob("*.ipynb")) if not _NUMBERED.fullmatch(p.name)]
