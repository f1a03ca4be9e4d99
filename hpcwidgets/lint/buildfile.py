"""Build files: Apptainer definition files and Dockerfiles/Containerfiles, and the rules that check them.

A build file is not a job script. Its ``%post`` section and ``RUN`` lines run once, while the image is
built, and what they write (a token too) stays in the image. So build files have their own rules, the
HPC7xx family, and the job-script rules do not run on them (nor these on a job script):
:func:`hpcwidgets.lint.lint` picks the set from the file's name or its first line
(:func:`~hpcwidgets.parse.buildfiles.build_file_format`).

:func:`read_build_file` reads a file into what the rules look at, with line numbers: its base images, its
Dockerfile ``ARG``/``ENV`` settings, and the commands of its shell text (sections and ``RUN`` lines, read
by the same bash lexer as job scripts). No rule here has a mechanical fix: which version to pin, or
where a token should come from, is the author's choice.
"""

from __future__ import annotations

import difflib
import json
import posixpath
import re
import shlex
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

from ..errors import ParseError
from ..parse.buildfiles import _STAGE, dockerfile_instructions, header_text, indented_section, section_line
from ..parse.lexer import Command, compound_body, lex_script
from ..parse.script import _SUPPRESS, launch_words
from ..spec.apptainer import ALL_DEF_SECTIONS, header_keyword_problem
from ..spec.profile import ARCH_IMAGE_HINTS, image_arches
from . import Context, rule
from .catalogue import _REGISTRY_PASSWORD, _TOKEN_NAME, _secret_message, is_literal, python_module_words
from .container_rules import arch_download_message, arch_downloads


@dataclass(frozen=True)
class Base:
    """A base image: ``From:`` under a registry bootstrap agent, or a Dockerfile ``FROM``."""

    line: int
    ref: str     # as written
    image: str   # with build arguments filled in from their defaults; "" when one has no default


@dataclass(frozen=True)
class Shell:
    """One command of the file's shell text, at its line in the file."""

    line: int
    where: str    # "%post", "RUN", "%environment" …
    cmd: Command
    build: bool   # runs inside the image while it is built (%post, %appinstall, RUN)
    posix: bool   # run by /bin/sh, which is dash (no bash syntax) on Debian and Ubuntu images
    base: str = ""      # the image the stage builds on (build arguments filled in where known), "" when unknown
    user: str = "root"  # who runs it: a Dockerfile's USER (Apptainer builds as root)
    #: the first line of its section or RUN instruction: commands with the same ``where`` and ``start`` run in one
    #: shell, so what one exports the next ones see
    start: int = 0
    #: a Dockerfile's ARG and ENV values its RUN line sees, filled in as Docker fills them (those whose value the file
    #: does not give are left out)
    variables: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Stage:
    """One stage of a Dockerfile: from its FROM line to the next one."""

    line: int
    name: str                         # its AS name, in lower case ("" for none)
    base: str                         # the image it builds on, filled in (an earlier stage's when it builds on one)
    parent: int | None                # the index of the earlier stage it builds on; None for an image
    runs: tuple[str, ...] = ()        # the text of its RUN lines
    #: its COPY --from lines, one entry per source path: ``(line, the stage or image copied from, source path)``
    copies: tuple[tuple[int, str, str], ...] = ()
    entrypoint: tuple[int, str] | None = None   # its last ENTRYPOINT: (line, text)


@dataclass(frozen=True)
class BuildFile:
    """A definition file or Dockerfile as the HPC7xx rules see it."""

    format: str   # "apptainer" or "docker"
    source: str
    path: str
    bases: tuple[Base, ...]
    commands: tuple[Shell, ...]
    #: Dockerfile ARG and ENV settings and %arguments defaults: ``(line, keyword, name, value)``, value None when
    #: none is given
    settings: tuple[tuple[int, str, str, Any], ...] = ()
    #: definition-file sections Apptainer does not read: ``(line, what is wrong and the fix)``
    unread: tuple[tuple[int, str], ...] = ()
    #: definition-file header lines Apptainer refuses (an unknown keyword, no colon):
    #: ``(line, what is wrong and the fix)``
    bad_headers: tuple[tuple[int, str], ...] = ()
    #: Dockerfile lines the builders refuse though the rest of the file reads (a SHELL whose list is not JSON):
    #: ``(line, what is wrong and the fix)``, each an HPC000 error beside what the rules find in the rest
    refused: tuple[tuple[int, str], ...] = ()
    #: a Dockerfile's stages, in order (none for a definition file)
    stages: tuple[Stage, ...] = ()
    suppressed: dict[int, frozenset[str]] = field(default_factory=dict)
    suppressed_file: frozenset[str] = frozenset()

    def is_suppressed(self, code: str, line: int) -> bool:
        return code in self.suppressed_file or code in self.suppressed.get(line, frozenset())


def read_build_file(text: str, form: str, path: str = "") -> BuildFile:
    """Read a build file (``form``: ``"apptainer"`` or ``"docker"``). :class:`ParseError` (with the line) for
    shell text bash could not read, or a Dockerfile Docker could not read."""
    lines = [line[:-1] if line.endswith("\r") else line for line in text.lstrip("\ufeff").split("\n")]
    unread: list[tuple[int, str]] = []
    bad_headers: list[tuple[int, str]] = []
    refused: list[tuple[int, str]] = []
    stages: list[Stage] = []
    if form == "apptainer":
        bases, commands, settings = _read_deffile(lines, path, unread, bad_headers)
    else:
        bases, commands, settings = _read_dockerfile(lines, path, refused, stages)
    per_line, whole = _suppressions(lines)
    return BuildFile(form, text, path, tuple(bases), tuple(commands), tuple(settings), tuple(unread),
                     tuple(bad_headers), tuple(refused), tuple(stages), per_line, whole)


# -- reading ---------------------------------------------------------------------------------

#: bootstrap agents whose From: names an image in a registry (tags move there)
_REGISTRY_AGENTS = ("docker", "library", "oras", "shub")
#: sections run inside the image while it is built (%appinstall is an app's %post)
_BUILD_SECTIONS = ("post", "appinstall")
#: sections holding shell text; everything in them is kept in the image (%arguments holds NAME=value lines, not shell)
_SHELL_SECTIONS = _BUILD_SECTIONS + ("setup", "test", "environment", "startscript", "runscript",
                                     "apprun", "appenv", "apptest", "appstart")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
#: a build argument's default that reads as one shell word wherever it is filled in (a version, a package name)
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_.,:/@%+=~-]*")
_DOCKER_REF = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
#: RUN options before the command (--mount=…, --network=…, --security=…)
_RUN_FLAGS = re.compile(r"(?:--[a-z-]+=\S+\s+)*")
#: a RUN whose command is a heredoc: Docker runs the heredoc's text
_RUN_HEREDOC = re.compile(r"<<-?([\"']?)([A-Za-z_][A-Za-z0-9_.-]*)\1[ \t]*\n(.*)\n[ \t]*\2[ \t]*", re.S)
#: bootstrap agents that build the image's system themselves, by the family they build
_AGENT_SYSTEMS = {"yum": "rhel", "dnf": "rhel", "busybox": "busybox", "debootstrap": "debian"}


def _read_deffile(lines: list[str], path: str, unread: list[tuple[int, str]], bad_headers: list[tuple[int, str]]
                  ) -> tuple[list[Base], list[Shell], list[Any]]:
    """Header ``Key: value`` lines and ``%section`` bodies of every stage, split where Apptainer splits them: a
    ``Bootstrap:`` line at the start of a line starts a stage's header, any line whose first word starts with ``%``
    a section. Sections Apptainer does not read (a misspelled name, an indented ``%`` line) go to ``unread``; their
    text is still checked as the section they were meant to be, when that is clear. Header lines it refuses (an
    unknown keyword, a line without a colon) go to ``bad_headers``."""
    headers: list[dict[str, tuple[int, str]]] = [{}]   # one per stage: keyword → (line, value)
    sections: list[tuple[int, str, str, list[str], int]] = []   # (first body line, name, options, body, stage)
    in_section = continued = False
    for n, line in enumerate(lines, start=1):
        found = section_line(line)
        if found:
            sections.append((n + 1, _section_meant(n, line, *found, unread), found[1], [], len(headers) - 1))
            in_section = True
        elif in_section and not _STAGE.match(line):
            sections[-1][3].append(line)
        else:
            if _STAGE.match(line) and "bootstrap" in headers[-1]:
                headers.append({})  # the next stage
            in_section = False
            text = header_text(line)
            key, sep, value = text.partition(":")
            if continued:
                pass  # the rest of a value whose line ended with a backslash
            elif sep:
                headers[-1].setdefault(key.strip().lower(), (n, value.strip()))
                problem = header_keyword_problem(key)
                if problem:
                    bad_headers.append((n, problem))
            elif text:
                bad_headers.append((n, f"header line {text[:30]!r} has no colon: the build stops with 'header key "
                                       f"{text.split()[0]} had no val'; write 'Keyword: value', or move it into a "
                                       "%section"))
            continued = text.endswith("\\")
    settings: list[tuple[int, str, str, Any]] = []
    for first, name, _options, body, _stage in sections:
        if name == "arguments":
            settings += _arguments(body, first)
    defaults = {name: value for _line, _op, name, value in settings}
    bases = []
    images = []   # per stage: the image it builds on, as far as it is known
    for header in headers:
        agent = header.get("bootstrap", (0, ""))[1].lower()
        ref = header.get("from", (0, ""))[1]
        image = _PLACEHOLDER.sub(lambda m: defaults.get(m.group(1), "{{"), ref)
        image = "" if "{{" in image else image
        if "from" in header and agent in _REGISTRY_AGENTS:
            bases.append(Base(header["from"][0], ref, image))
        images.append(_AGENT_SYSTEMS.get(agent, image or ref))
    commands = []
    for first, name, options, body, stage in sections:
        if name in _SHELL_SECTIONS:
            shell = re.search(r"-c\s+(\S+)", options)
            posix = shell is None or shell.group(1).rsplit("/", 1)[-1] in ("sh", "dash")
            text = _PLACEHOLDER.sub(lambda m: _filled(m.group(1), defaults), "\n".join(body))
            try:
                commands += _commands(text, first, f"%{name}", name in _BUILD_SECTIONS, posix, path, images[stage])
            except ParseError:
                if any(line == first + len(body) for line, _ in unread):
                    continue  # a '%' line Apptainer reads as a section cut it short (in a heredoc): HPC707 says so
                raise
    return bases, commands, settings


def _section_meant(n: int, line: str, name: str, _options: str, indented: bool,
                   unread: list[tuple[int, str]]) -> str:
    """The section a ``%`` line starts, as far as it is clear (``%enviroment`` means %environment); a line
    Apptainer cannot read is noted in ``unread`` with what is wrong."""
    word = line.split()[0]
    meant = name if name in ALL_DEF_SECTIONS else \
        next(iter(difflib.get_close_matches(name, ALL_DEF_SECTIONS, 1, 0.8)), "")
    if indented:
        unread.append((n, indented_section(word)))
    elif name not in ALL_DEF_SECTIONS:
        fix = f"write %{meant}" if meant else ("Apptainer starts a section at every line whose first word starts with "
                                               "%, even inside a heredoc or a quoted string: begin that line with "
                                               "something else, or name a section: "
                                               + ", ".join("%" + x for x in ALL_DEF_SECTIONS))
        unread.append((n, f"{word} is not an Apptainer section: the build stops with 'invalid section(s) specified: "
                           f"{name}'; {fix}"))
    return meant


def _arguments(body: list[str], first: int) -> list[tuple[int, str, str, Any]]:
    """The ``NAME=value`` lines of ``%arguments`` as Apptainer reads them (``ReadDefaults``): the value is the rest
    of the line, taken literally (no shell quoting); blank lines, ``#`` comments and lines without ``=`` are skipped."""
    out = []
    for k, row in enumerate(body):
        key, sep, value = row.strip().partition("=")
        if sep and key.strip() and not row.strip().startswith("#"):
            out.append((first + k, "%arguments", key.strip(), value.strip()))
    return out


def _filled(name: str, defaults: dict[str, str]) -> str:
    """What a ``{{ NAME }}`` build argument reads as in shell text: its default when that is one plain word (a
    version, a package name), else a reference to a value given at build time, as a Dockerfile's ARG is."""
    value = defaults.get(name)
    return value if value is not None and _PLAIN_WORD.fullmatch(value) else "${" + name + "}"


def _read_dockerfile(lines: list[str], path: str, refused: list[tuple[int, str]] | None = None,
                     stages_read: list[Stage] | None = None) -> tuple[list[Base], list[Shell], list[Any]]:
    """Every stage's ``FROM``, ``ARG``/``ENV`` settings and ``RUN`` commands. A ``FROM`` naming an earlier stage
    (or ``scratch``) is no base image; ``ARG`` defaults given before the first ``FROM`` fill in ``$NAME`` there and
    in a stage that names them again (``ARG NAME``). Each RUN keeps the ARG and ENV values of its stage, and ``USER``
    is read with them filled in (``ARG user=app``, ``USER ${user}``). A ``SHELL`` whose list is not JSON
    (:func:`_shell_list`) goes to ``refused`` and the rest is read on (the RUN lines after it with the shell it was
    meant to name, when that is clear); without ``refused`` it raises :class:`ParseError`. Each stage, with its
    RUN texts, COPY --from lines and ENTRYPOINT, is added to ``stages_read`` (:class:`Stage`)."""
    read: list[Stage] = [] if stages_read is None else stages_read
    global_args: dict[str, str] = {}
    #: stage name → (whether its RUN lines run under /bin/sh, the image it builds on, its USER, its ENV values)
    stages: dict[str, tuple[bool, str, str, dict[str, str]]] = {"scratch": (True, "scratch", "root", {})}
    bases: list[Base] = []
    commands: list[Shell] = []
    settings: list[tuple[int, str, str, Any]] = []
    posix, image, user = True, "", "root"
    args: dict[str, str] = {}   # the stage's ARG values; a stage built on another does not keep them
    env: dict[str, str] = {}    # the stage's ENV values, kept by a stage built on it
    stage = ""
    seen_from = False
    for line, op, body in dockerfile_instructions("\n".join(lines), path):
        text = str(body)
        if op == "FROM":
            seen_from = True
            words = [w for w in text.split() if not w.startswith("--")]
            name = words[0].lower() if words else ""
            args = {}
            if name in stages:  # a stage built on another keeps its SHELL, base, USER and ENV
                posix, image, user, inherited = stages[name]
                env = dict(inherited)
            elif words:
                filled = _filled_in(words[0], global_args)
                bases.append(Base(line, words[0], filled or ""))
                posix, image, user, env = True, filled or words[0], "root", {}
            stage = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else ""
            parent = next((k for k in range(len(read) - 1, -1, -1) if name and read[k].name == name), None)
            read.append(Stage(line, stage, image if words else "", parent))
        elif op == "SHELL":
            shell, problem = _shell_list(text, line, path)
            if problem is not None:
                if refused is None:
                    raise ParseError(problem, line, 1, path)
                refused.append((line, problem))
            if shell:
                posix = shell[0].rsplit("/", 1)[-1] in ("sh", "dash")
        elif op == "USER" and text.split():
            written = text.split()[0].split(":")[0]
            user = _filled_in(written, args | env) or written
        elif op in ("ARG", "ENV"):
            pairs = _settings(op, text, line, path)
            settings += [(line, op, name, value) for name, value in pairs]
            if op == "ARG" and not seen_from:
                global_args.update((name, value) for name, value in pairs if value is not None)
            for name, value in pairs:
                given = global_args.get(name) if op == "ARG" and value is None else value
                known = _filled_in(given, args | env) if given is not None else None
                into = args if op == "ARG" else env
                if known is None:
                    into.pop(name, None)
                else:
                    into[name] = known
        elif op == "RUN":
            commands += _run_commands(text, line, posix, path, image, user, tuple((args | env).items()))
            if read:
                read[-1] = replace(read[-1], runs=(*read[-1].runs, text))
        elif op == "COPY" and read:
            source = re.search(r"--from=(\S+)", text)
            paths = [w for w in text.split() if not w.startswith("--")]
            if source and len(paths) >= 2:
                copied = tuple((line, source.group(1).lower(), p.rstrip("/")) for p in paths[:-1])
                read[-1] = replace(read[-1], copies=(*read[-1].copies, *copied))
        elif op == "ENTRYPOINT" and read:
            read[-1] = replace(read[-1], entrypoint=(line, text))
        if stage:
            stages[stage] = (posix, image, user, dict(env))
    return bases, commands, settings


