"""``hpcwidgets convert COMMAND…`` between Apptainer and Charliecloud."""

from __future__ import annotations

import argparse
import dataclasses
import re

from ..errors import HpcWidgetsError, Problem, ValidationError


def register(sub: argparse._SubParsersAction) -> None:
    from . import _Formatter, _add_output_options, _examples_epilog
    p = sub.add_parser("convert", help="translate apptainer exec/run ↔ ch-run", formatter_class=_Formatter,
                       description="Translate an Apptainer command into the Charliecloud equivalent or back, with the "
                                   "preparation steps it needs and a note for everything that has no equivalent.",
                       epilog=_examples_epilog([
                           "hpcwidgets convert apptainer exec --nv --bind /data:/data img.sif python train.py",
                           "hpcwidgets convert --from run.json",
                           "hpcwidgets convert ch-run -b /data:/mnt/0 ./img -- python train.py",
                           "hpcwidgets convert --gpu amd ch-run ./img -- python train.py",
                       ]))
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command to translate (or use --from)")
    p.add_argument("--from", dest="from_file", metavar="FILE",
                   help="a saved ApptainerRun or ChRun model (.json/.toml); given a whole job (a workflow or a job "
                        "script), it says how to give that job the translated container")
    p.add_argument("--image-dir", default="", help="image directory to create when one is needed (Charliecloud)")
    p.add_argument("--gpu", choices=("nvidia", "amd", "intel"), default="",
                   help="ch-run to Apptainer: the vendor of the GPUs the job gets, which a ch-run command does not "
                        "show: nvidia adds --nv, amd --rocm, intel no option. Give it before the command")
    _add_output_options(p, model=False)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from . import check_shell, emit, format_model, load_model_file
    from ..parse.argv import parse_argv
    from ..spec.convert import to_apptainer, to_charliecloud
    if args.from_file is not None:
        model = load_model_file(args.from_file)
        typed = args.from_file
    elif args.command:
        words = _words(args.command)
        _check_action(words)
        model = parse_argv(words).model
        typed = " ".join(words[:2]) if words[0].rsplit("/", 1)[-1] in _APPTAINER else words[0]
    else:
        raise HpcWidgetsError("give the command to translate, e.g. hpcwidgets convert apptainer exec img.sif true")
    if model.kind in ("apptainer.run", "charliecloud.run"):
        # what is missing from the command typed is said of that command, not of the one it would become
        problems = [Problem(f"{typed}: {p.field}" if p.field else typed, p.message) for p in model.problems()]
        if problems:
            raise ValidationError(problems, subject=typed)
    if model.kind == "apptainer.run":
        conversion = to_charliecloud(model, image_dir=args.image_dir)
    elif model.kind == "charliecloud.run":
        conversion = to_apptainer(model, gpu=args.gpu)
    else:
        from ..spec.names import spoken
        inner = " (drop srun and its options: convert the command srun runs)" if model.kind == "slurm.srun" else ""
        whole = _whole_job(model, typed, args.image_dir) if args.from_file else ""
        raise HpcWidgetsError(f"only apptainer exec/run/shell and ch-run commands can be translated, and this is "
                              f"{spoken(model)}{inner}{whole}")
    if args.format != "shell":
        emit(args, "".join(format_model(m, args.format) for m in conversion.commands))
        return 0
    lines = []
    for note in conversion.notes:
        lines.append(f"# note: {note}")
    for step in conversion.commands:
        lines.append(format_model(step, "shell").rstrip("\n"))
    text = "\n".join(lines) + "\n"
    check_shell(text, what="command")
    emit(args, text)
    return 0


