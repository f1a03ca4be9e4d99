"""Semantic answer checks for the exercise notebooks.

A learner's answer is compared with the expected answer **as models**, never as text: the answer
is parsed (:func:`hpcwidgets.parse_command`, :func:`hpcwidgets.parse_script`), both sides are
normalised and every difference becomes one sentence the learner can act on. What counts as the
same:

* flag spellings (``-B`` == ``--bind``, ``--nproc_per_node`` == ``--nproc-per-node``) and option
  order (the parser reads both into the same model);
* ``$SCRATCH`` == ``${SCRATCH}``, ``/data/`` == ``/data``, a bind mode of ``rw`` == no mode;
* Slurm times (``90`` == ``1:30:00``) and memory sizes (``16G`` == ``16384M``);
* GPUs asked for with ``--gres=gpu:4``, ``--gres=gpu:a100:4`` or ``--gpus-per-node=4``.

A wrong answer raises :class:`AnswerError`, which is both a :class:`~hpcwidgets.errors.HpcWidgetsError`
and an ``AssertionError`` (so papermill and nbval report it as a failed check), listing every
difference and, where the linter explains the mistake, its finding. A right answer prints one
``✓`` line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import HpcWidgetsError, ParseError
from ..spec._meta import FieldSpec, Spec
from ..spec.common import Bind, EnvVar
from ..spec.units import parse_mem, time_equal

PASS_MARK = "✓"
FAIL_MARK = "✗"


class AnswerError(HpcWidgetsError, AssertionError):
    """An exercise answer that does not do what the task asks; ``problems`` says what to change."""

    def __init__(self, problems: Sequence[str], task: str = ""):
        self.problems = tuple(problems)
        self.task = task
        head = f"Not yet: {task}" if task else "Not yet"
        lines = [head] + [f"  {FAIL_MARK} {p}" for p in self.problems]
        super().__init__("\n".join(lines))


def passed(message: str) -> str:
    """Print (and return) the success line a check shows."""
    line = f"{PASS_MARK} {message}"
    print(line)
    return line


# ------------------------------------------------------------------------------------------------
# matchers: expected values that are a condition rather than one value
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Matcher:
    """An expected value given as a test plus the sentence that says what is wanted."""

    test: Callable[[Any], bool]
    wanted: str

    def __call__(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except (TypeError, ValueError):
            return False


def contains(*items: str) -> Matcher:
    """A text (or the lines of a tuple) that contains every one of ``items``."""
    def test(value: Any) -> bool:
        text = "\n".join(str(v) for v in value) if isinstance(value, (tuple, list)) else str(value)
        return all(norm_text(i) in norm_text(text) for i in items)
    return Matcher(test, "contains " + ", ".join(repr(i) for i in items))


def one_of(*values: Any) -> Matcher:
    return Matcher(lambda v: any(same("", v, want) for want in values),
                   "one of " + ", ".join(repr(v) for v in values))


def at_least(n: int) -> Matcher:
    return Matcher(lambda v: v is not None and int(v) >= n, f"at least {n}")


def pinned() -> Matcher:
    """An image reference with a version tag other than ``latest``."""
    def test(value: Any) -> bool:
        ref = str(value).split("://", 1)[-1]
        name = ref.rsplit("/", 1)[-1]
        tag = name.partition(":")[2]
        return bool(tag) and tag != "latest"
    return Matcher(test, "a pinned version tag (not :latest and not untagged)")


def absent() -> Matcher:
    """Empty, unset or False."""
    return Matcher(lambda v: v in (None, "", (), False, 0), "not set")


# ------------------------------------------------------------------------------------------------
# normalisation
# ------------------------------------------------------------------------------------------------
_BRACED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}(?![A-Za-z0-9_])")


def norm_text(value: Any) -> str:
    """``${NAME}`` written as ``$NAME`` where that means the same (not before a letter, digit or _)."""
    return _BRACED.sub(r"$\1", str(value))


def norm_path(value: Any) -> str:
    """A path with ``${NAME}`` unbraced, repeated slashes collapsed and no trailing slash."""
    s = re.sub(r"/{2,}", "/", norm_text(value))
    return s.rstrip("/") if len(s) > 1 else s


def _mem_equal(a: Any, b: Any) -> bool:
    try:
        return parse_mem(str(a)) == parse_mem(str(b))
    except ValueError:
        return str(a) == str(b)


def _array_equal(a: Any, b: Any) -> bool:
    from ..spec.workflow import array_indexes
    if not a or not b:
        return not a and not b
    ia, ib = array_indexes(str(a)), array_indexes(str(b))
    if ia is None or ib is None:
        return str(a) == str(b)
    limit = lambda s: str(s).partition("%")[2]  # noqa: E731
    return sorted(ia) == sorted(ib) and limit(a) == limit(b)


def same(name: str, have: Any, want: Any) -> bool:
    """Whether an answer's value means the expected one, for a field called ``name``."""
    if isinstance(want, Matcher):
        return want(have)
    if want is None or have is None:
        return want == have or (want in ("", ()) and have is None) or (have in ("", ()) and want is None)
    base = name.rsplit(".", 1)[-1]
    if base == "time" or base.endswith("_time"):
        return time_equal(str(have), str(want)) if have and want else have == want
    if base.startswith("mem"):
        return _mem_equal(have, want) if have and want else have == want
    if base == "array":
        return _array_equal(have, want)
    if isinstance(want, bool) or isinstance(have, bool):
        return bool(have) == bool(want)
    if isinstance(want, int) and not isinstance(want, bool):
        try:
            return int(have) == want
        except (TypeError, ValueError):
            return False
    if isinstance(want, Bind) and isinstance(have, Bind):
        return _bind_key(have) == _bind_key(want) and _mode(have) == _mode(want)
    if isinstance(want, Spec) and isinstance(have, Spec):
        return not compare_models(have, want)
    if isinstance(want, (tuple, list)) and isinstance(have, (tuple, list)):
        return len(have) == len(want) and all(same(name, h, w) for h, w in zip(have, want))
    if isinstance(want, str) and isinstance(have, (str, int)):
        return norm_path(have) == norm_path(want) if ("/" in want or "$" in want) else str(have) == want
    return have == want


