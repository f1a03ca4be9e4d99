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
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, NoReturn, Sequence

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
    #: fields this command has no option for (apptainer instance stop takes neither an image nor --nv)
    skip: frozenset[str] = frozenset()

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
    # written the way apptainer spells them: instance start [options] IMAGE NAME, instance stop NAME, instance list
    ModelCommand(("apptainer", "instance", "start"), f"{SPEC}.apptainer:ApptainerInstance",
                 "apptainer instance start [options] IMAGE NAME: start a background instance",
                 {"action": "instance start"}, ("hpcwidgets apptainer instance start --nv '$SCRATCH/db.sif' db",)),
    ModelCommand(("apptainer", "instance", "stop"), f"{SPEC}.apptainer:ApptainerInstance",
                 "apptainer instance stop NAME: stop a background instance", {"action": "instance stop"},
                 ("hpcwidgets apptainer instance stop db",), frozenset({"image", "nv", "cleanenv", "binds"})),
    ModelCommand(("apptainer", "instance", "list"), f"{SPEC}.apptainer:ApptainerInstance",
                 "apptainer instance list [NAME]: list the running instances (those whose name matches NAME)",
                 {"action": "instance list"}, ("hpcwidgets apptainer instance list",),
                 frozenset({"image", "nv", "cleanenv", "binds"})),
    ModelCommand(("apptainer", "def"), f"{SPEC}.apptainer:DefFile", "an Apptainer definition file", {},
                 ("hpcwidgets apptainer def --from-image pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime --post 'pip install wandb==0.17.0'",)),
    ModelCommand(("sbatch",), f"{SPEC}.slurm:SlurmJob", "a Slurm batch script", {},
                 ("hpcwidgets sbatch --job-name train --partition gpu --gpus-per-node 1 --time 01:00:00 --mem 16G "
                  "--commands 'srun python train.py'",
                  "hpcwidgets sbatch --profile midway3 --partition gpu --gpus-per-node 8   # checked against the site",)),
    ModelCommand(("srun",), f"{SPEC}.slurm:Srun", "an srun job step prefix", {},
                 ("hpcwidgets srun --ntasks-per-node 1 --cpus-per-task 8",)),
    ModelCommand(("torchrun",), f"{SPEC}.torchrun:Torchrun", "a torchrun launcher", {},
                 ("hpcwidgets torchrun --standalone --nproc-per-node 4 train.py --epochs 10",)),
    ModelCommand(("workflow",), f"{SPEC}.workflow:Workflow", "a complete job: Slurm → srun → container → torchrun → program", {},
                 ("hpcwidgets workflow --from job.json --set job.nodes=4   # torchrun's --nnodes follows",
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
    """No abbreviated options: ``--set`` must never silently mean ``--set-env``. An option given no value
    says how to write a value that starts with ``-`` (argparse reads it as the next option)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        kw.setdefault("allow_abbrev", False)
        super().__init__(*a, **kw)

    def error(self, message: str) -> NoReturn:
        missing = re.fullmatch(r"argument ([^/: ]+)[^:]*: expected one argument", message)
        if missing:
            option = missing.group(1)
            message += f"; give {option} its value (one that starts with - is written joined to it: {option}=-VALUE)"
        super().error(message)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=100)


def _examples_epilog(lines: Sequence[str]) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines) if lines else ""


_LAYERED_SET_HELP = ("Change a field of a nested layer, e.g. --set job.nodes=2 --set container.nv=true. A list field "
                     "takes one item per --set and adds it to what is there (--set container.binds=/a --set "
                     "job.setup='mkdir -p \"$SCRATCH/out\"'); an empty value (--set job.modules=) empties it; a "
                     "command's words (program, launcher.args) are replaced.")
#: how the workflow's layers follow its job (hpcwidgets.spec.workflow.follow), as they do in the form
_FOLLOW_HELP = (" Values follow the job as in the form: job.nodes sets launcher.nnodes; job.gpus_per_node sets "
                "launcher.nproc_per_node and switches the container's GPU flag on or off: --rocm where the job's "
                "partition has AMD GPUs (its gpu_vendor in --profile, else the profile's; without a profile, when the "
                "container says --rocm), else --nv, and the other flag off. A move to a partition of the other "
                "vendor (job.partition) switches --nv and --rocm over. A value you give too (--set "
                "launcher.nnodes=…, --set container.nv=…, --launcher '…') wins, and one that is not a plain number "
                "($SLURM_NNODES, gpu) stays. A number of nodes or GPUs the title states, where it was the "
                "job's, becomes the new one (unless --title is given).")


#: what the command does with a mistake, as _run_model_command does it (the model's problems, then lint's findings)
_CHECKS_HELP = ("A mistake the model finds that the file already holds is reported and written back as it was (exit "
                "status 1); one the options or --set make is refused and nothing is written (exit status 2). With "
                "--format shell, lint then checks the text: its findings are reported, the text is still written "
                "(or printed), and an error among them makes the exit status 1, as hpcwidgets lint does.")


def _set_help(cls: Any) -> tuple[str, str]:
    """(metavar, help) of --set: LAYER.FIELD for a model of layers (a workflow, the Jupyter job), FIELD for one
    command, with examples from the command's own fields."""
    from ._options import set_form
    metavar, example = set_form(cls)
    if metavar.startswith("LAYER."):
        follows = getattr(cls, "kind", "") == "workflow"
        return metavar, _LAYERED_SET_HELP + (_FOLLOW_HELP if follows else "")
    many = next((f for f in cls.field_specs() if f.is_tuple and f.info.role in ("option", "internal")), None)
    text = f"Change a field, e.g. --set {example}." if example else "Change a field."
    if many is not None:
        text += (f" A list field takes one item per --set and adds it to what is there (--set {many.name}=…); an "
                 f"empty value (--set {many.name}=) empties it.")
    return metavar, text


def set_fields(cls: Any) -> list[tuple[str, str, list[Any]]]:
    """The fields ``--set`` changes in a model of layers (a workflow, the Jupyter job), from their metadata:
    ``(prefix, heading, fields)`` per layer model (``("container.", "Container: ch-run", [FieldSpec …])``), the
    model's own fields last (prefix ""); [] for a command that is one layer (its options are its fields). Left out:
    what a person never sets (a record kept from a script read back, a program name with one choice) and what the
    model refuses to write (:data:`~hpcwidgets.spec.workflow.NOT_WRITTEN`)."""
    from ._options import _command_name, _spec_classes, kept_from_script, set_form
    from ..spec.workflow import NOT_WRITTEN
    if not set_form(cls)[0].startswith("LAYER."):
        return []
    kind = getattr(cls, "kind", "")

    def settable(owner: Any, prefix: str) -> list[Any]:
        return [g for g in owner.field_specs() if not kept_from_script(g)
                and not (g.info.role in ("program", "subcommand") and len(g.info.choices) <= 1)
                and (kind, prefix + g.name) not in NOT_WRITTEN]

    out = []
    for f in cls.field_specs():
        inners = _spec_classes(f) if not kept_from_script(f) else ()
        for inner in inners:
            command = _command_name(inner)
            heading = f"{f.info.label or f.name}: {command}" if len(inners) > 1 and command else f.info.label
            out.append((f"{f.name}.", heading, settable(inner, f"{f.name}.")))
    layers = {prefix[:-1] for prefix, _, _ in out}
    return out + [("", "", [f for f in settable(cls, "") if f.name not in layers])]


def _set_fields_epilog(cls: Any, command: str) -> str:
    """The compact list of ``--set`` fields for ``--help`` ("" for a command that is one layer)."""
    import textwrap
    layers = set_fields(cls)
    if not layers:
        return ""
    width = max(len(prefix) for prefix, _, _ in layers) + len("FIELD") + 4
    lines = [f"fields --set takes (hpcwidgets {command} --set help says what each one is):"]
    for prefix, heading, fields in layers:
        said = " ".join(f.name for f in fields)
        if ": " in heading:
            said = f"({heading.split(': ', 1)[1]}) {said}"  # a layer that holds one of several commands
        wrapped = textwrap.wrap(said, 96 - width)
        label = f"{prefix}FIELD" if prefix else "FIELD"
        lines += [f"  {label if i == 0 else '':<{width - 2}}{chunk}" for i, chunk in enumerate(wrapped)]
    return "\n".join(lines)


def print_set_fields(cls: Any, command: str) -> None:
    """``--set help``: every field ``--set`` changes (``LAYER.FIELD``, or ``FIELD`` for a command that is one
    layer) with its help text, from the field metadata."""
    import textwrap
    layers = set_fields(cls)
    if layers:
        print(f"hpcwidgets {command} --set LAYER.FIELD=VALUE changes these fields (true or false for a switch; a "
              "list takes one item per --set, an empty value empties it):")
    else:  # a command that is one layer: its fields are its options
        roles = ("option", "internal", "positional", "rest")
        layers = [("", "", [f for f in cls.field_specs() if f.info.role in roles])]
        print(f"hpcwidgets {command} --set FIELD=VALUE changes these fields (most have an option too: "
              f"hpcwidgets {command} --help):")
    for prefix, heading, fields in layers:
        if len(layers) > 1:
            print(f"\n{heading or 'the whole ' + command}:")
        for f in fields:
            text = f.info.help or f.info.label
            if f.info.choices:
                text += f" One of: {', '.join(c for c in f.info.choices if c)}."
            path = f"  {prefix}{f.name}"
            first = f"{path:<28}" if len(path) < 28 else path + "\n" + " " * 28
            print(textwrap.fill(text, 100, initial_indent=first, subsequent_indent=" " * 28))


def _add_output_options(p: argparse.ArgumentParser, *, model: bool = True, cls: Any = None,
                        format_default: str = "shell", format_help: str = "") -> None:
    g = p.add_argument_group("output")
    g.add_argument("--format", choices=("shell", "json", "toml"), default=format_default,
                   help=format_help or "shell: the command or script (default); json/toml: the model, to edit and "
                                       "load with --from.")
    g.add_argument("-o", "--output-file", metavar="FILE",
                   help="Write to FILE atomically instead of printing (- prints); missing folders on its path are "
                        "created.")
    g.add_argument("--force", action="store_true", help="Allow -o to replace an existing file (never a device, a "
                                                        "pipe or a socket: those are refused).")
    if model:
        g.add_argument("--from", dest="from_file", metavar="FILE",
                       help="Start from a model saved as .json or .toml (workflow, sbatch, jupyter-job: or a job "
                            "script); a repeatable option then adds to the loaded list, as --set does. " + _CHECKS_HELP)
        metavar, text = _set_help(cls)
        g.add_argument("--set", action="append", default=[], metavar=metavar,
                       help=text + " --set help lists the fields with what each one is.")
        g.add_argument("--profile", metavar="NAME",
                       help="Fill in what the site needs where you left it empty (partition, QOS, constraint and "
                            "account of the job's partition; the container runtime's module; the site's name for "
                            "Apptainer's command; srun --cpus-per-task where Slurm does not pass it on), and check "
                            "the job against the cluster profile (partitions, limits).")


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

    families: dict[tuple[str, ...], argparse._SubParsersAction] = {(): sub}
    for cmd in (*MODEL_COMMANDS, *_charliecloud_commands()):
        if not _available(cmd):
            continue
        fam = _family(families, cmd.path[:-1])
        epilog = "\n\n".join(filter(None, (_examples_epilog(cmd.examples),
                                           _set_fields_epilog(cmd.cls(), " ".join(cmd.path)))))
        p = fam.add_parser(cmd.path[-1], help=cmd.summary, description=cmd.summary, formatter_class=_Formatter,
                           epilog=epilog)
        from ._options import add_model_options
        add_model_options(p, cmd.cls(), skip=set(cmd.fixed) | cmd.skip)
        _add_output_options(p, cls=cmd.cls())
        p.set_defaults(handler=_run_model_command, model_command=cmd)

    for name, module in _EXTRA_COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        mod.register(sub)
    return parser


#: what a group of commands is for, where its name does not say it
FAMILY_SUMMARIES = {("apptainer", "instance"): "apptainer instance start|stop|list: background instances"}


def _family(families: dict[tuple[str, ...], argparse._SubParsersAction],
            prefix: tuple[str, ...]) -> argparse._SubParsersAction:
    """The subcommands of the command ``prefix`` names (``apptainer``, ``apptainer instance``), made on first use."""
    if prefix not in families:
        parent = _family(families, prefix[:-1])
        summary = FAMILY_SUMMARIES.get(prefix, f"{' '.join(prefix)} commands")
        fp = parent.add_parser(prefix[-1], help=summary, description=summary, formatter_class=_Formatter)
        fam = fp.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
        fam.required = True
        families[prefix] = fam
    return families[prefix]


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


def _field_value(model: Any, path: str) -> Any:
    """The value at a problem's field path (``job.job_name``) of ``model``; None where there is none."""
    for name in path.split(".") if path else ():
        model = getattr(model, name, None)
    return model if path else None


def load_model_file(path: str, cls: Any = None, edited: Iterable[str] = ()) -> Any:
    """A model saved as JSON or TOML (by extension; JSON when unknown), or a job script (starting with #! or
    #SBATCH) for the workflow, sbatch and jupyter-job commands. Every error names the file. ``edited``: the fields
    the command line gives a value (``given_paths``), for the notes that matter only to their edit."""
    from ..errors import FileError, ParseError, UnknownFieldError
    from ..files import read_stdin, read_text
    from ..spec._meta import Spec, load_json
    from ..spec._toml import loads
    if not path:
        raise FileError("--from was given an empty file name: name the model (.json, .toml) or job script to read, "
                        "or - for standard input", "--from ''")
    p = Path(path)
    name = "<stdin>" if path == "-" else path
    text = (read_stdin(name) if path == "-" else read_text(path)).text  # FileError names the file and the fix
    empty = _holds_nothing(text, name, cls)
    if empty:
        raise FileError(empty, name)
    target = cls or Spec
    if p.suffix not in (".json", ".toml") and _job_script_text(text):
        return _model_from_script(text, name, cls, edited)
    if path == "-" and not text.lstrip().startswith("{"):
        try:  # standard input has no extension: TOML when it reads as TOML (else the JSON error says what it holds)
            data = loads(text)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict) and data:
            p = Path("-.toml")
    if p.suffix == ".toml":
        try:
            data = loads(text)
        except ValueError as exc:
            from ..profiles import toml_error_place
            line, column, message = toml_error_place(exc, text)
            raise ParseError(f"{'' if line else name + ': '}not valid TOML: {message}", line, column,
                             source=name) from None
        except RecursionError:
            raise ParseError(f"{name}: not valid TOML for a model: it is nested too deeply; check the tables") from None
        if "kind" not in data and cls is None:
            raise ValidationError([Problem("kind", f"{name} does not say which model it holds: add kind = \"…\"")])
    else:
        try:
            data = load_json(text, source=name)
        except ParseError as exc:
            if not exc.message.startswith("not valid JSON"):  # JSON, and wrong in what it holds (a key twice)
                raise ParseError(f"{name}: {exc.message}", exc.line, exc.column, source=name) from None
            raise ParseError(f"{exc.message}; {_what_it_holds(text, name, cls)}", exc.line, exc.column,
                             source=name) from None
        if not isinstance(data, dict):
            raise ValidationError([Problem("", f"{name} must hold a JSON object describing a model")])
        if "kind" not in data and cls is None:
            raise ValidationError([Problem("kind", f"{name} does not say which model it holds: add \"kind\"")])
    _refuse_another_kind(data, name, cls)
    try:
        return target.from_dict(data)
    except ValidationError as exc:
        raise ValidationError([Problem(f"{name}: {p.field}" if p.field else name, p.message) for p in exc.problems],
                              subject=name) from None
    except UnknownFieldError as exc:
        raise HpcWidgetsError(f"{name}: {exc}") from None


#: the command that reads a saved model of each job kind with --from
_READ_BY = {"workflow": "workflow", "slurm.job": "sbatch", "jupyter.job": "jupyter-job"}


def _refuse_another_kind(data: dict, name: str, cls: Any) -> None:
    """A saved model of another kind than the command builds (``sbatch --from`` a workflow that ``parse`` wrote):
    the error names the command that reads it."""
    kind = data.get("kind")
    if cls is None or not isinstance(kind, str) or kind == cls.kind:
        return
    command = _READ_BY.get(kind)
    if command is None:
        return  # another kind the model's own check names
    this = _READ_BY.get(cls.kind, "this command")
    raise HpcWidgetsError(f"{name} holds a {kind} model (kind = {kind}), and {this} --from reads a {cls.kind} "
                          f"model: read it with hpcwidgets {command} --from {name}")


#: the first word of a command line hpcwidgets prints or reads
_COMMANDS = ("apptainer", "singularity", "ch-run", "ch-image", "ch-convert", "srun", "sbatch", "torchrun", "python",
             "python3", "mpirun")


def _from_takes(cls: Any) -> str:
    """What --from reads for a command that builds ``cls``: a saved model, and for the job commands a job script."""
    model = "a model saved with --format json -o FILE (or TOML)"
    return f"{model}, or a job script that starts with #! or #SBATCH" if _script_reader(cls) else model


def _holds_nothing(text: str, name: str, cls: Any) -> str:
    """Why a file given to --from holds nothing to start from ("" when it holds something): it is empty or blank,
    or a job script with nothing after its #! line but comments (a default model would be written in its place)."""
    said = "standard input" if name == "<stdin>" else name
    fix = (f"give a file name, or pipe in {_from_takes(cls)}" if name == "<stdin>"
           else f"name a file that holds {_from_takes(cls)}")
    if not text.strip():
        return f"{said} is empty; {fix}"
    from ..files import only_a_shebang
    held = only_a_shebang(text) if _script_reader(cls) else ""
    return f"{said} holds only {held} (no #SBATCH line, no command); {fix}" if held else ""


def _job_script_text(text: str) -> bool:
    """Whether text given to --from is a job script rather than a saved model: it starts with #! or #SBATCH, or it
    holds an #SBATCH line below comments (a script that lacks only its #! line, which the reader then names)."""
    start = text.lstrip()
    return start.startswith(("#!", "#SBATCH")) or (start.startswith("#") and re.search(r"^#SBATCH", text, re.M)
                                                   is not None)


def _what_it_holds(text: str, name: str, cls: Any = None) -> str:
    """What a file given to --from holds when it is not JSON, and what to do with it instead."""
    from ..files import build_file_kind, build_it
    first = next((line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")), "")
    word = first.split(maxsplit=1)[0].rsplit("/", 1)[-1] if first else ""
    built = build_file_kind(text)
    if built:
        held = f"is {built}, not a saved model: {build_it(built, name)}"
    elif word in _COMMANDS or first.startswith("hpcwidgets "):
        held = ("is a command line, not a saved model: give the command itself (hpcwidgets parse " + name +
                " reads it into a model)")
    else:
        held = "is not a saved model"
    return f"{name} {held}; --from takes {_from_takes(cls)}"


def _script_reader(cls: Any) -> Callable[[str, str], Any] | None:
    """The reader of a job script for a command that builds ``cls`` (the form's Load), None where --from takes only
    a saved model."""
    from ..parse import parse_job, parse_jupyter_job, parse_script
    from ..spec.jupyter import JupyterJob
    from ..spec.slurm import SlurmJob
    from ..spec.workflow import Workflow
    return {Workflow: parse_script, SlurmJob: parse_job, JupyterJob: parse_jupyter_job, None: parse_script}.get(cls)


def _model_from_script(text: str, name: str, cls: Any, edited: Iterable[str] = ()) -> Any:
    """A job script given to --from, read the way the forms' Load reads it; its notes on stderr, with those on
    editing the fields ``edited``."""
    from ..errors import ParseError
    reader = _script_reader(cls)
    if reader is None:
        from ..spec.names import spoken
        raise HpcWidgetsError(f"{name} is a job script, and this command builds {spoken(cls)}: read the script "
                              "with hpcwidgets workflow --from, or save this model as JSON (--format json -o FILE) "
                              "and load that")
    try:
        model = reader(text, name)
    except ParseError as exc:
        raise ParseError(exc.message, exc.line, exc.column, source=name) from None
    from ..parse.workflow import readback_notes
    edited = tuple(edited)
    _refuse_an_edit_sbatch_never_reads(text, name, edited)
    _refuse_a_second_run(text, name, model, edited)
    notes = [*readback_notes(text, model, edited), _replaced_container_note(model, edited)]
    for note in filter(None, notes):  # on stderr: the script written on stdout stays the script
        print(f"hpcwidgets: warning: {name}: {note}", file=sys.stderr)
    return model


def _replaced_container_note(model: Any, edited: tuple[str, ...]) -> str:
    """What a whole new container (``--container '…'``) drops of the one read from the script: its binds and
    variables, which the program may need; "" when it had none or only some of its fields are edited."""
    old = getattr(model, "container", None)
    if "container" not in edited or old is None:
        return ""
    binds = [b.to_token() for b in getattr(old, "binds", ()) if hasattr(b, "to_token")]
    if hasattr(old, "set_env"):  # ch-run: --set-env items (NAME=value, or a file)
        env = [str(e) for e in old.set_env]
    else:
        env = [f"{e.name}={e.value}" for e in getattr(old, "env", ()) if hasattr(e, "name")]
    lost = [f"binds {', '.join(binds)}" if binds else "", f"variables {', '.join(env)}" if env else ""]
    lost = [x for x in lost if x]
    if not lost:
        return ""
    return (f"--container replaces the script's container with its {' and '.join(lost)}; give them in --container "
            "again if the program needs them, or change one field and keep the rest (--set container.image=…)")


#: the fields whose value gives a workflow read from a script a step of its own
_STEP_FIELDS = ("container", "launcher", "program")


def _refuse_an_edit_sbatch_never_reads(text: str, name: str, edited: tuple[str, ...]) -> None:
    """Refuse a job edit (``--set job.time=…``) to a script whose job is a here-document it submits (``sbatch <<EOT``)
    and that has no #SBATCH line of its own: the edit would land in the outer script, which sbatch never reads."""
    job_edits = [path for path in edited if path == "job" or path.startswith("job.")]
    if not job_edits:
        return
    from ..lint.submitted import scripts_submitted_by
    from ..parse.script import read_script
    parsed = read_script(text)
    inner = next(iter(scripts_submitted_by(parsed)), None) if not parsed.directives else None
    if inner is not None:
        raise HpcWidgetsError(f"{name} submits its job from a here-document (sbatch on line {inner.sbatch_line}), "
                              f"which holds the job's #SBATCH lines: --set {job_edits[0]} would write one into {name} "
                              "itself, which sbatch never reads. Save the here-document's lines as a job script of "
                              "their own and read that")


def _refuse_a_second_run(text: str, name: str, model: Any, edited: tuple[str, ...]) -> None:
    """Refuse to give a step (``--container``, ``--launcher``, ``--program``) to a workflow whose script runs its work
    in a line the reader kept as written (:func:`~hpcwidgets.parse.workflow.unread_launch`): the step would run after
    that line, and the work twice."""
    if not any(path.split(".", 1)[0] in _STEP_FIELDS for path in edited):
        return
    from ..parse.script import read_script
    from ..parse.workflow import unread_launch
    found = unread_launch(read_script(text), model)
    if found is None:
        return
    step, why = found
    said = " ".join(w.raw for w in step.command.words)
    raise HpcWidgetsError(f"{name}: line {step.line} runs the work already ({said}), kept as a set-up line because "
                          f"{why}; a step given here would run after it, the work a second time. Change that line "
                          "and read the script again, or empty the set-up lines (--set job.setup=) and give the "
                          "whole step here")


def emit(args: argparse.Namespace, text: str) -> None:
    """Print ``text`` or write it atomically to ``-o FILE`` (FileError/OverwriteError name the problem).

    ``-o -`` prints, as ``-`` stands for the standard streams everywhere else in the command (lint -, parse -);
    ``-o ''`` (a variable that was empty) is refused instead of printing as if no -o had been given."""
    output = getattr(args, "output_file", None)
    if output is not None and output != "-":
        from ..files import write_atomic
        path = write_atomic(args.output_file, text, force=args.force, executable=text.startswith("#!"),
                            allow_with="add --force")
        print(f"wrote {path}", file=sys.stderr)
        return
    try:
        sys.stdout.write(text)
    except UnicodeEncodeError as exc:
        before = text[:exc.start]
        raise HpcWidgetsError(f"the output holds {text[exc.start]!r} on line {before.count(chr(10)) + 1}, which cannot be "
                              "printed as text: an argument was probably not valid UTF-8; retype it") from None


#: model kinds whose text is not a shell script (the bash check does not apply)
NOT_SHELL = ("apptainer.def", "dockerfile")


def report_lint(text: str, profile: Any, ignore: Iterable[str] = ()) -> bool:
    """Print what lint says about a script or a command the command wrote (errors and warnings, on stderr, at the
    lines of that text): the models refuse what they know is wrong, and lint knows more (the whole script, the
    site's modules, a bind of / or an untagged image). True when lint found an error: the command then exits with
    status 1, as lint does, so that ``hpcwidgets workflow … -o job.sh && sbatch job.sh`` does not submit it.
    ``ignore``: codes the script it was read from switched off."""
    from ..lint import lint
    errors = False
    what = "script" if text.startswith("#!") else "command"
    for f in lint(text, profile, ignore=ignore):
        if f.severity != "info":
            print(f"hpcwidgets: lint: line {f.line} (of the {what} written): {f.severity} {f.code} {f.message}",
                  file=sys.stderr)
            errors = errors or f.severity == "error"
    return errors


def suppressed_in(path: str) -> frozenset[str]:
    """The lint codes a job script read with --from switches off (``# hpcw: disable=…`` anywhere in it): the
    comments are not carried into the script written from it, so its check leaves those codes out instead."""
    if not path or path == "-" or not os.path.isfile(path):  # a pipe (<(…)) was read once already: never again
        return frozenset()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return frozenset()
    if Path(path).suffix in (".json", ".toml") or not _job_script_text(text):
        return frozenset()
    from ..errors import ParseError
    from ..parse.script import read_script
    try:
        parsed = read_script(text, path)
    except ParseError:
        return frozenset()
    return frozenset(parsed.suppressed_file).union(*parsed.suppressed.values())


def check_shell(text: str, kind: str = "", what: str = "output") -> None:
    """Refuse text that bash could not parse (an unclosed quote typed into --commands …).

    Raises HpcWidgetsError naming the line, what bash would stop at and the fix.
    """
    if kind in NOT_SHELL:
        return
    from ..errors import ParseError
    from ..parse.lexer import lex_script
    try:
        lex_script(text)
    except ParseError as exc:
        lines = text.split("\n")
        shown = lines[exc.line - 1].strip() if 0 < exc.line <= len(lines) else ""
        where = f"line {exc.line} ({shown!r})" if shown else f"line {exc.line}" if exc.line else "it"
        raise HpcWidgetsError(f"bash could not run this {what}: {where}: {exc.message}. Check the quotes and brackets "
                              "in the text you gave (--commands, --after, --set …): close every quote, or quote "
                              "the value for the shell that runs hpcwidgets") from None


def format_model(model: Any, fmt: str, *, validate: bool = True) -> str:
    """The model's text in ``fmt``; ``validate=False`` renders a model whose problems the caller reports itself."""
    if fmt == "json":
        return model.to_json() + "\n"
    if fmt == "toml":
        from ..spec._toml import dumps
        return dumps(model.to_dict())
    from ..render import render
    return render(model, validate=validate)


def profile_problems(model: Any, profile: Any) -> list[Any]:
    """Problems of the model's Slurm job against a cluster profile (a loaded one or a name; empty without one)."""
    if not profile:
        return []
    from ..profiles import load_profile
    from ..spec.profile import check_job
    from ..spec.slurm import SlurmJob
    profile = load_profile(profile) if isinstance(profile, str) else profile
    job = model if isinstance(model, SlurmJob) else getattr(model, "job", None)
    return check_job(profile, job) if isinstance(job, SlurmJob) else []


def profile_base(cls: Any, profile: Any) -> Any:
    """The model a command starts from with ``--profile`` and no ``--from``, or None: jupyter-job takes its
    login host, partition and account from the profile; an Apptainer command its program name
    (``apptainer_binary``: singularity on SingularityCE sites). Options and --set typed after still win."""
    if hasattr(cls, "for_profile"):
        # where the job runs (partition, QOS, constraint, account) is left to ClusterProfile.place, after the
        # options and --set have said what they want: a GPU job, another partition; the time and memory too
        base = cls.for_profile(profile)
        return base.replace(job=base.job.replace(partition="", qos="", constraint="", account="", time="", mem=""))
    binary = next((f for f in cls.field_specs() if f.name == "binary"), None)
    if binary is not None and profile.apptainer_binary in binary.info.choices:
        return cls(binary=profile.apptainer_binary)
    return None


def _run_model_command(args: argparse.Namespace) -> int:
    from ._options import apply_sets, given_paths, model_from_args, operands_past_sets, trailing_words
    from ..spec.workflow import Workflow, followed, gpu_vendor_of
    cmd: ModelCommand = args.model_command
    cls = cmd.cls()
    if "help" in args.set:
        print_set_fields(cls, " ".join(cmd.path))
        return 0
    args = operands_past_sets(cls, args, set(cmd.fixed) | cmd.skip)
    misplaced, swallowed = trailing_words(cls, args, cmd.fixed, " ".join(cmd.path))
    if misplaced:
        raise ValidationError(misplaced, subject=" ".join(cmd.path))
    for warning in swallowed:
        print(f"hpcwidgets: warning: {warning}", file=sys.stderr)
    profile = None
    if args.profile:
        from ..profiles import load_profile
        profile = load_profile(args.profile)
    base = load_model_file(args.from_file, cls, given_paths(args)) if args.from_file is not None else None
    # what the file held wrong already: written back with it (exit 1, as lint), not refused as the typed input is
    held = set(base.problems() + profile_problems(base, profile)) if base is not None else set()
    if base is not None and profile is not None:  # and as the profile places it (a partition's QOS filled in)
        placed_base = profile.place(base, as_written=True)
        held |= set(placed_base.problems() + profile_problems(placed_base, profile))
    if base is None and profile is not None:
        base = profile_base(cls, profile)
    typed = model_from_args(cls, base, args, cmd.fixed)
    model = apply_sets(typed, args.set)
    if cls is Workflow:  # the layers follow the job as in the form; what this command line gives wins
        # whose GPUs the job gets: those of the partition it is written for (placed as below), as lint reads them
        where = profile.place(model, as_written=bool(args.from_file)) if profile is not None else model
        model = followed(typed, model, given_paths(args), gpu_vendor_of(profile, where, base))
    if profile is not None and getattr(model, "login_host", None) == "" and profile.login_host:
        # a Jupyter job loaded with --from that names none: the profile's way in (host, port, jump host, tunnel),
        # where the command line gives none of its own
        given = set(given_paths(args))
        model = model.replace(**{k: v for k, v in type(model).login_fields(profile).items() if k not in given})
    if profile is not None:
        # a model read with --from keeps the container program it names (lint's HPC414 says when the site lacks it);
        # a new one gets the site's name for Apptainer
        placed = profile.place(model, as_written=bool(args.from_file))
        binary = getattr(getattr(placed, "container", None), "binary", None)
        typed = getattr(getattr(model, "container", None), "binary", None)
        if binary != typed:
            print(f"hpcwidgets: note: the script runs {binary}, not {typed}: {profile.name} names Apptainer's "
                  f"program {binary} (apptainer_binary)", file=sys.stderr)
        model = placed
        if hasattr(model, "fit_time"):
            # a Jupyter job's time and memory: those that fit the partition it now runs on
            model = model.fit_time(profile).fit_mem(profile)
    elif args.from_file is None:
        # no profile says which Slurm the site runs: srun gets the job's --cpus-per-task again, as a profile without
        # a scheduler_version gives it (srun of 22.05–23.02 does not take it from the job)
        from ..spec.profile import srun_gets_job_cpus
        model = srun_gets_job_cpus(model)
    problems = model.problems() + profile_problems(model, profile)
    if not set(problems) <= held:
        raise ValidationError([_said_here(cls, model, p) for p in problems], subject=" ".join(cmd.path))
    try:
        text = format_model(model, args.format, validate=not problems)
    except ValidationError as exc:  # a renderer that cannot write a model with these problems (a Jupyter job's tunnel)
        raise ValidationError([_said_here(cls, model, p) for p in exc.problems], subject=" ".join(cmd.path)) from None
    if args.format == "shell":
        check_shell(text, model.kind, "script" if text.startswith("#!") else "command")
    emit(args, text)
    for problem in problems:
        value = _field_value(model, problem.field)
        how = "it is written back as it was" if not isinstance(value, str) or value in text else \
            "it is written back with a space for each control character, which a #SBATCH line cannot hold"
        print(f"hpcwidgets: error: {args.from_file}: {_said_here(cls, model, problem)} (the file has this already; "
              f"{how})", file=sys.stderr)
    linted = args.format == "shell" and model.kind not in NOT_SHELL and report_lint(
        text, profile, suppressed_in(args.from_file or ""))
    status = 1 if problems or linted else 0
    if model.kind == "jupyter.job" and args.output_file not in (None, "-") and args.format == "shell":
        log = model.job.output.replace("%j", "JOBID").replace("%x", model.job.job_name or "JOBNAME") \
            if model.job.output else "slurm-JOBID.out"
        print(f"next: sbatch {args.output_file} (or hpcwidgets submit {args.output_file}); when JupyterLab answers, "
              f"the job's log {log} prints the ssh tunnel to run on your computer and the address to open",
              file=sys.stderr)
    return status


#: switches a model refuses together (the problem is reported on the first field), with the other one: the forms
#: show two controls to untick, the command line says how to turn one off, as a saved model may hold both
_EXCLUSIVE = {"rocm": "nv", "contain": "containall", "no_home": "home"}


def _said_here(cls: Any, model: Any, problem: Problem) -> Problem:
    """A model's problem as the command line says it: the option typed (:func:`_as_option`), and where the model's
    message asks to keep one of two settings (``choose --nv (NVIDIA) or --rocm (AMD), not both``) the ``--set`` that
    turns either off: a flag typed can be left out, but one a file loaded with --from holds has no option to undo it."""
    said = _as_option(cls, problem)
    head, _, name = problem.field.rpartition(".")
    other = _EXCLUSIVE.get(name)
    layer = model
    for part in filter(None, head.split(".")):
        layer = getattr(layer, part, None)
    if other is None or not (getattr(layer, name, None) and getattr(layer, other, None)):
        return said
    prefix = f"{head}." if head else ""
    off = " or ".join(f"--set {prefix}{f}={'false' if isinstance(getattr(layer, f), bool) else ''}"
                      for f in (other, name))
    return Problem(said.field, f"{said.message}; to keep one, turn the other off with {off}")


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


def _subparser(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """The (sub)command parser the words of ``argv`` lead to (``sbatch``, ``apptainer exec``), for its usage line."""
    return _command_at(parser, argv)[0]


def _command_at(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[argparse.ArgumentParser, int]:
    """The (sub)command parser the words of ``argv`` lead to, and the index of the first word after its name."""
    current, start = parser, 0
    for i, word in enumerate(argv):
        actions = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions or word not in actions[0].choices:
            if word.startswith("-"):
                continue
            break
        current, start = actions[0].choices[word], i + 1
    return current, start


def _dash_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``--extra-directives --signal=USR1@90`` as ``--extra-directives=--signal=USR1@90``.

    The "other options" fields (``extra``, ``extra_directives``, ``extra_args``) take options as their values, which
    argparse would read as the next option ("expected one argument"). Only the words before the command's first
    operand are looked at (after it they may be the program's own), and a value that is one of the command's own
    options is left for argparse to refuse (the option's value was probably forgotten).
    """
    from ._options import FIELD
    sub, start = _command_at(parser, argv)
    options = {o: a for a in sub._actions for o in a.option_strings}
    takes = {o for o, a in options.items() if a.dest.startswith(FIELD + "extra")}
    if not takes:
        return argv
    out, i = list(argv[:start]), start
    while i < len(argv):
        word = argv[i]
        if word == "--" or not word.startswith("-"):
            return out + argv[i:]
        following = argv[i + 1] if i + 1 < len(argv) else ""
        if word in takes and following.startswith("-") and following.split("=", 1)[0] not in options:
            out.append(f"{word}={following}")
            i += 2
            continue
        out.append(word)
        action = options.get(word)
        if action is not None and action.nargs != 0 and following:
            out.append(following)  # the option's value, whatever it looks like
            i += 1
        i += 1
    return out


def _close_option_hint(parser: argparse.ArgumentParser, extras: Sequence[str]) -> str:
    """"; did you mean --partition?" for a misspelt option of the command."""
    import difflib
    known = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
    for word in extras:
        if word.startswith("--"):
            close = difflib.get_close_matches(word.split("=", 1)[0], known, n=1, cutoff=0.75)
            if close:
                return f"; did you mean {close[0]}?"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = _dash_values(parser, list(sys.argv[1:] if argv is None else argv))
    args, extras = parser.parse_known_args(argv)
    if extras:
        sub = _subparser(parser, argv)
        hint = _word_option_hint(args, argv, extras) or _job_option_hint(args, extras) or _close_option_hint(sub, extras)
        sub.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
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
    except Exception as exc:  # a bug must not show a person a traceback; HPCW_DEBUG=1 shows it
        if os.environ.get("HPCW_DEBUG"):
            raise
        log.debug("hpcwidgets %s failed", " ".join(argv), exc_info=True)
        print(f"hpcwidgets: error: internal error ({type(exc).__name__}: {exc}); this is a bug in hpcwidgets, "
              "please report it with the command you ran (HPCW_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2


def _job_option_hint(args: argparse.Namespace, extras: list[str]) -> str:
    """When a stray word is an sbatch option, say how this command takes it: ``--set job.FIELD=`` where the
    job is a layer (workflow, jupyter-job), the option the sbatch command has for it, or --extra-directives."""
    cmd = getattr(args, "model_command", None)
    flag = extras[0].split("=", 1)[0]
    from ..spec.slurm import SlurmJob, sbatch_option
    if cmd is None or not flag.startswith("-") or not sbatch_option(flag):
        return ""
    from ..parse.script import directive_fields
    field = directive_fields().get(flag, "")
    cls = cmd.cls()
    if cls is not SlurmJob and any(f.name == "job" for f in cls.field_specs()):
        example = f"job.{field}=VALUE" if field else "job.extra_directives='--signal=USR1@90'"
        return f"; {flag} is an #SBATCH option: here the job's options are set with --set {example}"
    if cls is SlurmJob:
        if flag == "--gres":
            return "; ask for GPUs with --gpus-per-node N (and --gpu-type TYPE); other gres with --other-gres"
        return f"; sbatch has {flag}, this command has no option for it: write it with --extra-directives='{extras[0]}'"
    return ""


def _word_option_hint(args: argparse.Namespace, argv: list[str], extras: list[str]) -> str:
    """When stray words follow an option that takes a command (``--program python train.py``), say how
    to pass the command: one quoted value, or the option repeated before each word."""
    cmd = getattr(args, "model_command", None)
    if cmd is None or extras[0] not in argv:
        return ""
    from ._options import word_options
    options = word_options(cmd.cls())
    end = argv.index(extras[0])
    start = end - 1
    while start >= 0 and not argv[start].startswith("-"):
        start -= 1
    option = argv[start].split("=", 1)[0] if start >= 0 else ""
    if option not in options:
        return ""
    words = argv[start + 1:end] if "=" not in argv[start] else [argv[start].split("=", 1)[1], *argv[start + 1:end]]
    while end < len(argv) and argv[end] in extras:
        words.append(argv[end])
        end += 1
    import shlex
    return (f"; {option} takes the whole command as one value: quote it ({option} {shlex.quote(' '.join(words))}) "
            f"or repeat {option} before each word")


log = logging.getLogger(__name__)
