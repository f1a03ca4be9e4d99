"""The linter: job scripts, build files and models → findings, from a catalogue of real mistakes.

Each rule is a function registered with :func:`rule`, carrying its own metadata (code, severity,
summary, why it matters, how to fix it, a failing and a passing example). ``docs/rules.md`` is
generated from that metadata and the tests run every rule's examples.

A rule checks job scripts (``kind="script"``, the catalogue) or build files (``kind="build"``: Apptainer
definition files, Dockerfiles and Containerfiles, :mod:`hpcwidgets.lint.buildfile`); :func:`lint` tells
them apart by the file's name or first line and runs only the rules of that kind.

Severities are honest: ``error`` means the job fails, hangs or silently does the wrong thing;
``warning`` means risky or wasteful; ``info`` is advice. A correct script has no warnings.

Suppress a finding with a comment: ``# hpcw: disable=HPC101`` at the end of the line (or on the
line before, alone), ``# hpcw: disable-file=HPC101,HPC209`` anywhere for the whole file.
"""

from __future__ import annotations

import importlib

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

SEVERITIES = ("error", "warning", "info")
#: what a rule checks: job scripts, or build files (definition files, Dockerfiles)
KINDS = ("script", "build")


@dataclass(frozen=True)
class Fix:
    """A mechanical fix: replace lines ``start``–``end`` (or the command within them) with the corrected step.

    ``words`` is the corrected command as an argument vector in the value language (the fix
    applier quotes it through the render layer); ``text`` replaces the lines as written instead,
    when the fix is plain text. ``before`` are lines to insert above (e.g. the head-node line).
    """

    description: str
    start: int
    end: int
    words: tuple[str, ...] = ()
    text: str | None = None
    before: tuple[str, ...] = ()
    groups: tuple[int, ...] = ()   # word indexes where a continuation line may start (layer boundaries)
    #: 1-based columns of the command within its first and last line; what lies outside them (``exec``,
    #: ``cd x &&``, ``> log 2>&1``, ``| tee log``, a comment) stays as written. (0, 0): the whole lines
    cols: tuple[int, int] = (0, 0)

    def to_dict(self) -> dict[str, Any]:
        return {"description": self.description, "start_line": self.start, "end_line": self.end}


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    line: int
    message: str
    fix: Fix | None = None
    path: str = ""

    def format(self) -> str:
        """``path:line: severity CODE message`` (like a compiler)."""
        return f"{self.path or '<stdin>'}:{self.line}: {self.severity} {self.code} {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON: its rule's name rides along (``rule``), so a reader of the output can tell what a
        code means without the catalogue at hand (``hpcwidgets lint --explain CODE`` says the rest)."""
        known = _RULES.get(self.code)
        return {"path": self.path, "line": self.line, "code": self.code, "rule": known.name if known else "",
                "severity": self.severity, "message": self.message, "fix": self.fix.to_dict() if self.fix else None}


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: str
    summary: str
    why: str
    fix: str
    bad: str
    good: str
    catalogue: tuple[int, ...] = ()
    profile: str = ""                   # profile name the examples need ("" = none)
    kind: str = "script"                # "script" (job scripts) or "build" (build files)
    check: Callable[["Context"], Iterable[Finding]] = field(default=lambda ctx: (), repr=False, compare=False)


_RULES: dict[str, Rule] = {}


def rule(code: str, name: str, severity: str, *, summary: str, why: str, fix: str, bad: str, good: str,
         catalogue: tuple[int, ...] = (), profile: str = "",
         kind: str = "script") -> Callable[[Callable[..., Iterable[Any]]], Callable[..., Iterable[Any]]]:
    """Register a rule. The decorated function yields ``(line, message)`` or ``(line, message, Fix)``."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")

    def wrap(fn: Callable[..., Iterable[Any]]) -> Callable[..., Iterable[Any]]:
        if code in _RULES:
            raise ValueError(f"rule code {code} is registered twice")
        if getattr(getattr(fn, "__code__", None), "co_argcount", 1) != 1:
            # a helper written between @rule(…) and the rule's function would be registered in its place
            raise TypeError(f"rule {code}: {fn.__name__} must take the context alone, (ctx)")

        def check(ctx: "Context") -> Iterator[Finding]:
            for item in fn(ctx):
                line, message, *rest = item
                yield Finding(code, severity, max(int(line), 1), message, rest[0] if rest else None, ctx.path)
        _RULES[code] = Rule(code, name, severity, summary, why, fix, bad, good, catalogue, profile, kind, check)
        return fn
    return wrap


