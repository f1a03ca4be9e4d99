"""Semantic answer checks for the exercise notebooks.

A learner's answer is compared with the expected answer **as models**, never as text: the answer
is parsed (:func:`hpcwidgets.parse_command`, :func:`hpcwidgets.parse_script`), both sides are
normalised and every difference becomes one sentence the learner can act on. What counts as the
same:

* flag spellings (``-B`` == ``--bind``, ``--nproc_per_node`` == ``--nproc-per-node``) and option
  order (the parser reads both into the same model);
* ``$SCRATCH`` == ``${SCRATCH}``, ``/data/`` == ``/data``, a bind mode of ``rw`` == no mode;
* Slurm times (``90`` == ``1:30:00``) and memory sizes (``16G`` == ``16384M``);
* GPUs asked for with ``--gres=gpu:4``, ``--gres=gpu:a100:4`` or ``--gpus-per-node=4``;
* ``python3`` == ``python``, a script's ``--opt value`` options in any order or as ``--opt=value``,
  ``./x.def`` == ``x.def``, ``docker://docker.io/x`` == ``docker://x``, ``pmix_v4`` == ``pmix``;
* ``srun -N 2 -n 4`` == ``srun -N 2 --ntasks-per-node=2`` (and a step inherits the job's tasks per
  node); ``torchrun --nproc-per-node=gpu`` == one worker per GPU of the job, and so is
  ``$SLURM_GPUS_PER_NODE`` in a job that asks ``--gpus-per-node=N`` (untyped: then sbatch sets it to N);
* ``singularity exec`` == ``apptainer exec`` where the site's program is ``apptainer`` (Apptainer installs
  ``singularity`` as a second name), but not the other way round: a site whose program is ``singularity``
  (the profile's ``apptainer_binary``) has no ``apptainer``;
* ``env NAME=value cmd`` == ``NAME=value cmd``; ``APPTAINER_NV=1 apptainer …`` == ``apptainer --nv …``
  (Apptainer reads every switch from ``APPTAINER_<SWITCH>``); ``ssh HOST -N -L …`` == ``ssh -N -L … HOST``;
* a job array with a throttle (``0-3%2``) when the task asks for none; a sweep's variable named
  otherwise, as long as the program gets the task's option (``--lr VALUE``);
* switches that change nothing for the task when it leaves them out (``--force``, ``--cleanenv``,
  ``--no-home``, ``srun --label``), ``export NAME=…``/``mkdir``/``module load`` lines before the
  command, and shell variables set on a line above it.

A ``$NAME`` that single quotes keep literal is never the same as ``$NAME``: the feedback says so.

A wrong answer raises :class:`AnswerError`, which is both a :class:`~hpcwidgets.errors.HpcWidgetsError`
and an ``AssertionError`` (so papermill and nbval report it as a failed check), listing every
difference and, where the linter explains the mistake, its finding. A right answer prints one
``✓`` line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from ..errors import HpcWidgetsError, ParseError
from ..spec._meta import FieldSpec, Spec
from ..spec.common import Bind, EnvVar
from ..spec.units import format_time, parse_mem, time_equal

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


def _norm_shell_text(text: str) -> str:
    """Shell text compared by meaning: comments dropped, ``${NAME}`` as ``$NAME``, spaces collapsed and
    ``pip3 install``/``python -m pip install`` written ``pip install``."""
    lines = [re.sub(r"(^|\s)#.*$", "", ln) for ln in str(text).split("\n")]
    return _PIP.sub("pip install", re.sub(r"[ \t]+", " ", norm_text("\n".join(lines))))


def contains(*items: str) -> Matcher:
    """A text (or the lines of a tuple) that contains every one of ``items`` (outside comments)."""
    def test(value: Any) -> bool:
        text = "\n".join(str(v) for v in value) if isinstance(value, (tuple, list)) else str(value)
        return all(_norm_shell_text(i) in _norm_shell_text(text) for i in items)
    return Matcher(test, "text containing " + " and ".join(repr(i) for i in items))


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


_COMMAND_SUBSTITUTION = re.compile(r"\$\(((?:[^()]|\([^()]*\))*)\)")


def one_host() -> Matcher:
    """A ``HOST:PORT`` endpoint naming one host: a variable set on a line above (``$head_node:29500``),
    ``$(hostname):29500``, or the first of the job's nodes computed in place
    (``$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1):29500``: the batch shell expands it
    before srun starts the step). Not a node list, and not a ``$`` kept literal by single quotes."""
    def test(value: Any) -> bool:
        host, sep, port = str(value).rpartition(":")
        if not (sep and host and port) or "\\$" in host:
            return False
        outside = _COMMAND_SUBSTITUTION.sub("", host)
        inside = _COMMAND_SUBSTITUTION.findall(host)
        return "NODELIST" not in outside and all(
            "NODELIST" not in code or re.search(r"\|\s*head\s+(-n\s*)?-?1\b", code) for code in inside)
    return Matcher(test, "one host and a port, e.g. $head_node:29500")


# ------------------------------------------------------------------------------------------------
# normalisation
# ------------------------------------------------------------------------------------------------
_BRACED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}(?![A-Za-z0-9_])")


def norm_text(value: Any) -> str:
    """``${NAME}`` written as ``$NAME`` where that means the same (not before a letter, digit or _)."""
    return _BRACED.sub(r"$\1", str(value))


def norm_path(value: Any) -> str:
    """A path with ``${NAME}`` unbraced, repeated slashes collapsed, no trailing slash and no
    leading ``./``."""
    s = re.sub(r"/{2,}", "/", norm_text(value))
    s = re.sub(r"^(\./)+(?=.)", "", s)
    return s.rstrip("/") if len(s) > 1 else s


def _mem_equal(a: Any, b: Any) -> bool:
    try:
        return parse_mem(str(a)) == parse_mem(str(b))
    except ValueError:
        return str(a) == str(b)


def _array_equal(a: Any, b: Any) -> bool:
    from ..spec.slurm import array_task_ids
    if not a or not b:
        return not a and not b
    ia, ib = array_task_ids(str(a)), array_task_ids(str(b))
    if ia is None or ib is None:
        return str(a) == str(b)
    limit = lambda s: str(s).partition("%")[2]  # noqa: E731
    # the same tasks; a throttle (%N) only matters when the task asks for one
    return sorted(ia) == sorted(ib) and (not limit(b) or limit(a) == limit(b))


def same(name: str, have: Any, want: Any) -> bool:
    """Whether an answer's value means the expected one, for a field called ``name``."""
    if isinstance(want, Matcher):
        return want(have)
    if want is None or have is None:
        return want == have or (want in ("", ()) and have is None) or (have in ("", ()) and want is None)
    base = name.rsplit(".", 1)[-1]
    if base in ("command", "program") and isinstance(want, (tuple, list)) and isinstance(have, (tuple, list)):
        return norm_program(have) == norm_program(want)
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
    if base == "mpi" and isinstance(want, str) and isinstance(have, str):
        return re.sub(r"_v\d+$", "", have) == re.sub(r"_v\d+$", "", want)   # pmix_v4 is a pmix version
    if isinstance(want, str) and isinstance(have, (str, int)):
        if str(have).startswith("docker://") or want.startswith("docker://") or base == "from_":
            return norm_ref(have) == norm_ref(want)
        if "/" in want or "$" in want or "/" in str(have):
            return norm_path(have) == norm_path(want)
        return str(have) == want
    return have == want