def _shell_list(text: str, line: int, path: str) -> tuple[list[str] | None, str | None]:
    """The program list of ``SHELL [...]`` and what is wrong with it (None when nothing is). Docker reads SHELL only
    as JSON: anything else stops the build before its first step ('SHELL requires the arguments to be in JSON form'),
    and ch-image's grammar takes a list of double-quoted strings there alone, so it refuses the Dockerfile too. The
    list meant is given back when it is clear (``['/bin/bash', '-c']``, Python's quotes), so that the RUN lines after
    it can be read with that shell."""
    fix = 'write it as JSON, with double quotes: SHELL ["/bin/bash", "-c"]'
    try:
        shell = _exec_form(text, line, path)
    except ParseError as exc:
        return None, f"{exc.message} (SHELL)"
    if shell is not None:
        return shell, None
    meant: list[str] | None = None
    if text.startswith("["):
        try:
            import ast
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            meant = value
            fix = f"write it as JSON, with double quotes: SHELL {json.dumps(meant)}"
    why = " (JSON strings take double quotes)" if meant is not None and "'" in text else ""
    return meant, (f"SHELL takes a JSON list{why}, got {text[:40]!r}: Docker stops before the first step with 'SHELL "
                   "requires the arguments to be in JSON form', and ch-image cannot parse the Dockerfile; " + fix
                   + ". The rest of the file is checked as if it read so.")


def _filled_in(text: str, known: dict[str, str]) -> str | None:
    """``text`` with its ``$NAME`` and ``${NAME}`` filled in from ``known``, as Docker fills them in FROM, ARG, ENV
    and USER lines; None when one names a variable the file gives no value for (a --build-arg, the base image's ENV,
    HOME) or takes another form (``${NAME:-default}``)."""
    missing = False

    def fill(m: re.Match[str]) -> str:
        nonlocal missing
        name = m.group(1) or m.group(2)
        missing = missing or name not in known
        return known.get(name, "")
    filled = _DOCKER_REF.sub(fill, text)
    return None if missing or "$" in _DOCKER_REF.sub("", text) else filled


def _run_commands(text: str, line: int, posix: bool, path: str, base: str, user: str,
                  variables: tuple[tuple[str, str], ...]) -> list[Shell]:
    """The commands of one RUN: its shell form (continuation lines joined, as Docker joins them), its exec
    form (``["pip", "install", …]``, no shell), or the script of its heredoc."""
    text = text[_RUN_FLAGS.match(text).end():]  # type: ignore[union-attr]
    argv = _exec_form(text, line, path)
    if argv is not None:
        return _commands(shlex.join(argv), line, "RUN", True, False, path, base, user, variables)
    heredoc = _RUN_HEREDOC.fullmatch(text.rstrip())
    if heredoc:
        return _commands(heredoc.group(3), line + 1, "RUN", True, posix, path, base, user, variables)
    if "<<" not in text and "\n" in text and not _broken_word(text):
        text = " ".join(text.split("\n"))  # continuation pieces: one line, reported at the instruction's line
    return _commands(text, line, "RUN", True, posix, path, base, user, variables)


def _broken_word(text: str) -> bool:
    """Whether the RUN text holds a word broken across lines (kept as written, backslashes included)."""
    return any(piece.rstrip().endswith("\\") for piece in text.split("\n"))


def _exec_form(text: str, line: int, path: str) -> list[str] | None:
    """The argument list of an exec-form instruction (``["pip", "install", …]``), or None for shell form.

    A ``[`` that does not start valid JSON (``["echo", "\\$5"]``: ``\\$`` is no JSON escape) is shell form: Docker
    runs the text with /bin/sh -c, as its reference documents. A JSON
    list that is empty or holds something other than strings stops Docker's build: :class:`ParseError`."""
    if not text.startswith("["):
        return None
    try:
        argv = json.loads(text)
    except ValueError:
        return None
    if not argv or not all(isinstance(a, str) for a in argv):
        raise ParseError(f"an exec form is a JSON list of strings with the program first, e.g. [\"pip\", \"install\", "
                         f"\"numpy==1.26.4\"]; Docker stops at {text[:40]!r}", line, 1, path)
    return argv


def _settings(op: str, text: str, line: int, path: str) -> list[tuple[str, Any]]:
    """``ARG NAME[=default] …`` / ``ENV NAME=value …`` (or the old ``ENV NAME value``): names and values."""
    try:
        words = shlex.split(text, comments=False)
    except ValueError as exc:
        raise ParseError(f"{op} {text[:40]!r}: {exc}; close the quote", line, 1, path) from exc
    if op == "ENV" and words and "=" not in words[0]:
        return [(words[0], text.split(None, 1)[1].strip() if len(words) > 1 else "")]
    out: list[tuple[str, Any]] = []
    for word in words:
        name, sep, value = word.partition("=")
        out.append((name, value if sep else None))
    return out


def _commands(text: str, first: int, where: str, build: bool, posix: bool, path: str, base: str = "",
              user: str = "root", variables: tuple[tuple[str, str], ...] = ()) -> list[Shell]:
    """Every command of ``text`` (those inside loops, ifs and functions too), at its line in the file."""
    try:
        script = lex_script(text)
    except ParseError as exc:
        raise ParseError(f"{where}: {exc.message}", first + max(exc.line, 1) - 1, exc.column, path) from exc

    def walk(commands: tuple[Command, ...]) -> Iterator[Command]:
        for cmd in commands:
            if cmd.kind == "compound":
                yield from walk(compound_body(cmd))
            elif cmd.is_code:
                yield cmd
    return [Shell(first + cmd.line - 1, where, cmd, build, posix, base, user, first, variables)
            for cmd in walk(script.commands)]


def _suppressions(lines: list[str]) -> tuple[dict[int, frozenset[str]], frozenset[str]]:
    """``# hpcw: disable=CODE`` at the end of a line or alone on the line before; ``disable-file`` anywhere."""
    per_line: dict[int, set[str]] = {}
    whole: set[str] = set()
    pending: set[str] = set()
    for n, line in enumerate(lines, start=1):
        alone = line.lstrip().startswith("#")
        if line.strip() and not alone and pending:
            per_line.setdefault(n, set()).update(pending)
            pending = set()
        for m in _SUPPRESS.finditer(line):
            codes = {c.strip() for c in m.group(2).split(",")}
            if m.group(1) == "disable-file":
                whole |= codes
            elif alone or m.group(1) == "disable-next":
                pending |= codes
            else:
                per_line.setdefault(n, set()).update(codes)
    return {k: frozenset(v) for k, v in per_line.items()}, frozenset(whole)


# -- helpers for the rules -------------------------------------------------------------------

def _build(ctx: Context) -> BuildFile:
    return ctx.parsed


def _program(cmd: Command) -> list[str]:
    """The command's words from its program on: past NAME=value and the wrappers that run it unchanged (sudo -E,
    env NAME=value, nice -n 10 …), the same table the job-script reader uses
    (:data:`~hpcwidgets.parse.script.WRAPPERS`)."""
    words = [str(w) for w in cmd.argv]
    i = 0
    while i < len(words) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[i]):
        i += 1
    return launch_words(words[i:])


def _pip_install(words: list[str]) -> list[str] | None:
    """The arguments after ``pip install`` (pip3, python -m pip, uv pip), None for another command. pip's general
    options may come before the subcommand (``pip3 -q install``, ``pip --no-cache-dir install``); they are kept
    with the arguments, since pip reads them there too. The interpreter's own options before ``-m pip`` (``python3
    -u -m pip``, ``python -I -m pip``, ``python3 -X utf8 -m pip``) are read past (:func:`python_module_words`)."""
    words = _as_pip(words)
    name = words[0].rsplit("/", 1)[-1] if words else ""
    if name == "uv":
        return words[3:] if words[1:3] == ["pip", "install"] else None
    if re.fullmatch(r"python[0-9.]*", name) and words[1:3] == ["-m", "pip"]:
        rest = words[3:]
    elif re.fullmatch(r"pip[0-9.]*", name):
        rest = words[1:]
    else:
        return None
    k = 0
    while k < len(rest) and rest[k].startswith("-"):
        k += 2 if rest[k] in _PIP_GENERAL_VALUE_OPTIONS else 1
    return rest[:k] + rest[k + 1:] if rest[k:k + 1] == ["install"] else None


def _as_pip(words: list[str]) -> list[str]:
    """``words`` with ``python -m pip`` (past the interpreter's options, any interpreter path or version:
    ``/opt/venv/bin/python3.11 -u -m pip``) written as ``pip``; any other command unchanged."""
    plain, written = python_module_words(words)
    return ["pip", *plain[3:]] if written and plain[2] == "pip" else words


#: pip's general options (``pip --help``) that take a value as the next word; pip reads them before its subcommand
#: as well as after it
_PIP_GENERAL_VALUE_OPTIONS = frozenset({
    "--python", "--log", "--log-file", "--local-log", "--keyring-provider", "--proxy", "--retries", "--timeout",
    "--exists-action", "--trusted-host", "--cert", "--client-cert", "--cache-dir", "--use-feature",
    "--use-deprecated", "--resume-retries"})
#: pip install options that take a value as the next word
_PIP_VALUE_OPTIONS = _PIP_GENERAL_VALUE_OPTIONS | {
    "-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-t", "--target", "--prefix", "--root",
    "-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--src", "--upgrade-strategy", "--platform",
    "--python-version", "--implementation", "--abi", "--no-binary", "--only-binary", "--progress-bar",
    "-C", "--config-settings", "--global-option", "--report", "--group"}
#: how pip reads a yes from a PIP_<OPTION> variable such as PIP_USER (its strtobool)
_PIP_TRUE = re.compile(r"(?i)^(?:1|y|yes|t|true|on)$")
_PACKAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._ -]*\])?")
#: the packaging tools themselves: upgrading them is routine and does not change what the program runs with
_TOOLS = ("pip", "setuptools", "wheel")


def _unpinned(args: list[str]) -> list[str]:
    """The package names given without any version; none when a constraints file sets the versions."""
    names = []
    skip = False
    for word in args:
        if skip:
            skip = False
        elif word in ("-c", "--constraint") or word.startswith("--constraint="):
            return []
        elif word in _PIP_VALUE_OPTIONS:
            skip = True
        elif word.startswith("-"):
            continue
        elif _PACKAGE_NAME.fullmatch(word) and word.split("[")[0].lower() not in _TOOLS:
            names.append(word)
    return names


_HOME = re.compile(r"^(?:~|\$HOME|\$\{HOME\}|/root)(?:/|$)")
#: folders Apptainer binds from the host over the image's own when the container runs (its default bind paths), so
#: what a build put there is hidden; it binds your home too, but at its own path, not over all of /home
_BOUND = re.compile(r"^/(?:var/)?tmp(?:/|$)")


def _build_home(path: str, user: str) -> str:
    """The home folder ``path`` is in while ``user`` runs the build step, "" for none: ``~/…``, ``$HOME/…`` and
    ``/root/…``, and for a Dockerfile's ``USER app`` also ``/home/app/…`` written out (the usual home of a user made
    with useradd -m). Apptainer builds a definition file as root."""
    root = user in ("root", "0")
    if _HOME.match(path):
        if path.startswith("/root") or root:
            return "/root"
        return f"the home folder of user {user}" if user.isdigit() else f"/home/{user}"
    return f"/home/{user}" if not root and re.match(rf"/home/{re.escape(user)}(?:/|$)", path) else ""


def _install_places(words: list[str], env: dict[str, str], installers: dict[str, str]
                    ) -> Iterator[tuple[str, str]]:
    """``(what, where)`` for the places a command installs software into: pip's --user (or PIP_USER in ``env``,
    the variables exported to it), --target and --prefix, a virtual environment's folder, a conda prefix, a
    Miniconda/Miniforge installer's -p or, run with -b and no -p, its default prefix under $HOME. ``installers``:
    installer scripts the file downloaded, by file name (:func:`_downloaded_installers`)."""
    name = words[0].rsplit("/", 1)[-1] if words else ""
    pip = _pip_install(words)
    options: tuple[str, ...] = ()
    program = words[0] if words else ""
    if pip is not None:
        if "--user" in pip:
            yield "pip install --user", "~/.local"
        elif _PIP_TRUE.match(env.get("PIP_USER", "")):
            yield f"pip install with PIP_USER={env['PIP_USER']} (pip's --user)", "~/.local"
        options = ("--target", "-t", "--prefix")
    elif re.fullmatch(r"python[0-9.]*", name) and words[1:3] in (["-m", "venv"], ["-m", "virtualenv"]) or \
            name == "virtualenv" or (name == "uv" and words[1:2] == ["venv"]):
        start = 3 if name.startswith("python") else 2 if name == "uv" else 1
        for word in words[start:]:
            if not word.startswith("-"):
                yield "the virtual environment", word
                break
    elif name in ("conda", "mamba", "micromamba"):
        options = ("-p", "--prefix")
    elif name in ("bash", "sh") and len(words) > 1 and words[1].endswith(".sh"):
        script = words[1].rsplit("/", 1)[-1]
        product = installers.get(script) or _conda_installer(script) or \
            ("Miniconda" if re.search(r"(?i)conda|forge|mamba", script) else "")
        if product:
            yield from _installer_prefix(product, words[2:])
        return
    for k, word in enumerate(words):
        key, eq, value = word.partition("=")
        if eq and key in options and key.startswith("--"):
            yield f"{program} {key}", value
        elif word in options and k + 1 < len(words):
            yield f"{program} {word}", words[k + 1]