#: the modules that hold the rules, by topic (importing one registers its rules); they share the helpers of
#: :mod:`hpcwidgets.lint.catalogue`, which imports none of them, so each can also be imported on its own
RULE_MODULES = ("launch", "container_rules", "directives", "profile_rules", "shell", "parallel_steps", "jupyter",
                "environment", "network", "devices", "other_runtimes", "step_program", "variable_names", "submitted",
                "buildfile")


def rules() -> dict[str, Rule]:
    """Every rule, by code (importing the rule modules on first use)."""
    global _loaded
    if not _loaded:
        for name in RULE_MODULES:
            importlib.import_module(f"{__name__}.{name}")
        _loaded = True
    return dict(sorted(_RULES.items()))


_loaded = False


@dataclass
class Context:
    """What a rule sees: the parsed script (or build file) and, when given, the cluster profile."""

    parsed: Any            # hpcwidgets.parse.script.ParsedScript (hpcwidgets.lint.buildfile.BuildFile)
    profile: Any = None    # hpcwidgets.spec.profile.ClusterProfile | None
    path: str = ""
    #: the script exactly as given (Windows line ends, a byte-order mark); ``parsed`` reads it with
    #: ``\r\n`` as ``\n`` and without the mark, so line numbers are the same
    text: str = ""

    @property
    def job(self) -> Any:
        return self.parsed.job

    @property
    def steps(self) -> Any:
        """The launch steps as bash runs them: a launch held in a variable (``srun $CMD``) is read through it."""
        return self.parsed.steps_as_run


def lint(source: Any, profile: Any = None, *, path: str = "", select: str | Iterable[str] = (),
         ignore: str | Iterable[str] = ()) -> list[Finding]:
    """Findings for a script (text), a parsed script, or a model that renders to one.

    Text that is a build file (a ``*.def``, ``Dockerfile*`` or ``Containerfile*`` ``path``, or text starting
    with a ``Bootstrap:`` header or ``FROM``) is checked with the build-file rules only; anything else with
    the job-script rules only. ``profile`` is a :class:`~hpcwidgets.spec.profile.ClusterProfile` or a
    profile name. ``select`` and ``ignore`` take rule codes as the CLI's ``--select``/``--ignore`` do (a list,
    or text such as ``"HPC101,HPC102"``; any case): an unknown code is an error, not a rule silently left out.
    Text that cannot be parsed gives one ``HPC000`` error finding at its line instead of an exception; a
    ``source`` that is not a script (a file's path, bytes, None) is an :class:`~hpcwidgets.errors.HpcWidgetsError`
    saying what to pass instead.
    """
    from ..errors import HpcWidgetsError, ParseError
    from ..parse import script_text_problem
    from ..parse.buildfiles import build_file_format
    from ..parse.script import ParsedScript, read_script
    from ..spec._meta import Spec
    from .buildfile import read_build_file
    wanted = rule_codes(select, "select")
    skipped = rule_codes(ignore, "ignore")
    if isinstance(profile, str):
        from ..profiles import load_profile
        profile = load_profile(profile)
    form = ""
    if isinstance(source, ParsedScript):
        parsed = source
        text = parsed.source
    else:
        if not isinstance(source, (str, Spec)):
            raise HpcWidgetsError(script_text_problem(source, "lint()", models=True, cli="hpcwidgets lint FILE"))
        text = source if isinstance(source, str) else _model_text(source)
        form = build_file_format(text, path)
        try:
            parsed = read_build_file(text, form, path) if form else read_script(_shell_text(text), path)
        except ParseError as exc:
            if form:
                what = {"apptainer": "definition file", "docker": "Dockerfile"}[form]
                return [Finding("HPC000", "error", max(exc.line, 1), f"cannot read the {what}: {exc.message}", None,
                                path)]
            return _directives_of_unreadable(text, exc, profile, path, wanted, skipped)
    kind = "build" if form else "script"
    chosen = [r for code, r in rules().items()
              if r.kind == kind and (not wanted or code in wanted) and code not in skipped]
    ctx = Context(parsed, profile, path, text)
    out = _run(chosen, ctx)
    if kind == "build":
        # lines the builders refuse though the rest reads (a SHELL that is not JSON): the rules checked the rest
        out += [Finding("HPC000", "error", line, f"the {what} cannot be built: {message}", None, path)
                for line, message in parsed.refused
                for what in [{"apptainer": "definition file", "docker": "Dockerfile"}[parsed.format]]]
    if kind == "script" and (parsed.split_steps is not None or parsed.held_commands):
        as_written = dataclasses.replace(parsed, split_steps=None, held_commands=())
        written = _run(chosen, Context(as_written, profile, path, text))
        out = _read_through_variables(parsed, out, written)
    if kind == "script":
        out = _in_the_scripts_spelling(parsed, out)
        out = _no_lines_into_chains(parsed, out)
        out += _submitted_findings(ctx, wanted, skipped, {f.line for f in out if f.code == "HPC542"})
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(out, key=lambda f: (f.line, order[f.severity], f.code))


