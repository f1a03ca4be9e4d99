"""The ``hpcwidgets`` command: a thin layer over the Python API.

Every model command (``apptainer exec``, ``sbatch``, ``torchrun``, ``workflow`` …) takes options
generated from the model's field metadata, plus the shared ``--from FILE``, ``--set LAYER.FIELD=VALUE``,
``--format shell|json|toml``, ``--profile NAME``, ``-o FILE`` and ``--force``.
Exit status: 0 success, 1 a check found errors (lint, a job that did not complete), 2 bad input.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import __version__
from ..errors import HpcWidgetsError, Problem, ValidationError


@dataclass(frozen=True)
class ModelCommand:
    """A subcommand that builds one model and prints (or writes) its text."""

    path: tuple[str, ...]
    model: str                      # "module:Class", imported only when the command runs or builds its parser
    summary: str
    fixed: dict[str, Any] = field(default_factory=dict)
    examples: tuple[str, ...] = ()

    def cls(self) -> Any:
        module, _, name = self.model.partition(":")
        return getattr(importlib.import_module(module), name)


SPEC = "hpcwidgets.spec"
MODEL_COMMANDS: tuple[ModelCommand, ...] = (
    *(ModelCommand(("apptainer", action), f"{SPEC}.apptainer:ApptainerRun", f"apptainer {action} IMAGE …",
                   {"action": action},
                   (f"hpcwidgets apptainer {action} --nv --bind '$SCRATCH/data:/data:ro' '$SCRATCH/pytorch.sif' python train.py",)
                   if action == "exec" else ())
      for action in ("exec", "run", "shell", "test")),
    ModelCommand(("apptainer", "pull"), f"{SPEC}.apptainer:ApptainerPull", "apptainer pull DEST.sif docker://…", {},
                 ("hpcwidgets apptainer pull --dir '$SCRATCH/sif' --cachedir '$SCRATCH/.apptainer' "
                  "pytorch.sif docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime",)),
    ModelCommand(("apptainer", "build"), f"{SPEC}.apptainer:ApptainerBuild", "apptainer build OUT.sif DEF", {},
                 ("hpcwidgets apptainer build --fakeroot env.sif env.def",)),
    ModelCommand(("apptainer", "inspect"), f"{SPEC}.apptainer:ApptainerInspect", "apptainer inspect IMAGE"),
    ModelCommand(("apptainer", "instance"), f"{SPEC}.apptainer:ApptainerInstance", "apptainer instance start|stop|list"),
    ModelCommand(("apptainer", "def"), f"{SPEC}.apptainer:DefFile", "an Apptainer definition file", {},
                 ("hpcwidgets apptainer def --from-image pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime --post 'pip install wandb'",)),
    ModelCommand(("sbatch",), f"{SPEC}.slurm:SlurmJob", "a Slurm batch script", {},
                 ("hpcwidgets sbatch --job-name train --partition gpu --gpus-per-node 1 --time 01:00:00 --mem 16G "
                  "--commands 'srun python train.py'",
                  "hpcwidgets sbatch --profile midway3 --partition gpu --gpus-per-node 8   # checked against the site",)),
    ModelCommand(("srun",), f"{SPEC}.slurm:Srun", "an srun job step prefix", {},
                 ("hpcwidgets srun --ntasks-per-node 1 --cpus-per-task 8",)),
    ModelCommand(("torchrun",), f"{SPEC}.torchrun:Torchrun", "a torchrun launcher", {},
                 ("hpcwidgets torchrun --standalone --nproc-per-node 4 train.py --epochs 10",)),
    ModelCommand(("workflow",), f"{SPEC}.workflow:Workflow", "a complete job: Slurm → srun → container → torchrun → program", {},
                 ("hpcwidgets workflow --from job.json --set job.nodes=4 --set launcher.nnodes=4",
                  "hpcwidgets examples multi-node-torchrun --format json > job.json   # a starting point")),
    ModelCommand(("jupyter-job",), f"{SPEC}.jupyter:JupyterJob", "JupyterLab on a compute node, with the SSH tunnel", {},
                 ("hpcwidgets jupyter-job --profile midway3 --set job.time=02:00:00 -o jupyter.sbatch",)),
)

CHARLIECLOUD_COMMANDS = (
    ("run", "ChRun", "ch-run IMAGE -- CMD", "hpcwidgets charliecloud run --bind '$SCRATCH/data:/data' /var/tmp/img -- python train.py"),
    ("build", "ChImageBuild", "ch-image build -t NAME CONTEXT", "hpcwidgets charliecloud build --tag trainer ."),
    ("import", "ChImageImport", "ch-image import PATH NAME", ""),
    ("convert", "ChConvert", "ch-convert IN OUT", "hpcwidgets charliecloud convert trainer /var/tmp/trainer.sqfs"),
    ("fromhost", "ChFromhost", "ch-fromhost --nvidia IMAGE_DIR", ""),
    ("dockerfile", "Dockerfile", "a Dockerfile for ch-image build", ""),
)


def _charliecloud_commands() -> list[ModelCommand]:
    try:
        mod = importlib.import_module(f"{SPEC}.charliecloud")
    except ImportError:
        return []
    return [ModelCommand(("charliecloud", sub), f"{SPEC}.charliecloud:{cls}", summary, {}, (ex,) if ex else ())
            for sub, cls, summary, ex in CHARLIECLOUD_COMMANDS if hasattr(mod, cls)]


def _available(cmd: ModelCommand) -> bool:
    module = cmd.model.partition(":")[0]
    return importlib.util.find_spec(module) is not None


class _Parser(argparse.ArgumentParser):
    """No abbreviated options: ``--set`` must never silently mean ``--set-env``."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        kw.setdefault("allow_abbrev", False)
        super().__init__(*a, **kw)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=100)