#: the conda installers (``Miniconda3-py311_24.4.0-0-Linux-x86_64.sh``, ``Miniforge3-Linux-x86_64.sh``) by the words
#: of their names or download addresses: the product and the folder under $HOME it installs into without -p
_CONDA_INSTALLERS = (("miniforge", "Miniforge", "miniforge3"), ("mambaforge", "Mambaforge", "mambaforge"),
                     ("anaconda3", "Anaconda", "anaconda3"), ("miniconda", "Miniconda", "miniconda3"))


def _conda_installer(text: str) -> str:
    """The conda installer a file name or download address names ("Miniforge", …), "" for none."""
    return next((product for word, product, _folder in _CONDA_INSTALLERS if word in text.lower()), "")


def _installer_prefix(product: str, args: list[str]) -> Iterator[tuple[str, str]]:
    """Where a conda installer run with ``args`` installs: its -p (getopts: ``-p DIR``, ``-bp DIR``, ``-bpDIR``), or in
    batch mode (-b) without -p its default, ``$HOME/miniconda3`` (the installer's ``PREFIX="${HOME:-/opt}/…"``)."""
    batch = False
    for k, word in enumerate(args):
        if not re.fullmatch(r"-[A-Za-z]\S*", word):
            continue
        flags, _p, value = word[1:].partition("p")
        batch = batch or "b" in flags
        if _p:
            prefix = value or (args[k + 1] if k + 1 < len(args) else "")
            yield f"the {product} installer's -p", prefix
            return
    if batch:
        folder = next(folder for _word, name, folder in _CONDA_INSTALLERS if name == product)
        yield f"the {product} installer run with -b and no -p (its default prefix, $HOME/{folder})", f"~/{folder}"


#: the options of wget and curl that name the file a download is saved to
_SAVED_AS = {"wget": ("-O", "--output-document"), "curl": ("-o", "--output")}


def _downloaded_installers(build: BuildFile) -> dict[str, str]:
    """The conda installers the file downloads with wget or curl: the saved file's name → the product, so that
    ``bash /tmp/installer.sh -b`` is known for what it is whatever it was saved as."""
    found: dict[str, str] = {}
    for s in build.commands:
        words = _program(s.cmd)
        tool = words[0].rsplit("/", 1)[-1] if words else ""
        urls = [w for w in words[1:] if re.match(r"(?i)(?:https?|ftp)://", w)]
        product = _conda_installer(" ".join(urls)) if tool in _SAVED_AS else ""
        if not product:
            continue
        saved = urls[-1].rstrip("/").rsplit("/", 1)[-1]  # wget's default, curl -O
        short, long = _SAVED_AS[tool]
        for k, word in enumerate(words[1:], start=1):
            if word.startswith(long + "="):
                saved = word.split("=", 1)[1]
            elif word in (short, long) or re.fullmatch(rf"-[A-Za-z]*{short[1]}", word):
                saved = words[k + 1] if k + 1 < len(words) else saved
        found[saved.rsplit("/", 1)[-1]] = product
    return found


def _environments(build: BuildFile) -> Iterator[tuple[Shell, dict[str, str], dict[str, str]]]:
    """Each command with the variables exported to it while the image is built, and those its shell fills in in its
    words. Exported: a Dockerfile's ARG and ENV values (:attr:`Shell.variables`), ``export NAME=value`` earlier in
    the same %post section or RUN instruction, and its own ``NAME=value`` prefix. Filled in: those, and the shell's
    own ``NAME=value`` set earlier there. Values are filled in from the ones set before them
    (``export VENV=$PREFIX/venv``); ``$HOME`` is kept, since it is the build's home wherever it is read."""
    exported: dict[str, str] = {}
    unexported: dict[str, str] = {}
    shell = None
    for s in build.commands:
        if (s.where, s.start) != shell:
            shell, exported, unexported = (s.where, s.start), {}, {}
        env = dict(s.variables) | exported
        variables = env | unexported
        assigned = {name: _expanded(str(word.value), variables) for name, word in s.cmd.assignments}
        if s.cmd.name == "export":
            exported.update(assigned)
        elif s.cmd.name:
            env.update(assigned)  # NAME=value before a command: in its environment, not yet in its words
        else:
            unexported.update(assigned)
        yield s, env, variables


def _expanded(text: str, env: dict[str, str]) -> str:
    """``text`` with the ``$NAME``/``${NAME}`` references that ``env`` gives a value filled in; the others, ``$HOME``
    among them, kept as written."""
    return _DOCKER_REF.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), text)


_YES = re.compile(r"^(?:-[A-Za-z]*y[A-Za-z]*|--yes|--assume-yes|--assumeyes|-qq)$|Assume-?Yes=(?:1|true|yes)", re.I)
#: zypper's own ways to say yes: -n/--non-interactive before the subcommand, --no-confirm after it
_ZYPPER_YES = re.compile(r"^(?:-n|--non-interactive|--no-confirm)$")
#: tools that ask "Do you want to continue? [Y/n]" (conda: "Proceed ([y]/n)?") before these subcommands
_ASKING = {"apt-get": ("install", "upgrade", "dist-upgrade", "full-upgrade", "remove", "purge", "autoremove"),
           "apt": ("install", "upgrade", "full-upgrade", "remove", "purge", "autoremove"),
           "yum": ("install", "update", "upgrade", "remove", "groupinstall"),
           "dnf": ("install", "update", "upgrade", "remove", "groupinstall"),
           "zypper": ("install", "in", "remove", "rm", "update", "up", "patch", "dist-upgrade", "dup"),
           "conda": ("install", "create", "remove", "uninstall", "update", "upgrade"),
           "mamba": ("install", "create", "remove", "uninstall", "update", "upgrade"),
           "pip": ("uninstall",)}
#: apt told once to answer yes itself, in its configuration: echo 'APT::Get::Assume-Yes "true";' > /etc/apt/apt.conf.d/…
_APT_ASSUME_YES = re.compile(r"APT::Get::Assume-?Yes\s+\\?[\"']?(?:true|yes|1)\b", re.I)

#: conda told once to answer yes itself: conda config --set always_yes yes, CONDA_ALWAYS_YES=true
_CONDA_ALWAYS_YES = re.compile(r"(?i)^(?:yes|true|1)$")


def _asks(words: list[str]) -> tuple[str, str]:
    """``("apt-get install", "-y")`` (what asks, the option that answers) when the command would stop to ask for a
    yes, else ``("", "")``."""
    words = _as_pip(words)  # python3 -u -m pip uninstall torch: pip's question
    name = words[0].rsplit("/", 1)[-1] if words else ""
    name = "pip" if re.fullmatch(r"pip[0-9.]*", name) else name
    sub = next((w for w in words[1:] if not w.startswith("-")), "")
    if sub not in _ASKING.get(name, ()) or any(_YES.search(w) for w in words[1:]):
        return "", ""
    if name == "zypper":
        return ("", "") if any(_ZYPPER_YES.match(w) for w in words[1:]) else (f"zypper {sub}", "-n (zypper -n install …)")
    return f"{words[0].rsplit('/', 1)[-1]} {sub}", "-y"


def _conda_always_yes(s: Shell) -> bool:
    """Whether the command tells conda to answer yes from now on."""
    words = _program(s.cmd)
    if words[:4] == ["conda", "config", "--set", "always_yes"] and len(words) > 4:
        return bool(_CONDA_ALWAYS_YES.match(words[4]))
    return any(name == "CONDA_ALWAYS_YES" and _CONDA_ALWAYS_YES.match(str(w.value)) for name, w in s.cmd.assignments)


def _login_with_secret(words: list[str]) -> str:
    """What a login command writes into the image when its token is on the command line ("" when none)."""
    if words[:2] in (["huggingface-cli", "login"], ["hf", "login"]) or words[:3] == ["hf", "auth", "login"]:
        for k, word in enumerate(words):
            value = words[k + 1] if word == "--token" and k + 1 < len(words) else \
                word.partition("=")[2] if word.startswith("--token=") else None
            if value and is_literal(value):
                return "the Hugging Face token"
    if words[:2] == ["wandb", "login"] and len(words) >= 3 and is_literal(words[-1]) \
            and not words[-1].startswith("-") and len(words[-1]) >= 8:
        return "the W&B API key"
    return ""


def _secret(name: str, value: Any) -> bool:
    """Whether ``name=value`` writes a secret (the job-script rules' test: HPC601, HPC602)."""
    literal = isinstance(value, str) and is_literal(value)
    return bool(_secret_message(name, value) or (_REGISTRY_PASSWORD.match(name) and literal and value))


#: sections whose text runs when the container runs (after %environment is sourced), not while it is built
_RUN_SECTIONS = ("%runscript", "%startscript", "%test", "%apprun", "%appstart", "%apptest")
#: variables a section has whatever the definition file says: the shell's and Apptainer's own, and search paths a
#: base image's ENV commonly sets (their value there is the base image's, not empty)
_GIVEN = re.compile(r"(?:HOME|PATH|USER|LOGNAME|PWD|OLDPWD|SHELL|TERM|HOSTNAME|LANG|LC_[A-Z]+|TZ|IFS|UID|EUID|PPID|"
                    r"RANDOM|SECONDS|LINENO|BASH\w*|OPTARG|OPTIND|REPLY|TMPDIR|DEBIAN_FRONTEND|"
                    r"LD_LIBRARY_PATH|LIBRARY_PATH|CPATH|C_INCLUDE_PATH|MANPATH|PKG_CONFIG_PATH|PYTHONPATH|"
                    r"(?:APPTAINER|SINGULARITY|NVIDIA|CUDA|SLURM)_\w*|"
                    # set by the ENV of widely used base images, which %post sees (mambaorg/micromamba, the Jupyter
                    # and conda images, python:3.x, NGC's and ROCm's framework images)
                    r"(?:MAMBA|CONDA|PIP|PYTORCH|TORCH|NCCL|CUDNN|NV|ROCM|HIP|JULIA)_\w*|PYTHON_VERSION|JAVA_HOME|R_HOME)")
#: a $NAME or ${NAME} reference without a default (${NAME:-x} gives its own value when NAME is empty)
_REFERENCE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?!:?[-=?+])|([A-Za-z_][A-Za-z0-9_]*))")


def _references(cmd: Command) -> set[str]:
    """The variables a command expands in its words: ``$NAME`` outside single quotes, without a default."""
    names: set[str] = set()
    for raw in [w.raw for w in cmd.words] + [w.raw for _name, w in cmd.assignments] + \
            [r.target.raw for r in cmd.redirects if not r.op.startswith("<<")]:
        quoted = ""   # the quote open at this point: ' or "
        k = 0
        while k < len(raw):
            c = raw[k]
            if c == "\\" and quoted != "'":
                k += 2
                continue
            if c == "'" and quoted != '"':
                quoted = "" if quoted else "'"
            elif c == '"' and quoted != "'":
                quoted = "" if quoted else '"'
            elif c == "$" and quoted != "'":
                m = _REFERENCE.match(raw, k)
                if m:
                    names.add(m.group(1) or m.group(2))
            k += 1
    return names


