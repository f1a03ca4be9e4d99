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

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..errors import ParseError
from ..parse.buildfiles import _STAGE, dockerfile_instructions
from ..parse.lexer import Command, compound_body, lex_script
from ..parse.script import _SUPPRESS
from . import Context, rule
from .catalogue import _REGISTRY_PASSWORD, _TOKEN_NAME, _secret_message, is_literal


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


@dataclass(frozen=True)
class BuildFile:
    """A definition file or Dockerfile as the HPC7xx rules see it."""

    format: str   # "apptainer" or "docker"
    source: str
    path: str
    bases: tuple[Base, ...]
    commands: tuple[Shell, ...]
    #: Dockerfile ARG and ENV settings: ``(line, keyword, name, value)``, value None when none is given
    settings: tuple[tuple[int, str, str, Any], ...] = ()
    suppressed: dict[int, frozenset[str]] = field(default_factory=dict)
    suppressed_file: frozenset[str] = frozenset()

    def is_suppressed(self, code: str, line: int) -> bool:
        return code in self.suppressed_file or code in self.suppressed.get(line, frozenset())


def read_build_file(text: str, form: str, path: str = "") -> BuildFile:
    """Read a build file (``form``: ``"apptainer"`` or ``"docker"``). :class:`ParseError` (with the line) for
    shell text bash could not read, or a Dockerfile Docker could not read."""
    lines = [line[:-1] if line.endswith("\r") else line for line in text.lstrip("\ufeff").split("\n")]
    read = _read_deffile if form == "apptainer" else _read_dockerfile
    bases, commands, settings = read(lines, path)
    per_line, whole = _suppressions(lines)
    return BuildFile(form, text, path, tuple(bases), tuple(commands), tuple(settings), per_line, whole)


# -- reading ---------------------------------------------------------------------------------

#: bootstrap agents whose From: names an image in a registry (tags move there)
_REGISTRY_AGENTS = ("docker", "library", "oras", "shub")
#: sections run inside the image while it is built (%appinstall is an app's %post)
_BUILD_SECTIONS = ("post", "appinstall")
#: sections holding shell text; everything in them is kept in the image
_SHELL_SECTIONS = _BUILD_SECTIONS + ("arguments", "setup", "test", "environment", "startscript", "runscript",
                                     "apprun", "appenv", "apptest", "appstart")
_SECTION = re.compile(r"%([A-Za-z]+)(.*)")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_DOCKER_REF = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
#: RUN options before the command (--mount=…, --network=…, --security=…)
_RUN_FLAGS = re.compile(r"(?:--[a-z-]+=\S+\s+)*")
#: a RUN whose command is a heredoc: Docker runs the heredoc's text
_RUN_HEREDOC = re.compile(r"<<-?([\"']?)([A-Za-z_][A-Za-z0-9_.-]*)\1[ \t]*\n(.*)\n[ \t]*\2[ \t]*", re.S)


def _read_deffile(lines: list[str], path: str) -> tuple[list[Base], list[Shell], list[Any]]:
    """Header ``Key: value`` lines and ``%section`` bodies of every stage. A ``Bootstrap:`` line starts a
    stage's header; any other line after a ``%section`` line belongs to that section."""
    headers: list[dict[str, tuple[int, str]]] = [{}]   # one per stage: keyword → (line, value)
    sections: list[tuple[int, str, str, list[str]]] = []   # (first body line, name, options, body)
    in_section = False
    for n, line in enumerate(lines, start=1):
        m = _SECTION.fullmatch(line.rstrip()) if line.startswith("%") else None
        if m:
            sections.append((n + 1, m.group(1).lower(), m.group(2), []))
            in_section = True
        elif in_section and not _STAGE.match(line):
            sections[-1][3].append(line)
        else:
            if _STAGE.match(line) and "bootstrap" in headers[-1]:
                headers.append({})  # the next stage
            in_section = False
            key, sep, value = line.partition(":")
            if sep and not line.lstrip().startswith("#"):
                headers[-1].setdefault(key.strip().lower(), (n, value.strip()))
    defaults: dict[str, str] = {}
    for _first, name, _options, body in sections:
        if name == "arguments":
            for row in body:
                key, sep, value = row.strip().partition("=")
                if sep:
                    defaults[key.strip()] = value.strip()
    bases = []
    for header in headers:
        agent = header.get("bootstrap", (0, ""))[1].lower()
        if "from" in header and agent in _REGISTRY_AGENTS:
            n, ref = header["from"]
            image = _PLACEHOLDER.sub(lambda m: defaults.get(m.group(1), "{{"), ref)
            bases.append(Base(n, ref, "" if "{{" in image else image))
    commands = []
    for first, name, options, body in sections:
        if name in _SHELL_SECTIONS:
            shell = re.search(r"-c\s+(\S+)", options)
            posix = shell is None or shell.group(1).rsplit("/", 1)[-1] in ("sh", "dash")
            commands += _commands("\n".join(body), first, f"%{name}", name in _BUILD_SECTIONS, posix, path)
    return bases, commands, []


