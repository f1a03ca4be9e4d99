"""``hpcwidgets submit FILE [--wait] [--timeout S]``."""

from __future__ import annotations

import argparse
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
                                   "(check squeue -u $USER before submitting again).",
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
    from ..run.slurm import submit
    if args.file == "-":
        job = submit(sys.stdin.read())
    else:
        path = Path(args.file)
        if not path.is_file():
            raise HpcWidgetsError(f"{path}: no such file")
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