def norm_ref(value: Any) -> str:
    """A Docker image reference without the default registry (``docker.io/``, ``index.docker.io/``)
    and, for an official image, without ``library/``: ``docker://docker.io/library/ubuntu:22.04``
    is ``docker://ubuntu:22.04``."""
    s = str(value)
    scheme, sep, ref = s.rpartition("://")
    ref = re.sub(r"^(?:registry-1\.|index\.)?docker\.io/", "", ref)
    name = ref.split(":", 1)[0].split("@", 1)[0]
    if ref.startswith("library/") and name.count("/") == 1:
        ref = ref[len("library/"):]
    return f"{scheme}{sep}{ref}"


_PIP = re.compile(r"\b(?:python3?\s+-m\s+)?pip3?\s+install\b")


def norm_program(words: Sequence[Any]) -> tuple[str, ...]:
    """A program's words compared by meaning: ``python3`` is ``python``; for ``python -c CODE`` the
    code as parsed Python; for ``python SCRIPT.py`` the script's ``--opt value`` options in any
    order and ``--opt=value`` the same as ``--opt value`` (argparse reads them so)."""
    import ast
    out = [norm_text(w) for w in words]
    if not out or not re.fullmatch(r"python3?(\.\d+)?", out[0]):
        return tuple(out)
    out[0] = "python"
    if len(out) >= 3 and out[1] == "-c":
        try:
            out[2] = ast.dump(ast.parse(out[2]))
        except SyntaxError:
            pass
        return tuple(out)
    if len(out) < 2 or not out[1].endswith(".py"):
        return tuple(out)
    args: list[str] = []
    for w in out[2:]:
        args += w.split("=", 1) if w.startswith("--") and "=" in w else [w]
    positional: list[str] = []
    options: list[tuple[str, ...]] = []
    i = 0
    while i < len(args):
        if args[i].startswith("--") and args[i] != "--":
            j = i + 1
            while j < len(args) and not args[j].startswith("-"):
                j += 1
            options.append(tuple(args[i:j]))
            i = j
        else:
            positional.append(args[i])
            i += 1
    return tuple(out[:2] + positional + ["\0".join(o) for o in sorted(options)])


# ------------------------------------------------------------------------------------------------
# reading answers
# ------------------------------------------------------------------------------------------------
#: commands that only prepare for the one the task asks for (make a directory, load a module)
_PREPARATION = frozenset({"mkdir", "module", "ml"})
#: variables a program reads from its environment (a shell variable that is not exported is not seen)
_PROGRAM_ENV = re.compile(r"^(APPTAINER|SINGULARITY)(ENV)?_")
#: a ``NAME=value`` word (an assignment ``env`` makes before it runs the command)
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def _empty(answer: Any) -> bool:
    return answer is None or answer is Ellipsis or (isinstance(answer, str) and not answer.strip())


def _substitute(text: str, shell_vars: Mapping[str, str]) -> str:
    """``$NAME``/``${NAME}`` replaced by the value a line above gave the shell variable NAME."""
    for name, value in shell_vars.items():
        value = value[1:-1] if len(value) > 1 and value[0] == value[-1] == '"' else value
        text = re.sub(r"\$\{" + name + r"\}|\$" + name + r"(?![A-Za-z0-9_])", lambda _m, v=value: v, text)
    return text


def command_text(text: str) -> str:
    """One command from a learner's text, as one line of shell.

    Comments, blank lines and a copied ``$ `` prompt are dropped, continuation lines joined,
    ``env NAME=value cmd`` read as ``NAME=value cmd``; ``export NAME=…`` lines (or ``export NAME`` after ``NAME=…``) become assignments in front of
    the command, shell variables set on a line above it (``IMG=…``) are substituted where the
    command uses them, and ``mkdir``/``module load`` lines that only prepare for it are left out.
    ``;`` and ``&&`` separate commands just like new lines do.
    """
    from ..parse.lexer import lex_script
    lines = [re.sub(r"^(\s*)\$ ", r"\1", ln) for ln in text.split("\n")]  # a copied prompt
    try:
        script = lex_script("\n".join(lines))
    except ParseError as exc:
        raise AnswerError([f"the command cannot be read: {exc.message}"]) from None
    exported: dict[str, str] = {}
    shell_vars: dict[str, str] = {}
    commands = []
    for c in script.commands:
        if not c.is_code:
            continue
        if c.kind == "simple" and c.name == "export":
            for name, word in c.assignments:
                exported[name] = word.raw
            for w in c.words[1:]:
                if "=" not in w.value and w.value in shell_vars:
                    exported[w.value] = shell_vars.pop(w.value)
            continue
        if c.kind == "simple" and not c.words and c.assignments:
            for name, word in c.assignments:
                shell_vars[name] = word.raw
            continue
        if c.kind == "simple" and c.name in _PREPARATION and commands == []:
            continue
        commands.append(c)
    if len(commands) != 1:
        what = "no command" if not commands else f"{len(commands)} commands"
        raise AnswerError([f"the answer has {what}; write exactly one command (long commands may continue "
                           "on the next line after a trailing backslash)"])
    cmd = commands[0]
    unseen = [n for n in shell_vars if _PROGRAM_ENV.match(n)]
    if unseen:
        name = unseen[0]
        raise AnswerError([f"{name}=… on a line of its own sets a shell variable that {cmd.name or 'the program'} "
                           f"never sees: write `export {name}=…`, or put `{name}=…` in front of the command on "
                           "the same line"])
    prefix = [f"{n}={v}" for n, v in exported.items()] + [f"{n}={w.raw}" for n, w in cmd.assignments]
    words = [w.raw.replace("\\\n", " ") for w in cmd.words]
    if len(words) > 1 and words[0] == "env" and _ASSIGNMENT.match(words[1]):
        words.pop(0)   # `env NAME=value cmd` runs cmd with NAME set, like `NAME=value cmd`
        while len(words) > 1 and _ASSIGNMENT.match(words[0]):
            prefix.append(words.pop(0))
    return _substitute(" ".join(prefix + words), {**shell_vars, **{n: v for n, v in exported.items()
                                                                   if n not in dict(cmd.assignments)}})


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
        return _with_container_env(parse_command(text), text)
    except ParseError as exc:
        hint = next((h for p, h in _OTHER_PROGRAMS.items() if re.search(r"(^|\s)" + p + r"\s", text + " ")), "")
        raise AnswerError([hint or f"the command cannot be read: {exc.message}"], task) from None