def _read_dockerfile(lines: list[str], path: str) -> tuple[list[Base], list[Shell], list[Any]]:
    """Every stage's ``FROM``, ``ARG``/``ENV`` settings and ``RUN`` commands. A ``FROM`` naming an earlier stage
    (or ``scratch``) is no base image; ``ARG`` defaults given before the first ``FROM`` fill in ``$NAME``."""
    global_args: dict[str, str] = {}
    stages: dict[str, bool] = {"scratch": True}   # stage name → whether its RUN lines run under /bin/sh
    bases: list[Base] = []
    commands: list[Shell] = []
    settings: list[tuple[int, str, str, Any]] = []
    posix = True
    stage = ""
    seen_from = False
    for line, op, body in dockerfile_instructions("\n".join(lines), path):
        text = str(body)
        if op == "FROM":
            seen_from = True
            words = [w for w in text.split() if not w.startswith("--")]
            if words and words[0].lower() not in stages:
                image = _DOCKER_REF.sub(lambda m: global_args.get(m.group(1) or m.group(2), "$"), words[0])
                bases.append(Base(line, words[0], "" if "$" in image else image))
            posix = stages.get(words[0].lower(), True) if words else True  # a stage built on another keeps its SHELL
            stage = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else ""
            if stage:
                stages[stage] = posix
        elif op == "SHELL":
            posix = _exec_form(text, line, path)[0].rsplit("/", 1)[-1] in ("sh", "dash")
            if stage:
                stages[stage] = posix
        elif op in ("ARG", "ENV"):
            pairs = _settings(op, text, line, path)
            settings += [(line, op, name, value) for name, value in pairs]
            if op == "ARG" and not seen_from:
                global_args.update((name, value) for name, value in pairs if value is not None)
        elif op == "RUN":
            commands += _run_commands(text, line, posix, path)
    return bases, commands, settings


def _run_commands(text: str, line: int, posix: bool, path: str) -> list[Shell]:
    """The commands of one RUN: its shell form (continuation lines joined, as Docker joins them), its exec
    form (``["pip", "install", …]``, no shell), or the script of its heredoc."""
    text = text[_RUN_FLAGS.match(text).end():]  # type: ignore[union-attr]
    if text.startswith("["):
        return _commands(shlex.join(_exec_form(text, line, path)), line, "RUN", True, False, path)
    heredoc = _RUN_HEREDOC.fullmatch(text.rstrip())
    if heredoc:
        return _commands(heredoc.group(3), line + 1, "RUN", True, posix, path)
    if "<<" not in text and "\n" in text and not _broken_word(text):
        text = " ".join(text.split("\n"))  # continuation pieces: one line, reported at the instruction's line
    return _commands(text, line, "RUN", True, posix, path)


def _broken_word(text: str) -> bool:
    """Whether the RUN text holds a word broken across lines (kept as written, backslashes included)."""
    return any(piece.rstrip().endswith("\\") for piece in text.split("\n"))


def _exec_form(text: str, line: int, path: str) -> list[str]:
    try:
        argv = json.loads(text)
    except ValueError:
        argv = None
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ParseError(f"expected a JSON list of strings, e.g. [\"/bin/bash\", \"-c\"], got {text[:40]!r}", line, 1, path)
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


def _commands(text: str, first: int, where: str, build: bool, posix: bool, path: str) -> list[Shell]:
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
    return [Shell(first + cmd.line - 1, where, cmd, build, posix) for cmd in walk(script.commands)]


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