def _set_names(commands: list[Shell], source: str) -> set[str]:
    """The variables these commands set: assignments (``NAME=…``, ``export NAME=…``), ``read NAME``, ``export NAME``
    of a variable set earlier, and the loop variables of the file (``for NAME in``: ``source`` is the file's text,
    since a loop's header is not one of its commands)."""
    names = {name for s in commands for name, _word in s.cmd.assignments}
    for s in commands:
        words = [str(w) for w in s.cmd.argv]
        if words[:1] in (["read"], ["export"], ["declare"], ["local"]):
            names.update(w for w in words[1:] if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", w))
    return names | set(re.findall(r"\b(?:for|select)\s+([A-Za-z_][A-Za-z0-9_]*)\s+in\b", source))


def _written_to_environment(commands: list[Shell]) -> str:
    """The text of the build commands that write into $APPTAINER_ENVIRONMENT (or $SINGULARITY_ENVIRONMENT), which
    Apptainer sources when the container runs: what they name is set there."""
    return "\n".join(s.cmd.text for s in commands
                     if any("_ENVIRONMENT" in r.target.raw for r in s.cmd.redirects if r.op in (">", ">>"))
                     or any("_ENVIRONMENT" in str(w) for w in s.cmd.argv[1:] if s.cmd.name == "tee"))


#: words in an image's name or tag saying its /bin/sh is dash (Debian, Ubuntu and their releases)
_DASH_SYSTEMS = frozenset({"debian", "ubuntu", "bookworm", "bullseye", "buster", "trixie", "jammy", "focal", "noble"})
#: ... or that it has source: bash on the RHEL family, BusyBox ash on Alpine and busybox
_SOURCE_SYSTEMS = frozenset({"centos", "rockylinux", "almalinux", "fedora", "rhel", "redhat", "ubi", "amazonlinux",
                             "oraclelinux", "alpine", "busybox"})


def _sh_has_source(image: str) -> bool:
    """Whether the base image's /bin/sh has ``source``, by the words of its name and tag (rockylinux:9.3,
    nvidia/cuda:12.2.0-devel-ubi8, python:3.12-alpine). A word for Debian or Ubuntu, or none known, says no."""
    words = {re.sub(r"[0-9]+$", "", w) for w in re.split(r"[/:@._-]+", image.lower())}
    return not words & _DASH_SYSTEMS and bool(words & _SOURCE_SYSTEMS)

# -- the rules -------------------------------------------------------------------------------

#: tags that name no release but whatever is newest: latest-gpu, latest-release, nightly, nightly-devel-cuda12.1
_MOVING_TAG = re.compile(r"(?:latest|nightly)(?:$|[-_.])", re.I)


@rule("HPC701", "base-image-not-pinned", "warning", kind="build",
      summary="a build file's base image (From: / FROM) has no version: :latest or no tag",
      why="A tag like :latest (or no tag, which means :latest) moves whenever the publisher pushes: rebuilding the "
          "same file next month gives a different image (another CUDA, another Python), so results cannot be "
          "reproduced and the build may break. Apptainer and Docker both take :latest when no tag is given. Tags "
          "such as latest-gpu, latest-release and nightly-… move the same way.",
      fix="Pin a version tag (From: pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime, FROM nvcr.io/nvidia/pytorch:24.05-py3) "
          "or a digest (@sha256:…). The linter does not guess which version you meant.",
      catalogue=(15, 31),
      bad="""Bootstrap: docker
From: pytorch/pytorch:latest

%post
    pip install --no-cache-dir scikit-learn==1.5.0
""",
      good="""Bootstrap: docker
From: pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime

%post
    pip install --no-cache-dir scikit-learn==1.5.0
""")
def _unpinned_base(ctx: Context) -> Iterator[Any]:
    for base in _build(ctx).bases:
        ref = base.image.split("://", 1)[-1]
        last = ref.rsplit("/", 1)[-1]
        if "@" in last or not ref:
            continue  # pinned by digest, or a name only a build argument fills in
        shown = base.ref if base.ref == base.image else f"{base.ref} ({base.image})"
        if ":" not in last:
            yield base.line, f"the base image {shown} has no tag, so the moving :latest is used; pin a version tag or a @sha256: digest"
        elif last.rsplit(":", 1)[1] == "latest":
            yield base.line, f"the base image {shown} uses the moving :latest tag; pin a version tag or a @sha256: digest so a rebuild gives the same image"
        elif _MOVING_TAG.match(last.rsplit(":", 1)[1]):
            tag = last.rsplit(":", 1)[1]
            yield base.line, (f"the base image {shown} uses :{tag}, a tag its publisher moves to each new release or "
                              "nightly build; pin a version tag or a @sha256: digest so a rebuild gives the same image")


@rule("HPC702", "secret-in-build-file", "error", kind="build",
      summary="a token, API key or password is written into a build file (or a URL's login, or passed through ARG/ENV)",
      why="Everything a build file sets stays in the image: %environment and ENV are read by everyone who runs it, "
          "%post and RUN values land in its files and history, and Apptainer keeps the definition file inside the "
          "image. Images are shared and pushed to registries, and the build file is committed to git: the secret "
          "leaks with them. A Dockerfile ARG or ENV named like a secret leaks even without a value written, since the "
          "value given at build time is recorded in the image's history or configuration. A login written into a URL "
          "(https://TOKEN@github.com/…, https://user:password@pypi.example.org/…) leaks the same way, and git and pip "
          "also keep such a URL in .git/config or pip.conf inside the image; a URL whose login is a $NAME or {{ NAME }} "
          "reference (a build secret, a build argument) is not reported, nor a user name alone (git@github.com:…, "
          "ssh://git@…) or an @ after the host (git+https://github.com/org/repo.git@v1.0.0 names a version). A file "
          "with logins or keys copied in with COPY, ADD or %files (.env, .netrc, .git-credentials, .pypirc, an SSH "
          "key or folder, AWS or Docker credentials, kaggle.json, a Hugging Face token) leaks the same way; an "
          "example of one (.env.example) is no secret.",
      fix="Keep secrets out of the image: pass them when the container runs (apptainer exec --env-file with a file only "
          "you can read, APPTAINERENV_HF_TOKEN), download gated models outside the build, or give a Docker build a "
          "secret mount (RUN --mount=type=secret,id=hf_token …, docker build --secret id=hf_token,env=HF_TOKEN).",
      catalogue=(19, 30),
      bad="""Bootstrap: docker
From: pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime

%post
    export HF_TOKEN=hf_0123456789abcdefghijklmnopqrstuv
    pip install --no-cache-dir transformers==4.41.2
""",
      good="""Bootstrap: docker
From: pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime

%post
    pip install --no-cache-dir transformers==4.41.2

%environment
    export HF_HOME=/opt/hf
""")
def _secret_in_build(ctx: Context) -> Iterator[Any]:
    build = _build(ctx)
    for s in build.commands:
        for name, word in s.cmd.assignments:
            if _secret(name, word.value):
                yield s.line, (f"{name} is written into {s.where}: it stays in the image (and in this file) for anyone "
                               "who gets either; pass it when the container runs (--env-file with a private file)")
        what = _login_with_secret(_program(s.cmd))
        if what:
            yield s.line, (f"{what} is written on the login command line in {s.where}: the login is saved inside the "
                           "image; log in where the container runs instead")
    for line, op, name, value in build.settings:
        if value is not None and _secret(name, value):
            yield line, (f"{op} {name} writes the secret into the image ({op} values stay in it); "
                         f"{_instead(build.format, name)}")
        elif op != "%arguments" and _TOKEN_NAME.match(name) and (not value or not is_literal(value)):
            yield line, (f"{op} {name} passes a secret through the build: the value given at build time is recorded in "
                         f"the image's history or configuration; {_instead(build.format, name)}")
    for line, where, url, what in _url_logins(build):
        yield line, (f"the URL {url} in {where} holds a {what}: it stays in the image (in its build history, and in "
                     f"files such as .git/config or pip.conf) and in this file; {_instead(build.format, 'TOKEN', url)}")
    for line, op, source, what in _copied_secrets(build):
        yield line, (f"{op} copies {source}, {what}, into the image, where anyone who runs or pulls the image can read "
                     f"it; {_at_run_time(build.format, source)}")


#: files that hold a login or a key, by name (compared in lower case): what a COPY, ADD or %files line must not take
#: into an image; an example or template of one (.env.example) holds none
_SECRET_FILES = (
    (re.compile(r"(?:.*/)?\.env(?:\.(?!example$|sample$|template$|dist$|defaults?$)[\w.-]+)?"), "an environment file "
     "with the project's keys"),
    (re.compile(r"(?:.*/)?[._]netrc"), "a .netrc with logins (wandb and huggingface write theirs there)"),
    (re.compile(r"(?:.*/)?\.git-credentials"), "git's saved logins"),
    (re.compile(r"(?:.*/)?\.pypirc"), "PyPI's upload login"),
    (re.compile(r"(?:.*/)?id_(?:rsa|dsa|ecdsa|ed25519)(?:_sk)?"), "an SSH private key"),
    (re.compile(r"(?:.*/)?\.ssh/?"), "an SSH folder (private keys)"),
    (re.compile(r"(?:.*/)?\.aws(?:/credentials)?/?"), "AWS credentials"),
    (re.compile(r"(?:.*/)?\.docker(?:/config\.json)?/?"), "registry logins"),
    (re.compile(r"(?:.*/)?kaggle\.json"), "a Kaggle API key"),
    (re.compile(r"(?:.*/)?(?:\.huggingface|\.cache/huggingface)/token"), "a Hugging Face token"),
)


def _copied_secrets(build: BuildFile) -> Iterator[tuple[int, str, str, str]]:
    """``(line, "COPY"/"ADD"/"%files", source, what it holds)`` for each file with a login or a key that the build
    copies into the image."""
    for line, op, source in _copied_sources(build):
        name = source.rstrip("/").lower()
        if "$" in name or "{{" in name:
            continue
        for pattern, what in _SECRET_FILES:
            if pattern.fullmatch(name) or pattern.fullmatch(name + "/"):
                yield line, op, source, what
                break


def _copied_sources(build: BuildFile) -> Iterator[tuple[int, str, str]]:
    """``(line, "COPY"/"ADD"/"%files", source)`` for each file a build copies in from outside the image: a Dockerfile's
    COPY and ADD sources (not those taken from another stage), the first path of each %files line."""
    if build.format == "docker":
        for line, op, body in dockerfile_instructions(build.source, build.path):
            if op not in ("COPY", "ADD"):
                continue
            words = _copy_words(str(body))
            if any(w.startswith("--from") for w in words):
                continue
            sources = [w for w in words if not w.startswith("--")][:-1]
            yield from ((line, op, source) for source in sources if "://" not in source)
        return
    section = ""
    for n, row in enumerate(build.source.split("\n"), start=1):
        found = section_line(row)
        if found:
            section = found[0] if not found[1].strip() else ""  # %files from STAGE: from another stage
            continue
        words = row.split()
        if section == "files" and words and not words[0].startswith("#"):
            yield n, "%files", words[0]


def _copy_words(body: str) -> list[str]:
    """The words of a COPY or ADD: its JSON form (``["a", "b", "/dest/"]``) or its shell-like one ([] when neither
    reads)."""
    try:
        words = json.loads(body) if body.lstrip().startswith("[") else shlex.split(body)
    except ValueError:
        return []
    return [str(w) for w in words] if isinstance(words, list) else []


def _at_run_time(form: str, source: str) -> str:
    """Where a secret file should come from instead of the image."""
    if form == "apptainer":
        return f"bind it when the container runs instead (apptainer exec --bind {source}:…), from a file only you can read"
    return (f"mount it as a build secret where the build needs it (RUN --mount=type=secret,id=…,target=… with docker "
            f"build --secret id=…,src={source}), and bind it at run time")


def _instead(form: str, name: str, url: str = "") -> str:
    """Where the secret ``name`` a build needs should come from instead: a Docker build secret (read into ``url``
    in its place), or for Apptainer, which has none, the host or the container's run."""
    if form == "apptainer":
        return ("Apptainer has no build secrets: fetch what needs it on the host and copy it in with %files, or pass "
                "the secret when the container runs (--env-file with a private file)")
    used = f", then {url.replace('***', '${' + name + '}')}" if url else ""
    return (f"use a build secret instead (RUN --mount=type=secret,id={name.lower()},env={name} …{used}; "
            f"docker build --secret id={name.lower()},env={name})")
#: a URL with a login before its host: scheme://user[:password]@host. An @ after the host's first / is no login
#: (git+https://github.com/org/repo.git@v1.0.0 names a version), nor is git@github.com:org/repo (no scheme)
_URL_LOGIN = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^/@\s:'\"]+)(?::([^/@\s'\"]*))?@([^/@\s'\"]+)")
#: a user name in a URL that is a token: a known token prefix, or a long mix of letters and digits
_TOKEN_SHAPE = re.compile(r"^(?:gh[pousr]_|github_pat_|glpat-|hf_|xox[abp]-)|^(?=.*[0-9])(?=.*[A-Za-z])[A-Za-z0-9_-]{20,}$")


#: user names whose password is no secret: anonymous FTP's (its password is by custom an e-mail address)
_PUBLIC_LOGINS = ("anonymous", "ftp")


def _url_logins(build: BuildFile) -> Iterator[tuple[int, str, str, str]]:
    """``(line, where, the URL with its secret masked, "password" or "token")`` for each URL in the file's shell text
    and settings that carries a login written out. A ``$NAME`` or ``{{ NAME }}`` in it is passed in (a build secret,
    a build argument), not written in the file: not reported."""
    texts = [(s.line, s.where, str(w)) for s in build.commands
             for w in (*s.cmd.argv, *(word.value for _name, word in s.cmd.assignments))]
    texts += [(line, f"{op} {name}", value) for line, op, name, value in build.settings if isinstance(value, str)]
    seen = set()
    for line, where, text in texts:
        for m in _URL_LOGIN.finditer(text):
            scheme, user, password, host = m.groups()
            if any(c in m.group(0) for c in "${"):
                continue
            if user.lower() in _PUBLIC_LOGINS:
                continue  # ftp://anonymous:me@host: the public login of anonymous FTP (RFC 1635), no secret
            if password:
                found = (line, where, f"{scheme}{user}:***@{host}", "password")
            elif _TOKEN_SHAPE.search(user):
                found = (line, where, f"{scheme}***@{host}", "token")
            else:
                continue  # a user name alone (ssh://git@host, https://alice@host) is no secret
            if found not in seen:
                seen.add(found)
                yield found


@rule("HPC703", "unpinned-pip-install-in-build", "info", kind="build",
      summary="a build step installs Python packages with pip without a version",
      why="Installing in %post or RUN is the right place (once, at build time), but without a version each rebuild "
          "takes whatever is newest that day: two builds of the same file differ, and a new release may break the "
          "training code. (Only advice: pinning is a choice; a constraints file, -c, counts as pinning.)",
      fix="Pin each package (pip install transformers==4.41.2), or install from a requirements file with pinned "
          "versions (pip freeze > requirements.txt in a working environment).",
      catalogue=(31,),
      bad="""Bootstrap: docker
From: pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime

%post
    pip install --no-cache-dir transformers datasets
""",
      good="""Bootstrap: docker
From: pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime

%post
    pip install --no-cache-dir transformers==4.41.2 datasets==2.19.1
""")
def _unpinned_pip(ctx: Context) -> Iterator[Any]:
    for s in _build(ctx).commands:
        args = _pip_install(_program(s.cmd)) if s.build else None
        names = _unpinned(args) if args is not None else []
        if names:
            yield s.line, (f"pip install {' '.join(names)} without a version in {s.where}: each rebuild may get newer "
                           "releases; pin them (name==version)")


def _cd(cwd: str, to: str) -> str:
    """The working folder after ``cd TO`` from ``cwd`` ("" where it is not known: a relative move from an unknown
    folder, ``cd -``, a path with references the build does not fill in)."""
    if not to or to == "-" or "$" in to or "`" in to:
        return ""
    if to.startswith("/"):
        return posixpath.normpath(to)
    return posixpath.normpath(posixpath.join(cwd, to)) if cwd else ""


def _editable_source(words: list[str]) -> str | None:
    """The folder ``pip install -e FOLDER`` (``--editable``, ``python -m pip …``) installs in place, None for any
    other command; a VCS URL (-e git+https://…) is cloned into pip's own src folder, not read in place."""
    words = _as_pip(words)
    if not words or not re.fullmatch(r"pip[0-9.]*", words[0].rsplit("/", 1)[-1]) or "install" not in words[1:3]:
        return None
    for k, word in enumerate(words):
        value = words[k + 1] if word in ("-e", "--editable") and k + 1 < len(words) else \
            word.partition("=")[2] if word.startswith("--editable=") else None
        if value is not None and "://" not in value and not value.startswith("git+"):
            return value
    return None


#: installers run as ``curl … | sh`` that put their tool under the home folder unless told otherwise: the URL, the
#: product, where it goes, the variables that move it (the first is the one to name) and the options that do
_HOME_INSTALLERS = (
    (re.compile(r"astral\.sh/uv/(?:[\w.-]+/)?install\.sh"), "uv's installer", "~/.local/bin",
     ("UV_INSTALL_DIR", "XDG_BIN_HOME", "CARGO_DIST_FORCE_INSTALL_DIR", "UV_UNMANAGED_INSTALL"), ()),
    (re.compile(r"sh\.rustup\.rs|static\.rust-lang\.org/rustup"), "rustup", "~/.cargo and ~/.rustup",
     ("CARGO_HOME",), ()),
    (re.compile(r"install\.python-poetry\.org"), "Poetry's installer", "~/.local/share/pypoetry, ~/.local/bin",
     ("POETRY_HOME",), ()),
    (re.compile(r"pixi\.sh/install\.sh"), "pixi's installer", "~/.pixi", ("PIXI_HOME", "PIXI_BIN_DIR"), ()),
    (re.compile(r"micro\.mamba\.pm/install\.sh"), "micromamba's installer", "~/.local/bin, ~/micromamba",
     ("BIN_FOLDER",), ()),
    (re.compile(r"nvm-sh/nvm/[\w.-]+/install\.sh"), "nvm's installer", "~/.nvm", ("NVM_DIR",), ()),
    (re.compile(r"install\.julialang\.org"), "juliaup's installer", "~/.juliaup", ("JULIAUP_DEPOT_PATH",),
     ("-p", "--path")),
)
_HOME_INSTALLERS_BY_NAME = {product: (where, names, options) for _, product, where, names, options in _HOME_INSTALLERS}
#: a later step that takes the installed tool out of the home, or opens the home to everyone
_OUT_OF_HOME = re.compile(r"\b(?:mv|cp|ln|rsync)\b[^\n]*(?:\.local/bin|\.cargo|\.pixi|micromamba|\.juliaup|"
                          r"\.nvm|pypoetry)|\bchmod\b[^\n]*(?:/root|\$HOME|~)\b")


