"""``hpcwidgets parse FILE``: read a job script into the project's model and print it (JSON or TOML)."""

from __future__ import annotations

import argparse
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
    p.add_argument("-o", "--output-file", metavar="FILE", help="write to FILE atomically instead of printing")
    p.add_argument("--force", action="store_true", help="allow -o to replace an existing file")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from . import emit, format_model
    from ..parse.workflow import parse_script
    from ..errors import FileError
    from ..files import read_stdin, read_text
    name = "<stdin>" if args.file == "-" else args.file
    try:
        loaded = read_stdin(name) if args.file == "-" else read_text(args.file)
    except FileError as exc:
        print(f"hpcwidgets: error: {exc}", file=sys.stderr)
        return 2
    text = loaded.text
    for note in loaded.notes:
        print(f"hpcwidgets: warning: {note}", file=sys.stderr)
    try:
        model = parse_script(text, name)
    except ParseError as exc:
        print(f"{name}:{exc.line}:{exc.column}: {exc.message}", file=sys.stderr)
        return 2
    from ..lint import lint
    for secret in (f for f in lint(text, path=name) if f.code == "HPC602"):
        # the model keeps every line, so a token written in the script goes into the saved model too
        print(f"hpcwidgets: warning: {name}:{secret.line}: {secret.message}; the model written here holds it too: "
              "take it out before you save or share it", file=sys.stderr)
    emit(args, format_model(model, args.format))
    return 0