#: words that may come before the program a command runs
_PREFIXES = ("sudo", "env", "exec", "command", "time", "nice", "nohup")


def _program(cmd: Command) -> list[str]:
    """The command's words from its program on (without sudo, env NAME=value …)."""
    words = [str(w) for w in cmd.argv]
    i = 0
    while i < len(words) and (words[i] in _PREFIXES or (words[i].startswith("-") and i) or
                              re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[i])):
        i += 1
    return words[i:]


def _pip_install(words: list[str]) -> list[str] | None:
    """The arguments after ``pip install`` (pip3, python -m pip, uv pip), None for another command."""
    name = words[0].rsplit("/", 1)[-1] if words else ""
    if re.fullmatch(r"pip[0-9.]*", name) and words[1:2] == ["install"]:
        return words[2:]
    if re.fullmatch(r"python[0-9.]*", name) and words[1:4] == ["-m", "pip", "install"]:
        return words[4:]
    if name == "uv" and words[1:3] == ["pip", "install"]:
        return words[3:]
    return None


#: pip install options that take a value as the next word
_PIP_VALUE_OPTIONS = frozenset({
    "-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-t", "--target", "--prefix", "--root",
    "-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--src", "--upgrade-strategy", "--platform",
    "--python-version", "--implementation", "--abi", "--no-binary", "--only-binary", "--progress-bar",
    "--cache-dir", "--log", "--trusted-host", "--proxy", "--timeout", "--retries", "-C", "--config-settings",
    "--global-option", "--report", "--python"})
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
#: bound over the image's own folders when the container runs (Apptainer's defaults)
_BOUND = re.compile(r"^/(?:home|tmp)(?:/|$)")


def _out_of_sight(path: str, form: str) -> bool:
    """Whether software installed at ``path`` at build time is missing when the container runs as you."""
    return bool(_HOME.match(path) or (form == "apptainer" and _BOUND.match(path)))


def _install_places(words: list[str]) -> Iterator[tuple[str, str]]:
    """``(what, where)`` for the places a command installs software into: pip's --user, --target and
    --prefix, a virtual environment's folder, a conda prefix, a Miniconda/Miniforge installer's -p."""
    name = words[0].rsplit("/", 1)[-1] if words else ""
    pip = _pip_install(words)
    options: tuple[str, ...] = ()
    if pip is not None:
        if "--user" in pip:
            yield "pip install --user", "~/.local"
        options = ("--target", "-t", "--prefix")
    elif re.fullmatch(r"python[0-9.]*", name) and words[1:3] == ["-m", "venv"] or name in ("virtualenv",) or \
            (name == "uv" and words[1:2] == ["venv"]):
        start = 3 if name.startswith("python") else 2 if name == "uv" else 1
        for word in words[start:]:
            if not word.startswith("-"):
                yield "the virtual environment", word
                break
    elif name in ("conda", "mamba", "micromamba") or (name in ("bash", "sh") and len(words) > 1 and
                                                      re.search(r"(?i)(conda|forge|mamba)[^/]*\.sh$", words[1])):
        options = ("-p", "--prefix")
    for k, word in enumerate(words):
        key, eq, value = word.partition("=")
        if eq and key in options and key.startswith("--"):
            yield f"{words[0]} {key}", value
        elif word in options and k + 1 < len(words):
            yield f"{words[0]} {word}", words[k + 1]


_YES = re.compile(r"^(?:-[A-Za-z]*y[A-Za-z]*|--yes|--assume-yes|--assumeyes|-qq)$|Assume-?Yes=(?:1|true|yes)", re.I)
#: package managers that ask "Do you want to continue? [Y/n]" before these subcommands
_ASKING = {"apt-get": ("install", "upgrade", "dist-upgrade", "full-upgrade", "remove", "purge", "autoremove"),
           "apt": ("install", "upgrade", "full-upgrade", "remove", "purge", "autoremove"),
           "yum": ("install", "update", "upgrade", "remove", "groupinstall"),
           "dnf": ("install", "update", "upgrade", "remove", "groupinstall")}


