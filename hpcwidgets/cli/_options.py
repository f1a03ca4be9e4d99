"""argparse options generated from model field metadata (one source of truth for fields)."""

from __future__ import annotations

import argparse
import difflib
import typing
from typing import Any, Callable

from ..errors import Problem, ValidationError
from ..spec._meta import FieldSpec, Spec, coerce, count_from_text
from ..spec._words import holds_words, words_from_text
from ..spec.common import Bind, EnvVar
from ..spec.workflow import moved_out_of_instance, refused_edit

#: option names the CLI keeps for itself
RESERVED = {"--format", "--from", "--force", "--profile", "--set", "--help", "--version", "--output-file"}
#: short options the CLI keeps for itself (-o writes the output file, so sbatch's -o is --output only)
RESERVED_SHORT = {"-h", "-o"}
#: the prefix of the argparse ``dest`` of a model field: the fields live apart from the CLI's own values
#: (``command``, ``action``, ``force``, ``format`` …), which a field of the same name would otherwise overwrite
#: (``apptainer pull --force`` let -o replace a file; ``apptainer instance`` read "instance" as the action)
FIELD = "field:"


def typed_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The model fields given on the command line, by field name."""
    return {k[len(FIELD):]: v for k, v in vars(args).items() if k.startswith(FIELD)}


def given_paths(args: argparse.Namespace) -> list[str]:
    """The model paths this command line gives a value: each option's field (``launcher`` for --launcher '…', the
    whole layer) and each ``--set`` path; values that follow the job leave them as given."""
    return [*typed_fields(args), *(item.partition("=")[0] for item in args.set)]


def option_name(f: FieldSpec) -> str:
    """``--bind`` for fields with a flag, ``--gpus-per-node`` for the others; never a reserved name."""
    if f.info.cli:
        return f.info.cli
    own = "--" + f.name.rstrip("_").replace("_", "-")
    name = f.info.flag if f.info.flag.startswith("--") else own  # CLI options are always long
    if name in RESERVED:
        name = own if own not in RESERVED else own + "-value"
    return name


def _metavar(f: FieldSpec) -> str:
    """``HOST`` for ``login_host``, ``TIME`` for ``time``: what kind of value, never a value that looks like a default."""
    return "PATH" if f.info.path else f.name.rstrip("_").rsplit("_", 1)[-1].upper()


def _help(f: FieldSpec) -> str:
    text = f.info.help.replace("%", "%%")
    if f.info.choices:
        text += f" One of: {', '.join(f.info.choices)}."
    base = f.base_type
    if layer_classes(f):
        text += f" Give its command line, e.g. {_layer_example(f)}" + (" (repeatable)." if f.is_tuple else ".")
        text += " An empty value ('') empties the list." if f.is_tuple else " An empty value ('') removes it."
    elif base is Bind:
        text += " Repeatable."  # the help gives the runtime's SRC[:DST…] form (ch-run has no :ro)
    elif base is EnvVar:
        text += " Repeatable: NAME=VALUE."
    elif _is_words(f) and f.info.role != "rest":
        example = f.info.placeholder or "python train.py --epochs 10"
        text += f" Split into words like a command line: {option_name(f)} '{example}' (or repeat it)."
    elif f.is_tuple and f.info.role != "rest":
        text += " Repeatable."
    return text


def layer_classes(f: FieldSpec) -> tuple[type[Spec], ...]:
    """The command models a nested-layer field holds (``container``: ApptainerRun, ChRun), or ``()``.

    A layer is a model that is one command line (it has a program); it is typed as that command
    line (``--container 'apptainer exec --nv img.sif'``) and read back by the command-line reader.
    """
    base = f.base_type
    return tuple(c for c in (typing.get_args(base) or (base,)) if isinstance(c, type) and issubclass(c, Spec)
                 and any(g.info.role == "program" for g in c.field_specs()))


def _layer_example(f: FieldSpec) -> str:
    return f"{option_name(f)} '{f.info.placeholder}'" if f.info.placeholder else option_name(f) + " 'COMMAND …'"


def layer_from_text(f: FieldSpec, text: str, where: str = "") -> Spec:
    """One layer from its command line, read the way bash splits it; ValidationError naming the fix."""
    from ..errors import ParseError
    from ..parse.argv import parse_argv
    from ..parse.lexer import lex_command
    where = where or option_name(f)
    classes = layer_classes(f)
    takes = ", ".join(_command_name(c) for c in classes)
    try:
        model = parse_argv([w.value for w in lex_command(text).words]).model
    except ParseError as exc:
        said = exc.message if text.split()[:1] and text.split()[0] in exc.message else f"{text!r}: {exc.message}"
        raise ValidationError([Problem(where, f"{said}; give the whole command line ({takes}), "
                                              f"e.g. {_layer_example(f)}")]) from None
    if not isinstance(model, classes):
        raise ValidationError([Problem(where, f"{text!r} is {_command_name(type(model))}, but {where} takes {takes}; "
                                              f"e.g. {_layer_example(f)}")])
    return model


def layers_from_text(f: FieldSpec, raw: Any, where: str) -> Any:
    """A layer field's value from what was typed: its command line read into the layer, or None for an empty
    value (no srun, no container, no launcher: the help says what that means); for a list of layers
    (``--prepare``), one layer per non-empty item, so that only empty items give the empty list."""
    if f.is_tuple:
        items = [raw] if isinstance(raw, str) else list(raw)
        return tuple(layer_from_text(f, t, where) for t in items if t.strip())
    if not raw.strip():
        if not f.optional:
            raise ValidationError([Problem(where, f"{f.name} cannot be left out; give its command line, "
                                                  f"e.g. {_layer_example(f)}")])
        return None
    return layer_from_text(f, raw, where)


def _command_name(cls: type[Spec]) -> str:
    """How a person calls the command a model is (``apptainer exec|run``, ``ch-run``, ``srun``)."""
    defaults = cls()
    words = [str(getattr(defaults, g.name)) for g in cls.field_specs() if g.info.role in ("program", "subcommand")]
    choices = [g.info.choices for g in cls.field_specs() if g.info.role == "subcommand" and len(g.info.choices) > 1]
    if choices:
        words[-1] = "|".join(choices[0])
    return " ".join(w for w in words if w)


def _is_words(f: FieldSpec) -> bool:
    """A field holding an argument vector, typed like a shell command (the forms' rule, one source)."""
    return holds_words(f)


def word_options(cls: type[Spec]) -> set[str]:
    """The options of ``cls`` that take a command split into shell words (``--program``)."""
    return {option_name(f) for f in cls.field_specs() if _is_words(f) and f.info.role != "rest"}


def split_words(f: FieldSpec, items: list[str] | tuple[str, ...], where: str, current: Any = ()) -> tuple[str, ...]:
    """Option values of a word field split like a command line (``'python train.py'`` → two words),
    the way the forms split them; ValidationError naming ``where`` for an unclosed quote. As in the forms, a word
    typed as one of the ``current`` words a script read back holds as written (``$((N*4))``, ``$(nproc)``, a glob)
    stays that word, so retyping the field to change another word keeps it working; any other word is text
    (:data:`~hpcwidgets.spec._words.WORDS_RULE`, :func:`~hpcwidgets.spec._words.words_from_text`)."""
    kept = tuple(current or ()) if isinstance(current, (tuple, list)) else ()
    out: list[str] = []
    for item in items:
        try:
            out += words_from_text("" if item is None else str(item), kept)
        except ValueError as exc:
            raise ValidationError([Problem(where, str(exc))]) from None
    return tuple(out)


def _count_type(f: FieldSpec) -> Callable[[str], Any]:
    """argparse's ``type`` for a whole-number field: digits, or one of the field's text forms."""
    def count(raw: str) -> Any:
        try:
            return count_from_text(f, raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return count


def add_model_options(parser: argparse.ArgumentParser, cls: type[Spec], *, skip: set[str] = frozenset()) -> None:
    """Add one option per field of ``cls`` (positionals and the trailing command included).

    Defaults are suppressed so that only options the user typed override a model loaded with ``--from``.
    """
    groups = {"basic": parser.add_argument_group(f"{cls.__name__} options"),
              "advanced": parser.add_argument_group("advanced options")}
    rest_field: FieldSpec | None = None
    used: set[str] = set()
    for f in cls.field_specs():
        if f.name in skip or f.info.role in ("program",):
            continue
        if f.info.role == "subcommand" and len(f.info.choices) <= 1:
            continue
        base = f.base_type
        if layer_classes(f):
            group = groups["advanced" if f.info.advanced else "basic"]
            group.add_argument(option_name(f), dest=FIELD + f.name, default=argparse.SUPPRESS, metavar="COMMAND",
                               action="append" if f.is_tuple else "store", help=_help(f))
            used.add(option_name(f))
            continue
        if isinstance(base, type) and issubclass(base, Spec) and base not in (Bind, EnvVar):
            continue  # a whole job (the workflow's Slurm job) is changed with --set job.field=value or --from
        if f.info.role == "positional":
            parser.add_argument(FIELD + f.name, nargs="?", default=argparse.SUPPRESS, metavar=f.name.upper(),
                                help=_help(f))
            continue
        if f.info.role == "rest":
            rest_field = f
            continue
        group = groups["advanced" if f.info.advanced else "basic"]
        name = option_name(f)
        if name in used:  # two fields render the same flag (ch-run's --set-env and --set-env=FILE)
            name = "--" + f.name.rstrip("_").replace("_", "-")
            while name in used:
                name += "-value"
        used.add(name)
        kw: dict[str, Any] = {"dest": FIELD + f.name, "default": argparse.SUPPRESS, "help": _help(f)}
        # the tool's own short form too (sbatch -p, -t, -N; apptainer -B), where the CLI does not use it
        short = f.info.short if f.info.short and f.info.short not in RESERVED_SHORT | used else ""
        names = [name, short] if short else [name]
        used.add(short)
        if base is bool:
            group.add_argument(*names, action="store_true", **kw)
        elif f.is_tuple:
            group.add_argument(*names, action="append", metavar="VALUE", **kw)
        elif base is int:
            group.add_argument(*names, type=_count_type(f), metavar="N", **kw)
        else:
            # the option's name, not its placeholder: an example there reads like a default (--login-host midway3…)
            example = f.info.placeholder.replace("%", "%%")
            kw["help"] += f" E.g. {example}." if example and example not in kw["help"] else ""
            group.add_argument(*names, metavar=_metavar(f), **kw)
    if rest_field is not None:
        parser.add_argument(FIELD + rest_field.name, nargs=argparse.REMAINDER, default=argparse.SUPPRESS,
                            action=_TypedWords, metavar="...", help=rest_help(cls).replace("%", "%%"))


class _TypedWords(argparse.Action):
    """The trailing words, stored only when some were typed. argparse stores ``[]`` for a REMAINDER that got no
    words, which read as "empty the words" and dropped the command of a model loaded with --from
    (``apptainer exec --from saved.json --nv``: "exec needs a command")."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if values:
            setattr(namespace, self.dest, values)


def _rest_and_before(cls: type[Spec]) -> tuple[FieldSpec | None, str]:
    """The field that takes the words at the end (the program, the script's arguments) and the name of the
    operand before them in the usage line (IMAGE, SCRIPT), or "" when there is none (srun)."""
    specs = cls.field_specs()
    rest = next((f for f in specs if f.info.role == "rest"), None)
    before = [f.name.upper() for f in specs if f.info.role == "positional"]
    return rest, before[-1] if before else ""


def rest_help(cls: type[Spec]) -> str:
    """What the trailing words of a command are, for --help: everything after the operand goes on as written."""
    rest, before = _rest_and_before(cls)
    if rest is None:
        return ""
    after = f"after {before}" if before else "from the first word that is not an option"
    return (f"{_help(rest)} Every word {after} is passed on as written, options too: write this command's options "
            f"and hpcwidgets' own (-o, --format …) before {before or 'the command'}. With --from, leaving them out "
            f"keeps the saved ones (--set {rest.name}= empties them).")


def operands_past_sets(cls: type[Spec], args: argparse.Namespace, skip: set[str]) -> argparse.Namespace:
    """``args`` with the operands typed after the options given only to the fields ``--set`` leaves open.

    argparse hands those words to the positional fields in order (IMAGE, then the trailing words), blind to --set,
    so ``apptainer exec --set image=new.sif python train.py`` took ``python`` as the image, which --set then
    replaced: the word was lost. A field given by ``--set`` takes no operand; the words go on to the next open
    positional field and the rest to the trailing words. Words no field is left to take are refused, naming them.
    ``skip``: the fields the command has no operand for (``apptainer instance stop`` takes no IMAGE).
    """
    import shlex
    given = {item.partition("=")[0] for item in args.set}
    specs = cls.field_specs()
    operands = [f.name for f in specs if f.info.role == "positional" and f.name not in skip]
    rest = next((f.name for f in specs if f.info.role == "rest"), None)
    if not given & {*operands, rest}:
        return args
    values = vars(args).copy()
    words = [values.pop(FIELD + name) for name in operands if FIELD + name in values]
    words += values.pop(FIELD + rest, []) if rest else []
    for name in (n for n in operands if n not in given):
        if words:
            values[FIELD + name] = words.pop(0)
    if words and rest is not None and rest not in given:
        values[FIELD + rest] = words
    elif words:
        named = [n.upper() for n in (*operands, rest) if n in given]
        open_ = [n.upper() for n in operands if n not in given]
        took = f"{' and '.join(open_)} took the words before" if open_ else "the command takes no other operand"
        these = "this word" if len(words) == 1 else "these words"
        raise ValidationError([Problem("", f"{shlex.join(words)}: no operand is left for {these}: "
                                           f"{' and '.join(named)} {'is' if len(named) == 1 else 'are'} given by "
                                           f"--set, and {took}; give each value once: drop {these} or the --set")])
    return argparse.Namespace(**values)


#: hpcwidgets' own options (the output group): in the trailing words they go to the program, unread
OWN_OPTIONS = {"-o": True, "--output-file": True, "--format": True, "--from": True, "--set": True, "--profile": True,
               "--force": False}  # option → takes a value


def trailing_words(cls: type[Spec], args: argparse.Namespace, fixed: dict[str, Any],
                   command: str) -> tuple[list[Problem], list[str]]:
    """(problems, warnings) about the words typed at the end of ``command`` (``apptainer exec IMAGE …``).

    Where those words are a program (apptainer exec, ch-run, srun), a first word that is an option
    (``apptainer exec img.sif --nv python``) is a problem: the runtime would run ``--nv`` as the program
    (HPC203). hpcwidgets' own options among the words (``… python t.py -o run.sh``) went to the program and
    were not read: a warning, since a program may well take ``-o`` itself.
    """
    rest, before = _rest_and_before(cls)
    words = typed_fields(args).get(rest.name) if rest is not None else None
    if not words:
        return [], []
    words = list(words[1:] if words[0] == "--" else words)
    problems = []
    runs_a_program = rest.name == "command" and fixed.get("action", "exec") == "exec"
    if runs_a_program and words and words[0].startswith("-"):
        program = " ".join(words[1:2]) or "PROGRAM"
        where = f"comes after {before}, so it" if before else "is where the program's name belongs, so it"
        problems.append(Problem("", f"{words[0]} {where} would be run as the program instead of being read as an "
                                    f"option; write options before {before or 'the program'}: hpcwidgets {command} "
                                    f"{words[0]} … {before + ' ' if before else ''}{program} …"))
    swallowed = []
    for i, word in enumerate(words):
        name = word.split("=", 1)[0] if word.startswith("--") else word
        if name in OWN_OPTIONS and _unset(args, name):
            takes = OWN_OPTIONS[name] and "=" not in word and i + 1 < len(words)
            swallowed.append(" ".join(words[i:i + 2]) if takes else word)
    warnings = []
    if swallowed:
        import shlex
        what = (rest.info.label or rest.name).lower()
        where = before or "the command"
        warnings.append(f"{', '.join(swallowed)} came after {where}, so it became part of the {what} "
                        f"({shlex.join(words)}) and hpcwidgets did not read it; write hpcwidgets' options before "
                        f"{where} (hpcwidgets {command} {swallowed[0]} … {before or ''} …), or ignore this if the "
                        "program takes it")
    return problems, warnings


def _unset(args: argparse.Namespace, option: str) -> bool:
    """Whether hpcwidgets' own ``option`` kept its default (was not also given where hpcwidgets reads it)."""
    dest = {"-o": "output_file", "--output-file": "output_file", "--from": "from_file"}.get(option, option[2:])
    return getattr(args, dest, None) in (None, False, [], "shell")


def model_from_args(cls: type[Spec], base: Spec | None, args: argparse.Namespace, fixed: dict[str, Any]) -> Spec:
    """Build the model: ``base`` (from --from) or defaults, then the typed options, then ``fixed``. An option whose
    value ``base`` would not write (:func:`~hpcwidgets.spec.workflow.refused_edit`: a title for a script read back
    without hpcwidgets' header) is refused."""
    names = {f.name: f for f in cls.field_specs()}
    typed = typed_fields(args)
    values: dict[str, Any] = {}
    cleared: set[str] = set()  # list layers given only as '': emptied, not added to a loaded model's
    problems: list[Problem] = []
    for name, f in names.items():
        if name not in typed:
            continue
        raw = typed[name]
        if f.info.role == "rest" and raw and raw[0] == "--":
            raw = raw[1:]
        lost = refused_edit(base, name, raw) if base is not None else None
        if lost:
            problems.append(Problem(option_name(f), lost))
            continue
        try:
            if layer_classes(f):
                raw = layers_from_text(f, raw, option_name(f))
                if f.is_tuple and not raw:
                    cleared.add(name)
            elif _is_words(f) and f.info.role != "rest" and isinstance(raw, (list, tuple)):
                raw = split_words(f, raw, option_name(f), getattr(base, name, ()))
            values[name] = coerce(f, raw)
        except ValidationError as exc:
            problems += exc.problems
    if problems:
        raise ValidationError(problems, subject=cls.__name__)
    values.update(fixed)
    if base is None:
        return cls(**values)
    for name, value in values.items():
        f = names[name]
        if f.is_tuple and name not in fixed and name not in cleared and not _is_words(f) and f.info.role != "rest":
            # --exports/--bind with --from add to what was loaded: replacing dropped the saved HPCW_PAYLOAD
            values[name] = tuple(getattr(base, name) or ()) + tuple(value)
    model = base.replace(**values)
    lost = moved_out_of_instance(base, model) if "container" in typed else None
    if lost:
        raise ValidationError([Problem(option_name(names["container"]), lost)], subject=cls.__name__)
    return model


def set_form(cls: type[Spec] | None) -> tuple[str, str]:
    """How ``--set`` is written for a command that builds ``cls``: its metavar and an example from the command's own
    fields ("" when it has none to show). A model of layers (a workflow, the Jupyter job) names the layer
    (``LAYER.FIELD=VALUE``, ``job.nodes=2``); a command that is one layer names the field alone (sbatch:
    ``FIELD=VALUE``, ``nodes=2``), since it refuses ``job.nodes``."""
    if cls is None or any(f.name == "job" for f in cls.field_specs()):
        return "LAYER.FIELD=VALUE", "job.nodes=2"
    options = [f for f in cls.field_specs() if f.info.role == "option"]
    one = next((f for f in options if not f.is_tuple and f.base_type in (int, bool)), None)
    return "FIELD=VALUE", (f"{one.name}={'true' if one.base_type is bool else 2}" if one else "")


def apply_sets(model: Spec, sets: list[str]) -> Spec:
    """Apply ``--set layer.field=value`` overrides (``job.nodes=2``, ``container.nv=true``); a path the model
    does not have is refused with the path meant, where one is close (:func:`close_paths`), and so is a value the
    model would not write or would misplace (:func:`~hpcwidgets.spec.workflow.refused_edit`: a workflow's
    ``job.commands``, an image that would take the step out of the instance it runs in)."""
    from ..errors import UnknownFieldError
    for item in sets:
        path, sep, raw = item.partition("=")
        if not sep:
            metavar, example = set_form(type(model))
            raise ValidationError([Problem("--set", f"{item!r} gives no value: write --set {metavar}"
                                                    + (f", e.g. --set {example}" if example else ""))])
        lost = refused_edit(model, path, raw)
        if lost:
            raise ValidationError([Problem(f"--set {path}", lost)])
        try:
            edited = _set_path(model, path.split("."), raw, f"--set {path}")
        except UnknownFieldError as exc:
            import shlex
            meant = close_paths(type(model), path.split("."))
            hint = " or ".join(f"--set {shlex.quote(f'{m}={raw}')}" for m in meant[:3])
            said = f"{exc.model} has no field {exc.name!r}" + (f"; did you mean {hint}?" if hint else "")
            raise ValidationError([Problem(f"--set {path}", f"{said} (valid fields of {exc.model}: "
                                                            f"{', '.join(exc.valid)})")]) from None
        lost = moved_out_of_instance(model, edited) if path == "container" else None
        if lost:
            raise ValidationError([Problem(f"--set {path}", lost)])
        model = edited
    return model


def _spec_classes(f: FieldSpec) -> tuple[type[Spec], ...]:
    """The models a field holds as one nested layer (``job``: SlurmJob; ``container``: ApptainerRun, ChRun); ``()``
    for a plain value or a list, whose items have no names to set."""
    if f.is_tuple:
        return ()
    return tuple(c for c in (typing.get_args(f.base_type) or (f.base_type,))
                 if isinstance(c, type) and issubclass(c, Spec) and c not in (Bind, EnvVar))


def layer_names(cls: type[Spec]) -> set[str]:
    """What a person may call the layer ``cls`` is: the command that runs it (torchrun, srun, apptainer, singularity,
    ch-run), the hpcwidgets command that builds it (sbatch), its kind (slurm, charliecloud) and the name the
    layered models give it (job, launcher, container)."""
    from . import MODEL_COMMANDS, _charliecloud_commands
    from ..spec.jupyter import JupyterJob
    from ..spec.workflow import Workflow
    names = {cls.__name__.lower(), str(getattr(cls, "kind", "")).split(".")[0]}
    defaults = cls()
    for g in cls.field_specs():
        if g.info.role in ("program", "subcommand") or g.name == "binary":
            names |= {c for c in (*g.info.choices, str(getattr(defaults, g.name))) if c and " " not in c}
    names |= {cmd.path[0] for cmd in (*MODEL_COMMANDS, *_charliecloud_commands())
              if cmd.model == f"{cls.__module__}:{cls.__name__}"}
    names |= {f.name for layered in (Workflow, JupyterJob) for f in layered.field_specs() if cls in _spec_classes(f)}
    return names - {""}


def close_paths(cls: type[Spec], parts: list[str]) -> list[str]:
    """The ``--set`` paths of ``cls`` a person probably meant by ``parts``: a layer called by its tool
    (torchrun.nproc_per_node: launcher.nproc_per_node), a field written as its option (nproc-per-node), a typo
    (job.node: job.nodes), a field without its layer (nodes: job.nodes) or, in a command that is one layer, with
    it (sbatch --set job.nodes: nodes)."""
    head, rest = parts[0].lower().replace("-", "_"), parts[1:]
    fields = {f.name: f for f in cls.field_specs() if not kept_from_script(f)}
    if head not in fields and not rest:
        # a layer's field by its exact name (time: job.time) before any field merely spelt like it (title)
        exact = [f"{f.name}.{head}" for f in fields.values() for inner in _spec_classes(f)
                 if head in {g.name for g in inner.field_specs()}]
        if exact:
            return list(dict.fromkeys(exact))
    named = ([fields[head]] if head in fields else
             [f for f in fields.values() if parts[0].lower() in set().union(*map(layer_names, _spec_classes(f)))] or
             [fields[n] for n in difflib.get_close_matches(head, list(fields), n=2)])
    found: list[str] = []
    for f in named:
        if not rest:
            found.append(f.name)
        for inner in _spec_classes(f) if rest else ():
            found += [f"{f.name}.{p}" for p in close_paths(inner, rest)]
    if not found and rest and parts[0].lower() in layer_names(cls):
        found = close_paths(cls, rest)  # the layer named where the command's model is that layer
    if not found and head not in fields:
        # a field of a layer, written without the layer's name: the layers that have it, else those with a close one
        inside = [f"{f.name}.{p}" for f in fields.values() for inner in _spec_classes(f) for p in close_paths(inner, parts)]
        last = parts[-1].lower().replace("-", "_")
        found = [p for p in inside if p.rsplit(".", 1)[-1] == last] or inside
    return list(dict.fromkeys(found))


def kept_from_script(f: FieldSpec) -> bool:
    """Whether ``f`` keeps how a script read back was written beside what it means (``SlurmJob.comments``,
    ``SlurmJob.layout``): records the reader makes and follows, which a person changes by changing the fields they
    follow, never by setting them. Their models are no command layer (none of their fields is on a command line)
    and have no text a person writes (``Bind``, ``EnvVar`` and a Dockerfile's ``Instruction`` have: ``from_token``)."""
    models = [c for c in typing.get_args(f.base_type) or (f.base_type,) if isinstance(c, type) and issubclass(c, Spec)]
    return f.info.role == "internal" and bool(models) and all(
        not hasattr(c, "from_token") and all(g.info.role == "internal" for g in c.field_specs()) for c in models)


def _settable_field(model: Spec, name: str, where: str) -> FieldSpec:
    """The field ``name`` of ``model`` that ``--set`` may change; a record kept from a script read back is refused
    with what to do instead, and an unknown name lists only the fields a person may set."""
    from ..errors import UnknownFieldError
    settable = [f.name for f in model.field_specs() if not kept_from_script(f)]
    try:
        f = model.field_spec(name)
    except UnknownFieldError:
        raise UnknownFieldError(type(model).__name__, name, settable) from None
    if kept_from_script(f):
        raise ValidationError([Problem(where or name, f"{f.name} is kept from the script the model was read from and "
                                                      f"follows its lines, so it is not set by hand; set the fields "
                                                      f"it follows instead (valid fields of {type(model).__name__}: "
                                                      f"{', '.join(settable)})")])
    return f


def _held_in_program(model: Spec, classes: tuple[type, ...]) -> bool:
    """Whether a workflow holds a program with a command of one of the layer ``classes`` among its words (``time
    srun apptainer exec …``, read back whole): the layer is there, but as words of the program."""
    from ..parse.argv import recognise
    words = [str(w) for w in getattr(model, "program", ()) or ()]
    return bool(classes) and any((sig := recognise(words[i:])) is not None and issubclass(sig[0].cls, classes)
                                 for i in range(len(words)))


def _held_message(model: Spec, layer: str) -> str:
    program = " ".join(map(str, model.program))
    shown = program if len(program) <= 60 else program[:59] + "…"
    return (f"{layer} is not set: the step is held whole as the program ({shown}), as read from a line whose layers "
            f"the fields cannot hold (a word such as time before srun); change it with --program '…', or write that "
            f"line without what stands before the launch and read it again")


def _set_path(model: Spec, parts: list[str], raw: str, where: str = "") -> Spec:
    f = _settable_field(model, parts[0], where)
    if len(parts) > 1:
        inner = getattr(model, f.name)
        classes = layer_classes(f)
        if inner is None and _held_in_program(model, tuple(classes)):
            raise ValidationError([Problem(where or ".".join(parts), _held_message(model, f.name))])
        if inner is None and len(classes) == 1 and not f.is_tuple:
            inner = classes[0]()  # --set launcher.nnodes=2 on a workflow without one starts a default torchrun
        if not isinstance(inner, Spec):
            whole = (where or "--set " + ".".join(parts)).rsplit(".", len(parts) - 1)[0]
            rest = ".".join(parts[1:])
            if isinstance(inner, tuple):
                said = (f"{f.name} is a list, whose items have no names, so {rest} cannot be changed; {whole}=ITEM "
                        f"adds an item, {whole}= empties the list")
            elif inner is not None:
                said = (f"{f.name} is a single value ({inner!r}), not a layer with fields of its own, so it has no "
                        f"{rest}; set the value itself: {whole}=VALUE")
            else:
                how = f"give it first with {_layer_example(f)}" if classes else "start from a saved model with --from"
                said = f"{f.name} is not set, so {rest} cannot be changed; {how}"
            raise ValidationError([Problem(where or ".".join(parts), said)])
        return model.replace(**{f.name: _set_path(inner, parts[1:], raw, where)})
    base = f.base_type
    value: Any
    if layer_classes(f):
        # a command line, as the option takes it (--set launcher='torchrun …'); empty: no such layer
        value = layers_from_text(f, raw, where or f.name)
        if value and getattr(model, f.name) is None and _held_in_program(model, tuple(layer_classes(f))):
            raise ValidationError([Problem(where or f.name, _held_message(model, f.name))])
        if f.is_tuple and value:
            value = tuple(getattr(model, f.name) or ()) + value
    elif _is_words(f):
        value = split_words(f, [raw], where or f.name, getattr(model, f.name))
    elif f.is_tuple:
        # one item per --set, added to what is there (a loaded model's binds stay); an empty value empties
        # the list. Only binds split at commas, as apptainer -B does: a set-up line or a variable's value
        # (NCCL_SOCKET_IFNAME=ib0,ib1) keeps its commas
        items = [x for x in raw.split(",") if x] if base is Bind else ([raw] if raw else [])
        value = tuple(getattr(model, f.name) or ()) + tuple(coerce(f, items)) if raw else ()
    elif base is bool:
        if raw.lower() not in ("true", "false", "yes", "no", "1", "0"):
            raise ValidationError([Problem(f.name, f"{raw!r}: write true or false")])
        value = raw.lower() in ("true", "yes", "1")
    elif base is int:
        try:
            value = count_from_text(f, raw)
        except ValueError as exc:
            raise ValidationError([Problem(f.name, str(exc))]) from None
    else:
        value = raw
    return model.replace(**{f.name: value})
