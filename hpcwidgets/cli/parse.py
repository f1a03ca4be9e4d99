"""``hpcwidgets parse FILE``: read a job script into the project's model and print it (JSON or TOML)."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys

from ..errors import ParseError


def register(sub: argparse._SubParsersAction) -> None:
    from . import _Formatter, _examples_epilog
    p = sub.add_parser("parse", help="read a job script into a model (JSON/TOML)", formatter_class=_Formatter,
                       description="Read a Slurm job script into a workflow model (job directives, set-up lines, the "
                                   "srun → container → torchrun → program step) and print it. Save the output and "
                                   "edit it, then render it again with: hpcwidgets workflow --from FILE.",
                       epilog=_examples_epilog([
                           "hpcwidgets parse job.sbatch > job.json",
                           "hpcwidgets parse --format toml job.sbatch",
                           "hpcwidgets workflow --from job.json --set job.nodes=4",
                       ]))
    p.add_argument("file", metavar="FILE", help="the job script; - reads standard input")
    p.add_argument("--format", choices=("json", "toml"), default="json", help="output format (default json)")
    p.add_argument("-o", "--output-file", metavar="FILE",
                   help="write to FILE atomically instead of printing (- prints); missing folders on its path are created")
    p.add_argument("--force", action="store_true",
                   help="allow -o to replace an existing file (never a device, a pipe or a socket)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from . import emit, format_model
    from .lint import as_written
    from .submit import REFUSED_BY_SBATCH
    from ..parse.workflow import parse_script
    from ..errors import FileError, HpcWidgetsError
    from ..files import read_stdin, read_text, special_kind
    from ..lint import lint
    name = "<stdin>" if args.file == "-" else args.file
    try:
        # line ends as written, for the check below; the reader gets them as bash reads them
        loaded = read_stdin(name, keep_newlines=True) if args.file == "-" else read_text(args.file, keep_newlines=True)
    except FileError as exc:
        print(f"hpcwidgets: error: {exc}", file=sys.stderr)
        return 2
    held = saved_model(loaded.text, name) or build_file(loaded.text, name)
    if held:
        raise HpcWidgetsError(held)
    written = as_written(loaded, args.file)
    text = loaded.text.replace("\r\n", "\n").replace("\r", "\n")
    if loaded.bom and not written.startswith("\ufeff"):
        for note in loaded.notes:
            print(f"hpcwidgets: warning: {note}", file=sys.stderr)
    findings = lint(written, path=name)
    in_place = args.file != "-" and not special_kind(args.file)  # lint --fix can rewrite it
    for f in findings:
        if f.code == "HPC316":
            raise HpcWidgetsError(f"{name}: {f.message}; there is no job script to read: write the job into it, or "
                                  "start from one of hpcwidgets examples")
        if f.code in REFUSED_BY_SBATCH and f.severity == "error":
            # read all the same (the model is what the script should be), but the file as it is will not run
            fix = f"; hpcwidgets lint --fix {shlex.quote(name)} fixes the file" if f.fix and in_place else ""
            print(f"hpcwidgets: warning: {name}:{f.line}: {f.message} (read here as if it were fixed{fix})",
                  file=sys.stderr)
    try:
        model = parse_script(text, name)
    except ParseError as exc:
        print(f"{name}:{exc.line}:{exc.column}: {exc.message}", file=sys.stderr)
        return 2
    for secret in (f for f in findings if f.code == "HPC602"):
        # the model keeps every line, so a token written in the script goes into the saved model too
        print(f"hpcwidgets: warning: {name}:{secret.line}: {secret.message}; the model written here holds it too: "
              "take it out before you save or share it", file=sys.stderr)
    emit(args, format_model(model, args.format))
    return 0


def build_file(text: str, name: str) -> str:
    """What to do instead when a file given to parse is a build file (a definition file or a Dockerfile, told apart
    by its name or first line as lint tells them), or "": parse reads job scripts, and a build file is built."""
    from ..files import build_it
    from ..parse.buildfiles import build_file_format
    kind = {"apptainer": "an Apptainer definition file", "docker": "a Dockerfile"}.get(
        build_file_format(text, "" if name == "<stdin>" else name), "")
    if not kind:
        return ""
    quoted = shlex.quote(name) if name != "<stdin>" else "FILE"
    return (f"{name} is {kind}, not a job script: parse reads job scripts into models. To use it, "
            f"{build_it(kind, quoted)}; hpcwidgets lint {quoted} checks it")


_TOML_KIND = re.compile(r"""\A(?:\s*#[^\n]*\n|\s*\n)*\s*kind\s*=\s*["']([\w.]+)["']""")


def saved_model(text: str, name: str) -> str:
    """What to do instead when a file given to parse holds a saved model (JSON or TOML, as --format json writes
    it) rather than a job script, or "": the model is rendered by its own command with --from."""
    kind = ""
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return ""
        kind = str(data.get("kind", "")) if isinstance(data, dict) else ""
        action = data.get("action") if isinstance(data, dict) else None
        form = "JSON"
    else:
        match = _TOML_KIND.match(text)
        kind, action, form = (match.group(1), None, "TOML") if match else ("", None, "")
    if not kind:
        return ""
    from . import MODEL_COMMANDS
    commands = [c for c in MODEL_COMMANDS if _kind(c) == kind]
    command = next((c for c in commands if c.fixed.get("action") in (None, action)), commands[0] if commands else None)
    how = (f"hpcwidgets {' '.join(command.path)} --from {shlex.quote(name)} (add -o FILE to save it)" if command
           else f"the command that saved it, with --from {shlex.quote(name)}")
    return (f"{name} is a saved model ({form}, kind {kind}), not a job script: parse reads job scripts into models. "
            f"To write the script it describes, render it: {how}")


def _kind(command: object) -> str:
    try:
        return command.cls().kind  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        return ""