def _piped_installer(before: Shell | None, s: Shell, words: list[str], env: dict[str, str],
                     build: BuildFile) -> tuple[str, str] | None:
    """``(product, folder)`` when ``s`` is the shell of ``curl URL | sh`` (or wget) for an installer of
    :data:`_HOME_INSTALLERS` that nothing moves out of the home: no variable or option naming another folder, and no
    later step copying the tool out or opening the home."""
    if before is None or before.cmd.joined_by not in ("|", "|&") or (before.where, before.start) != (s.where, s.start):
        return None
    if not words or not re.fullmatch(r"(?:ba|da|z)?sh|python[0-9.]*", words[0].rsplit("/", 1)[-1]):
        return None
    fetch = _program(before.cmd)
    if not fetch or fetch[0].rsplit("/", 1)[-1] not in ("curl", "wget"):
        return None
    urls = " ".join(w for w in fetch[1:] if "://" in w or "." in w)
    for pattern, product, folder, names, options in _HOME_INSTALLERS:
        if not pattern.search(urls):
            continue
        given = env | {k: v for k, eq, v in (str(w).partition("=") for w in s.cmd.argv) if eq}  # env NAME=… sh
        if any(name in given for name in names) or any(w.split("=", 1)[0] in options for w in words[1:]):
            return None
        later = build.source.split("\n")[s.line - 1:]  # this line on: ... | sh && mv ~/.local/bin/uv /usr/local/bin
        if _OUT_OF_HOME.search("\n".join(later)):
            return None
        return product, folder
    return None


def _not_found(form: str, folder: str, user: str) -> str:
    """Why software installed into ``folder`` at build time (a home folder, or one Apptainer binds over) is not found
    when the container runs, by runtime; ``user`` ran the build step."""
    if form == "apptainer":
        if folder == "/root":
            return ("Apptainer runs the container as you, with your own home as HOME and /root closed to you, so the "
                    "software is not found; install under /opt or /usr/local")
        bound = _BOUND.match(folder).group(0).rstrip("/")  # type: ignore[union-attr]
        return (f"Apptainer binds the host's {bound} over the image's when the container runs, hiding what the build "
                "put there; install under /opt or /usr/local")
    if folder == "/root":
        return ("run by Apptainer, the image runs as you, and /root is root's (mode 700): the software is not found. "
                "ch-run can read /root (the unpacked image is yours), but with --home HOME is your own home, so pip "
                "--user's ~/.local is not found there either; install under /opt or /usr/local, which both find")
    who = f"user {user}" if user.isdigit() else user
    return (f"Apptainer runs the image as you, not as {who}: HOME is your own home, not {folder}, so what the build "
            f"put there is off your paths (pip's ~/.local, a conda under ~), and {folder} is {who}'s (often mode 750), "
            "so you may not even read it; install under /opt or /usr/local")


@rule("HPC704", "installed-into-home-at-build", "error", kind="build",
      summary="a build step installs software into a home folder (or a folder bound over the image at run time)",
      why="While the image is built, HOME is /root (or the home of a Dockerfile's USER), so pip install --user, a "
          "virtual environment or a conda prefix under ~ or $HOME (a Miniconda installer run with -b and no -p too) "
          "lands in /root. Apptainer runs the container as you: HOME is your own home folder (bound from the host), "
          "/root is root's and closed to you, and the software is not found. A Dockerfile's USER alice does not help: "
          "the container still runs as you, not as alice, so what the build put in /home/alice (~/.local, a conda "
          "under ~) is off your paths, and /home/alice is alice's, often mode 750, so you may not even read it. "
          "Apptainer also binds the host's /tmp and /var/tmp over the image's by default, hiding what a build put "
          "there; its documentation asks to install into system locations. That holds for pip install -e too: an "
          "editable install leaves the package's code in the folder it was cloned to (cd /tmp && git clone … && pip "
          "install -e .) and only links it into Python; and for the installers piped into sh that put their tool "
          "under ~ unless told otherwise (uv's, rustup, Poetry's, pixi's, micromamba's, nvm's, juliaup's: curl -LsSf "
          "https://astral.sh/uv/install.sh | sh puts uv in /root/.local/bin). Paths are read as the build reads them: a "
          "Dockerfile's ARG and ENV values (ENV VIRTUAL_ENV=/root/venv, then python -m venv $VIRTUAL_ENV) and the "
          "variables a %post section or RUN line sets before. An image built from a Dockerfile and run with "
          "Charliecloud's ch-run does find /root (the unpacked image is yours, and HOME is /root unless ch-run --home "
          "sets it to your home), but the same image fails under Apptainer, the runtime most clusters offer.",
      fix="Install into a system location: pip install without --user (or into a virtual environment under /opt, "
          "e.g. python -m venv /opt/venv), Miniconda with -p /opt/conda.",
      bad="""Bootstrap: docker
From: pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime

%post
    pip install --user --no-cache-dir transformers==4.41.2
""",
      good="""Bootstrap: docker
From: pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime

%post
    pip install --no-cache-dir transformers==4.41.2
""")
def _installed_into_home(ctx: Context) -> Iterator[Any]:
    build = _build(ctx)
    installers = _downloaded_installers(build)
    left_behind = _left_behind(build)
    cwd: dict[tuple[str, int], str] = {}   # the working folder of each shell a section or RUN runs
    previous: Shell | None = None
    for s, env, variables in _environments(build):
        before, previous = previous, s
        if not s.build or left_behind(s.line):
            continue
        shell = (s.where, s.start)
        words = _program(s.cmd)
        piped = _piped_installer(before, s, words, env, build)
        if piped is not None:
            product, folder = piped
            home = _build_home("~", s.user)
            yield s.line, (f"{product}, piped into {words[0]} in {s.where}, installs into the build's home, {home} "
                           f"({folder}): {_not_found(build.format, home, s.user)}; or set "
                           f"{_HOME_INSTALLERS_BY_NAME[product][1][0]} to such a folder for it")
            continue
        if words[:1] == ["cd"]:
            cwd[shell] = _cd(cwd.get(shell, ""), _expanded(words[1], variables) if len(words) > 1 else "")
            continue
        editable = _editable_source(words)
        if editable is not None and build.format == "apptainer":
            folder = _cd(cwd.get(shell, ""), _expanded(editable, variables))
            if _BOUND.match(folder):
                yield s.line, (f"pip install -e {editable} keeps the package's code in {folder}, where the build "
                               f"left it, and only links it into Python in {s.where}: "
                               f"{_not_found(build.format, folder, s.user)}, or drop -e so pip copies the package in")
                continue
        for what, written in _install_places(words, env, installers):
            where = _expanded(written, variables)
            home = _build_home(where, s.user)
            if home or (build.format == "apptainer" and _BOUND.match(where)):
                value = f" ({written} is {where})" if written != where else ""
                folder = f"the build's home, {home}{value}," if home else where + value
                yield s.line, (f"{what} installs into {folder} in {s.where}: "
                               f"{_not_found(build.format, home or where, s.user)}")


#: a stage's first line: a Dockerfile's FROM (group "name": its AS name), a definition file's Bootstrap
_STAGE_START = re.compile(r"^[ \t]*(?:FROM[ \t]+(?:--\S+[ \t]+)*\S+(?:[ \t]+AS[ \t]+(?P<name>\S+))?|Bootstrap:)",
                          re.IGNORECASE | re.MULTILINE)
