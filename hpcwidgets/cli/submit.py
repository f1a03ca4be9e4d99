"""``hpcwidgets submit FILE [--wait] [--timeout S]``."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..errors import HpcWidgetsError

#: exit status when sbatch accepted the job (exit 0) but printed no job id that could be read
ID_UNREAD = 3


def register(sub: argparse._SubParsersAction) -> None:
    from . import _Formatter, _examples_epilog
    p = sub.add_parser("submit", help="submit a job script with sbatch (and wait for it)", formatter_class=_Formatter,
                       description="Submit a job script. Prints the job id; with --wait, the final state and the output "
                                   "file. Exit status 0 once submitted (with --wait: only when the job COMPLETED); 3 "
                                   "when sbatch accepted the job but its id could not be read from what it printed "
                                   "(check squeue -u $USER before submitting again). A script sbatch would refuse "
                                   "(empty, DOS line breaks, a byte-order mark, no #! first line) is not submitted: "
                                   "the error says how to fix it (hpcwidgets lint --fix FILE, for most).",
                       epilog=_examples_epilog([
                           "hpcwidgets examples multi-node-torchrun --profile local -o job.sbatch",
                           "hpcwidgets submit job.sbatch --wait --timeout 600",
                       ]))
    p.add_argument("file", help="the job script ('-' reads standard input)")
    p.add_argument("--wait", action="store_true", help="wait until the job ends; print its state and output file")
    p.add_argument("--timeout", type=float, default=3600.0, metavar="S", help="give up waiting after S seconds")
    p.add_argument("--tail", type=int, default=0, metavar="N", help="with --wait, print the last N lines of output")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..files import special_kind
    from ..run.slurm import submit
    text = _checked_script(args.file)
    if args.file == "-" or special_kind(args.file):
        job = submit(text)  # read once already (stdin, <(…)): sbatch gets the text, not a pipe left empty
    else:
        path = Path(args.file)
        job = submit(str(path.resolve()), cwd=str(path.resolve().parent))
    for folder in job.created_dirs:
        print(f"created {folder}/ for the job's log (Slurm does not create it; the job would fail without it)",
              file=sys.stderr)
    if not job.id:
        # queued, so not the failure status (2); its own status, so a script does not go on with an empty id
        print(f"hpcwidgets: submitted, but the job id is unknown: {job.missing_id_message}", file=sys.stderr)
        return ID_UNREAD
    print(job.id, flush=True)
    if not args.wait:
        return 0
    state = job.wait(args.timeout)
    out = job.output_path()
    print(f"{state} {Path(out).resolve() if out else '(output file unknown)'}")
    if args.tail:
        sys.stdout.write(job.output(tail=args.tail))
    return 0 if state == "COMPLETED" else 1


#: what sbatch refuses about the file itself, before it reads a directive: DOS line breaks, no #! first, empty
REFUSED_BY_SBATCH = frozenset({"HPC314", "HPC315", "HPC316"})


def _checked_script(file: str) -> str:
    """The job script's text, read the way lint reads it; HpcWidgetsError naming the fix when sbatch would refuse
    it anyway (a directory or a missing file, empty input, DOS line breaks, a byte-order mark, no #! line) or it is
    no text at all. A script file in another encoding (Latin-1) that starts with #! is left to sbatch, which takes
    it as it is (its text, only needed for standard input and pipes, is then "")."""
    from ..errors import FileError
    from ..files import decode_text, read_bytes, special_kind
    from ..lint import lint
    from .lint import as_written
    stdin = file == "-"
    name = "standard input" if stdin else file
    if stdin:
        buffer = getattr(sys.stdin, "buffer", None)
        data = buffer.read() if buffer is not None else sys.stdin.read().encode("utf-8", "surrogateescape")
        if not data.strip():
            raise HpcWidgetsError("standard input is empty: there is no job script to submit; pipe one in "
                                  "(hpcwidgets examples single-gpu | hpcwidgets submit -) or name the file")
    else:
        data = read_bytes(file)
    try:
        loaded = decode_text(data, name, keep_newlines=True)
    except FileError:
        if not stdin and data.startswith(b"#!") and not special_kind(file):
            return ""  # a script in another encoding: sbatch reads the file itself, as it is
        raise
    refused = [f for f in lint(as_written(loaded, file), select=REFUSED_BY_SBATCH) if f.severity == "error"]
    if refused:
        fixable = not stdin and all(f.fix is not None for f in refused)
        raise HpcWidgetsError(f"{name}: " + "; ".join(f"line {f.line}: {f.message}" for f in refused) +
                              "; nothing was submitted" +
                              (f" (hpcwidgets lint --fix {shlex.quote(file)} fixes it)" if fixable else ""))
    if not loaded.text.startswith("#!"):
        raise HpcWidgetsError(f"{name} does not start with a #! line: sbatch refuses it (\"This does not look like "
                              "a batch script\"); add #!/bin/bash as the first line")
    return loaded.text