def _submitted_findings(ctx: Context, wanted: frozenset[str], skipped: frozenset[str], early: set[int]) -> list[Finding]:
    """The findings of each job script ``ctx``'s script writes as a here-document and submits (``sbatch <<EOF``, ``cat >
    job.sh <<EOF`` then ``sbatch job.sh``; :mod:`hpcwidgets.lint.submitted`), checked as the text sbatch reads, at
    the script's own lines; what the options on sbatch's command line make of it is reported at the sbatch's line.
    A fix is kept where the lines reach sbatch as written (a quoted delimiter, no ``<<-``, no options added).
    On an #SBATCH line where the submitting shell puts in a value lint cannot know (``--time=$1``), the checks of the
    directives' values (:data:`_DIRECTIVE_GROUPS`) are left out: sbatch reads that value, not the ``$``. On a line
    of ``early`` (HPC542: the submitting shell fills in a job variable), HPC502's word about the batch shell is left
    out: HPC542 tells when it really happens. Line numbers a message names are the script's too."""
    from .submitted import Submitted, job_text, submitted_scripts
    parsed, profile, path = ctx.parsed, ctx.profile, ctx.path
    out: list[Finding] = []
    subs: tuple[Submitted, ...] = submitted_scripts(ctx)  # found once: HPC542-544 read the same (cached on ctx)
    for sub in subs:
        job = job_text(parsed, sub)
        shift = sub.start - 1
        keep_fix = not sub.expands and not sub.strip_tabs and not job.count

        def at(n: int, sub: Any = sub, job: Any = job) -> int:
            """The driver's line for line ``n`` of the job script: an option of sbatch's command line is its line."""
            return sub.sbatch_line if job.from_options(n) else sub.start - 1 + job.body_line(n)
        for f in lint(job.text, profile, path=path, select=wanted, ignore=skipped):
            if f.line in job.unknown and f.code.startswith(_DIRECTIVE_GROUPS):
                continue
            line = at(f.line)
            if f.code == "HPC502" and line in early:
                continue
            if parsed.is_suppressed(f.code, line):
                continue
            fix = dataclasses.replace(f.fix, start=f.fix.start + shift, end=f.fix.end + shift) \
                if f.fix is not None and keep_fix else None
            message = _LINE_NUMBERS.sub(lambda m: m.group(1) + re.sub(r"\d+", lambda n: str(at(int(n.group()))),
                                                                      m.group(2)), f.message)
            # said first: a message about "this script" means the job script, not the driver it is read from
            out.append(dataclasses.replace(f, line=line, message=f"in {sub.where}: {message}", fix=fix))
    return out


#: line numbers a message names: "line 4", "lines 4, 7 and 9", "lines 4-6"
_LINE_NUMBERS = re.compile(r"\b(lines? )(\d+(?:(?:, | and |-|–)\d+)*)")


