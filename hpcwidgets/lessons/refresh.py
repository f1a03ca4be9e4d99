"""Re-execute lesson notebooks the way their saved outputs are made, and say which cells' outputs changed.

    python -m hpcwidgets.lessons.refresh notebooks/04-gpus-and-environment.ipynb [more …] [--write]

Each notebook runs with nbclient, kernel ``python3``, its ``parameters`` cell as it is (the defaults) and its own
folder as the working directory (where its pictures go), in the environment the lessons expect: the practice
cluster's ``SLURM_CONF`` when it is up (:func:`hpcwidgets.run.practice_cluster.client_env`).

* Without ``--write`` it runs in a temporary copy of the notebook's folder, so neither the notebook nor its
  pictures change, and prints, per notebook, the cells whose outputs differ from the saved ones. Outputs are
  compared as nbval compares them: text and data, not execution counts, pictures or widget model ids, after the
  folder's ``sanitize.cfg`` replacements.
* The notebook's saved widget state (what a static view, a handout or GitHub draws for each form: its fields'
  placeholders, descriptions, tooltips) is compared too, model ids and order aside. nbval leaves it alone, so a form
  changed in the package would otherwise keep showing its old texts in every saved lesson.
* With ``--write`` it runs in the folder itself (pictures are rewritten) and replaces the notebook, atomically,
  when an output or the widget state changed or a cell had to go; otherwise the file stays as it is. It saves only
  where the practice cluster answers (the lessons that submit jobs are committed with real results) unless
  ``--without-cluster``.

Either way a cell tagged ``injected-parameters`` (what ``papermill -p`` adds after the ``parameters`` cell) is
removed before the run and never written back: left in a committed lesson, it would run after the reader's own
``parameters`` cell and undo its edit. The run records neither papermill metadata nor cell timings, so a saved
lesson changes only where its outputs do.
"""

from __future__ import annotations

import argparse
import collections
import configparser
import copy
import difflib
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import HpcWidgetsError
from .kernel import IOPUB_TIMEOUT, KERNEL, START_ATTEMPTS, START_TIMEOUT, kernel_start_failed

#: the tag papermill gives the cell it adds with the parameters it was passed
INJECTED_TAG = "injected-parameters"
#: seconds one cell may take (lessons 08 and 09 wait for real jobs)
CELL_TIMEOUT = 600
# not compared, as in nbval: random widget model ids; pictures (their files are compared by git)
_SKIPPED_DATA = ("application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg")
_COPY_IGNORE = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", ".git", ".venv")
#: where nbclient stores the widgets' state in a notebook's metadata, and how one model names another
_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_MODEL_REF = re.compile(r"IPY_MODEL_[0-9a-f]+")


@dataclass
class Result:
    """What refreshing one notebook found."""

    path: Path
    removed: int = 0                                    # injected-parameters cells taken out
    changed: list[tuple[int, str, str]] = field(default_factory=list)   # (cell index, cell id, unified diff)
    widgets: str = ""                                   # how the saved widget state differs from the run's, or ""
    error: str = ""
    written: bool = False

    def report(self, write: bool) -> str:
        name = self.path.name
        if self.error:
            return f"{name}: not refreshed: {self.error}"
        lines = []
        if self.removed:
            lines.append(f"{name}: {self.removed} injected-parameters cell(s) removed")
        if self.changed:
            lines.append(f"{name}: outputs changed in {len(self.changed)} cell(s): "
                         + ", ".join(f"{index} (id {cid})" for index, cid, _ in self.changed))
            lines += [diff for _, _, diff in self.changed]
        else:
            lines.append(f"{name}: outputs unchanged")
        if self.widgets:
            lines.append(f"{name}: {self.widgets}")
        if write:
            lines.append(f"{name}: saved" if self.written else f"{name}: left as it is")
        elif self.changed or self.removed or self.widgets:
            lines.append(f"{name}: not saved (add --write to save)")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# cells and outputs
# ------------------------------------------------------------------------------------------------
def injected_cells(nb: Mapping[str, Any]) -> list[int]:
    """Indices of the cells tagged ``injected-parameters``."""
    return [i for i, c in enumerate(nb.get("cells", [])) if INJECTED_TAG in c.get("metadata", {}).get("tags", [])]


def strip_injected(nb: Any) -> int:
    """Remove the ``injected-parameters`` cells from ``nb`` (in place); returns how many there were."""
    found = injected_cells(nb)
    for i in reversed(found):
        del nb["cells"][i]
    return len(found)


def _clean_metadata(nb: Any) -> None:
    """Drop what a previous run recorded about itself, so the new run's notebook holds only its own."""
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)          # nbclient stores the new run's widget state
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)