# ------------------------------------------------------------------------------------------------
# reading answers
# ------------------------------------------------------------------------------------------------
_ASSIGN = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*=\S*)\s*$")


def _empty(answer: Any) -> bool:
    return answer is None or answer is Ellipsis or (isinstance(answer, str) and not answer.strip())


def command_text(text: str) -> str:
    """One command from a learner's text: comments and blank lines dropped, continuation lines
    joined, and lines that only set a variable (``export APPTAINER_CACHEDIR=…``) written as
    assignments in front of the command."""
    joined = re.sub(r"\\\n", " ", text)
    assigns: list[str] = []
    commands: list[str] = []
    for raw in joined.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("$ "):  # a copied prompt
            line = line[2:]
        m = _ASSIGN.match(line)
        if m and not commands:
            assigns.append(m.group(1))
            continue
        commands.append(line)
    if len(commands) != 1:
        what = "no command" if not commands else f"{len(commands)} commands"
        raise AnswerError([f"the answer has {what}; write exactly one command (long commands may continue "
                           "on the next line after a trailing backslash)"])
    return " ".join(assigns + commands)


def read_command(answer: Any, task: str = "") -> Spec:
    """The model of a one-command answer (text, or a model built with the API)."""
    if _empty(answer):
        raise AnswerError(["the answer is empty: write the command between the quotes"], task)
    if isinstance(answer, Spec):
        return answer
    if not isinstance(answer, str):
        raise AnswerError([f"the answer is a {type(answer).__name__}; write the command as a string of shell text "
                           "or build the model with the API"], task)
    from ..parse import parse_command
    try:
        text = command_text(answer)
    except AnswerError as exc:
        raise AnswerError(exc.problems, task) from None
    try:
        return parse_command(text)
    except ParseError as exc:
        raise AnswerError([f"the command cannot be read: {exc.message}"], task) from None