#: the rule groups that judge the #SBATCH lines alone, against each other and against the cluster profile
#: (HPC3xx: directives, HPC4xx: profile), and HPC536, which also finds a template's placeholder in them; a rule of
#: theirs that reads the commands finds none and stays silent
_DIRECTIVE_GROUPS = ("HPC3", "HPC4", "HPC536")


def _directives_of_unreadable(text: str, exc: Any, profile: Any, path: str, wanted: frozenset[str],
                              skipped: frozenset[str]) -> list[Finding]:
    """Findings for a job script whose shell code cannot be read (``srun prog <options>``, a template's placeholder
    left in): the ``HPC000`` error, and what the rules of :data:`_DIRECTIVE_GROUPS` find in its ``#SBATCH`` lines,
    which sbatch reads whatever the code below them says. The rules about the commands cannot run."""
    from ..parse.script import read_script
    problem = Finding("HPC000", "error", max(exc.line, 1),
                      f"cannot read the script: {exc.message}; until it reads, only its #SBATCH lines are checked "
                      "(rules HPC3xx, HPC4xx and HPC536), not its commands", None, path)
    chosen = [r for code, r in rules().items() if r.kind == "script" and code.startswith(_DIRECTIVE_GROUPS)
              and (not wanted or code in wanted) and code not in skipped]
    # every line but the comments (#!, #SBATCH) and blank ones becomes the no-op ":", so the line numbers stay;
    # a comment is what bash reads as one: "#" after blanks only (a carriage return before it makes a word)
    kept = [line if not line.strip(" \t") or line.lstrip(" \t").startswith("#") else ":"
            for line in _readable(text).split("\n")]
    parsed = read_script("\n".join(kept), path)
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted([problem, *_run(chosen, Context(parsed, profile, path, text))],
                  key=lambda f: (f.line, order[f.severity], f.code))


#: letters typed for the digits they look like, in a rule code's number
_LOOKALIKES = str.maketrans("OIL", "011")
#: a group of rules named by the start of their codes: HPC1 (network and launch), HPC20 (HPC200-HPC209)
_GROUP = re.compile(r"HPC\d{1,2}")


def _nearest_code(code: str) -> str:
    """The rule code ``code`` was most likely meant to be ("" when none is near)."""
    import difflib
    known = rules()
    # a letter typed for a digit (HPC1O1) first: difflib alone rates HPC511 as near as HPC101
    digits = code[:3] + code[3:].translate(_LOOKALIKES)
    return digits if digits in known else next(iter(difflib.get_close_matches(code, known, n=1, cutoff=0.8)), "")


def rule_codes(codes: str | Iterable[str], option: str = "select") -> frozenset[str]:
    """The rule codes ``codes`` names, upper-cased: comma- or space-separated text (``"HPC101,hpc102"``, as
    ``--select`` takes them) or an iterable of codes. The start of a code names its group (``HPC2``: every HPC2xx
    rule; ``HPC20``: HPC200-HPC209). An unknown code raises
    :class:`~hpcwidgets.errors.HpcWidgetsError` naming it (and the closest code), with ``option`` saying where it
    was given: a misspelt code would otherwise switch the check off without a word."""
    from ..errors import HpcWidgetsError
    if not codes:
        return frozenset()
    items = re.split(r"[\s,]+", codes) if isinstance(codes, str) else codes
    try:
        given = list(items)
    except TypeError:
        raise HpcWidgetsError(f"{option}: expected rule codes (a list, or text such as \"HPC101,HPC102\"), "
                              f"got {type(codes).__name__}") from None
    if not all(isinstance(c, str) for c in given):
        wrong = next(c for c in given if not isinstance(c, str))
        raise HpcWidgetsError(f"{option}: expected rule codes as text (\"HPC101\"), got {wrong!r}")
    chosen: set[str] = set()
    known = rules()
    unknown = []
    for code in (c.strip().upper() for c in given if c.strip()):
        group = {k for k in known if k.startswith(code)} if _GROUP.fullmatch(code) else set()
        if code == "HPC000":
            raise HpcWidgetsError(f"{option}: HPC000 is not a rule to choose: it is the finding for a file that cannot "
                                  "be read (a quote left open, a Dockerfile Docker refuses, a placeholder bash cannot "
                                  "parse), given whatever is selected or ignored, since no rule can check such a file; "
                                  "fix the line it names, and give the other codes without it (`hpcwidgets lint "
                                  "--list-rules` lists the rules)")
        if code in known:
            chosen.add(code)
        elif group:
            chosen |= group  # HPC2 is every HPC2xx rule, as linters take a code's prefix for its group
        else:
            unknown.append(code)
    if unknown:
        near = [m for m in map(_nearest_code, unknown) if m]
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        example = "hpcwidgets lint --select HPC101,HPC2" if option.startswith("-") else 'select=["HPC101", "HPC2"]'
        raise HpcWidgetsError(f"{option}: unknown rule code {', '.join(sorted(unknown))}{hint}; give codes or "
                              f"their groups ({example}: HPC2 is every HPC2xx rule); `hpcwidgets lint --list-rules` "
                              "lists them")
    return frozenset(chosen)