def _with_container_env(model: Spec, text: str) -> Spec:
    """The container's settings given as variables in front of the command: ``APPTAINERENV_NAME=value``
    (``SINGULARITYENV_``) is ``--env NAME=value``, and ``APPTAINER_NV=1`` is ``--nv`` (Apptainer reads
    each switch ``--some-flag`` from ``APPTAINER_SOME_FLAG`` too)."""
    if not any(f.name == "env" and f.base_type is EnvVar for f in model.field_specs()):
        return model
    from ..parse.lexer import lex_command
    assignments = [(n, w.value) for n, w in lex_command(text).assignments]
    found = [EnvVar(m.group(2), value) for n, value in assignments
             if (m := re.fullmatch(r"(APPTAINER|SINGULARITY)ENV_([A-Za-z_][A-Za-z0-9_]*)", n))]
    named = {e.name for e in model.env}
    if found:
        model = model.replace(env=tuple(model.env) + tuple(e for e in found if e.name not in named))
    switches = {f"{prefix}_{f.info.flag[2:].upper().replace('-', '_')}": f.name for f in model.field_specs()
                if f.base_type is bool and f.info.flag.startswith("--") for prefix in ("APPTAINER", "SINGULARITY")}
    on = {switches[n] for n, value in assignments if n in switches and value.lower() in _TRUE}
    return model.replace(**{name: True for name in on}) if on else model


#: the values Apptainer reads as true in a switch's environment variable (Go's strconv.ParseBool)
_TRUE = frozenset({"1", "t", "true"})


def _separator_problems(model: Spec, text: str) -> list[str]:
    """ch-run needs ``--`` between the image and the program (else it reads the program's options)."""
    if getattr(model, "kind", "") != "charliecloud.run" or not model.command:
        return []
    from ..parse.lexer import lex_command
    if "--" in [w.value for w in lex_command(text).words]:
        return []
    return [f"put `--` between the image and the program (ch-run … IMAGE -- {model.command[0]} …): without it "
            "ch-run reads the program's options as its own"]


#: programs the reader does not model, and what to use instead
_OTHER_PROGRAMS = {
    "sudo": "sudo needs root, which users do not have on a cluster; build as yourself with apptainer build --fakeroot",
    "(mpirun|mpiexec)": "mpirun/mpiexec on the host starts the ranks itself: around a container that works when "
                        "the host's MPI matches the image's (HPC215, advice), but the task asks for Slurm's own "
                        "launch, which places the ranks as the allocation says: srun --mpi=pmix … apptainer exec "
                        "IMAGE PROGRAM",
    "(docker|podman)": "Docker and Podman are not available on the cluster; use apptainer (it reads docker:// images)",
}


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
                  extra_ok: bool = False, modeless: str = "") -> list[str]:
    """Sentences for every difference between two sets of bind mounts (order does not matter).

    ``modeless`` names the program when it has no bind modes (``ch-run``): there ``SRC:DST:ro`` is a bind
    to a directory called ``DST:ro``, not a read-only one.
    """
    have, want = list(have), list(want)
    out: list[str] = []
    left = list(have)
    for w in want:
        ws, wd = _bind_key(w)
        match = next((h for h in left if _bind_key(h) == (ws, wd)), None)
        if match is None:
            by_dst = next((h for h in left if _bind_key(h)[1] == wd), None)
            by_src = next((h for h in left if _bind_key(h)[0] == ws), None)
            if by_dst is not None and _single_quoted(_bind_key(by_dst)[0], ws):
                out.append(f"the source of the bind at {wd} is in single quotes: " + _QUOTE_HINT)
                left.remove(by_dst)
            elif by_dst is not None:
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
            if modeless and match.mode:
                out.append(f"{modeless} has no bind modes: {flag} {_bind_text(match)} binds {ws} at a directory "
                           f"named {wd}:{match.mode}, which the image does not have; write {flag} {_bind_text(w)}")
            elif w.mode == "ro":
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


#: switches that never change what a command does for the task when the task leaves them out
#: (``--force`` overwrites an old image; ``--cleanenv``/``--no-home``/``--containall`` only isolate
#: more; ``--label`` prefixes output lines). Not for a container inside ``srun --mpi``: PMIx needs
#: the host's environment there.
_HARMLESS = {"apptainer.pull": {"force"}, "apptainer.build": {"force"},
             "apptainer.run": {"cleanenv", "no_home", "containall"}, "slurm.srun": {"label", "kill_on_bad_exit"}}


#: runtimes whose binds have no mode (``ch-run -b SRC:DST:ro`` binds SRC at a directory named ``DST:ro``)
_MODELESS_BINDS = {"charliecloud.run": "ch-run"}