def read_script_answer(answer: Any, task: str = "") -> tuple[Any, str]:
    """(Workflow, script text) for a script answer given as text or as a Workflow model."""
    if _empty(answer):
        raise AnswerError(["the answer is empty: write the job script between the quotes"], task)
    if isinstance(answer, Spec):
        from ..render import render
        try:
            return answer, render(answer)
        except HpcWidgetsError as exc:
            raise AnswerError([f"the model cannot be rendered: {exc}"], task) from None
    if not isinstance(answer, str):
        raise AnswerError([f"the answer is a {type(answer).__name__}; give the script as text or a Workflow"], task)
    from ..parse import parse_script
    try:
        return parse_script(answer), answer
    except ParseError as exc:
        raise AnswerError([f"the script cannot be read: {exc}"], task) from None


# ------------------------------------------------------------------------------------------------
# comparing models
# ------------------------------------------------------------------------------------------------
def _flag(f: FieldSpec) -> str:
    if f.info.flag:
        return f.info.flag
    if f.info.env:
        return f.info.env
    return f.info.label or f.name


def _help(f: FieldSpec) -> str:
    text = f.info.help.rstrip(".")
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value) if value else "(nothing)"
    if value in (None, ""):
        return "(not set)"
    return str(value)


def _mode(b: Bind) -> str:
    return b.mode or "rw"


def _bind_key(b: Bind) -> tuple[str, str]:
    src = norm_path(b.src)
    dst = norm_path(b.dst) if b.dst else src
    return src, dst


def _bind_text(b: Bind) -> str:
    src, dst = _bind_key(b)
    token = src if src == dst else f"{src}:{dst}"
    return f"{token}:ro" if b.mode == "ro" else token


def compare_binds(have: Iterable[Bind], want: Iterable[Bind], *, flag: str = "--bind",
                  extra_ok: bool = False) -> list[str]:
    """Sentences for every difference between two sets of bind mounts (order does not matter)."""
    have, want = list(have), list(want)
    out: list[str] = []
    left = list(have)
    for w in want:
        ws, wd = _bind_key(w)
        match = next((h for h in left if _bind_key(h) == (ws, wd)), None)
        if match is None:
            by_dst = next((h for h in left if _bind_key(h)[1] == wd), None)
            by_src = next((h for h in left if _bind_key(h)[0] == ws), None)
            if by_dst is not None:
                out.append(f"{wd} inside the container shows {_bind_key(by_dst)[0]}; the task asks for {ws} there "
                           f"({flag} {_bind_text(w)})")
                left.remove(by_dst)
            elif by_src is not None:
                out.append(f"{ws} appears at {_bind_key(by_src)[1]} inside the container; the task wants it at {wd} "
                           f"({flag} {_bind_text(w)})")
                left.remove(by_src)
            else:
                out.append(f"{ws} is not bound: add {flag} {_bind_text(w)}")
            continue
        left.remove(match)
        if _mode(match) != _mode(w):
            if w.mode == "ro":
                out.append(f"your bind of {ws} is read-write; the task asks for read-only data: add `:ro` "
                           f"({flag} {_bind_text(w)})")
            else:
                out.append(f"{ws} is mounted read-only, but the program writes there: drop `:ro`")
    if not extra_ok:
        for h in left:
            out.append(f"the bind of {_bind_key(h)[0]} is not part of the task: expose only the paths the job needs")
    return out


def _compare_env(have: Iterable[EnvVar], want: Iterable[EnvVar], flag: str) -> list[str]:
    got = {e.name: norm_text(e.value) for e in have}
    out = []
    for e in want:
        if e.name not in got:
            out.append(f"{e.name} is not set: add {flag} {e.name}={e.value}")
        elif got[e.name] != norm_text(e.value):
            out.append(f"{e.name} is {got[e.name]!r}; the task asks for {e.value!r}")
    return out


def _flag_after_image(answer: Spec, f: FieldSpec) -> bool:
    rest = next((g for g in answer.field_specs() if g.info.role == "rest"), None)
    if rest is None:
        return False
    words = [str(w).split("=", 1)[0] for w in getattr(answer, rest.name)]
    return any(s in words for s in f.info.spellings)