def _run(chosen: list[Rule], ctx: Context) -> list[Finding]:
    """The findings of the ``chosen`` rules on ``ctx``, less those its script switches off."""
    return [f for r in chosen for f in r.check(ctx) if not ctx.parsed.is_suppressed(f.code, f.line)]


def _no_lines_into_chains(parsed: Any, findings: list[Finding]) -> list[Finding]:
    """Findings whose fix would put a line above a command that continues ``&&``, ``||`` or ``|`` from the line
    before (``cd "$RUN" && \\`` then ``srun …``) carry no fix: the new line would take the command's place in the
    chain, and the step would then run even when the ``cd`` failed."""
    chained = _chain_continuations(parsed)
    if not chained:
        return findings
    return [dataclasses.replace(f, fix=None) if f.fix is not None and f.fix.start in chained and _inserts_above(parsed, f.fix)
            else f for f in findings]


def _chain_continuations(parsed: Any) -> set[int]:
    """The lines where a command starts that an earlier line's ``&&``, ``||`` or ``|`` joins to the one before."""
    from ..parse.lexer import LIST_OPERATORS, compound_body
    out: set[int] = set()

    def walk(commands: Any) -> None:
        previous = None
        for cmd in commands:
            if not cmd.is_code:
                continue
            if previous is not None and previous.joined_by in LIST_OPERATORS and previous.line < cmd.line:
                out.add(cmd.line)
            previous = cmd
            if cmd.kind == "compound":
                walk(compound_body(cmd))
    walk(parsed.lexed.code)
    return out


def _inserts_above(parsed: Any, fix: Fix) -> bool:
    """Whether a fix puts new lines above the lines it keeps (``before``, or a text that ends with them)."""
    if fix.before:
        return True
    if fix.text is None:
        return False
    kept = parsed.lines[fix.start - 1:fix.end]
    new = fix.text.split("\n")
    return len(new) > len(kept) and new[len(new) - len(kept):] == kept


def _read_through_variables(parsed: Any, findings: list[Finding], written: list[Finding]) -> list[Finding]:
    """Findings that only reading a launch through its variable gives (``srun $CMD`` with the launch in
    ``CMD``; not in ``written``, the findings on the steps as written) say where that launch is written, and
    carry no fix: a fix rebuilt from the variable's words would rewrite the step's line, where they are not."""
    held: dict[int, tuple[tuple[str, int], ...]] = {}
    for step in (*(parsed.split_steps or ()), *parsed.held_commands):
        for line in range(step.line, step.end_line + 1):
            held[line] = held.get(line, ()) + step.through
    seen = {(f.code, f.line, f.message) for f in written}
    out = []
    for f in findings:
        refs = held.get(f.line)
        if refs and (f.code, f.line, f.message) not in seen:
            named = " and ".join(f"{raw} (set on line {line})" for raw, line in dict(refs).items())
            f = dataclasses.replace(f, message=f"{f.message} [the launch is read from {named}]", fix=None)
        out.append(f)
    return out