#: a definition file's Stage: header (the stage's name)
_STAGE_NAME = re.compile(r"^[ \t]*Stage:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)
#: a home folder an image's user finds at run time (or its ~)
_HOME_DESTINATION = re.compile(r"^(?:~|/root|/home)(?:/|$)")


def _left_behind(build: BuildFile) -> Callable[[int], bool]:
    """Whether what a command at a line installs stays behind in an earlier stage of a multi-stage build: the final
    image gets only what its stage copies from that one (COPY --from=NAME, %files from NAME), and none of those copies
    puts anything in a home folder (COPY --from=builder /root/.local /usr/local). Always False in the final stage."""
    source = build.source
    starts = [(source.count("\n", 0, m.start()) + 1, m) for m in _STAGE_START.finditer(source)]
    if len(starts) < 2:
        return lambda line: False
    final = starts[-1][0]
    names: list[tuple[int, str]] = []   # (first line, name) of each stage before the final one
    for k, (line, m) in enumerate(starts[:-1]):
        name = m.group("name") or ""
        if build.format == "apptainer":
            end = starts[k + 1][1].start()
            named = _STAGE_NAME.search(source, m.end(), end)
            name = named.group(1) if named else ""
        names.append((line, (name or str(k)).lower()))
    copied_home = {name for name in (n for _, n in names) if _copies_home(build, final, name)}

    def left(line: int) -> bool:
        if line >= final:
            return False
        name = next((n for first, n in reversed(names) if first <= line), "")
        return name not in copied_home
    return left


def _copies_home(build: BuildFile, final: int, name: str) -> bool:
    """Whether the final stage (from line ``final``) copies anything from stage ``name`` into a home folder."""
    lines = build.source.split("\n")[final - 1:]
    if build.format == "docker":
        for text in lines:
            words = text.split()
            if words[:1] and words[0].upper() in ("COPY", "ADD") and f"--from={name}" in (w.lower() for w in words) \
                    and _HOME_DESTINATION.match(words[-1]):
                return True
        return False
    inside = False
    for text in lines:
        stripped = text.strip()
        if stripped.startswith("%"):
            inside = stripped.lower().split()[:3] == ["%files", "from", name]
            continue
        if inside and stripped and not stripped.startswith("#") and _HOME_DESTINATION.match(stripped.split()[-1]):
            return True
    return False


@rule("HPC705", "package-install-asks", "warning", kind="build",
      summary="apt-get/apt/yum/dnf/zypper/conda/mamba installs (or pip uninstalls) in a build step without -y, or apt "
              "installs tzdata (or another package that asks) without DEBIAN_FRONTEND=noninteractive",
      why="Without -y the package manager stops to ask 'Do you want to continue? [Y/n]' (conda and mamba: 'Proceed "
          "([y]/n)?', pip uninstall: 'Proceed (Y/n)?'). Nobody answers in a build: docker build aborts there, and an "
          "apptainer build run from a script or a batch job fails or waits. (conda is not reported after conda config "
          "--set always_yes yes or with CONDA_ALWAYS_YES=true, nor apt after a step that writes APT::Get::Assume-Yes "
          "\"true\" into its configuration.) Some Debian and Ubuntu packages ask a question of their own while they "
          "are set up, which -y does not answer: tzdata asks for a time zone ('Geographic area:'), and the build "
          "waits there unless DEBIAN_FRONTEND=noninteractive is set for the install (exported in %post or the RUN, "
          "or ENV/ARG in a Dockerfile; in %environment it is read only when the container runs) or the time zone is "
          "set first.",
      fix="Add -y (apt-get install -y --no-install-recommends git, dnf install -y git, conda install -y numpy, "
          "pip uninstall -y torch); zypper takes -n before the subcommand (zypper -n install git). For tzdata and "
          "the like, also export DEBIAN_FRONTEND=noninteractive first.",
      bad="""Bootstrap: docker
From: ubuntu:24.04

%post
    apt-get update
    apt-get install git
""",
      good="""Bootstrap: docker
From: ubuntu:24.04

%post
    apt-get update
    apt-get install -y git
""")
def _install_asks(ctx: Context) -> Iterator[Any]:
    build = _build(ctx)
    yield from _package_asks_its_question(build)
    previous: Shell | None = None
    conda_yes = any(name == "CONDA_ALWAYS_YES" and isinstance(value, str) and _CONDA_ALWAYS_YES.match(value)
                    for _line, _op, name, value in build.settings)
    apt_yes = False
    for s in build.commands:
        conda_yes = conda_yes or _conda_always_yes(s)
        apt_yes = apt_yes or bool(_APT_ASSUME_YES.search(s.cmd.text))
        piped_yes = previous is not None and previous.cmd.joined_by == "|" and previous.cmd.name == "yes"
        asks, answer = _asks(_program(s.cmd)) if s.build and not piped_yes else ("", "")
        tool = asks.split(" ", 1)[0]
        if asks and not (conda_yes and tool in ("conda", "mamba")) and not (apt_yes and tool in ("apt", "apt-get")):
            yield s.line, (f"{asks} without {answer.split()[0]} in {s.where} stops to ask for a yes, which nobody "
                           f"answers in a build; add {answer}")
        previous = s


#: Debian and Ubuntu packages whose set-up asks a question through debconf (tzdata: the time zone), which -y does
#: not answer
_ASKING_PACKAGES = frozenset({"tzdata", "keyboard-configuration", "console-setup", "krb5-config", "postfix",
                              "wireshark-common", "iptables-persistent", "msttcorefonts", "ttf-mscorefonts-installer"})
#: what keeps debconf from asking: its noninteractive front end, chosen in the environment or its own settings, or a
#: time zone set before tzdata is installed
_DEBCONF_QUIET = re.compile(r"DEBIAN_FRONTEND=['\"]?noninteractive|debconf-set-selections|/etc/localtime|/etc/timezone"
                            r"|\bTZ=")


def _package_asks_its_question(build: BuildFile) -> Iterator[tuple[int, str]]:
    """HPC705 for apt: a package whose set-up asks a question (tzdata) installed without DEBIAN_FRONTEND=
    noninteractive, which -y does not answer: the build waits at 'Geographic area:'."""
    quiet = any(_DEBCONF_QUIET.search(f"{name}={value}") for _, _, name, value in build.settings
                if isinstance(value, str))
    for s, env, _variables in _environments(build):
        quiet = quiet or (s.build and bool(_DEBCONF_QUIET.search(s.cmd.text)))
        if not s.build or quiet or env.get("DEBIAN_FRONTEND", "").strip("'\"") == "noninteractive":
            continue
        words = _program(s.cmd)
        if len(words) < 3 or words[0].rsplit("/", 1)[-1] not in ("apt-get", "apt") or "install" not in words[1:3]:
            continue
        asking = sorted(_ASKING_PACKAGES.intersection(w.split("=")[0] for w in words[2:]))
        if asking:
            in_environment = any(e.where == "%environment" and any(n == "DEBIAN_FRONTEND" for n, _ in e.cmd.assignments)
                                 for e in build.commands)
            question = " for a time zone ('Geographic area:')" if asking[0] == "tzdata" else ""
            how = f"export it first in {s.where}" if s.where != "RUN" else \
                "ENV or ARG DEBIAN_FRONTEND=noninteractive, or DEBIAN_FRONTEND=noninteractive before the command"
            note = " (%environment's is read only when the container runs, not while it is built)" \
                if in_environment else ""
            yield s.line, (f"{asking[0]} asks{question} while it is set up, and -y does not answer that: the build "
                           f"waits for an answer nobody gives; set DEBIAN_FRONTEND=noninteractive for the install "
                           f"({how}){note}")


@rule("HPC706", "source-under-sh", "warning", kind="build",
      summary="a build step uses bash's source, but %post and RUN run under /bin/sh (dash on Debian and Ubuntu images)",
      why="Apptainer runs %post with /bin/sh, and a Dockerfile's RUN runs with /bin/sh -c. On Debian and Ubuntu images "
          "(pytorch/pytorch, nvcr.io/nvidia/…) /bin/sh is dash, which has no source command: the build fails with "
          "'source: not found'. Not reported when the base image's name or tag says its /bin/sh has source: the RHEL "
          "family (centos, rockylinux, almalinux, fedora, redhat/ubi, amazonlinux, oraclelinux, a yum or dnf "
          "bootstrap), whose sh is bash, and Alpine and busybox, whose sh is BusyBox ash. A base image of unknown "
          "family (a local image, a name that says nothing) is reported, since most images are Debian or Ubuntu based.",
      fix="Use the POSIX spelling, . /path/to/file, or run the section with bash: %post -c /bin/bash in a definition "
          "file, SHELL [\"/bin/bash\", \"-c\"] before the RUN lines in a Dockerfile.",
      bad="""FROM ubuntu:24.04
RUN apt-get update && apt-get install -y python3-venv
RUN python3 -m venv /opt/venv && source /opt/venv/bin/activate && pip install numpy==1.26.4
""",
      good="""FROM ubuntu:24.04
RUN apt-get update && apt-get install -y python3-venv
RUN python3 -m venv /opt/venv && . /opt/venv/bin/activate && pip install numpy==1.26.4
""")
def _source_under_sh(ctx: Context) -> Iterator[Any]:
    for s in _build(ctx).commands:
        if s.build and s.posix and s.cmd.name == "source" and not _sh_has_source(s.base):
            yield s.line, (f"source in {s.where}, which runs under /bin/sh (dash on Debian and Ubuntu images: "
                           "'source: not found'); write . FILE instead")


@rule("HPC707", "section-apptainer-does-not-read", "error", kind="build",
      summary="a definition file has a %section Apptainer does not read: a misspelled name, or an indented % line",
      why="Apptainer starts a section at every line whose first word begins with %, and stops the build with "
          "'invalid section(s) specified' when the name is not one of its sections (%enviroment, %runscrpt). It reads "
          "the name only from a line that starts with the %: an indented %post ends the header or section above but "
          "names no section, so the build stops the same way. (The other rules still check such a section's text as "
          "the section it was meant to be.)",
      fix="Spell the section as Apptainer does (%post, %environment, %runscript, %labels, …) and start its line with "
          "the %, without blanks before it.",
      bad="""Bootstrap: docker
From: ubuntu:24.04

%enviroment
    export LC_ALL=C.UTF-8
""",
      good="""Bootstrap: docker
From: ubuntu:24.04

%environment
    export LC_ALL=C.UTF-8
""")
def _unread_section(ctx: Context) -> Iterator[Any]:
    yield from _build(ctx).unread


@rule("HPC708", "variable-set-in-another-section", "error", kind="build",
      summary="a definition file reads a variable where it is not set: %environment's in %post, or %post's in "
              "%environment or %runscript",
      why="Each section of a definition file runs in its own shell. Apptainer does not source %environment while the "
          "image is built (only when the container runs), so a variable exported there is empty in %post: "
          "python3 -m venv $VENV gets no folder and the build stops, mkdir -p $PREFIX/bin writes to /bin. The other "
          "way round, a variable set in %post is gone when the container runs: %environment, sourced then, gets it "
          "empty (export PATH=/opt/conda/envs/$ENV_NAME/bin:$PATH adds /opt/conda/envs//bin), and so do %runscript, "
          "%startscript and %test, unless %post writes it to $APPTAINER_ENVIRONMENT. That file is sourced after "
          "%environment (91-environment.sh after 90-environment.sh), so it does not help %environment. (Not "
          "reported: variables the section sets itself, ones given a default with ${NAME:-…}, the shell's and "
          "Apptainer's own such as HOME, PATH and APPTAINER_*, and what a base image's ENV usually sets, which %post "
          "does see: search paths such as LD_LIBRARY_PATH, and the variables of widely used base images such as "
          "MAMBA_ROOT_PREFIX, CONDA_DIR, PYTHON_VERSION and PYTORCH_VERSION.)",
      fix="Set the variable where it is read too (export VENV=/opt/venv at the top of %post, export ENV_NAME=myenv "
          "in %environment), or have %post write it for %runscript: "
          "echo \"export NOW=\\\"$NOW\\\"\" >> $APPTAINER_ENVIRONMENT.",
      bad="""Bootstrap: docker
From: ubuntu:24.04

%environment
    export VENV=/opt/venv

%post
    apt-get update && apt-get install -y python3-venv
    python3 -m venv $VENV
""",
      good="""Bootstrap: docker
From: ubuntu:24.04

%environment
    export VENV=/opt/venv

%post
    export VENV=/opt/venv
    apt-get update && apt-get install -y python3-venv
    python3 -m venv $VENV
""")
def _variable_from_another_section(ctx: Context) -> Iterator[Any]:
    build = _build(ctx)
    if build.format != "apptainer":
        return  # a Dockerfile's ENV is set for the RUN lines below it and in the running container alike
    environment = [s for s in build.commands if s.where == "%environment"]
    post = [s for s in build.commands if s.build]
    run = [s for s in build.commands if s.where in _RUN_SECTIONS]
    exported = {name for s in environment for name, _word in s.cmd.assignments}
    set_in_post = _set_names(post, build.source)
    reported = set()
    for s in post:
        for name in sorted(_references(s.cmd) & exported - set_in_post):
            if not _GIVEN.fullmatch(name) and name not in reported:
                reported.add(name)
                yield s.line, (f"${name} is set in %environment, which Apptainer does not source while it builds: in "
                               f"{s.where} it is empty; set it in {s.where} too (export {name}=…)")
    own_environment = _set_names(environment, build.source)
    for s in environment:
        for name in sorted(_references(s.cmd) & set_in_post - own_environment):
            if not _GIVEN.fullmatch(name) and ("%environment", name) not in reported:
                reported.add(("%environment", name))
                yield s.line, (f"${name} is set in %post, whose variables are gone when the container runs: "
                               f"%environment is sourced then and reads it empty; set it in %environment too "
                               f"(export {name}=… before this line)")
    kept = _written_to_environment(post)
    for where in dict.fromkeys(s.where for s in run):
        section = [s for s in run if s.where == where]
        own = _set_names(section, build.source) | exported
        for s in section:
            for name in sorted(_references(s.cmd) & set_in_post - own):
                if not _GIVEN.fullmatch(name) and not re.search(rf"\b{name}\b", kept) and (where, name) not in reported:
                    reported.add((where, name))
                    yield s.line, (f"${name} is set in %post, whose variables are gone when the container runs: in "
                                   f"{where} it is empty; have %post keep it (echo \"export {name}=\\\"${name}\\\"\" "
                                   f">> $APPTAINER_ENVIRONMENT), or set it in %environment")


@rule("HPC709", "header-keyword-apptainer-does-not-read", "error", kind="build",
      summary="a definition file's header has a keyword Apptainer does not read (Maintainer:, Version:, a "
              "misspelling), or a line without a colon",
      why="Apptainer reads a fixed set of header keywords (Bootstrap, From, Stage, IncludeCmd, OSVersion, "
          "MirrorURL, Fingerprints, …) and stops the build at any other with 'invalid header keyword found', and at a "
          "header line without a colon with 'header key … had no val'. Metadata such as a maintainer or a version "
          "belongs in %labels, which apptainer inspect shows.",
      fix="Spell the keyword as Apptainer does (the message names the nearest one), or move the line to %labels "
          "(Maintainer alice@example.org).",
      bad="""Bootstrap: docker
From: ubuntu:24.04
Maintainer: alice@example.org

%post
    apt-get update && apt-get install -y git
""",
      good="""Bootstrap: docker
From: ubuntu:24.04

%labels
    Maintainer alice@example.org

%post
    apt-get update && apt-get install -y git
""")
def _bad_header(ctx: Context) -> Iterator[Any]:
    yield from _build(ctx).bad_headers


# -- CPU architecture (the profile's cpu_arch) ------------------------------------------------------------------

def _build_arch(ctx: Context) -> tuple[str, str]:
    """The CPU architecture of the site the image is for (the profile's, or the one all its partitions name) and how
    messages name it; ``("", "")`` without a profile or where it does not say."""
    arch = ctx.profile.site_arch() if ctx.profile is not None else ""
    if not arch:
        return "", ""
    return arch, f"the nodes of {ctx.profile.name} are {arch}{' (Arm)' if arch == 'aarch64' else ''}"


@rule("HPC710", "base-image-without-arch-build", "warning", kind="build",
      summary="the base image (From: / FROM) has no build for the site's CPU architecture (pytorch/pytorch on Arm "
              "nodes)",
      why="A build starts from the base image's build for the machine it runs on (or for --arch/--platform). Some "
          "widely used images have x86_64 (amd64) builds only: pytorch/pytorch on Docker Hub publishes linux/amd64 "
          "and nothing else (the requests for arm64 builds, pytorch/pytorch#145716 and #157139, are open). Built "
          "on an aarch64 site (NVIDIA Grace, GH200) the build finds no base for the machine, and an image built "
          "elsewhere from it holds amd64 programs that stop with 'exec format error' on the nodes. Only images whose "
          "builds are known are judged (hpcwidgets.spec.profile.IMAGE_ARCHES). The architecture is the profile's "
          "cpu_arch (or the one all its partitions name), so the rule needs such a profile (the examples use generic "
          "with cpu_arch = \"aarch64\").",
      fix="Start from an image built for the site's architecture: on Arm nodes NVIDIA's NGC PyTorch image "
          "(From: nvcr.io/nvidia/pytorch:24.05-py3, built for arm64 and amd64). docker manifest inspect IMAGE (or "
          "the registry's tag page) lists the architectures of a tag.",
      profile="generic",
      bad="""Bootstrap: docker
From: pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime

%post
    pip install --no-cache-dir scikit-learn==1.5.0
""",
      good="""Bootstrap: docker
From: nvcr.io/nvidia/pytorch:24.05-py3

%post
    pip install --no-cache-dir scikit-learn==1.5.0
""")
def _base_without_arch_build(ctx: Context) -> Iterator[Any]:
    arch, place = _build_arch(ctx)
    for base in _build(ctx).bases if arch else ():
        built = image_arches(base.image) if base.image and "$" not in base.image else ()
        if built and arch not in built:
            yield (base.line, f"the base image {base.image.split('://', 1)[-1]} has builds for {', '.join(built)} only, "
                              f"but {place}: the build finds no base for them, or the image's programs stop with "
                              f"'exec format error'; start from an image built for {arch}"
                              f"{ARCH_IMAGE_HINTS.get(arch, '')}")


@rule("HPC711", "build-download-for-other-arch", "warning", kind="build",
      summary="a build step installs a wheel, a conda installer or a .deb/.rpm built for another CPU architecture "
              "than the site's (x86_64 files on Arm nodes)",
      why="Binary packages say their CPU architecture in their file names: a wheel's platform tag "
          "(…-manylinux2014_x86_64.whl), the conda installers' names (Miniforge3-Linux-x86_64.sh), Debian's "
          "_amd64.deb and RPM's .x86_64.rpm. The image is built for the site's nodes (the base image's build for "
          "the machine that builds it), so a file for another architecture fails the build there: pip refuses the "
          "wheel, dpkg and rpm the package, and the installer's programs stop with 'exec format error'. Written into "
          "%post or RUN from x86 instructions, this breaks builds on NVIDIA Grace and GH200 (aarch64) sites, even "
          "from a multi-architecture base such as nvcr.io/nvidia/pytorch. A file that picks the file by the machine "
          "($(uname -m), Docker's TARGETARCH) is left alone. The architecture is the profile's cpu_arch (or the one "
          "all its partitions name), so the rule needs such a profile (the examples use generic with cpu_arch = "
          "\"aarch64\").",
      fix="Let the tool pick the build: pip install NAME==VERSION, Miniforge3-$(uname)-$(uname -m).sh, apt-get "
          "install NAME; or name the file built for the site's nodes (aarch64, arm64 in Debian's names).",
      profile="generic",
      bad="""Bootstrap: docker
From: nvcr.io/nvidia/pytorch:24.05-py3

%post
    wget -O /tmp/miniforge.sh https://github.com/conda-forge/miniforge/releases/download/24.3.0-0/Miniforge3-Linux-x86_64.sh
    bash /tmp/miniforge.sh -b -p /opt/conda
""",
      good="""Bootstrap: docker
From: nvcr.io/nvidia/pytorch:24.05-py3

%post
    wget -O /tmp/miniforge.sh "https://github.com/conda-forge/miniforge/releases/download/24.3.0-0/Miniforge3-$(uname)-$(uname -m).sh"
    bash /tmp/miniforge.sh -b -p /opt/conda
""")
def _build_download_for_other_arch(ctx: Context) -> Iterator[Any]:
    arch, place = _build_arch(ctx)
    build = _build(ctx)
    commands = [_Located(s.line, s.cmd) for s in build.commands if s.build]
    for line, name, kind, built in arch_downloads(commands, build.source, arch):
        yield line, arch_download_message(name, kind, built, place, arch)


@rule("HPC712", "conda-activate-in-build", "error", kind="build",
      summary="conda activate (or mamba activate) in a build step: it fails in a shell conda has not set up, and "
              "the environment it activates ends with the step",
      why="conda activate is a shell function, not a program: it exists only in a shell that has read conda's set-up "
          "(. /opt/conda/etc/profile.d/conda.sh, or eval \"$(conda shell.bash hook)\"; conda init writes that into "
          "~/.bashrc, which a build's non-interactive /bin/sh -c never reads). Without it the build stops with "
          "'CommandNotFoundError: Your shell has not been properly configured to use conda activate'. Where it does "
          "work, it changes only the shell of its own RUN line or %post section: the next RUN, the %runscript, apptainer "
          "exec and the job's srun start with the base environment, and pip install in a later RUN installs there. "
          "Not reported after conda's set-up in the same shell with commands following, or under a Dockerfile SHELL "
          "that starts a login or interactive bash (SHELL [\"/bin/bash\", \"--login\", \"-c\"]) or with an ENV "
          "BASH_ENV, which bash reads first.",
      fix="Run the command in the environment with conda run -n ENV … (conda run --no-capture-output -n ENV for "
          "output as it comes), or set conda up and work in the same step: . /opt/conda/etc/profile.d/conda.sh && "
          "conda activate ENV && pip install …. For the container at run time, put the environment's bin folder first "
          "on PATH (ENV PATH=/opt/conda/envs/ENV/bin:$PATH, or an export in %environment).",
      bad="""FROM continuumio/miniconda3:24.4.0-0
RUN conda create -y -n ml python=3.11
RUN conda activate ml && pip install numpy==1.26.4
""",
      good="""FROM continuumio/miniconda3:24.4.0-0
RUN conda create -y -n ml python=3.11
RUN conda run -n ml pip install numpy==1.26.4
""")
def _conda_activate_in_build(ctx: Context) -> Iterator[Any]:
    build = _build(ctx)
    shells: dict[tuple[str, int], list[Shell]] = {}
    for s in build.commands:
        if s.build:
            shells.setdefault((s.where, s.start), []).append(s)
    bash_env = any(name == "BASH_ENV" for _line, op, name, _value in build.settings if op == "ENV")
    for (where, start), commands in shells.items():
        if build.format == "docker" and (bash_env or _login_shell_before(build.source, start)):
            continue  # bash reads the profile, the bashrc or $BASH_ENV, where images set conda up
        set_up = False
        for k, s in enumerate(commands):
            words = _program(s.cmd)
            set_up = set_up or bool(_CONDA_SET_UP.search(s.cmd.text))
            if len(words) < 2 or words[0].rsplit("/", 1)[-1] not in ("conda", "mamba") or words[1] != "activate":
                continue
            tool, env = words[0].rsplit("/", 1)[-1], (words[2:] or ["base"])[-1]
            if not set_up:
                yield s.line, (f"{tool} activate in {where} runs in a shell {tool} has not been set up in (nothing "
                               f"before it in the same {_one_step(where)} reads conda.sh or {tool} shell.bash hook), "
                               f"so the build stops with 'CommandNotFoundError: Your shell has not been properly "
                               f"configured to use {tool} activate'; run the command with conda run -n {env} …, or "
                               f"set conda up first in the same {_one_step(where)}: "
                               f". /opt/conda/etc/profile.d/conda.sh && conda activate {env} && …")
                break
            if k == len(commands) - 1:
                yield s.line, (f"{tool} activate {env} is the last command of this {_one_step(where)}: the "
                               f"environment ends with its shell, and later steps and the container start without "
                               f"it; run what needs it in the same {_one_step(where)} (conda activate {env} && pip "
                               f"install …), and for the container put /opt/conda/envs/{env}/bin first on PATH")


#: a command that sets conda up in its shell: its shell script, its hook, or a bashrc that conda init wrote into
_CONDA_SET_UP = re.compile(r"(?:conda|mamba)\.sh\b|\bshell\.(?:bash|posix|sh|zsh)\s+hook\b|\bshell\s+hook\b|"
                           r"\.bashrc\b|\bconda\s+init\b.*&&")
#: a Dockerfile SHELL whose bash reads the profile or bashrc: a login (--login, -l) or interactive (-i) shell
_LOGIN_SHELL = re.compile(r'^\s*SHELL\s*\[.*"(?:--login|-l|-i|-[a-z]*[li][a-z]*c|--interactive)"', re.M | re.I)


def _login_shell_before(source: str, line: int) -> bool:
    """Whether a Dockerfile ``SHELL`` above ``line`` starts a login or interactive bash (which reads conda's set-up
    from the profile or bashrc an image such as continuumio/miniconda3 writes it to)."""
    above = "\n".join(source.split("\n")[:max(line - 1, 0)])
    return bool(_LOGIN_SHELL.search(above))


def _one_step(where: str) -> str:
    return "RUN" if where == "RUN" else f"{where} section"


@dataclass(frozen=True)
class _Located:
    """A build step's command as :func:`~hpcwidgets.lint.container_rules.arch_downloads` reads it: its words and
    assignments, at its line in the file."""

    line: int
    cmd: Command

    @property
    def argv(self) -> tuple[Any, ...]:
        return tuple(self.cmd.argv)

    @property
    def assignments(self) -> tuple[Any, ...]:
        return tuple(self.cmd.assignments)

# -- what does not reach the step that reads it (session 29's audit) -------------------------------------------

#: a ``$NAME`` or ``${NAME}`` reference a Dockerfile fills in (not ``${NAME:-default}``, which gives its own value)
_DOCKER_REFERENCE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


@rule("HPC713", "global-arg-not-declared-in-stage", "error", kind="build",
      summary="a Dockerfile uses an ARG declared before FROM inside a stage that does not declare it again (ARG NAME)",
      why="An ARG before the first FROM is in scope only for the FROM lines: a stage sees it only after its own "
          "ARG NAME (without a value, it takes the global one). Without that, $NAME is empty in the stage's RUN, "
          "ENV, COPY and WORKDIR lines: pip install torch==$TORCH_VERSION becomes pip install torch== and the build "
          "stops, or worse, an empty version or path builds quietly (COPY . /opt/$APP/ copies into /opt/). Docker "
          "and ch-image both follow this rule.",
      fix="Declare the argument again inside each stage that uses it, after its FROM: ARG TORCH_VERSION.",
      bad="""ARG TORCH_VERSION=2.3.1
FROM python:3.11-slim
RUN pip install --no-cache-dir torch==${TORCH_VERSION}
""",
      good="""ARG TORCH_VERSION=2.3.1
FROM python:3.11-slim
ARG TORCH_VERSION
RUN pip install --no-cache-dir torch==${TORCH_VERSION}
""")
def _global_arg_not_in_stage(ctx: Context) -> Iterator[Any]:
    build = _build(ctx)
    if build.format != "docker":
        return
    try:
        instructions = dockerfile_instructions(build.source, build.path)
    except ParseError:
        return
    global_args: dict[str, int] = {}
    stage_names: set[str] = set()
    env_by_stage: dict[str, set[str]] = {}
    own: set[str] | None = None   # the names the current stage declares or sets (None: before the first FROM)
    reported: set[str] = set()
    stage = ""
    for line, op, body in instructions:
        text = str(body)
        if op == "FROM":
            words = [w for w in text.split() if not w.startswith("--")]
            parent = words[0].lower() if words else ""
            own = set(env_by_stage.get(parent, set())) if parent in stage_names else set()
            stage = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else ""
            reported = set()
            continue
        if own is None:
            if op == "ARG":
                for name, _ in _settings(op, text, line, build.path):
                    global_args.setdefault(name, line)
            continue
        if op in ("ARG", "ENV"):
            names = [name for name, _ in _settings(op, text, line, build.path)]
            uses = [] if op == "ARG" else _global_uses(text, global_args, own)
            own.update(names)
        else:
            uses = _global_uses(text, global_args, own)
            if op == "RUN":  # the RUN's shell may set the name itself (NAME=… or for NAME in …)
                uses = [n for n in uses if not re.search(rf"(?<![\w$]){n}=|\bfor\s+{n}\b", text)]
        if stage:
            stage_names.add(stage)
            env_by_stage[stage] = set(own)
        for name in uses:
            if name in reported:
                continue
            reported.add(name)
            yield line, (f"${name} is an ARG declared before FROM (line {global_args[name]}), which a stage sees only "
                         f"after its own ARG {name}: in this {op} it is empty; add ARG {name} after this stage's FROM")


def _global_uses(text: str, global_args: dict[str, int], own: set[str]) -> list[str]:
    """The global ARGs ``text`` refers to that the stage has not declared or set itself, in order."""
    out: list[str] = []
    for m in _DOCKER_REFERENCE.finditer(text):
        name = m.group(1) or m.group(2)
        if name in global_args and name not in own and name not in out:
            out.append(name)
    return out


#: what only sets up the shell a RUN runs in: gone when the RUN ends
_SHELL_ONLY = frozenset({"export", "cd", "source", ".", "pushd", "popd", "umask", "set", "shopt", "alias", "unset"})


@rule("HPC714", "run-sets-up-only-its-own-shell", "error", kind="build",
      summary="a Dockerfile RUN only exports a variable, changes directory or activates an environment, which ends "
              "with that RUN (RUN export PATH=…, RUN cd /app, RUN . venv/bin/activate)",
      why="Each RUN line runs in a new shell, and only its changes to files are kept in the image. A variable it "
          "exports, a directory it changes to and an environment it activates are gone at the next RUN and in the "
          "running container: RUN export PATH=/opt/conda/bin:$PATH then RUN conda install … stops with 'conda: not "
          "found', and RUN cd /app leaves the next RUN in /. (In an Apptainer %post section the commands share one "
          "shell, so this is a Dockerfile mistake.)",
      fix="Use the Dockerfile's own instructions, which are kept: ENV PATH=/opt/conda/bin:$PATH, WORKDIR /app; for a "
          "virtual environment, ENV PATH=/opt/venv/bin:$PATH (what activating does); or put the set-up and the "
          "commands that need it in one RUN (RUN cd /app && make).",
      bad="""FROM python:3.11-slim
RUN python -m venv /opt/venv
RUN . /opt/venv/bin/activate
RUN pip install --no-cache-dir numpy==1.26.4
""",
      good="""FROM python:3.11-slim
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir numpy==1.26.4
""")
def _run_sets_up_only(ctx: Context) -> Iterator[Any]:
    build = _build(ctx)
    if build.format != "docker":
        return
    runs: dict[int, list[Shell]] = {}
    lines = build.source.split("\n")
    for s in build.commands:
        start = s.start or s.line
        if s.where == "RUN" and not re.match(r"\s*RUN\s+(?:--\S+\s+)*\[", lines[start - 1], re.IGNORECASE):
            # (an exec-form RUN ["prog", …] runs no shell at all: nothing to set up)
            runs.setdefault(start, []).append(s)
    for start, commands in runs.items():
        if all(_sets_up_only(s.cmd) for s in commands):
            what = _set_up_named(commands[0].cmd)
            yield start, (f"this RUN only {what}, and each RUN runs in a shell of its own: the change is gone at the "
                          f"next RUN and in the image; {_SET_UP_INSTEAD.get(what.split()[0], _SET_UP_INSTEAD[''])}")


def _sets_up_only(cmd: Command) -> bool:
    words = [str(w) for w in cmd.argv]
    if not words:
        return bool(cmd.assignments)  # NAME=value alone
    if words[0] in _SHELL_ONLY:
        return True
    return len(words) > 1 and words[0].rsplit("/", 1)[-1] in ("conda", "mamba", "micromamba") and words[1] == "activate"


def _set_up_named(cmd: Command) -> str:
    words = [str(w) for w in cmd.argv]
    if not words or words[0] == "export":
        return "sets variables"
    if words[0] in ("cd", "pushd", "popd"):
        return "changes directory"
    if words[0] in ("source", ".") or "activate" in words[:2]:
        return "activates an environment" if any("activate" in w for w in words) else "sources a file"
    return f"runs {words[0]}"


#: the instruction that keeps what the set-up meant, by the first word of :func:`_set_up_named`
_SET_UP_INSTEAD = {
    "sets": "use ENV NAME=value, which is kept",
    "changes": "use WORKDIR, which is kept, or cd in the RUN that needs it (RUN cd /app && make)",
    "activates": "put the environment first on PATH with ENV PATH=/opt/venv/bin:$PATH (what activating does), or "
                 "activate it in the RUN that needs it",
    "sources": "source it in the RUN that needs it (RUN . /etc/profile.d/x.sh && …), or set what it sets with ENV",
    "": "do it in the RUN that needs it",
}


#: a build argument in an Apptainer definition file: {{ NAME }}
_TEMPLATE_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@rule("HPC715", "build-argument-not-defined", "warning", kind="build",
      summary="a definition file uses a build argument {{ NAME }} that its %arguments section does not define",
      why="Apptainer 1.2 and later fill in {{ NAME }} from apptainer build --build-arg NAME=… (or --build-arg-file) "
          "or from the file's %arguments section, and stop the build when neither gives it: 'build var NAME is not "
          "defined through either --build-arg (--build-arg-file) or 'arguments' section'. A file that relies on "
          "--build-arg alone fails for whoever builds it without knowing that, and a misspelt name (CUDA_VER where "
          "%arguments has CUDA_VERSION) fails for everyone. (A name that holds a secret, HF_TOKEN, is left alone: it "
          "is passed at build time on purpose.)",
      fix="Give each build argument a default in %arguments (NAME=value on its own line), and spell the name the same "
          "in both places; --build-arg still overrides it.",
      bad="""Bootstrap: docker
From: nvidia/cuda:{{ CUDA_VER }}-runtime-ubuntu22.04

%arguments
    CUDA_VERSION=12.4.1
""",
      good="""Bootstrap: docker
From: nvidia/cuda:{{ CUDA_VERSION }}-runtime-ubuntu22.04

%arguments
    CUDA_VERSION=12.4.1
""")
def _build_argument_not_defined(ctx: Context) -> Iterator[Any]:
    build = _build(ctx)
    if build.format != "apptainer" or "{{" not in build.source:
        return
    import difflib
    defined = {name for _, keyword, name, _ in build.settings if keyword == "%arguments"}
    reported: set[str] = set()
    for k, text in enumerate(build.source.split("\n"), 1):
        if text.lstrip().startswith("#"):
            continue  # comment lines are left alone
        for m in _TEMPLATE_VARIABLE.finditer(text):
            name = m.group(1)
            if name in defined or name in reported:
                continue
            reported.add(name)
            near = difflib.get_close_matches(name, sorted(defined), n=1, cutoff=0.6)
            if not near and _TOKEN_NAME.match(name):
                continue  # a secret is given at build time on purpose, never as a default written in the file
            if near:
                yield k, (f"{{{{ {name} }}}} is not defined in %arguments, which has {near[0]}: the build stops "
                          f"('build var {name} is not defined'); write {{{{ {near[0]} }}}}")
            else:
                yield k, (f"{{{{ {name} }}}} is not defined in %arguments: the build stops ('build var {name} is not "
                          f"defined') unless every build passes --build-arg {name}=…; give it a default in "
                          f"%arguments ({name}=…)")


#: a reference to the arguments a script was given: "$@", $*, $1, ${2}, $# (and what reads them: shift, getopts)
_POSITIONAL = re.compile(r"\$(?:[@*#1-9]|\{[@*#1-9])")
_READS_ARGUMENTS = re.compile(r"(?<![\w-])(?:shift|getopts)(?![\w-])")
#: commands of a %runscript that only show something or set the shell up: a runscript of these alone starts no program
_SHOWS_ONLY = frozenset({"echo", "printf", "cat", "true", "false", ":", "exit", "return", "export", "cd", "source", ".",
                         "set", "unset", "umask", "ulimit", "date", "hostname", "uname", "id", "whoami", "printenv",
                         "ls", "pwd", "sleep", "shopt", "alias", "trap"})


@rule("HPC716", "run-arguments-dropped", "warning", kind="build",
      summary="a %runscript (or %apprun) starts its program without \"$@\", or a Dockerfile's ENTRYPOINT is in shell "
              "form (or runs sh -c without passing its arguments on): the arguments of apptainer run IMAGE … (docker "
              "run) never reach the program",
      why="apptainer run IMAGE --epochs 3 hands --epochs 3 to the %runscript as its arguments, and only a runscript "
          "that passes them on (\"$@\") gives them to its program: python /opt/train.py alone runs with the defaults, "
          "and the job trains with other settings than the ones it was given, with no error. An image built from a "
          "Dockerfile gets its runscript from ENTRYPOINT and CMD; an ENTRYPOINT in shell form (ENTRYPOINT python "
          "train.py) runs as /bin/sh -c 'python train.py', which takes the first argument as its $0 and drops the "
          "rest, so docker run and apptainer run arguments (and CMD) are ignored alike; so does an exec-form "
          "ENTRYPOINT [\"/bin/sh\", \"-c\", \"python train.py\"], and one whose script reads \"$@\" but has no word "
          "after it loses the first argument to $0. A runscript that only shows something (echo, cat a help text) is "
          "left alone.",
      fix="End the runscript with exec PROGRAM … \"$@\" (exec python /opt/train.py \"$@\"); in a Dockerfile write "
          "ENTRYPOINT in exec form, as JSON: ENTRYPOINT [\"python\", \"/opt/train.py\"].",
      bad="""Bootstrap: docker
From: python:3.11-slim

%runscript
    exec python /opt/train.py
""",
      good="""Bootstrap: docker
From: python:3.11-slim

%runscript
    exec python /opt/train.py "$@"
""")
def _run_arguments_dropped(ctx: Context) -> Iterator[Any]:
    build = _build(ctx)
    if build.format == "docker":
        entry = _final_entrypoint(build)
        if entry is not None:
            found = _entrypoint_drops_arguments(*entry, build.path)
            if found is not None:
                yield found
        return
    sections: dict[tuple[str, int], list[Shell]] = {}
    for s in build.commands:
        if s.where in ("%runscript", "%apprun"):
            sections.setdefault((s.where, s.start or s.line), []).append(s)
    for (where, _start), commands in sections.items():
        if any(_POSITIONAL.search(s.cmd.text) or _READS_ARGUMENTS.search(s.cmd.text) for s in commands):
            continue  # (an awk '{print $1}' counts too: a runscript is left alone rather than misread)
        runs = [s for s in commands if _started_program(s.cmd)]
        if not runs:
            continue
        s = runs[-1]
        words = _program(s.cmd)
        # the words as written, quotes and all (python -c "import torch; …"), for the fix to be shell again
        raw = [w.raw for w in s.cmd.words][-len(words):] if len(s.cmd.words) >= len(words) else words
        words = raw[1:] if words[:1] == ["exec"] else raw
        program = " ".join(words) if len(words) <= 5 else " ".join(words[:3]) + " …"
        how = "apptainer run --app NAME IMAGE …" if where == "%apprun" else "apptainer run IMAGE …"
        yield s.line, (f"{where} runs {program} without \"$@\": the arguments of {how} never reach it, and it runs "
                       f"with its defaults; pass them on ({program} \"$@\")")


def _entrypoint_drops_arguments(line: int, text: str, path: str) -> tuple[int, str] | None:
    """HPC716 for the image's ENTRYPOINT: in shell form, or in exec form running a shell's -c script that drops the
    arguments (no "$@" in it) or takes the first as its $0 (no word after the script)."""
    words = " ".join(text.split())
    try:
        argv = _exec_form(text.strip(), line, path)
    except ParseError:
        return None
    if argv is None:
        try:
            meant = shlex.split(words)
        except ValueError:  # an open quote: the text as one word
            meant = [words]
        meant = meant[1:] if meant[:1] == ["exec"] and len(meant) > 1 else meant   # exec is the shell's, no program
        return line, (f"ENTRYPOINT in shell form runs as /bin/sh -c '{words}', which drops the arguments of docker "
                      f"run and apptainer run IMAGE … (and CMD); write it in exec form: ENTRYPOINT {json.dumps(meant)}")
    if len(argv) < 3 or argv[0].rsplit("/", 1)[-1] not in ("sh", "bash", "dash") or argv[1] != "-c":
        return None
    script, shell = argv[2], argv[0].rsplit("/", 1)[-1]
    if not _POSITIONAL.search(script):
        fixed = json.dumps([*argv[:2], script + ' "$@"', shell])
        return line, (f"ENTRYPOINT runs {argv[0]} -c {script!r}, whose script never reads its arguments: those of "
                      "docker run and apptainer run IMAGE … (and CMD) are dropped; pass them on with \"$@\" and give "
                      f"the shell a word for $0 after the script: ENTRYPOINT {fixed}")
    if len(argv) == 3:
        fixed = json.dumps([*argv, shell])
        return line, (f"ENTRYPOINT runs {argv[0]} -c with no word after its script: the shell takes the first "
                      "argument of docker run or apptainer run IMAGE … (or of CMD) as its $0, so \"$@\" misses it; "
                      f"add a word for $0: ENTRYPOINT {fixed}")
    return None


def _started_program(cmd: Command) -> bool:
    """Whether a runscript command starts a program (not echo, cat, export …); exec counts as the program it runs."""
    words = _program(cmd)
    if words[:1] == ["exec"]:
        words = words[1:]
    return bool(words) and words[0].rsplit("/", 1)[-1] not in _SHOWS_ONLY


def _final_entrypoint(build: BuildFile) -> tuple[int, str] | None:
    """The ENTRYPOINT the image gets: the last one of the last stage, as ``(line, text)``; None when it has none."""
    return build.stages[-1].entrypoint if build.stages else None


#: the Python a distribution's python3 package installs, by release: ubuntu22.04 (also in nvidia/cuda tags), debian12,
#: and the code names
_DISTRO_PYTHON = {"ubuntu20.04": "3.8", "ubuntu22.04": "3.10", "ubuntu24.04": "3.12", "debian11": "3.9",
                  "debian12": "3.11", "debian13": "3.13", "focal": "3.8", "jammy": "3.10", "noble": "3.12",
                  "bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13"}
#: a virtual environment made in a RUN: python3.11 -m venv PATH, virtualenv PATH, uv venv PATH (its options first)
_VENV_MADE = re.compile(r"(?:^|\s)(?:(?:\S*/)?python([0-9.]*)\s+(?:-\S+\s+)*-m\s+venv|(?:\S*/)?virtualenv|uv\s+venv)"
                        r"(?:\s+-\S+)*\s+(/[^\s;&|]+)")
#: a package manager's install command (the packages follow it)
_SYSTEM_INSTALL = re.compile(r"\b(?:apt-get|apt|dnf|yum|microdnf)\b[^\n]*?\binstall\b([^\n]*)")


@dataclass(frozen=True)
class _Stage:
    """One stage of a Dockerfile, as HPC717 reads it."""

    line: int
    name: str
    base: str                 # the image it builds on (filled in); an earlier stage's base when it builds on that one
    python: str               # the Python version its python3 is: "" when the file does not tell, "none" for no Python
    where: str = ""           # the folder of that interpreter: /usr/local/bin (python:3.X images), /usr/bin (packages)
    #: its virtual environments: (path, the Python version that made it, that interpreter's folder)
    venvs: tuple[tuple[str, str, str], ...] = ()


def _release_python(base: str) -> str:
    """The python3 of the Debian or Ubuntu release a base image is ("" for another image)."""
    name = base.split("@", 1)[0].rsplit("/", 1)[-1].lower()
    m = re.fullmatch(r"(ubuntu|debian):(\d+(?:\.\d+)?)(?:[-.][\w.-]*)?", name)
    key = m.group(1) + m.group(2) if m else ""
    if not m:
        found = re.search(r"ubuntu(\d\d\.\d\d)|(?<![a-z])(focal|jammy|noble|bullseye|bookworm|trixie)(?![a-z])", name)
        key = ("ubuntu" + found.group(1) if found.group(1) else found.group(2)) if found else ""
    return _DISTRO_PYTHON.get(key, "")


def _stage_python(base: str, runs: list[str]) -> tuple[str, str]:
    """The Python of a stage on ``base`` whose RUN lines are ``runs``, as ``(version, its folder)``: python:3.11…
    gives ("3.11", "/usr/local/bin"); a python3.X package a RUN installs gives X in /usr/bin; a Debian or Ubuntu base
    gives its release's python3 in /usr/bin when a RUN installs python3 (apt-get install python3, python3-venv …),
    else ("none", ""). ("", "") when none of these tells (another base image)."""
    m = re.fullmatch(r"python:(3\.\d+)(?:[.\-][\w.-]*)?", base.split("@", 1)[0].rsplit("/", 1)[-1].lower())
    if m:
        return m.group(1), "/usr/local/bin"
    installed = " ".join(m.group(1) for text in runs for m in _SYSTEM_INSTALL.finditer(_one_line(text)))
    named = re.findall(r"(?<![\w.-])python(3\.\d+)(?![\d])", installed)
    if named:
        return named[-1], "/usr/bin"
    release = _release_python(base)
    if not release:
        return "", ""
    if re.search(r"(?<![\w.-])python3(?:-[a-z]+)?(?![\w.])", installed):
        return release, "/usr/bin"
    return "none", ""


def _one_line(text: str) -> str:
    """A RUN's text on one line: its continuation pieces (joined by newlines, backslashes kept or not) as blanks."""
    return " ".join(re.sub(r"\\?\n", " ", text).split())


def _stages(build: BuildFile) -> tuple[list[_Stage], list[tuple[int, str, str, int]]]:
    """The file's stages as HPC717 reads them, and its COPY --from lines: ``(line, stage or image copied from, source
    path, index of the stage the COPY is in)``."""
    copies = [(line, source, path, k) for k, stage in enumerate(build.stages) for line, source, path in stage.copies]
    stages: list[_Stage] = []
    for read in build.stages:
        line, name, base, parent, texts = read.line, read.name, read.base, read.parent, read.runs
        before = stages[parent] if parent is not None else None
        python, where = _stage_python(base, [*texts])
        if before is not None and (not python or python == "none"):
            python, where = before.python, before.where
        venvs = list(before.venvs) if before is not None else []
        for text in texts:
            for m in _VENV_MADE.finditer(_one_line(text)):
                version = m.group(1) if "." in m.group(1) else python
                venvs.append((m.group(2).rstrip("/"), version, where if version == python else ""))
        stages.append(_Stage(line, name, base, python, where, tuple(venvs)))
    return stages, copies


@rule("HPC717", "venv-copied-to-another-python", "error", kind="build",
      summary="a Dockerfile copies a virtual environment from a build stage into a stage whose Python is another "
              "version, or the same version in another folder (or that has no Python)",
      why="A virtual environment holds no Python of its own: its bin/python is a link to the interpreter that made it "
          "(/usr/local/bin/python3.11 in python:3.11-slim), and its packages sit in lib/python3.11/site-packages, "
          "which only a Python 3.11 reads. Copied with COPY --from into an image whose Python is another version "
          "(the python3 of an Ubuntu or CUDA base, another python:3.X tag), or that has none, the link points at "
          "nothing: python there stops with 'No such file or directory', or runs another Python that does not see "
          "the packages. The same version from another source is no better: Debian's python3.11 is in /usr/bin, the "
          "python:3.11 images' in /usr/local/bin. The Python of a stage is read from its base image (python:3.X, a "
          "Debian or Ubuntu release with python3 installed by a RUN, the release in an nvidia/cuda tag) and from a "
          "python3.X package a RUN installs; where the file does not tell, nothing is reported.",
      fix="Build the final stage on the same Python as the build stage (FROM python:3.11-slim for both, or install "
          "python3.11 there), or make the environment in the build stage with the final image's Python.",
      bad="""FROM python:3.11-slim AS build
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir numpy==1.26.4
FROM ubuntu:22.04
RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
""",
      good="""FROM python:3.11-slim AS build
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir numpy==1.26.4
FROM python:3.11-slim
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
""")
def _venv_copied_to_another_python(ctx: Context) -> Iterator[Any]:
    build = _build(ctx)
    if build.format != "docker" or "--from" not in build.source or "venv" not in build.source:
        return
    stages, copies = _stages(build)
    for line, source, path, at in copies:
        origin = stages[int(source)] if source.isdigit() and int(source) < len(stages) else \
            next((s for s in stages if s.name == source), None)
        if origin is None:
            continue
        made, made_in = next(((version, where) for venv, version, where in origin.venvs
                              if venv == path or venv.startswith(path + "/")), ("", ""))
        here, here_in = stages[at].python, stages[at].where
        if not made or made == "none" or not here:
            continue
        image = stages[at].base
        if here == "none":
            has = f"has no Python (nothing installs python3 on {image})"
        elif here != made:
            has = f"has Python {here} ({image})"
        elif made_in and here_in and made_in != here_in:
            has = f"has Python {here} in {here_in}, not in {made_in} ({image})"
        else:
            continue
        yield line, (f"this copies the virtual environment {path}, made with Python {made}"
                     f"{' of ' + made_in if made_in else ''} in stage {source}, into an image that {has}: its "
                     f"bin/python links to an interpreter that is not there, and its packages are in lib/python{made} "
                     f"of that one; build this stage on the same Python ({origin.base}), or make the environment with "
                     "this image's Python")


@rule("HPC718", "export-in-env-form", "error", kind="build",
      summary="a definition file's shell section exports a variable in a Dockerfile's ENV form, export NAME VALUE, "
              "which sets nothing",
      why="A Dockerfile's ENV takes the name and the value apart (ENV PATH /opt/conda/bin:$PATH), and that form is "
          "easily carried over into a definition file. The shell's export takes every word as a name to export: "
          "export PATH /opt/conda/bin:$PATH exports PATH as it was and stops at /opt/conda/bin:$PATH ('not a valid "
          "identifier'). In %environment the container then starts without the value (the programs of that folder "
          "are not found); in %post the build stops there, or goes on without it.",
      fix="Join the name and the value with =: export PATH=/opt/conda/bin:$PATH.",
      bad="""Bootstrap: docker
From: ubuntu:24.04

%environment
    export PATH /opt/conda/bin:$PATH
""",
      good="""Bootstrap: docker
From: ubuntu:24.04

%environment
    export PATH=/opt/conda/bin:$PATH
""")
def _export_in_env_form(ctx: Context) -> Iterator[Any]:
    for s in _build(ctx).commands:
        if s.where == "RUN" or s.cmd.name != "export":
            continue  # (a RUN's export ends with the RUN whatever its form: HPC714's)
        words = [w.raw for w in s.cmd.words[1:]]
        while words and words[0].startswith("-"):
            words = words[1:]  # export -n, -p, -f
        for name, value in zip(words, words[1:]):
            if re.fullmatch(r"[A-Za-z_]\w*", name) and not re.fullmatch(r"[A-Za-z_]\w*(?:=.*)?", value, re.S):
                yield s.line, (f"export {name} {value} is a Dockerfile's ENV form: export takes {value} as another "
                               f"name to export ('not a valid identifier'), and {name} keeps the value it had; write "
                               f"export {name}={value}")
                break
