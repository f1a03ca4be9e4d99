"""``hpcwidgets workshop build [--check | --force]``, ``hpcwidgets workshop reset NAME…`` and
``hpcwidgets workshop check [--jobs N] [--only PATTERN]``.

Learners answer in ``exercises/``: ``build`` rewrites the notebooks that are out of date with ``solutions/``
and leaves the ones holding a learner's edits alone (``--force`` replaces them too, keeping each as a
``.bak``); ``reset`` gives one learner a fresh copy of one exercise, keeping theirs the same way.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from ..exercises.build import BuildResult


def _root(value: str | None) -> Path:
    """The workshop folder: --root, else the current directory if it has solutions/, else the checkout."""
    if value:
        return Path(value)
    here = Path.cwd()
    if (here / "solutions").is_dir():
        return here
    return Path(__file__).resolve().parents[2]


def register(sub: argparse._SubParsersAction) -> None:
    from . import _Formatter, _examples_epilog
    p = sub.add_parser("workshop", help="build and check the exercise notebooks", formatter_class=_Formatter,
                       description="Generate exercises/ from solutions/ and execute every workshop notebook.")
    fam = p.add_subparsers(dest="action", metavar="ACTION")
    fam.required = True
    b = fam.add_parser("build", help="write exercises/ from solutions/", formatter_class=_Formatter,
                       description="Write exercises/NAME.ipynb for every solutions/NAME.ipynb: solution regions "
                                   "become raise NotImplementedError(hint), outputs are cleared. A notebook "
                                   "holding a learner's answers is left as it is (exit 1) unless --force.",
                       epilog=_examples_epilog(["hpcwidgets workshop build",
                                                "hpcwidgets workshop build --check   # exit 1 when exercises/ is stale"]))
    mode = b.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="write nothing; exit 1 and list the notebooks that are out of date or hold a learner's answers")
    mode.add_argument("--force", action="store_true",
                      help="also replace the notebooks that hold a learner's edits, keeping each as NAME.ipynb.bak")
    b.add_argument("--root", metavar="DIR", help="folder holding solutions/ and exercises/ (default: the checkout)")
    b.set_defaults(handler=run_build)
    r = fam.add_parser("reset", help="give one exercise notebook back its fresh state", formatter_class=_Formatter,
                       description="Write exercises/NAME.ipynb afresh from solutions/NAME.ipynb, for a learner who "
                                   "wants to start an exercise again. When they changed it, their version is kept as "
                                   "NAME.ipynb.bak (or .bak.1 …, never over an earlier backup).",
                       epilog=_examples_epilog(["hpcwidgets workshop reset ex07",
                                                "hpcwidgets workshop reset ex07 ex10 --root ~/workshop"]))
    r.add_argument("names", nargs="+", metavar="NAME",
                   help="the exercise: its number (ex07), its name, or the path of its notebook")
    r.add_argument("--root", metavar="DIR", help="folder holding solutions/ and exercises/ (default: the checkout)")
    r.set_defaults(handler=run_reset)
    c = fam.add_parser("check", help="execute solutions, exercises and lessons", formatter_class=_Formatter,
                       description="Run every solution over its parameter matrix (papermill), every exercise "
                                   "(it must stop only at an unsolved task) and nbval on notebooks/, in parallel.",
                       epilog=_examples_epilog(["hpcwidgets workshop check", "hpcwidgets workshop check --jobs 4 --only 'ex0[1-3]*'"]))
    c.add_argument("--jobs", "-j", type=int, default=0, metavar="N", help="parallel runs (default: the number of cores)")
    c.add_argument("--only", default="", metavar="PATTERN", help="glob on notebook names, e.g. 'ex07*'")
    c.add_argument("--timeout", type=int, default=0, metavar="SECONDS", help="per-cell timeout (default 180)")
    c.add_argument("--root", metavar="DIR", help="folder holding solutions/, exercises/, notebooks/")
    c.add_argument("--profile", action="append", default=[], metavar="NAME",
                   help="check for this site (repeatable): solutions and lessons run with the profile instead of the "
                        "shipped matrix and saved outputs, exercises with it as their profile parameter (a note "
                        "names each exercise kept at its defaults, and why)")
    c.set_defaults(handler=run_check)


def run_build(args: argparse.Namespace) -> int:
    from ..exercises.build import build
    root = _root(args.root)
    _refuse_special_targets(root)
    result = build(root / "solutions", root / "exercises", check=args.check, force=args.force)
    for path in result.extra:
        print(f"note: {path} has no solution notebook (remove it or add solutions/{path.name})", file=sys.stderr)
    if args.check:
        if result.stale:
            print(f"exercises/ is stale: out of date with solutions/, no learner's answers in them; run "
                  f"`{_command(args, 'build')}`:", file=sys.stderr)
            for path in result.stale:
                print(f"  {path}", file=sys.stderr)
        _report_edited(args, result.edited)
        if result.stale or result.edited:
            return 1
        print(f"exercises/ is up to date ({len(result.unchanged)} notebooks)")
        return 0
    _report_written(result)
    _report_edited(args, result.edited)
    print(f"{len(result.written)} written, {len(result.unchanged)} unchanged"
          + (f", {len(result.edited)} kept (a learner's answers)" if result.edited else ""))
    return 1 if result.edited else 0


def run_reset(args: argparse.Namespace) -> int:
    from ..exercises.build import build
    root = _root(args.root)
    _refuse_special_targets(root)
    result = build(root / "solutions", root / "exercises", force=True, only=args.names)
    _report_written(result)
    for path in result.unchanged:
        print(f"{path} is fresh already")
    return 0


def _report_written(result: BuildResult) -> None:
    saved = dict(result.backups)
    for path in result.written:
        print(f"wrote {path}" + (f" (the learner's version is kept as {saved[path].name})" if path in saved else ""))


def _report_edited(args: argparse.Namespace, edited: Sequence[Path]) -> None:
    """Which notebooks hold a learner's answers, and the commands that replace them, keeping a backup."""
    if not edited:
        return
    print("exercises/ has a learner's answers in these (their cells differ from what the build wrote, or they "
          f"carry no record of it), which `{_command(args, 'build')}` leaves alone; to give one a fresh copy and "
          "keep the learner's as NAME.ipynb.bak:", file=sys.stderr)
    for path in edited:
        print(f"  {path}    {_command(args, 'reset', path.stem)}", file=sys.stderr)
    print(f"  (all of them at once: {_command(args, 'build', '--force')})", file=sys.stderr)