def sanitizers(folder: Path) -> list[tuple[re.Pattern[str], str]]:
    """The ``regex``/``replace`` pairs of ``folder/sanitize.cfg`` (nbval's format), [] without one."""
    cfg = folder / "sanitize.cfg"
    if not cfg.is_file():
        return []
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(cfg, encoding="utf-8")
        return [(re.compile(parser[s]["regex"]), parser[s].get("replace", "")) for s in parser.sections()]
    except (configparser.Error, KeyError, re.error) as exc:
        raise HpcWidgetsError(f"{cfg}: not an nbval sanitize file ({exc}); each section needs regex = and "
                              "replace =") from exc


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _merged_streams(outputs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``outputs`` with each stream's pieces joined where its first piece was (how nbval and nbclient merge them:
    a print split over two messages is one output)."""
    merged: list[Mapping[str, Any]] = []
    streams: dict[str, dict[str, Any]] = {}
    for out in outputs:
        if out.get("output_type") != "stream":
            merged.append(out)
            continue
        name = out.get("name", "stdout")
        if name in streams:
            streams[name]["text"] += _text(out.get("text", ""))
        else:
            streams[name] = {"output_type": "stream", "name": name, "text": _text(out.get("text", ""))}
            merged.append(streams[name])
    return merged


def comparable(cell: Mapping[str, Any], subs: Sequence[tuple[re.Pattern[str], str]] = ()) -> list[str]:
    """A code cell's outputs as the lines nbval compares (stream text, data by MIME type, errors)."""
    lines: list[str] = []
    for out in _merged_streams(cell.get("outputs", [])):
        kind = out.get("output_type", "")
        if kind == "stream":
            parts = [(f"[{out.get('name', 'stdout')}]", out["text"])]
        elif kind == "error":
            parts = [("[error]", f"{out.get('ename', '')}: {out.get('evalue', '')}")]
        else:
            parts = [(f"[{mime}]", _text(value)) for mime, value in sorted(out.get("data", {}).items())
                     if mime not in _SKIPPED_DATA]
        for head, text in parts:
            for pattern, replace in subs:
                text = pattern.sub(replace, text)
            lines += [head, *text.splitlines()]
    return lines


def changed_cells(saved: Any, fresh: Any, subs: Sequence[tuple[re.Pattern[str], str]] = ()
                  ) -> list[tuple[int, str, str]]:
    """The code cells whose compared outputs differ, as (index, id, unified diff of saved → now)."""
    changes = []
    for i, (old, new) in enumerate(zip(saved["cells"], fresh["cells"])):
        if new.get("cell_type") != "code":
            continue
        before, after = comparable(old, subs), comparable(new, subs)
        if before != after:
            diff = "\n".join(difflib.unified_diff(before, after, f"cell {i} saved", f"cell {i} now", lineterm=""))
            changes.append((i, str(new.get("id", "")), diff))
    return changes


def widget_models(nb: Mapping[str, Any]) -> list[str]:
    """The widget models a notebook's metadata saves, each as sorted JSON with the ids of the models it names left
    out, sorted: two runs of a lesson make the same list though their ids are random and their order may differ."""
    state = nb.get("metadata", {}).get("widgets", {}).get(_WIDGET_STATE, {}).get("state", {})
    return sorted(_MODEL_REF.sub("IPY_MODEL_", json.dumps(model, sort_keys=True)) for model in state.values())


def _widget_texts(models: Sequence[str]) -> collections.Counter[str]:
    """The texts a reader sees in a static view of the forms (placeholders, descriptions, tooltips), counted."""
    texts: collections.Counter[str] = collections.Counter()
    for text in models:
        state = json.loads(text).get("state", {})
        texts.update(f"{key} {state[key]!r}" for key in ("placeholder", "description", "tooltip")
                     if isinstance(state.get(key), str) and state[key].strip("\u200b "))
    return texts