def _program_word(model: Spec) -> str:
    words = [str(getattr(model, f.name)) for f in model.field_specs() if f.info.role in ("program", "subcommand")]
    return " ".join(w for w in words if w)


def compare_models(have: Spec, want: Spec, *, ignore: Iterable[str] = (), prefix: str = "",
                   extra_binds_ok: bool = False) -> list[str]:
    """Sentences for every difference between an answer's model and the expected model."""
    from ..parse.argv import parse_argv, recognise
    skip = set(ignore)
    if type(have) is not type(want):
        return [f"{prefix}this is a `{_program_word(have) or have.kind}` command; the task asks for "
                f"`{_program_word(want) or want.kind}`"]
    out: list[str] = []
    misplaced: set[str] = set()
    for f in want.field_specs():
        name = prefix + f.name
        if f.name in skip or name in skip or f.info.role == "program":
            continue
        h, w = getattr(have, f.name), getattr(want, f.name)
        if f.base_type is Bind and f.is_tuple:
            out += compare_binds(h, w, flag=f.info.flag or "--bind", extra_ok=extra_binds_ok)
            continue
        if f.base_type is EnvVar and f.is_tuple:
            out += _compare_env(h, w, f.info.flag or f.info.label)
            continue
        if isinstance(w, Spec) and isinstance(h, Spec):
            out += compare_models(h, w, ignore=skip, prefix=f"{name}.", extra_binds_ok=extra_binds_ok)
            continue
        if f.info.role == "rest" and w and recognise([str(x) for x in w]) is not None:
            # a nested command (srun … apptainer exec …): compare it as a model too
            if recognise([str(x) for x in h]) is None:
                out.append(f"the command after {_program_word(want)} should be `{' '.join(str(x) for x in w[:3])} …`; "
                           f"you wrote {_show(h)!r}")
                continue
            try:
                hm = parse_argv([str(x) for x in h]).model
                wm = parse_argv([str(x) for x in w]).model
            except ParseError as exc:
                out.append(f"the inner command cannot be read: {exc.message}")
                continue
            inner = compare_models(hm, wm, ignore=skip, prefix=f"{name}.", extra_binds_ok=extra_binds_ok)
            out += [f"{_program_word(wm)}: {p}" for p in inner]
            continue
        if f.info.role == "rest" and misplaced:
            h = tuple(x for x in h if str(x).split("=", 1)[0] not in misplaced)
        if same(f.name, h, w):
            continue
        flag = _flag(f)
        if f.base_type is bool and f.info.flag:
            if w and not h:
                if _flag_after_image(have, f):
                    misplaced.update(f.info.spellings)
                    out.append(f"{flag} comes after the image, so {_program_word(have).split()[0]} never sees it "
                               "(it is passed to the program): move it before the image")
                else:
                    out.append(f"add {flag}: {_help(f)}")
            else:
                out.append(f"remove {flag}: the task does not ask for it")
            continue
        if f.info.role == "positional":
            out.append(f"{f.info.label.lower()} is {_show(h)!r}; the task asks for {_show(w)!r}")
        elif f.info.role == "rest":
            out.append(f"{f.info.label.lower()}: you run {_show(h)!r}; the task asks for {_show(w)!r}")
        elif f.info.role == "subcommand":
            out.append(f"use `{_program_word(want)}`, not `{_program_word(have)}`")
        elif w in (None, "", ()):
            out.append(f"remove {flag} {_show(h)}: the task does not ask for it")
        elif h in (None, "", ()):
            sep = " " if f.info.style == "space" else "="
            out.append(f"add {flag}{sep}{_show(w)}: {_help(f)}" if f.info.flag else f"set {flag} to {_show(w)}")
        else:
            out.append(f"{flag} is {_show(h)}; the task asks for {_show(w)}")
    return out