def _command(args: argparse.Namespace, action: str, *words: str) -> str:
    """The command line to suggest, with the same --root as this one."""
    root = f" --root {shlex.quote(args.root)}" if args.root else ""
    return " ".join(["hpcwidgets workshop", action, *words]) + root


def _refuse_special_targets(root: Path) -> None:
    """HpcWidgetsError when an exercise notebook the build reads and replaces is a device, a pipe or a socket:
    reading a pipe would wait for a writer, and the rename would put a file in its place (files.write_file's
    rule for every other write)."""
    from ..errors import HpcWidgetsError
    from ..files import special_kind
    for solution in sorted((root / "solutions").glob("*.ipynb")):
        target = root / "exercises" / solution.name
        kind = special_kind(target)
        if kind:
            raise HpcWidgetsError(f"{target} is {kind}, not a regular file: the build never replaces one; move it "
                                  "away (or delete it) and build again")


def run_check(args: argparse.Namespace) -> int:
    from ..exercises.runner import CELL_TIMEOUT, check, table
    root = _root(args.root)
    profiles = tuple(_for_notebooks(name) for name in args.profile)
    report = check(root, jobs=args.jobs or None, only=args.only, timeout=args.timeout or CELL_TIMEOUT,
                   profiles=profiles)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if report.outcomes:
        print(table(report.outcomes))
    return report.exit_code


def _for_notebooks(name: str) -> str:
    """``--profile NAME`` as the notebooks get it, checked first (an unknown profile is a clear error before any
    notebook starts). A .toml path is made absolute: every run works in a temporary directory of its own."""
    from ..profiles import load_profile
    load_profile(name)
    if "/" in name or name.endswith(".toml"):  # how load_profile tells a path from a name
        return str(Path(name).expanduser().resolve())
    return name