def _examples_epilog(lines: Sequence[str]) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines) if lines else ""


def _add_output_options(p: argparse.ArgumentParser, *, model: bool = True) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--format", choices=("shell", "json", "toml"), default="shell",
                   help="shell: the command or script (default); json/toml: the model, to edit and load with --from.")
    g.add_argument("-o", "--output-file", metavar="FILE", help="Write to FILE atomically instead of printing.")
    g.add_argument("--force", action="store_true", help="Allow -o to replace an existing file.")
    if model:
        g.add_argument("--from", dest="from_file", metavar="FILE", help="Start from a model saved as .json or .toml.")
        g.add_argument("--set", action="append", default=[], metavar="LAYER.FIELD=VALUE",
                       help="Change a field of a nested layer, e.g. --set job.nodes=2 --set container.nv=true.")
        g.add_argument("--profile", metavar="NAME", help="Check the job against a cluster profile (partitions, limits).")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hpcwidgets", formatter_class=_Formatter,
        description="Build, check and run correct Apptainer/Charliecloud + Slurm + torchrun jobs.",
        epilog=_examples_epilog([
            "hpcwidgets examples                              # list the shipped example jobs",
            "hpcwidgets examples multi-node-torchrun --profile generic -o job.sbatch",
            "hpcwidgets apptainer exec --nv IMAGE.sif python train.py",
            "hpcwidgets lint job.sbatch --profile generic",
        ]))
    parser.add_argument("--version", action="version", version=f"hpcwidgets {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    families: dict[str, argparse._SubParsersAction] = {}
    for cmd in (*MODEL_COMMANDS, *_charliecloud_commands()):
        if not _available(cmd):
            continue
        if len(cmd.path) == 2:
            fam = families.get(cmd.path[0])
            if fam is None:
                fp = sub.add_parser(cmd.path[0], help=f"{cmd.path[0]} commands", formatter_class=_Formatter)
                fam = fp.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
                fam.required = True
                families[cmd.path[0]] = fam
            p = fam.add_parser(cmd.path[1], help=cmd.summary, description=cmd.summary, formatter_class=_Formatter,
                               epilog=_examples_epilog(cmd.examples))
        else:
            p = sub.add_parser(cmd.path[0], help=cmd.summary, description=cmd.summary, formatter_class=_Formatter,
                               epilog=_examples_epilog(cmd.examples))
        from ._options import add_model_options
        add_model_options(p, cmd.cls(), skip=set(cmd.fixed))
        _add_output_options(p)
        p.set_defaults(handler=_run_model_command, model_command=cmd)

    for name, module in _EXTRA_COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        mod.register(sub)
    return parser


#: (name, module with register(subparsers)) for commands that are not a single model
_EXTRA_COMMANDS = (
    ("examples", "hpcwidgets.cli.examples"),
    ("profile", "hpcwidgets.cli.profile"),
    ("convert", "hpcwidgets.cli.convert"),
    ("lint", "hpcwidgets.cli.lint"),
    ("parse", "hpcwidgets.cli.parse"),
    ("submit", "hpcwidgets.cli.submit"),
    ("practice-cluster", "hpcwidgets.cli.cluster"),
    ("workshop", "hpcwidgets.cli.workshop"),
)


def load_model_file(path: str, cls: Any = None) -> Any:
    """A model saved as JSON or TOML (by extension; JSON when unknown)."""
    from ..spec._meta import Spec
    from ..spec._toml import loads
    p = Path(path)
    try:
        text = sys.stdin.read() if path == "-" else p.read_text(encoding="utf-8")
    except OSError as exc:
        raise HpcWidgetsError(f"cannot read {path}: {exc.strerror}") from None
    target = cls or Spec
    if p.suffix == ".toml":
        try:
            data = loads(text)
        except ValueError as exc:
            from ..errors import ParseError
            raise ParseError(f"not valid TOML: {exc}", source=path) from None
        if "kind" not in data and cls is None:
            raise ValidationError([Problem("kind", f"{path} does not say which model it holds: add kind = \"…\"")])
        return target.from_dict(data)
    import json
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        from ..errors import ParseError
        raise ParseError(f"not valid JSON: {exc.msg}", exc.lineno, exc.colno, source=path) from None
    if not isinstance(data, dict):
        raise ValidationError([Problem("", f"{path} must hold a JSON object describing a model")])
    if "kind" not in data and cls is None:
        raise ValidationError([Problem("kind", f"{path} does not say which model it holds: add \"kind\"")])
    return target.from_dict(data)


def emit(args: argparse.Namespace, text: str) -> None:
    """Print ``text`` or write it atomically to ``-o FILE``."""
    if getattr(args, "output_file", None):
        from ..files import write_atomic
        path = write_atomic(args.output_file, text, force=args.force, executable=text.startswith("#!"))
        print(f"wrote {path}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def format_model(model: Any, fmt: str) -> str:
    if fmt == "json":
        return model.to_json() + "\n"
    if fmt == "toml":
        from ..spec._toml import dumps
        return dumps(model.to_dict())
    from ..render import render
    return render(model)


def profile_problems(model: Any, profile_name: str | None) -> list[Any]:
    """Problems of the model's Slurm job against a cluster profile (empty without a profile)."""
    if not profile_name:
        return []
    from ..profiles import load_profile
    from ..spec.profile import check_job
    from ..spec.slurm import SlurmJob
    profile = load_profile(profile_name)
    job = model if isinstance(model, SlurmJob) else getattr(model, "job", None)
    return check_job(profile, job) if isinstance(job, SlurmJob) else []


def _run_model_command(args: argparse.Namespace) -> int:
    from ._options import apply_sets, model_from_args
    cmd: ModelCommand = args.model_command
    cls = cmd.cls()
    base = load_model_file(args.from_file, cls) if args.from_file else None
    model = model_from_args(cls, base, args, cmd.fixed)
    model = apply_sets(model, args.set)
    problems = model.problems() + profile_problems(model, args.profile)
    if problems:
        raise ValidationError([_as_option(cls, p) for p in problems], subject=" ".join(cmd.path))
    emit(args, format_model(model, args.format))
    return 0


def _as_option(cls: Any, problem: Problem) -> Problem:
    """Name the command-line option a person typed (``--time``) instead of the model field (``time``)."""
    from ..errors import UnknownFieldError
    from ._options import option_name
    head = problem.field.split(".", 1)[0]
    try:
        spec = cls.field_spec(head)
    except UnknownFieldError:
        return problem
    if spec.info.role in ("option", "internal") and "." not in problem.field:
        return Problem(option_name(spec), problem.message)
    return problem


def report_error(exc: HpcWidgetsError) -> None:
    if isinstance(exc, ValidationError):
        for p in exc.problems:
            print(f"hpcwidgets: error: {p}", file=sys.stderr)
    else:
        print(f"hpcwidgets: error: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except HpcWidgetsError as exc:
        report_error(exc)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