def _lint_notes(text: str, profile: Any = None, severities: Sequence[str] = ("error",)) -> list[str]:
    from ..lint import lint
    return [f"line {f.line}: {f.code} {f.message}" if "\n" in text.strip() else f"{f.code} {f.message}"
            for f in lint(text, profile) if f.severity in severities]


# ------------------------------------------------------------------------------------------------
# the checks notebooks call
# ------------------------------------------------------------------------------------------------
def check_command(answer: Any, expected: Spec | Sequence[Spec], *, task: str = "", ignore: Iterable[str] = (),
                  extra_binds_ok: bool = False, success: str = "") -> Spec:
    """Check a one-command answer (shell text or a model) against the expected model.

    ``expected`` may be a list of acceptable models (e.g. ``--cleanenv`` or ``--containall``); the
    feedback then comes from the closest one. ``ignore`` names fields whose value does not matter.
    Returns the answer's model.
    """
    model = read_command(answer, task)
    options = list(expected) if isinstance(expected, (list, tuple)) else [expected]
    if not options:
        raise ValueError("check_command needs at least one expected model")
    results = [compare_models(model, want, ignore=ignore, extra_binds_ok=extra_binds_ok) for want in options]
    best = min(results, key=len)
    if best:
        notes = _lint_notes(answer) if isinstance(answer, str) else []
        if any("comes after the image" in p for p in best):
            notes = [n for n in notes if "HPC203" not in n]
        raise AnswerError(best + [f"the linter says: {n}" for n in notes], task)
    passed(success or (f"{task}: correct" if task else "correct"))
    return model


def check_bind(answer: Any, expected: Bind | str, *, task: str = "", success: str = "") -> Bind:
    """Check one bind mount, written ``SRC[:DST[:ro]]`` (optionally after ``--bind``/``-B``) or as a Bind."""
    if _empty(answer):
        raise AnswerError(["the answer is empty: write the bind as SRC:DST (add :ro for read-only)"], task)
    if isinstance(answer, Bind):
        have = answer
    elif isinstance(answer, str):
        token = answer.strip()
        token = re.sub(r"^(--bind|-B|--mount|-b)(=|\s+)", "", token).strip().strip("'\"")
        if not token or " " in token:
            raise AnswerError([f"{answer!r} is not one bind; write SRC:DST or SRC:DST:ro"], task)
        have = Bind.from_token(token)
    else:
        raise AnswerError([f"a bind is text like /data:/data:ro or a Bind, not a {type(answer).__name__}"], task)
    want = expected if isinstance(expected, Bind) else Bind.from_token(expected)
    problems = compare_binds([have], [want])
    if problems:
        raise AnswerError(problems, task)
    passed(success or f"bind {_bind_text(have)}: correct")
    return have


#: properties of a workflow that are not a plain field path
def _virtual(w: Any, key: str) -> tuple[bool, Any]:
    job = getattr(w, "job", None)
    if key == "gpus_per_node" and job is not None:
        return True, job.gpus_on_each_node
    if key == "runtime":
        c = getattr(w, "container", None)
        return True, (None if c is None else ("charliecloud" if c.kind == "charliecloud.run" else "apptainer"))
    if key in ("srun", "container", "launcher") and not isinstance(getattr(w, key, None), Spec):
        return True, getattr(w, key, None)
    return False, None


_LAYER_NAMES = {"job": "#SBATCH", "srun": "srun", "container": "the container", "launcher": "torchrun"}


def _resolve(model: Any, key: str) -> tuple[Any, FieldSpec | None, str]:
    """The value at a dotted ``key`` (job fields may be named without ``job.``), its field and a problem."""
    hit, value = _virtual(model, key)
    if hit:
        return value, None, ""
    parts = key.split(".")
    if len(parts) == 1 and hasattr(model, "job") and not hasattr(model, key) and hasattr(model.job, key):
        parts = ["job", key]
    obj, spec = model, None
    for i, part in enumerate(parts):
        if obj is None:
            layer = parts[i - 1]
            return None, None, (f"there is no {_LAYER_NAMES.get(layer, layer)} layer; the task needs one "
                                f"({'.'.join(parts)})")
        if not isinstance(obj, Spec) or not any(f.name == part for f in obj.field_specs()):
            raise KeyError(f"{key!r}: {type(obj).__name__} has no field {part!r}")
        spec = obj.field_spec(part)
        obj = getattr(obj, part)
    return obj, spec, ""