def _in_the_scripts_spelling(parsed: Any, findings: list[Finding]) -> list[Finding]:
    """Findings on a launch whose torchrun options are written with underscores (``--nproc_per_node``, all that
    PyTorch 1.x reads) name the options that way too, in their messages and fix descriptions, as the fixes write
    them: advice to use ``--nproc-per-node=4`` would break such a job."""
    spelled: dict[int, dict[str, str]] = {}
    for step in parsed.steps_as_run:
        launcher = step.chain.launcher
        table = launcher._spelled() if launcher is not None and hasattr(launcher, "_spelled") else {}
        if table:
            for line in range(step.line, step.end_line + 1):
                spelled[line] = table
    if not spelled:
        return findings
    out = []
    for f in findings:
        table = spelled.get(f.line)
        if table:
            fix = dataclasses.replace(f.fix, description=_respell(f.fix.description, table)) if f.fix else None
            f = dataclasses.replace(f, message=_respell(f.message, table), fix=fix)
        out.append(f)
    return out


def _respell(text: str, table: dict[str, str]) -> str:
    """``text`` with each flag of ``table`` (``--nproc-per-node``) written as ``table`` spells it."""
    pattern = "|".join(re.escape(flag) + r"(?![\w-])" for flag in sorted(table, key=len, reverse=True))
    return re.sub(pattern, lambda m: table[m.group(0)], text)


def _readable(text: str) -> str:
    """The script as bash would read it had it been saved properly: ``\\r\\n`` as ``\\n`` and without a
    UTF-8 byte-order mark before its ``#!`` line (the rules see the original in ``Context.text`` and
    report both; HPC314, HPC315)."""
    if text.startswith("\ufeff#!"):
        text = text[1:]
    return text.replace("\r\n", "\n") if "\r" in text else text


def _shell_text(text: str) -> str:
    """The script as the job-script rules read it (:func:`_readable`), up to where bash stops reading it (a
    top-level ``exec PROGRAM`` or ``exit``); of a script in another language (a Python, R or csh job script), only
    what sbatch reads: its ``#!`` and ``#SBATCH`` lines (the rest is not shell)."""
    from ..parse.script import directives_only, reachable_text, runs_in_a_shell
    text = _readable(text)
    return reachable_text(text) if runs_in_a_shell(text) else directives_only(text)


def _model_text(model: Any) -> str:
    from ..render import render
    return render(model, validate=False)


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def rules_markdown() -> str:
    """The rule catalogue as Markdown (``docs/rules.md`` is this text)."""
    out = ["# Lint rules", "",
           "Generated from the rules' own metadata by `hpcwidgets.lint.rules_markdown()`; do not edit by hand.",
           "Refresh with `python -m hpcwidgets.lint.docs > docs/rules.md`.", "",
           "Severities: **error**: the job fails, hangs or silently does the wrong thing; **warning**: risky or "
           "wasteful; **info**: advice. Suppress one finding with `# hpcw: disable=CODE` at the end of its line "
           "(or alone on the line before), or a whole file with `# hpcw: disable-file=CODE`. A script read back "
           "with `--from` keeps the codes it switches off out of the check of the script written from it.", "",
           "The HPC7xx rules check build files (Apptainer definition files `*.def`, `Singularity`, `Singularity.<tag>`, "
           "`Dockerfile*`, `Containerfile*`, "
           "or text starting with `Bootstrap:` or `FROM`) and only those; the other rules check job scripts. "
           "`hpcwidgets lint` tells them apart by the file's name or first line. Build-file rules have no "
           "mechanical fixes. A job script sbatch runs with another interpreter (`#!/usr/bin/env python3`, `Rscript`, "
           "`julia`, `csh`) has only its `#SBATCH` lines checked, and a shell script is read up to a top-level "
           "`exec PROGRAM` or `exit` (the lines after them never run in the shell). The rules judge the job its "
           "`#SBATCH` lines ask for: a launch in an `if` branch that cannot run for it (under "
           "`[ \"$SLURM_NNODES\" -gt 1 ]` in a one-node job, or after a branch whose condition holds), in a "
           "`case \"$SLURM_NNODES\" in` item whose patterns do not match the count (or after one that does), or "
           "after such a test and `&&`, is for another size of job and is not checked; a condition on anything else "
           "(a file, a variable the job does not fix) leaves every branch checked.", "",
           "| code | severity | rule |", "|---|---|---|"]
    all_rules = rules()
    for r in all_rules.values():
        out.append(f"| [{r.code}](#{r.code.lower()}) | {r.severity} | {r.summary} |")
    for r in all_rules.values():
        fence = _fence(r.bad) if r.kind == "build" else "bash"
        out += ["", f"## {r.code}", "", f"**{r.name}** ({r.severity})", "", r.summary, "",
                f"*Why it matters:* {r.why}", "", f"*Fix:* {r.fix}", ""]
        if r.catalogue:
            out += [f"*Mistake catalogue:* item {', '.join(str(c) for c in r.catalogue)}", ""]
        if r.profile:
            out += [f"*Needs a cluster profile* (examples use `{r.profile}`).", ""]
        if "\r" in r.bad:  # a Markdown file cannot show a carriage return: ^M stands for it, as in cat -v
            out += ["Flagged (^M marks the carriage return, `\\r`, before each line end):", "", "```bash",
                    r.bad.rstrip("\n").replace("\r", "^M"), "```"]
        else:
            out += ["Flagged:", "", f"```{fence}", r.bad.rstrip(), "```"]
        out += ["", "Not flagged:", "", f"```{fence}", r.good.rstrip(), "```"]
    return "\n".join(out) + "\n"