def _asks(words: list[str]) -> str:
    """``"apt-get install"`` when the command would stop to ask for a yes, else ``""``."""
    name = words[0].rsplit("/", 1)[-1] if words else ""
    subcommands = _ASKING.get(name, ())
    sub = next((w for w in words[1:] if not w.startswith("-")), "")
    if sub not in subcommands or any(_YES.search(w) for w in words[1:]):
        return ""
    return f"{name} {sub}"


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


# -- the rules -------------------------------------------------------------------------------

@rule("HPC701", "base-image-not-pinned", "warning", kind="build",
      summary="a build file's base image (From: / FROM) has no version: :latest or no tag",
      why="A tag like :latest (or no tag, which means :latest) moves whenever the publisher pushes: rebuilding the "
          "same file next month gives a different image (another CUDA, another Python), so results cannot be "
          "reproduced and the build may break. Apptainer and Docker both take :latest when no tag is given.",
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


@rule("HPC702", "secret-in-build-file", "error", kind="build",
      summary="a token, API key or password is written into a build file (or passed through ARG/ENV)",
      why="Everything a build file sets stays in the image: %environment and ENV are read by everyone who runs it, "
          "%post and RUN values land in its files and history, and Apptainer keeps the definition file inside the "
          "image. Images are shared and pushed to registries, and the build file is committed to git: the secret "
          "leaks with them. A Dockerfile ARG or ENV named like a secret leaks even without a value written, since the "
          "value given at build time is recorded in the image's history or configuration.",
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
            yield line, f"{op} {name} writes the secret into the image ({op} values stay in it); use a secret mount (RUN --mount=type=secret) instead"
        elif _TOKEN_NAME.match(name) and (not value or not is_literal(value)):
            yield line, (f"{op} {name} passes a secret through the build: the value given at build time is recorded in "
                         "the image's history or configuration; use a secret mount (RUN --mount=type=secret) instead")


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


@rule("HPC704", "installed-into-home-at-build", "error", kind="build",
      summary="a build step installs software into a home folder (or a folder bound over the image at run time)",
      why="While the image is built, HOME is /root, so pip install --user, a virtual environment or a conda prefix "
          "under ~ or $HOME lands in /root. When the container runs it runs as you: HOME is your own home folder "
          "(Apptainer binds it over the image's), /root is not readable, and the software is not found. Apptainer also "
          "binds /home and /tmp from the host by default, hiding what the image put there; its documentation asks to "
          "install into system locations.",
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
    for s in build.commands:
        if not s.build:
            continue
        for what, where in _install_places(_program(s.cmd)):
            if _out_of_sight(where, build.format):
                folder = "the build's home, /root," if _HOME.match(where) else where
                yield s.line, (f"{what} installs into {folder} in {s.where}: when the container runs as you, that folder "
                               "is your own home or the host's, so the software is not found; install under /opt or "
                               "/usr/local")


@rule("HPC705", "package-install-asks", "warning", kind="build",
      summary="apt-get/apt/yum/dnf installs in a build step without -y",
      why="Without -y the package manager stops to ask 'Do you want to continue? [Y/n]'. Nobody answers in a build: "
          "docker build aborts there, and an apptainer build run from a script or a batch job fails or waits.",
      fix="Add -y (apt-get install -y --no-install-recommends git, dnf install -y git).",
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
    previous: Shell | None = None
    for s in _build(ctx).commands:
        piped_yes = previous is not None and previous.cmd.joined_by == "|" and previous.cmd.name == "yes"
        asks = _asks(_program(s.cmd)) if s.build and not piped_yes else ""
        if asks:
            yield s.line, f"{asks} without -y in {s.where} stops to ask for a yes, which nobody answers in a build; add -y"
        previous = s


@rule("HPC706", "source-under-sh", "warning", kind="build",
      summary="a build step uses bash's source, but %post and RUN run under /bin/sh",
      why="Apptainer runs %post with /bin/sh, and a Dockerfile's RUN runs with /bin/sh -c. On Debian and Ubuntu images "
          "(pytorch/pytorch, nvcr.io/nvidia/…) /bin/sh is dash, which has no source command: the build fails with "
          "'source: not found' (it works on RHEL-like images, whose sh is bash).",
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
        if s.build and s.posix and s.cmd.name == "source":
            yield s.line, (f"source in {s.where}, which runs under /bin/sh (dash on Debian and Ubuntu images: "
                           "'source: not found'); write . FILE instead")