def _describe_key(key: str, spec: FieldSpec | None) -> str:
    parts = key.split(".")
    layer = parts[0] if len(parts) > 1 else "job"
    flag = _flag(spec) if spec is not None else parts[-1]
    where = _LAYER_NAMES.get(layer, layer)
    if where == "#SBATCH" and spec is not None and spec.info.flag:
        return f"#SBATCH {flag}"
    return f"{where} {flag}" if spec is not None and spec.info.flag else f"{key}"


def check_properties(model: Any, expected: Mapping[str, Any], *, task: str = "", extra_binds_ok: bool = True) -> list[str]:
    """Sentences for each property of ``model`` (dotted field paths) that differs from ``expected``."""
    out: list[str] = []
    for key, want in expected.items():
        have, spec, problem = _resolve(model, key)
        if problem:
            out.append(problem)
            continue
        if spec is not None and spec.base_type is Bind and spec.is_tuple and not isinstance(want, Matcher):
            out += compare_binds(have, want, flag=spec.info.flag or "--bind", extra_ok=extra_binds_ok)
            continue
        if spec is not None and spec.base_type is EnvVar and spec.is_tuple and not isinstance(want, Matcher):
            out += _compare_env(have, want, spec.info.flag or spec.info.label)
            continue
        if isinstance(want, Spec) and isinstance(have, Spec):
            out += compare_models(have, want, prefix=f"{key}: ", extra_binds_ok=extra_binds_ok)
            continue
        if same(key, have, want):
            continue
        what = _describe_key(key, spec)
        wanted = want.wanted if isinstance(want, Matcher) else _show(want)
        if key == "gpus_per_node":
            out.append(f"the job gets {have or 0} GPU(s) per node; the task asks for {wanted} "
                       f"(#SBATCH --gres=gpu:{want if not isinstance(want, Matcher) else 'N'})")
        elif isinstance(want, bool) and spec is not None and spec.info.flag:
            out.append(f"add {what}" if want else f"remove {what}")
        else:
            out.append(f"{what} is {_show(have)}; the task asks for {wanted}")
    return out


def check_script(answer: Any, expected: Mapping[str, Any], *, task: str = "", profile: Any = None,
                 lint_severities: Sequence[str] = ("error",), extra_binds_ok: bool = True,
                 success: str = "") -> Any:
    """Check a job script (text or a Workflow) by its properties and the linter.

    ``expected`` maps dotted paths to wanted values: SlurmJob fields directly (``partition``,
    ``time``, ``mem``), layers with a prefix (``srun.ntasks_per_node``, ``container.nv``,
    ``launcher.nproc_per_node``), plus ``gpus_per_node`` (however requested) and ``runtime``.
    Values may be :class:`Matcher` objects (:func:`contains`, :func:`pinned`, :func:`one_of` …).
    Findings of the given severities (errors by default) fail the check too. Returns the workflow.
    """
    workflow, text = read_script_answer(answer, task)
    problems = check_properties(workflow, expected, task=task, extra_binds_ok=extra_binds_ok)
    notes = _lint_notes(text, profile, lint_severities)
    # one explanation per mistake: the linter's, where it has one
    problems = [p for p in problems if not _explained(p, notes)] + [f"the linter says: {n}" for n in notes]
    if problems:
        raise AnswerError(problems, task)
    passed(success or (f"{task}: correct" if task else "the script does what the task asks"))
    return workflow


def _explained(problem: str, notes: list[str]) -> bool:
    flags = re.findall(r"--[a-z][a-z-]+", problem)
    return bool(flags) and any(all(fl in n for fl in flags[:1]) for n in notes)