def widgets_changed(saved: Any, fresh: Any) -> str:
    """How ``saved``'s widget state differs from ``fresh``'s ("" where it does not): the number of models, and a few of
    the texts a static view shows that only one of them has."""
    before, after = widget_models(saved), widget_models(fresh)
    if before == after:
        return ""
    old, new = _widget_texts(before), _widget_texts(after)
    lines = [f"saved widget state differs from the widgets' now ({len(before)} models saved, {len(after)} now)"]
    for sign, only in (("-", old - new), ("+", new - old)):
        texts = sorted(only)
        lines += [f"  {sign} {text}" + (f" (×{only[text]})" if only[text] > 1 else "") for text in texts[:5]]
        lines += [f"  {sign} … {len(texts) - 5} more"] if len(texts) > 5 else []
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# running
# ------------------------------------------------------------------------------------------------
def execute(nb: Any, folder: Path, *, env: Mapping[str, str] | None = None, timeout: int = CELL_TIMEOUT) -> Any:
    """Run ``nb`` (changed in place and returned) in ``folder`` with kernel ``python3``.

    Raises :class:`HpcWidgetsError` naming the cell that failed. A kernel that died while starting (another
    kernel took its port first) is started again, as the workshop check does."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    from .kernel_client import RUN_OPTIONS
    _clean_metadata(nb)
    attempt = 0
    while True:
        attempt += 1
        client = NotebookClient(nb, kernel_name=KERNEL, timeout=timeout, startup_timeout=START_TIMEOUT,
                                **RUN_OPTIONS,
                                resources={"metadata": {"path": str(folder)}}, record_timing=False,
                                store_widget_state=True, coalesce_streams=True)
        try:
            client.execute(**({"env": dict(env)} if env is not None else {}))
            return nb
        except CellExecutionError as exc:
            failed = next((f"cell {i} (id {c.get('id', '?')})" for i, c in enumerate(nb.cells)
                           if any(o.get("output_type") == "error" for o in c.get("outputs", []))), "a cell")
            raise HpcWidgetsError(f"{failed} failed: {exc.ename}: {str(exc.evalue)[:500]}") from exc
        except CellTimeoutError as exc:
            if "IOPub" in str(exc):  # the cell ended, its outputs or widget messages did not all arrive
                raise HpcWidgetsError(f"a cell's outputs did not all arrive within {IOPUB_TIMEOUT} s of its end (the "
                                      f"machine is busy: run it again): {exc}") from exc
            raise HpcWidgetsError(f"a cell ran longer than {timeout} s (raise it with --timeout): {exc}") from exc
        except RuntimeError as exc:
            if attempt == START_ATTEMPTS or not kernel_start_failed(str(exc)):
                raise HpcWidgetsError(f"the {KERNEL} kernel did not run the notebook: {exc}") from exc


def _read(path: Path) -> Any:
    import nbformat
    try:
        return nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise HpcWidgetsError(f"{path}: no such notebook") from None
    except (OSError, ValueError) as exc:
        raise HpcWidgetsError(f"{path}: not a notebook that nbformat can read ({exc})") from exc


def save(nb: Any, path: Path) -> None:
    """Write ``nb`` to ``path`` atomically (a temporary file beside it, then renamed over it), keeping its mode."""
    import nbformat
    text = nbformat.writes(nb) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def refresh(path: str | os.PathLike[str], *, write: bool = False, env: Mapping[str, str] | None = None,
            timeout: int = CELL_TIMEOUT) -> Result:
    """Re-execute one notebook; see the module's description. Never raises for a failing notebook."""
    path = Path(path).resolve()
    result = Result(path)
    try:
        saved = _read(path)
        result.removed = strip_injected(saved)
        fresh = copy.deepcopy(saved)
        if write:
            execute(fresh, path.parent, env=env, timeout=timeout)
        else:
            with tempfile.TemporaryDirectory(prefix="hpcw-refresh-") as tmp:
                work = Path(tmp) / path.parent.name
                shutil.copytree(path.parent, work, ignore=_COPY_IGNORE)
                execute(fresh, work, env=env, timeout=timeout)
        result.changed = changed_cells(saved, fresh, sanitizers(path.parent))
        result.widgets = widgets_changed(saved, fresh)
    except HpcWidgetsError as exc:
        result.error = str(exc)
        return result
    if write and (result.changed or result.removed or result.widgets):
        save(fresh, path)
        result.written = True
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (1 when a notebook failed, 2 for a refused run)."""
    parser = argparse.ArgumentParser(
        prog="python -m hpcwidgets.lessons.refresh",
        description="Re-execute lesson notebooks (kernel python3, in their own folder, with the practice cluster's "
                    "environment) and show which cells' outputs changed, and whether the forms' saved widget state "
                    "did; --write saves them. A cell tagged injected-parameters is always removed.")
    parser.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help="lesson notebooks (.ipynb)")
    parser.add_argument("--write", action="store_true",
                        help="run in the notebook's folder and save the notebook when its outputs or its saved "
                             "widget state changed")
    parser.add_argument("--without-cluster", action="store_true",
                        help="with --write: save even where the practice cluster does not answer (the cells that "
                             "submit jobs then save 'not submitted' outputs)")
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT, metavar="SECONDS",
                        help=f"longest a cell may run (default {CELL_TIMEOUT})")
    args = parser.parse_args(argv)
    bad = [p for p in args.notebooks if not p.endswith(".ipynb")]
    if bad:
        parser.error(f"not notebooks: {', '.join(bad)} (give .ipynb files)")
    if args.timeout <= 0:
        parser.error("--timeout must be a positive number of seconds")
    from ..run.practice_cluster import client_env
    from . import practice_target
    env = client_env()
    target = practice_target()
    if not target.ok:
        if args.write and not args.without_cluster:
            print(f"error: not saving: {target.reason}. The lessons are saved with the practice cluster's real jobs; "
                  "start it, or pass --without-cluster to save outputs made without it", file=sys.stderr)
            return 2
        print(f"note: {target.reason}; cells that submit jobs will differ from outputs saved with it", file=sys.stderr)
    status = 0
    for name in args.notebooks:
        result = refresh(name, write=args.write, env=env, timeout=args.timeout)
        print(result.report(args.write), flush=True)
        status = status or (1 if result.error else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