def _whole_job(model: object, path: str, image_dir: str = "") -> str:
    """How to convert the container of a whole job read with --from (a workflow saved as JSON/TOML, or a job
    script): give the job a new container with ``hpcwidgets workflow --from PATH --container '…'``, the translated
    command written out, and the commands it needs first as --prepare; "" for a model that holds no container."""
    import shlex
    from ..render.quote import quote_words
    from ..spec.argv import argv
    from ..spec.convert import to_apptainer, to_charliecloud
    container = getattr(model, "container", None)
    kind = getattr(container, "kind", "")
    if getattr(model, "kind", "") != "workflow":
        return ""
    if kind not in ("apptainer.run", "charliecloud.run"):
        kept = _kept_container_line(path, model)
        if kept:
            return f"; {kept}"
        return ("; the job runs no container: give it one with hpcwidgets workflow --from "
                f"{shlex.quote(path)} --container 'apptainer exec IMAGE.sif' (or 'ch-run IMAGE_DIR')")
    # what the container runs (the launcher's words, else the program's), for the translation to see: ch-run starts
    # in /, so a program named relative to the current directory needs --cd, and an image's runscript comes first
    launcher = getattr(model, "launcher", None)
    runs = tuple(map(str, argv(launcher) if launcher is not None else getattr(model, "program", ())))
    probe = dataclasses.replace(container, command=runs) if runs and not getattr(container, "command", ()) \
        else container
    try:
        conversion = to_charliecloud(probe, image_dir=image_dir) if kind == "apptainer.run" \
            else to_apptainer(probe)
    except HpcWidgetsError as exc:  # a container with no equivalent (an instance): the reason says why
        return f"; the job's container cannot be translated: {exc}"
    before = tuple(conversion.result.command)
    if probe is not container and before[len(before) - len(runs):] == runs:
        # the job's own words stay the job's; what the translation puts before them (Apptainer's runscript) goes
        # before the program, as one more word of it (a launcher has no place for it: it is said instead)
        before = before[:len(before) - len(runs)]
        conversion = dataclasses.replace(conversion, result=dataclasses.replace(conversion.result, command=()))
    else:
        before = ()
    from ..spec.workflow import gpu_vendor_of, with_gpus
    job = getattr(model, "job", None)
    gpus = any(getattr(job, name, None) for name in ("gpus_per_node", "gpus", "gpus_per_task"))
    # ch-run has no GPU flag to translate: the job says whether the Apptainer container needs one
    result = with_gpus(conversion.result, int(gpus), gpu_vendor_of(None, model))

    def line(step: object) -> str:
        return shlex.quote(" ".join(quote_words(argv(step))))

    runtime = "Charliecloud" if kind == "apptainer.run" else "Apptainer"
    prepare = "".join(f" \\\n      --prepare {line(step)}" for step in conversion.steps)
    also = "The --prepare commands are added after those the job runs already, before its step. " if prepare else ""
    program = ""
    if before and launcher is None:
        program = f" \\\n      --program {shlex.quote(' '.join(quote_words([*before, *runs])))}"
        also += f"The program runs after {before[0]}, as the Apptainer image's run did. "
    elif before:
        also += (f"{before[0]}, which Apptainer's run started first, is left out: ch-run starts "
                 f"{runs[0]} itself; set what it set up with --set-env. ")
    notes = shlex.quote(" ".join(quote_words([*argv(container), "true"])))  # true: a program, as exec needs one
    return (f": a whole job. To run it in {runtime}, give the job the translated container (the job's program "
            f"stays):\n    hpcwidgets workflow --from {shlex.quote(path)} \\\n      --container "
            f"{line(result)}{program}{prepare}\n{also}What differs between the runtimes for this "
            f"container: hpcwidgets convert {notes}")


def _kept_container_line(path: str, model: object) -> str:
    """Where the job script at ``path`` runs a container in a line the reader kept as written (so the model holds
    no container to translate), and why; "" when it does not, or the model was not read from a script."""
    from . import _job_script_text
    from ..files import read_text
    from ..parse.script import read_script
    from ..parse.workflow import unread_launch
    if path == "-":
        return ""
    try:
        text = read_text(path).text
        found = unread_launch(read_script(text), model) if _job_script_text(text) else None
    except HpcWidgetsError:
        return ""
    if found is None or found[0].chain.container is None:
        return ""
    step, why = found
    return (f"line {step.line} runs the job's container, but it is kept as a set-up line, not read as the step, "
            f"because {why}; change the line and convert the job again (or convert that command alone: "
            f"hpcwidgets convert '…')")


#: the names Apptainer's command goes by, and the actions convert translates
_APPTAINER = ("apptainer", "singularity")
_ACTIONS = ("exec", "run", "shell")


def _check_action(words: list[str]) -> None:
    """An Apptainer command without one of the actions convert translates (``convert apptainer``, ``convert
    apptainer pull …``): HpcWidgetsError saying which actions there are, before the reader says it knows no
    such command."""
    program = words[0].rsplit("/", 1)[-1]
    if program not in _APPTAINER or (len(words) > 1 and words[1] in _ACTIONS):
        return
    action = f" {words[1]}" if len(words) > 1 else ""
    raise HpcWidgetsError(f"{program}{action}: convert translates {program} {', '.join(_ACTIONS[:-1])} and "
                          f"{_ACTIONS[-1]} commands into ch-run (and ch-run back); write the whole command, e.g. "
                          f"hpcwidgets convert {program} exec img.sif python train.py")


def _words(command: list[str]) -> list[str]:
    """The command's words. One argument holding a whole command line (``convert 'apptainer exec …'``,
    pasted in quotes) is read the way bash reads it: what bash would expand there (an unquoted ``~/x``,
    ``$(pwd)``) is kept as shell text, to be written back unquoted."""
    if len(command) == 1 and any(c.isspace() for c in command[0].strip()):
        from ..errors import ParseError
        from ..parse.lexer import lex_command
        try:
            return [w.value for w in lex_command(command[0]).words]
        except ParseError as exc:
            raise HpcWidgetsError(f"cannot split {command[0]!r} into words ({exc.message}); pass the command as "
                                  "separate words without the outer quotes, e.g. hpcwidgets convert apptainer exec "
                                  "img.sif python t.py") from None
    if command and command[0].rsplit("/", 1)[-1] == "ch-run":
        end = command.index("--") if "--" in command else len(command)  # the program's own words stay as given
        return [_ch_run_dollar(w) if w.startswith("--set-env=") else w for w in command[:end]] + command[end:]
    return command


def _ch_run_dollar(word: str) -> str:
    """A ``--set-env=…`` word of a ch-run command given as separate words: a ``$`` still in it was quoted for
    ch-run, which expands it in the container (``--set-env='PATH=/opt/bin:$PATH'``); as a value it would be a
    reference the rendered command's shell expands on the host, so it becomes the literal dollar ``\\$``."""
    return re.sub(r"(?<!\\)\$", r"\\$", word)