def check_model(answer: Any, expected: Mapping[str, Any], *, cls: type | None = None, task: str = "",
                parse: Callable[[str], Any] | None = None, success: str = "") -> Any:
    """Check any model (a DefFile, a JupyterJob …) by properties; text is read with ``parse``."""
    if _empty(answer):
        raise AnswerError(["the answer is empty"], task)
    model = answer
    if isinstance(answer, str):
        if parse is None:
            raise AnswerError(["build the answer with the API (a model), not as text"], task)
        try:
            model = parse(answer)
        except ParseError as exc:
            raise AnswerError([f"the answer cannot be read: {exc}"], task) from None
    if cls is not None and not isinstance(model, cls):
        raise AnswerError([f"the answer is a {type(model).__name__}; the task asks for a {cls.__name__}"], task)
    problems = [f"{p}" for p in model.problems()] if isinstance(model, Spec) else []
    problems += check_properties(model, expected, task=task)
    if problems:
        raise AnswerError(problems, task)
    passed(success or (f"{task}: correct" if task else "correct"))
    return model


def check_tunnel(answer: str, *, node: str, port: int | str, login_host: str, user: str = "",
                 local_port: int | str | None = None, task: str = "", success: str = "") -> None:
    """Check an ``ssh -N -L LOCAL:NODE:PORT USER@LOGIN`` tunnel command."""
    import shlex
    if _empty(answer):
        raise AnswerError(["the answer is empty: write the ssh command you run on your laptop"], task)
    try:
        words = shlex.split(command_text(answer))
    except ValueError as exc:
        raise AnswerError([f"the command cannot be read: {exc}"], task) from None
    except AnswerError as exc:
        raise AnswerError(exc.problems, task) from None
    problems: list[str] = []
    if not words or words[0] != "ssh":
        raise AnswerError(["a tunnel is an ssh command run on your laptop: ssh -N -L …"], task)
    forwards = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "-L"]
    forwards += [w[2:] for w in words if w.startswith("-L") and len(w) > 2]
    if not forwards:
        problems.append("there is no -L LOCAL:NODE:PORT forward: add -L 8888:NODE:PORT")
    for fwd in forwards[:1]:
        parts = fwd.split(":")
        if len(parts) != 3:
            problems.append(f"-L {fwd}: write LOCAL_PORT:COMPUTE_NODE:NODE_PORT")
            continue
        lp, host, rp = parts
        if host in ("localhost", "127.0.0.1"):
            problems.append(f"-L {fwd} forwards to the login node itself; JupyterLab runs on the compute node "
                            f"{node}: use {lp}:{node}:{port}")
        elif host != node:
            problems.append(f"the forward goes to {host}; the server runs on {node}")
        if str(rp) != str(port):
            problems.append(f"the server listens on port {port} on the node, not {rp}")
        if local_port is not None and str(lp) != str(local_port):
            problems.append(f"the local end is {lp}; the task uses port {local_port} on your laptop")
    if "-N" not in words and not any(w.startswith("-") and "N" in w and not w.startswith("-L") for w in words):
        problems.append("add -N: the tunnel needs no remote shell (without it ssh also logs you in)")
    dest = next((w for w in reversed(words[1:]) if not w.startswith("-") and w not in forwards), "")
    want_dest = f"{user}@{login_host}" if user else login_host
    dest_host = dest.rsplit("@", 1)[-1]
    if dest_host != login_host:
        problems.append(f"ssh goes to {dest or '(nothing)'}; connect to the login host {want_dest} "
                        "(your laptop cannot reach compute nodes directly)")
    elif user and "@" in dest and dest.split("@", 1)[0] not in (user, "$USER"):
        problems.append(f"the user name is {dest.split('@', 1)[0]}; use {user}")
    if problems:
        raise AnswerError(problems, task)
    passed(success or "the tunnel command is right")


__all__ = ["AnswerError", "Matcher", "absent", "at_least", "check_bind", "check_command", "check_model",
           "check_properties", "check_script", "check_tunnel", "compare_binds", "compare_models", "contains",
           "norm_path", "norm_text", "one_of", "passed", "pinned", "read_command", "read_script_answer", "same"]