def _as_int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _task_geometry(model: Spec) -> Spec:
    """An srun with ``--ntasks`` spread evenly over ``--nodes`` written as ``--ntasks-per-node``
    (``-N 2 -n 4`` is ``-N 2 --ntasks-per-node=2``; a consistent ``--ntasks`` next to both is dropped)."""
    if getattr(model, "kind", "") != "slurm.srun":
        return model
    nodes, ntasks, per_node = _as_int(model.nodes), _as_int(model.ntasks), _as_int(model.ntasks_per_node)
    if nodes and ntasks and per_node is None and model.ntasks_per_node in (None, "") and ntasks % nodes == 0:
        return model.replace(ntasks=None, ntasks_per_node=ntasks // nodes)
    if nodes and ntasks and per_node and ntasks == nodes * per_node:
        return model.replace(ntasks=None)
    return model


def _single_quoted(have: Any, want: Any) -> bool:
    """Whether ``have`` is ``want`` with its ``$NAME`` kept literal by single quotes (``\\$NAME``)."""
    h, w = str(have), str(want)
    return "\\$" in h and "$" in w and norm_path(h.replace("\\$", "$")) == norm_path(w)


_QUOTE_HINT = ("single quotes keep $ literal, so the shell does not expand the variable: use double quotes "
               "(or none)")


def compare_models(have: Spec, want: Spec, *, ignore: Iterable[str] = (), prefix: str = "",
                   extra_binds_ok: bool = False, nested: bool = False) -> list[str]:
    """Sentences for every difference between an answer's model and the expected model."""
    from ..parse.argv import parse_argv, recognise
    skip = set(ignore)
    if type(have) is not type(want):
        return [f"{prefix}this is a `{_program_word(have) or have.kind}` command; the task asks for "
                f"`{_program_word(want) or want.kind}`"]
    have, want = _task_geometry(have), _task_geometry(want)
    harmless = set() if nested and want.kind == "apptainer.run" else _HARMLESS.get(want.kind, set())
    out: list[str] = []
    misplaced: set[str] = set()
    with_value: set[str] = set()
    for f in want.field_specs():
        name = prefix + f.name
        if f.name in skip or name in skip:
            continue
        if f.info.role == "program":
            if f.name == "binary":   # apptainer or singularity: the site's name for its container program
                out += _binary_problems(getattr(have, f.name), getattr(want, f.name), _program_word(want))
            continue
        h, w = getattr(have, f.name), getattr(want, f.name)
        if f.name in harmless and h and not w:
            continue
        if f.base_type is Bind and f.is_tuple and w and not h and _flag_after_image(have, f):
            misplaced.update(f.info.spellings)
            with_value.update(f.info.spellings)
            out.append(f"the {f.info.flag} options come after the image, so {_program_word(have).split()[0]} never "
                       "sees them (they are passed to the program): move them before the image")
            continue
        if f.base_type is Bind and f.is_tuple:
            out += compare_binds(h, w, flag=f.info.flag or "--bind", extra_ok=extra_binds_ok,
                                 modeless=_MODELESS_BINDS.get(want.kind, ""))
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
            inner = compare_models(hm, wm, ignore=skip, prefix=f"{name}.", extra_binds_ok=extra_binds_ok,
                                   nested=bool(getattr(want, "mpi", "")))
            said = hm if getattr(hm, "binary", None) != getattr(wm, "binary", None) else wm   # the program as written
            out += [f"{_program_word(said)}: {p}" for p in inner]
            continue
        if f.info.role == "rest" and misplaced:
            words, kept = [str(x) for x in h], []
            while words:
                x = words.pop(0)
                if x.split("=", 1)[0] in misplaced:
                    if x in with_value and words:
                        words.pop(0)   # the misplaced option's value
                    continue
                kept.append(x)
            h = tuple(kept)
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
        if _single_quoted(h, w):
            out.append(f"{f.info.label.lower() if f.info.role == 'positional' else flag} is {_show(h)!r}: "
                       + _QUOTE_HINT)
        elif f.info.role == "positional":
            out.append(f"{f.info.label.lower()} is {_show(h)!r}; the task asks for {_show(w)!r}")
        elif f.info.role == "rest":
            out.append(f"{f.info.label.lower()}: you run {_show(h)!r}; the task asks for {_show(w)!r}")
        elif f.info.role == "subcommand":
            out.append(f"use `{_program_word(want)}`, not `{_program_word(have)}`")
        elif w in (None, "", ()):
            out.append(f"remove {flag} {_show(h)}: the task does not ask for it")
        elif h in (None, "", ()):
            sep = " " if f.info.style == "space" else "="
            env_name = have.env_name(flag) if f.info.env else flag
            if env_name != flag:   # singularity reads SINGULARITY_CACHEDIR
                out.append(f"set {env_name} to {_show(w)}: {_program_word(have).split()[0]} reads {env_name}, "
                           f"not {flag}")
            else:
                out.append(f"add {flag}{sep}{_show(w)}: {_help(f)}" if f.info.flag else f"set {flag} to {_show(w)}")
        else:
            out.append(f"{flag} is {_show(h)}; the task asks for {_show(w)}")
    return out


def _binary_problems(have: Any, want: Any, command: str = "") -> list[str]:
    """A sentence when an answer calls the container program ``have`` where the site's is ``want`` (its profile's
    ``apptainer_binary``). ``singularity`` where the site's is ``apptainer`` is the same program: Apptainer installs
    it as a second name. The other way round it is not: a SingularityCE site has no ``apptainer`` command (lint's
    HPC414)."""
    have, want = str(have or "apptainer"), str(want or "apptainer")
    if have == want or (want == "apptainer" and have == "singularity"):
        return []
    rest = command.split(" ", 1)[1] if " " in command else ""
    return [f"this site runs its images with {want} (its profile's apptainer_binary) and has no {have} command, "
            f"so the step would stop with '{have}: command not found': write `{want} {rest + ' ' if rest else ''}…` "
            "with the same options"]


def _site_program_problems(workflow: Any, profile: Any) -> list[str]:
    """:func:`_binary_problems` for each Apptainer layer of a script (the container, the prepare steps), judged by
    the program the profile names (``apptainer_binary``); one sentence per wrong program."""
    want = getattr(profile, "apptainer_binary", "") if profile is not None else ""
    if not want:
        return []
    out: list[str] = []
    for layer in (getattr(workflow, "container", None), *(getattr(workflow, "prepare", ()) or ())):
        binary = getattr(layer, "binary", None) if isinstance(layer, Spec) else None
        if not binary:
            continue
        for problem in _binary_problems(binary, want, _program_word(layer)):
            if problem not in out:
                out.append(problem)
    return out


def _lint_notes(text: str, profile: Any = None, severities: Sequence[str] = ("error",),
                codes: Sequence[str] = ()) -> list[str]:
    from ..lint import lint
    return [f"line {f.line}: {f.code} {f.message}" if "\n" in text.strip() else f"{f.code} {f.message}"
            for f in lint(text, profile) if f.severity in severities or f.code in codes]


# ------------------------------------------------------------------------------------------------
# the checks notebooks call
# ------------------------------------------------------------------------------------------------
def check_command(answer: Any, expected: Spec | Sequence[Spec], *, task: str = "", ignore: Iterable[str] = (),
                  extra_binds_ok: bool = False, success: str = "") -> Spec:
    """Check a one-command answer (shell text or a model) against the expected model.

    ``expected`` may be a list of acceptable models (e.g. ``--cleanenv`` or ``--containall``); the
    feedback then comes from the closest one. ``ignore`` names fields whose value does not matter.
    The container program is judged by the expected model's (built with the profile's ``apptainer_binary``):
    ``apptainer exec`` fails where the site's program is ``singularity``, as that site has no ``apptainer``.
    Returns the answer's model.
    """
    model = read_command(answer, task)
    options = list(expected) if isinstance(expected, (list, tuple)) else [expected]
    if not options:
        raise ValueError("check_command needs at least one expected model")
    results = [compare_models(model, want, ignore=ignore, extra_binds_ok=extra_binds_ok) for want in options]
    best = min(results, key=len)
    if isinstance(answer, str):
        best = best + _separator_problems(model, command_text(answer))
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
        have = _read_bind(answer, task)
    else:
        raise AnswerError([f"a bind is text like /data:/data:ro or a Bind, not a {type(answer).__name__}"], task)
    want = expected if isinstance(expected, Bind) else Bind.from_token(expected)
    problems = compare_binds([have], [want])
    if problems:
        raise AnswerError(problems, task)
    passed(success or f"bind {_bind_text(have)}: correct")
    return have


def _read_bind(answer: str, task: str) -> Bind:
    """One bind from ``SRC[:DST[:ro]]``, optionally after ``--bind``/``-B``, or a ``--mount`` spec."""
    from ..parse.argv import _mount_to_bind
    from ..parse.lexer import lex_command
    try:
        text = answer.strip()
        words = [w.value for w in lex_command("--mount " + text if text.startswith("type=") else text).words]
    except ParseError as exc:
        raise AnswerError([f"the bind cannot be read: {exc.message}"], task) from None
    flag = ""
    if words and re.fullmatch(r"(--bind|--mount|-B|-b)(=.*)?", words[0]):
        flag, _, rest = words.pop(0).partition("=")
        words[:0] = [rest] if rest else []
    if len(words) != 1 or not words[0]:
        raise AnswerError([f"{answer!r} is not one bind; write SRC:DST or SRC:DST:ro"], task)
    token = words[0]
    if flag == "--mount" or token.startswith("type="):
        bind = _mount_to_bind(token)
        if bind is None:
            raise AnswerError([f"{token!r} is not a bind mount; write type=bind,src=SRC,dst=DST[,ro] or SRC:DST:ro"],
                              task)
        return bind
    if "," in token:
        raise AnswerError([f"{answer!r} is several binds; write one: SRC:DST or SRC:DST:ro"], task)
    parts = token.split(":")
    if len(parts) == 3 and parts[2] not in ("ro", "rw"):
        raise AnswerError([f"`:{parts[2]}` is not a bind mode Apptainer knows: the third part is ro (read-only) "
                           "or rw (read-write)"], task)
    return Bind.from_token(token)


#: properties of a workflow that are not a plain field path
def _virtual(w: Any, key: str) -> tuple[bool, Any]:
    job = getattr(w, "job", None)
    if key == "gpus_per_node" and job is not None:
        return True, job.gpus_on_each_node
    if key == "sweep_option":
        return True, _sweep_option(w)
    if key == "runtime":
        c = getattr(w, "container", None)
        return True, (None if c is None else ("charliecloud" if c.kind == "charliecloud.run" else "apptainer"))
    if key in ("srun", "container", "launcher") and not isinstance(getattr(w, key, None), Spec):
        return True, getattr(w, key, None)
    if key == "srun.ntasks_per_node" and isinstance(getattr(w, "srun", None), Spec) and job is not None:
        return True, _step_tasks_per_node(w.srun, job)
    return False, None


def _sweep_option(w: Any) -> str:
    """The option the program receives a sweep's value with: ``--lr`` in ``python train.py --lr "$lr"``
    (what matters to the program, whatever the sweep's variable is called)."""
    name = getattr(w, "sweep_name", "")
    launcher = getattr(w, "launcher", None)
    words = [norm_text(x) for x in (getattr(w, "program", ()) or getattr(launcher, "args", ()) or ())]
    for before, word in zip(["", *words], words):
        option, eq, value = word.partition("=")
        if eq and option.startswith("-") and value == f"${name}":
            return option
        if word == f"${name}" and before.startswith("-"):
            return before
    return ""


def _step_tasks_per_node(srun: Spec, job: Spec) -> Any:
    """How many tasks an srun step starts on each node: its own ``--ntasks-per-node``, or its
    ``--ntasks`` over its (or the job's) nodes, or what it inherits from the job's ``#SBATCH`` lines."""
    if srun.ntasks_per_node not in (None, ""):
        return srun.ntasks_per_node
    nodes = _as_int(srun.nodes) or _as_int(job.nodes) or 1
    for layer in (srun, job):
        ntasks = _as_int(layer.ntasks)
        if ntasks and ntasks % nodes == 0:
            return ntasks // nodes
        if layer is job and job.ntasks_per_node not in (None, ""):
            return job.ntasks_per_node
    return None


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
            name = _LAYER_NAMES.get(layer, layer).removeprefix("the ")
            return None, None, (f"there is no {name} layer; the task needs one "
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


#: variables a job's environment provides (the rest must be set by the script before they are used)
_GIVEN = re.compile(r"^(SLURM_\w+|SLURMD_\w+|HOME|USER|LOGNAME|SCRATCH|WORK|PROJECT|TMPDIR|PWD|HOSTNAME|PATH|"
                    r"CUDA_VISIBLE_DEVICES|[A-Z][A-Z0-9]*_(DIR|HOME|ROOT|SCRATCH))$")


def _unset_variables(value: str, script: str) -> list[str]:
    """The ``$NAME``s in ``value`` that the job does not provide and the script never assigns."""
    names = re.findall(r"(?<!\\)\$\{?([A-Za-z_][A-Za-z0-9_]*)", value)   # not \$NAME: single quotes kept it
    return [n for n in names if not _GIVEN.match(n)
            and not re.search(rf"(^|[\s;&|(]){n}=|\b(export|read|for|local|declare)\s+(\w+\s+)*{n}\b", script, re.M)]


def _step_options(workflow: Any, skip: Iterable[str] = ()) -> Iterator[tuple[str, Any, tuple[Any, ...]]]:
    """``(layer.field, field spec, its values)`` for each option of the step's layers (srun, container, launcher),
    not their program or command; fields in ``skip`` are left out."""
    for layer in ("srun", "container", "launcher"):
        model = getattr(workflow, layer, None)
        if not isinstance(model, Spec):
            continue
        for f in model.field_specs():
            key = f"{layer}.{f.name}"
            if f.info.role in ("rest", "program") or key in skip:
                continue
            value = getattr(model, f.name)
            yield key, f, value if isinstance(value, tuple) else (value,)


def _unset_in_step(workflow: Any, script: str) -> list[str]:
    """A sentence for each variable the step (srun, container, launcher options) uses but nothing sets."""
    out: list[str] = []
    for key, f, values in _step_options(workflow):
        for text in values:
            unset = _unset_variables(str(text), script) if isinstance(text, str) else []
            if unset:
                out.append(f"{_describe_key(key, f)} uses ${unset[0]}, which the script never sets, so it is "
                           f"empty: set {unset[0]}=… on a line before the step")
    return out


def _literal(value: Any) -> str:
    """``value`` as the learner wrote it inside single quotes, when they kept a ``$`` literal (the model
    stores such a ``$`` as ``\\$``); else ""."""
    text = str(value) if isinstance(value, str) else _bind_text(value) if isinstance(value, Bind) else ""
    return text.replace("\\$", "$") if re.search(r"\\\$[{(A-Za-z_]", text) else ""


def _quoted_in_step(workflow: Any, skip: Iterable[str]) -> list[str]:
    """A sentence for each step option (srun, container, launcher) whose ``$NAME`` single quotes kept
    literal: srun and the container start their program without a shell, so nothing expands it later
    (torchrun gets the host name ``$head_node`` itself). Options in ``skip`` are judged by the task's values."""
    out: list[str] = []
    for key, f, values in _step_options(workflow, skip):
        text = next((t for t in map(_literal, values) if t), "")
        if text:
            out.append(f"{_describe_key(key, f)} is '{text}' in single quotes: " + _QUOTE_HINT)
    return out


def _gpus_variable(job: Any) -> int | None:
    """What ``$SLURM_GPUS_PER_NODE`` holds in the job as a number: sbatch sets it only for
    ``--gpus-per-node=N``, and to ``TYPE:N`` for a typed request (the conditions of rule HPC107)."""
    per_node = getattr(job, "gpus_per_node", None)
    if getattr(job, "gpu_flag", "") == "gpus-per-node" and isinstance(per_node, int) and per_node > 0 \
            and not job.gpu_type:
        return per_node
    return None


def _gpus_variable_reason(job: Any) -> str:
    """Why ``$SLURM_GPUS_PER_NODE`` is not the number of GPUs in this job."""
    if getattr(job, "gpu_flag", "") == "gpus-per-node" and getattr(job, "gpu_type", ""):
        return (f"$SLURM_GPUS_PER_NODE is {job.gpu_type}:{job.gpus_per_node} here (the request names a GPU type), "
                "not a number: use $SLURM_GPUS_ON_NODE or the number")
    return ("$SLURM_GPUS_PER_NODE is set only when the job asks for GPUs with #SBATCH --gpus-per-node=N, so it is "
            "empty here: use $SLURM_GPUS_ON_NODE or the number")


def _time_reading(value: Any, bare: bool = False) -> str:
    """How Slurm reads a time: `` (3 minutes: Slurm reads M:SS)`` / ``00:30:00 (30 minutes)``."""
    from ..spec.units import parse_time
    try:
        seconds = parse_time(str(value))
    except ValueError:
        return str(value) if bare else ""
    h, rest = divmod(seconds, 3600)
    m, sec = divmod(rest, 60)
    parts = [f"{h} hour{'s' * (h != 1)}" if h else "", f"{m} minute{'s' * (m != 1)}" if m else "",
             f"{sec} second{'s' * (sec != 1)}" if sec else ""]
    spoken = " ".join(p for p in parts if p) or "0"
    if bare:
        return f"{format_time(seconds)} ({spoken})"
    form = {1: "M", 2: "M:SS"}.get(str(value).count(":") + 1, "") if "-" not in str(value) else ""
    return f" ({spoken}: Slurm reads {form})" if form else ""   # H:MM:SS and D-H… need no explanation


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
            unread = "\n".join(str(x) for x in getattr(model, "extra", ()) or ())
            assigned = dict(re.findall(r"(?m)^\s*([A-Za-z_]\w*)=[\"']?([^\"'\s]*)", unread))
            exported = set(re.findall(r"(?m)^\s*export\s+([A-Za-z_]\w*)\s*$", unread))
            for p in _compare_env(have, want, spec.info.flag or spec.info.label):
                name = p.split(" ", 1)[0]
                if name in assigned and name in exported and any(e.name == name and e.value == assigned[name]
                                                                 for e in want):
                    continue   # NAME=value, then export NAME
                if name in assigned and "is not set" in p:
                    p = (f"{name} is assigned but not exported, so programs in the container do not see it: "
                         f"write `export {name}=…`")
                out.append(p)
            continue
        if isinstance(want, Spec) and isinstance(have, Spec):
            out += compare_models(have, want, prefix=f"{key}: ", extra_binds_ok=extra_binds_ok)
            continue
        job = getattr(model, "job", None)
        if key.endswith("nproc_per_node") and str(have) in ("gpu", "auto"):
            gpus = getattr(job, "gpus_on_each_node", None)
            have = str(gpus) if gpus else have   # torchrun: one worker per visible GPU
        gpus_variable = key.endswith("nproc_per_node") and norm_text(have) == "$SLURM_GPUS_PER_NODE"
        if gpus_variable and _gpus_variable(job):
            have = str(_gpus_variable(job))   # sbatch sets it to N for --gpus-per-node=N
        if same(key, have, want):
            continue
        what = _describe_key(key, spec)
        wanted = want.wanted if isinstance(want, Matcher) else _show(want)
        literal = _literal(have)
        if literal and same(key, literal, want):
            out.append(f"{what} is '{literal}' in single quotes: " + _QUOTE_HINT)
        elif gpus_variable:
            out.append(f"{what} is $SLURM_GPUS_PER_NODE: {_gpus_variable_reason(job)}")
        elif key == "sweep_option":
            out.append(f"the program gets each value with {have or '(no option)'}; the task asks for {wanted} VALUE")
        elif key == "srun.ntasks_per_node" and have not in (None, ""):
            out.append(f"srun starts {have} task(s) on each node; the task asks for {wanted} "
                       f"(srun --ntasks-per-node={wanted})")
        elif key == "gpus_per_node":
            out.append(f"the job gets {have or 0} GPU(s) per node; the task asks for {wanted} "
                       f"(#SBATCH --gres=gpu:{want if not isinstance(want, Matcher) else 'N'})")
        elif isinstance(want, bool) and spec is not None and spec.info.flag:
            out.append(f"add {what}" if want else f"remove {what}")
        elif key.rsplit(".", 1)[-1] == "time" and not isinstance(want, Matcher):
            out.append(f"{what} is {_show(have)}{_time_reading(have)}; "
                       f"the task asks for {_time_reading(want, bare=True)}")
        else:
            out.append(f"{what} is {_show(have)}; the task asks for {wanted}")
    return out


def check_script(answer: Any, expected: Mapping[str, Any], *, task: str = "", profile: Any = None,
                 lint_severities: Sequence[str] = ("error",), lint_codes: Sequence[str] = (),
                 extra_binds_ok: bool = True, success: str = "") -> Any:
    """Check a job script (text or a Workflow) by its properties and the linter.

    ``expected`` maps dotted paths to wanted values: SlurmJob fields directly (``partition``,
    ``time``, ``mem``), layers with a prefix (``srun.ntasks_per_node``, ``container.nv``,
    ``launcher.nproc_per_node``), plus ``gpus_per_node`` (however requested) and ``runtime``.
    Values may be :class:`Matcher` objects (:func:`contains`, :func:`pinned`, :func:`one_of` …).
    Findings of the given severities (errors by default) fail the check too, and so do findings whose
    code is in ``lint_codes`` whatever their severity (``("HPC409",)`` when the task asks the script to
    load the site's Apptainer module). A step option whose ``$NAME`` single quotes keep literal fails it,
    and so does, with a ``profile``, an Apptainer command under a name the site does not have
    (``apptainer exec`` where the profile's ``apptainer_binary`` is ``singularity``).
    Returns the workflow.
    """
    workflow, text = read_script_answer(answer, task)
    problems = check_properties(workflow, expected, task=task, extra_binds_ok=extra_binds_ok)
    problems += _quoted_in_step(workflow, skip=expected)
    problems += _unset_in_step(workflow, text)
    notes = _lint_notes(text, profile, lint_severities, lint_codes)
    if not any(" HPC414 " in f" {n} " for n in notes):   # the wrong container program, unless the linter says it
        problems += _site_program_problems(workflow, profile)
    # one explanation per mistake: the linter's, where it has one
    problems = [p for p in problems if not _explained(p, notes)] + [f"the linter says: {n}" for n in notes]
    if problems:
        raise AnswerError(problems, task)
    passed(success or (f"{task}: correct" if task else "the script does what the task asks"))
    return workflow


def _explained(problem: str, notes: list[str]) -> bool:
    flags = re.findall(r"--[a-z][a-z-]+", problem)
    return bool(flags) and any(all(fl in n for fl in flags[:1]) for n in notes)


#: the model kinds that render to a build file, checked with the build-file lint rules
BUILD_FILE_KINDS = ("apptainer.def", "dockerfile")


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
    if getattr(model, "kind", "") in BUILD_FILE_KINDS and not problems:
        # a definition file or Dockerfile: the build-file rules' errors (a secret in the image, pip --user into
        # the build's home …) fail an answer the properties alone would pass
        from ..lint import lint
        problems += [f"{f.code}: {f.message}" for f in lint(model) if f.severity == "error"]
    if problems:
        raise AnswerError(problems, task)
    passed(success or (f"{task}: correct" if task else "correct"))
    return model


#: ssh options that take a value (``ssh -p 22``, ``-p22``)
_SSH_WITH_VALUE = set("BbcDEeFIiJLlmOopQRSWw")


def _ssh_options(words: Sequence[str], i: int, switches: set[str],
                 values: dict[str, list[str]]) -> tuple[int, bool]:
    """Read the ssh options from ``words[i]`` on into ``switches`` and ``values``, the way ssh's getopt
    reads them (``-NfL 8888:n1:1`` is ``-N -f -L 8888:n1:1``); (the index of the first operand, whether
    ``--`` ended the options)."""
    while i < len(words) and words[i].startswith("-") and words[i] != "-":
        w = words[i]
        if w == "--":
            return i + 1, True
        j = 1
        while j < len(w):
            letter = w[j]
            if letter in _SSH_WITH_VALUE:
                value = w[j + 1:] or (words[i + 1] if i + 1 < len(words) else "")
                if not w[j + 1:]:
                    i += 1
                values.setdefault(letter, []).append(value)
                break
            switches.add(letter)
            j += 1
        i += 1
    return i, False


def _ssh_argv(words: Sequence[str]) -> tuple[set[str], dict[str, list[str]], list[str]]:
    """(switches, options with their values, destination and command words) of an ssh command line.

    Like OpenSSH, options are read again after the destination (``ssh HOST -N -L …``): ssh.c restarts
    getopt there, and only the words from the first operand after that on are the remote command.
    """
    switches: set[str] = set()
    values: dict[str, list[str]] = {}
    i, ended = _ssh_options(words, 1, switches, values)
    if i >= len(words):
        return switches, values, []
    dest = words[i]
    command_at = i + 1 if ended else _ssh_options(words, i + 1, switches, values)[0]
    return switches, values, [dest, *words[command_at:]]


def _host_is(host: str, name: str) -> bool:
    """``n1`` and its fully qualified ``n1.cluster.example.edu`` are the same host."""
    return host == name or host.startswith(name + ".") or name.startswith(host + ".")


def _login_user_note(written: str, login_host: str, user: str = "") -> str:
    """A warning for a tunnel that logs in to the login host as the laptop's user: no ``USER@`` (nor ``-l``), or
    ``$USER``, which the laptop's shell expands to the laptop's name. It works where the names agree or the
    laptop's ``~/.ssh/config`` sets ``User`` for the host, which a check cannot see, so it is a note, not a failure:
    elsewhere the login is refused at once ('Permission denied'), with the fix in view."""
    if written and written not in ("$USER", "${USER}"):
        return ""
    name = user if user and user not in ("$USER", "${USER}") else "NAME"
    how = "names no user" if not written else "names $USER, which your laptop's shell expands to your laptop's user name"
    return (f"  note: the command {how}, so ssh logs in to {login_host} as your laptop's user; on most clusters your "
            f"user name there is another one: write {name}@{login_host} with your cluster user name (the tunnel line "
            "in the job's log shows it), unless ~/.ssh/config sets User for that host")


def check_tunnel(answer: str, *, node: str, port: int | str, login_host: str, user: str = "",
                 local_port: int | str | None = None, task: str = "", success: str = "") -> None:
    """Check an ``ssh -N -L LOCAL:NODE:PORT USER@LOGIN`` tunnel command.

    Also right: bundled switches (``-NL``, ``-fN``), a bind address (``-L localhost:8888:NODE:PORT``),
    the user as ``-l USER``, extra ssh options (``-o``, ``-i``, ``-p``), the node's full name, and a jump
    through the login host to the node (``ssh -N -J LOGIN -L 8888:localhost:PORT NODE``). A login to the login host
    as the laptop's user (no ``USER@``, or ``$USER``) passes with a note (:func:`_login_user_note`).
    """
    import shlex
    if _empty(answer):
        raise AnswerError(["the answer is empty: write the ssh command you run on your laptop"], task)
    try:
        words = shlex.split(command_text(answer))
    except ValueError as exc:
        raise AnswerError([f"the command cannot be read: {exc}"], task) from None
    except AnswerError as exc:
        raise AnswerError(exc.problems, task) from None
    if not words or words[0] != "ssh":
        raise AnswerError(["a tunnel is an ssh command run on your laptop: ssh -N -L …"], task)
    switches, values, rest = _ssh_argv(words)
    dest = rest[0] if rest else ""
    dest_user, _, dest_host = dest.rpartition("@")
    dest_user = dest_user or (values.get("l") or [""])[-1]
    jumps = [h.rpartition("@")[2].rpartition(":")[0] or h.rpartition("@")[2]
             for v in values.get("J", []) for h in v.split(",")]
    via_jump = _host_is(dest_host, node) and any(_host_is(j, login_host) for j in jumps)
    problems: list[str] = []
    forwards = values.get("L", [])
    if not forwards:
        other = "-R forwards the other way (from the server to your laptop); " if "R" in values else ""
        problems.append(f"there is no -L LOCAL:NODE:PORT forward: {other}add -L 8888:NODE:PORT")
    parsed = []
    for fwd in forwards:
        parts = fwd.split(":")
        if len(parts) == 4:   # bind_address:port:host:hostport
            parts = parts[1:]
        parsed.append((fwd, parts))
    if local_port is not None:   # judge the forward for the laptop's port, if there is one
        parsed.sort(key=lambda p: not (len(p[1]) == 3 and p[1][0] == str(local_port)))
    for fwd, parts in parsed[:1]:
        if len(parts) != 3:
            problems.append(f"-L {fwd}: write LOCAL_PORT:COMPUTE_NODE:NODE_PORT")
            continue
        lp, host, rp = parts
        if via_jump:
            if not (host in ("localhost", "127.0.0.1") or _host_is(host, node)):
                problems.append(f"the forward goes to {host}; the server runs on {node} (localhost, seen from {node})")
        elif host in ("localhost", "127.0.0.1"):
            problems.append(f"-L {fwd} forwards to the login node itself; JupyterLab runs on the compute node "
                            f"{node}: use {lp}:{node}:{port}")
        elif not _host_is(host, node):
            problems.append(f"the forward goes to {host}; the server runs on {node}")
        if str(rp) != str(port):
            problems.append(f"the server listens on port {port} on the node, not {rp}")
        if local_port is not None and str(lp) != str(local_port):
            problems.append(f"the local end is {lp}; the task uses port {local_port} on your laptop")
    if "N" not in switches:
        problems.append("add -N: the tunnel needs no remote shell (without it ssh also logs you in)")
    want_dest = f"{user}@{login_host}" if user else login_host
    if not via_jump and not _host_is(dest_host, login_host):
        problems.append(f"ssh goes to {dest or '(nothing)'}; connect to the login host {want_dest} "
                        "(your laptop cannot reach compute nodes directly)")
    elif user and dest_user and dest_user not in (user, "$USER", "${USER}"):
        problems.append(f"the user name is {dest_user}; use {user}")
    if len(rest) > 1:
        problems.append(f"{' '.join(rest[1:])!r} after the host is a remote command; a tunnel runs none (-N)")
    if problems:
        raise AnswerError(problems, task)
    passed(success or "the tunnel command is right")
    hop_user = next((h.rpartition("@")[0] for v in values.get("J", []) for h in v.split(",")
                     if _host_is(h.rpartition("@")[2].partition(":")[0], login_host)), "") if via_jump else dest_user
    note = _login_user_note(hop_user, login_host, user)
    if note:
        print(note)


__all__ = ["AnswerError", "Matcher", "absent", "at_least", "check_bind", "check_command", "check_model",
           "check_properties", "check_script", "check_tunnel", "compare_binds", "compare_models", "contains",
           "norm_path", "norm_program", "norm_ref", "norm_text", "one_host", "one_of", "passed", "pinned",
           "read_command", "read_script_answer", "same"]