def explain_rule(name: str) -> str:
    """A rule's whole entry as plain text (what ``hpcwidgets lint --explain CODE`` prints): its name, severity,
    why it matters, the fix and an example of each side. ``name`` is a code (any case) or a rule's name
    (``same-rank-on-every-node``); anything else raises :class:`~hpcwidgets.errors.HpcWidgetsError` naming the
    nearest one."""
    from ..errors import HpcWidgetsError
    known = rules()
    wanted = str(name).strip()
    found = known.get(wanted.upper()) or next((r for r in known.values() if r.name == wanted.lower()), None)
    if found is None:
        import difflib
        near = (_nearest_code(wanted.upper()) if wanted.upper().startswith("HPC")
                else next(iter(difflib.get_close_matches(wanted.lower(), [r.name for r in known.values()], n=1)), ""))
        hint = f" (did you mean {near}?)" if near else ""
        raise HpcWidgetsError(f"no rule {wanted!r}{hint}; `hpcwidgets lint --list-rules` lists every code and name")
    r = found
    import textwrap

    def indented(text: str) -> str:
        return "\n".join("    " + line if line else "" for line in text.rstrip("\n").replace("\r", "^M").split("\n"))
    out = [f"{r.code} {r.name} ({r.severity}{', build files' if r.kind == 'build' else ''})", "",
           *(textwrap.fill(part, 100, break_long_words=False, break_on_hyphens=False) + "\n"
             for part in (r.summary, "Why it matters: " + r.why, "Fix: " + r.fix))]
    out[-1] = out[-1].rstrip("\n")
    if r.profile:
        out += ["", f"Needs a cluster profile (the examples use --profile {r.profile})."]
    out += ["", "Flagged:", "", indented(r.bad), "", "Not flagged:", "", indented(r.good), "",
            f"Switch it off for one line with  # hpcw: disable={r.code}"]
    return "\n".join(out) + "\n"


def rule_list() -> str:
    """One line per rule: code, severity, name and summary (``hpcwidgets lint --list-rules``)."""
    known = rules().values()
    width = max(len(r.name) for r in known)
    return "".join(f"{r.code}  {r.severity:<7}  {r.name:<{width}}  {r.summary}\n" for r in known)


def _fence(example: str) -> str:
    """The Markdown code-block language of a build-file example."""
    from ..parse.buildfiles import build_file_format
    return "dockerfile" if build_file_format(example) == "docker" else "singularity"


from .._callable import make_callable as _make_callable  # noqa: E402

_make_callable(__name__, "lint")
