"""Build and verify the instructor's deck (``slides/workshop.md``, a Marp deck).

Nothing here is needed to use the package; it is the tooling behind ``make slides`` and
``tests/test_slides.py``:

* :func:`code_blocks` finds every fenced block of the deck with the ``hpcw:`` marker above it;
* :func:`sync_deck` refreshes the blocks marked ``<!-- hpcw: example NAME -->`` from
  :func:`hpcwidgets.examples.examples` (the deck never holds a hand-written copy of a shipped job), and the
  blocks marked ``<!-- hpcw: lint FILE -->`` / ``<!-- hpcw: fixed FILE -->`` from what ``hpcwidgets lint``
  prints and ``hpcwidgets lint --fix`` writes (the deck never holds a pasted copy of the linter's words);
* :func:`check_block` / :func:`check_deck` lint every ``bash`` block with the package's linter
  (job scripts whole, interactive commands also through :func:`hpcwidgets.parse.parse_command`)
  and read every ``dockerfile`` / ``deffile`` block with the package's build-file readers;
* :func:`fill_values` (part of ``sync``) writes into the text the counts and names a generated example takes from
  the profile, where the text marks them (``<!-- hpcw: value EXAMPLE KEY -->4<!-- hpcw: end -->``), and
  :func:`stale_values` reports those that no longer match;
* :func:`site_leftovers` / :func:`diagram_problems` / :func:`unknown_modules` / :func:`source_numbers` /
  :func:`source_paths` find what the linter cannot in a deck adapted to another site: ``--profile NAME`` of
  another profile, a hand-written ``ssh -L`` tunnel to another login host than the profile's, diagrams drawn for
  another profile, a hand-written ``module load NAME`` that the profile's ``[modules]`` does not name, a count of
  the source site (GPUs per node, CPUs per task, nodes, workers) left unmarked in the text next to a generated
  example that has another, and the source site's scratch or node-local path written by hand;
  :func:`vendor_leftovers` finds the other GPU vendor's flag, tools and images (``--nv``, ``nvidia-smi``, NGC on an
  AMD site; ``--rocm``, ``rocm-smi``, ``rocm/`` images on an NVIDIA one) and ``apptainer`` commands on a site with
  SingularityCE only, in the hand-written text;
* :func:`render_diagrams` writes the SVG diagrams from ``slides/diagrams/draw.py`` (plain SVG
  written by Python: no diagram service, no script in the browser);
* :func:`build` turns the deck into one self-contained HTML file (diagrams inlined as data URIs,
  ``hpcw:`` markers removed) with Marp CLI installed from the npm registry into ``slides/.marp``,
  and into a PDF when Chromium is present.

Markers (an HTML comment on the line before the fence; blank lines may sit between):

``<!-- hpcw: example NAME [profile=P] [from="TEXT"] [to="TEXT"] -->``
    the block is ``examples(P)[NAME].render()``; ``from``/``to`` keep only the lines from the first
    line containing ``from`` to the next line containing ``to`` (the whole script is still linted).
``<!-- hpcw: expect HPC101,HPC102 [profile=P] -->``
    the block shows mistakes on purpose: the linter must report exactly these error/warning codes.
``<!-- hpcw: profile=P -->``
    lint this block against another profile than the deck's.
``file=NAME`` (with any of the above, or alone)
    the block is the whole file ``NAME`` (e.g. ``broken.sbatch``), which later blocks can show the linter's
    output for:
``<!-- hpcw: lint NAME [profile=P] [select=CODES] [ignore=CODES] [from="TEXT"] [to="TEXT"] -->``
    the block (fenced as ``text``) is what ``hpcwidgets lint NAME --profile P [--select …] [--ignore …]``
    prints on its standard output; ``from``/``to`` keep some of its lines, as for examples.
``<!-- hpcw: fixed NAME [profile=P] [from="TEXT"] [to="TEXT"] -->``
    the block (``bash``) is the file ``NAME`` after ``hpcwidgets lint --fix NAME --profile P`` (the whole
    fixed file is linted and must be clean).

In the text (headings, lists, alt text; not in speaker notes, where the comment would end the note), around a
value on one line:

``<!-- hpcw: value EXAMPLE KEY [profile=P] -->VALUE<!-- hpcw: end -->``
    VALUE is what ``examples(P)[EXAMPLE]`` has for KEY (:data:`VALUE_KEYS`: ``nodes``, ``gpus-per-node``,
    ``cpus-per-task``, ``nproc-per-node``, ``workers``, ``gpu-option``, …); ``sync`` rewrites it, ``check``
    reports it when stale, the build keeps only VALUE. A count's noun right after the end marker (one of
    :data:`COUNT_NOUNS`: ``nodes``, ``GPUs``, ``CPUs``, ``workers``, …, after one space) follows the count:
    ``sync`` writes ``1 node`` and ``2 nodes``, and ``check`` reports a noun that does not agree.

The deck's profile, used by every block whose marker names none, is :data:`DEFAULT_PROFILE` unless
``--profile NAME`` (the ``profile`` argument of the functions below) replaces it; a marker's own
``profile=`` always wins, so a block pinned to a site stays on it.

Unmarked ``bash`` blocks must be clean: no error and no warning (``info`` advice is allowed). A
block is a *job script* when it has a ``#!`` line or ``#SBATCH`` lines; otherwise it is commands
typed at a prompt, and the rules that only make sense for a whole job
(:data:`INTERACTIVE_IGNORE`) are left out.

Run ``python -m hpcwidgets.slides sync|check|diagrams|build [--profile NAME]`` (``make slides`` runs ``build``).
"""

from __future__ import annotations

import argparse
import base64
import html
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from .errors import HpcWidgetsError
from .spec.profile import GPU_TOOLS

#: the slides folder of the checkout this package is imported from (this module is tooling for a source checkout)
SLIDES_DIR = Path(__file__).resolve().parent.parent / "slides"
DECK_NAME = "workshop.md"

#: the site the deck's scripts are written for
DEFAULT_PROFILE = "midway3"
#: Marp CLI, pinned: the build installs exactly this version from the npm registry
MARP_PACKAGE = "@marp-team/marp-cli@4.5.1"
#: where the payload scripts live in the deck's scripts (a clone of the repository in $HOME); the real
#: rendering uses the installed path, which differs per machine and would make the deck unstable
DECK_PAYLOAD_DIR = "$HOME/hpcwidgets/hpcwidgets/payload"
#: rules about a whole job that do not apply to commands typed at a prompt
INTERACTIVE_IGNORE = {
    "HPC202": "a command typed in an interactive session cannot see which GPUs that session holds",
    "HPC208": "a pull typed by hand runs once, not on every run of a job",
}
#: programs :func:`hpcwidgets.parse.parse_command` models; interactive blocks run these through it too
MODELLED = {"apptainer", "singularity", "ch-run", "ch-image", "ch-convert", "ch-fromhost", "srun", "torchrun"}
CHECKED_LANGS = ("bash", "dockerfile", "deffile")
CHROMIUM = "/usr/bin/chromium"

_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[A-Za-z0-9_+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                    re.M | re.S)
#: a block's marker (the ``value``/``end`` comments around a number in the text are not one)
_MARKER = re.compile(r"<!--\s*hpcw:(?!\s*(?:value|end)\b)(?P<spec>.*?)-->", re.S)
#: a value of a generated example written in the text: ``<!-- hpcw: value EXAMPLE KEY -->4<!-- hpcw: end -->``
_VALUE = re.compile(r"<!--\s*hpcw:\s*value\b(?P<spec>[^\n]*?)-->(?P<value>[^<\n]*)<!--\s*hpcw:\s*end\s*-->")
_VALUE_START = re.compile(r"<!--\s*hpcw:\s*(?:value|end)\b[^\n]*?-->")
_COMMENT = re.compile(r"<!--(.*?)-->", re.S)


def default_slides_dir(start: Path | None = None) -> Path:
    """The folder the command line works on without ``--slides-dir``: ``slides/`` of the checkout the command
    runs in (the nearest ``slides/workshop.md`` in the current folder or a parent of it), else
    :data:`SLIDES_DIR`. Several checkouts may share one venv whose package is imported from only one of them,
    so the folder is found from where the command runs, not from where the package is."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "slides" / DECK_NAME).is_file():
            return folder / "slides"
    return SLIDES_DIR


class SlidesError(HpcWidgetsError):
    """The deck cannot be built or verified (the message says what to do)."""


#: what a marker can say a block is (at most one of these); ``plain`` when none
KINDS = ("example", "expect", "lint", "fixed")
#: the kinds ``sync`` writes (and ``check`` compares with what the package gives today)
GENERATED = ("example", "lint", "fixed")
#: ``key=value`` words of a marker
MARKER_KEYS = ("profile", "from", "to", "file", "select", "ignore")


# ------------------------------------------------------------------------------------------------
# reading the deck
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Block:
    """One fenced code block of the deck."""

    lang: str
    body: str                    # the text between the fences, indentation removed
    line: int                    # line of the opening fence (1-based)
    start: int                   # offsets of the body in the deck text
    end: int
    indent: int = 0
    marker: dict[str, Any] = field(default_factory=dict)
    default_profile: str = ""    # the deck's profile (--profile), for a marker that names none
    source: Block | None = None  # for lint/fixed: the earlier block marked file=NAME

    @property
    def kind(self) -> str:
        """``example``, ``expect``, ``lint``, ``fixed`` or ``plain``."""
        return next((k for k in KINDS if k in self.marker), "plain")

    @property
    def profile(self) -> str:
        return str(self.marker.get("profile") or self.default_profile or DEFAULT_PROFILE)

    def where(self) -> str:
        return f"{DECK_NAME}:{self.line} ({self.lang} block{', ' + self.kind if self.kind != 'plain' else ''})"


#: what each kind's word needs after it, with an example marker for the error message
_KIND_ARGUMENT = {
    "example": ("the example's name", "<!-- hpcw: example multi-node-torchrun -->"),
    "expect": ("the codes", "<!-- hpcw: expect HPC101,HPC102 -->"),
    "lint": ("the file it lints (a block marked file=NAME)", "<!-- hpcw: lint broken.sbatch -->"),
    "fixed": ("the file it fixes (a block marked file=NAME)", "<!-- hpcw: fixed broken.sbatch -->"),
}


def parse_marker(spec: str, line: int = 0) -> dict[str, Any]:
    """``example NAME profile=P from="…"`` → ``{"example": "NAME", "profile": "P", "from": "…"}``."""
    try:
        words = shlex.split(spec)
    except ValueError as exc:
        raise SlidesError(f"{DECK_NAME}:{line}: cannot read the hpcw marker {spec.strip()!r}: {exc}") from exc
    out: dict[str, Any] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word in KINDS:
            if i + 1 >= len(words) or "=" in words[i + 1]:
                what, sample = _KIND_ARGUMENT[word]
                raise SlidesError(f"{DECK_NAME}:{line}: 'hpcw: {word}' needs {what}, e.g. {sample}")
            out[word] = _codes(words[i + 1], line) if word == "expect" else words[i + 1]
            i += 2
            continue
        key, eq, value = word.partition("=")
        if not eq or key not in MARKER_KEYS:
            raise SlidesError(f"{DECK_NAME}:{line}: unknown word {word!r} in an hpcw marker; use "
                              "example NAME, expect CODES, lint FILE, fixed FILE, profile=P, file=NAME, "
                              "select=CODES, ignore=CODES, from=TEXT or to=TEXT")
        out[key] = _codes(value, line, check=True) if key in ("select", "ignore") else value
        i += 1
    _check_marker(out, line)
    return out


def _codes(text: str, line: int, *, check: bool = False) -> tuple[str, ...]:
    """``hpc101, HPC102`` → ``("HPC101", "HPC102")``; with ``check``, every code must be a rule's."""
    codes = tuple(sorted(c.strip().upper() for c in text.split(",") if c.strip()))
    if check:
        from .lint import rules
        unknown = [c for c in codes if c not in rules()]
        if unknown:
            raise SlidesError(f"{DECK_NAME}:{line}: unknown rule code {', '.join(unknown)} in an hpcw marker; the "
                              "codes are listed in docs/rules.md")
    return codes


def _check_marker(marker: dict[str, Any], line: int) -> None:
    """Words that cannot go together."""
    kinds = [k for k in KINDS if k in marker]
    if len(kinds) > 1:
        raise SlidesError(f"{DECK_NAME}:{line}: a block is only one of generated (example), a mistake on purpose "
                          f"(expect), the linter's output (lint) or its fix (fixed), not both {kinds[0]} and {kinds[1]}")
    if ("select" in marker or "ignore" in marker) and "lint" not in marker:
        raise SlidesError(f"{DECK_NAME}:{line}: select= and ignore= go with lint FILE (they are the options of "
                          "hpcwidgets lint)")
    if "file" in marker and ("from" in marker or "to" in marker):
        raise SlidesError(f"{DECK_NAME}:{line}: a block marked file={marker['file']} must show the whole file "
                          "(the lint and fixed blocks read it): remove from=/to=")


def code_blocks(text: str, profile: str | None = None) -> list[Block]:
    """Every fenced block, with the ``hpcw:`` marker that precedes it (if any); ``profile`` is the deck's
    profile (default :data:`DEFAULT_PROFILE`) for the blocks whose marker names none."""
    out: list[Block] = []
    files: dict[str, Block] = {}
    for m in _FENCE.finditer(text):
        indent = len(m.group("indent"))
        body = "\n".join(ln[indent:] if ln[:indent].strip() == "" else ln
                         for ln in m.group("body").split("\n"))
        line = text.count("\n", 0, m.start()) + 1
        before = text[:m.start()].rstrip()
        marker: dict[str, Any] = {}
        mm = None
        for mm in _MARKER.finditer(before):
            pass
        if mm is not None and mm.end() == len(before):
            marker = parse_marker(mm.group("spec"), line)
        block = Block(m.group("lang").lower(), body, line, m.start("body"), m.end("body"), indent, marker,
                      profile or DEFAULT_PROFILE, _source(marker, files, line))
        if "file" in marker:
            if marker["file"] in files:
                raise SlidesError(f"{DECK_NAME}:{line}: file={marker['file']} is already the block at "
                                  f"{DECK_NAME}:{files[marker['file']].line}; give each file its own name")
            files[marker["file"]] = block
        out.append(block)
    return out


def _source(marker: dict[str, Any], files: dict[str, Block], line: int) -> Block | None:
    """The earlier block a ``lint``/``fixed`` marker names."""
    name = marker.get("lint") or marker.get("fixed")
    if name is None:
        return None
    if name not in files:
        raise SlidesError(f"{DECK_NAME}:{line}: the hpcw marker shows the linter on {name}, but no earlier block "
                          f"is marked file={name}; add file={name} to the marker of the block that holds the script")
    return files[name]


def split_slides(text: str) -> list[str]:
    """The deck's slides: the text after the front matter, split at ``---`` lines outside code fences."""
    lines = text.split("\n")
    if lines and lines[0].strip() == "---":
        for i in range(1, len(lines)):
            if lines[i].strip() == "---":
                lines = lines[i + 1:]
                break
    slides: list[list[str]] = [[]]
    in_fence = False
    for ln in lines:
        if ln.lstrip().startswith("```"):
            in_fence = not in_fence
        if not in_fence and ln.rstrip() == "---":
            slides.append([])
            continue
        slides[-1].append(ln)
    return ["\n".join(s) for s in slides]


#: Marp/Marpit directive names (a comment made only of these is a directive, not a presenter note)
MARP_DIRECTIVES = {"theme", "style", "headingDivider", "lang", "math", "marp", "size", "title", "description",
                   "author", "image", "keywords", "url", "paginate", "header", "footer", "class", "backgroundColor",
                   "backgroundImage", "backgroundPosition", "backgroundRepeat", "backgroundSize", "color",
                   "transition"}
_DIRECTIVE_LINE = re.compile(r"^\s*_?(?P<name>[A-Za-z]+)\s*:")


def _is_directive(body: str) -> bool:
    lines = [ln for ln in body.splitlines() if ln.strip()]
    return bool(lines) and all((m := _DIRECTIVE_LINE.match(ln)) is not None and m.group("name") in MARP_DIRECTIVES
                               for ln in lines)


def speaker_notes(slide: str) -> list[str]:
    """The presenter notes of a slide: its HTML comments that are neither Marp directives nor hpcw markers."""
    notes = []
    fenced = _FENCE.sub("", slide)
    for m in _COMMENT.finditer(fenced):
        body = m.group(1).strip()
        if not body or body.startswith("hpcw:") or _is_directive(body):
            continue
        notes.append(body)
    return notes


# ------------------------------------------------------------------------------------------------
# generated blocks
# ------------------------------------------------------------------------------------------------
def example_script(name: str, profile: str) -> str:
    """``examples(profile)[name].render()``, with the payload folder written as :data:`DECK_PAYLOAD_DIR`."""
    from .examples import PAYLOAD_VAR, examples
    from .spec.common import EnvVar
    found = examples(profile)
    if name not in found:
        raise SlidesError(f"the deck asks for example {name!r}, which profile {profile} does not have; "
                          f"choose one of: {', '.join(found)}")
    ex = found[name]
    model = ex.model
    exports = getattr(model, "exports", None)
    if exports:
        fixed = tuple(EnvVar(PAYLOAD_VAR, DECK_PAYLOAD_DIR) if e.name == PAYLOAD_VAR else e for e in exports)
        model = model.replace(exports=fixed)
        ex = type(ex)(ex.name, ex.description, model)
    return ex.render()


def excerpt(script: str, start: str = "", stop: str = "", where: str = "") -> str:
    """Lines of ``script`` from the first containing ``start`` to the next containing ``stop`` (inclusive)."""
    lines = script.rstrip("\n").split("\n")
    first = 0
    if start:
        hits = [i for i, ln in enumerate(lines) if start in ln]
        if not hits:
            raise SlidesError(f"{where}: no line of the generated script contains from={start!r}; "
                              "change the marker to text the script has")
        first = hits[0]
    last = len(lines) - 1
    if stop:
        hits = [i for i in range(first, len(lines)) if stop in lines[i]]
        if not hits:
            raise SlidesError(f"{where}: no line after from= contains to={stop!r}; change the marker")
        last = hits[0]
    return "\n".join(lines[first:last + 1]) + "\n"


def full_text(block: Block) -> str:
    """The whole text a generated block stands for (the example's script, the linter's output, the fixed
    file) before ``from``/``to``; for any other block, its body."""
    m = block.marker
    if block.kind == "example":
        return example_script(m["example"], block.profile)
    if block.kind not in ("lint", "fixed"):
        return block.body
    if block.source is None:
        raise SlidesError(f"{block.where()}: the block it shows the linter on is unknown; read the deck with "
                          "code_blocks(), which links each lint/fixed marker to the block marked file=NAME")
    script = full_text(block.source)
    if block.kind == "fixed":
        from .fixes import fix_script
        return fix_script(script, block.profile, path=m["fixed"])[0]
    from .lint import lint
    found = lint(script, block.profile, path=m["lint"], select=m.get("select", ()), ignore=m.get("ignore", ()))
    return "".join(f.format() + "\n" for f in found)


def expected_body(block: Block, full: str | None = None) -> str:
    """What a generated block (example, lint or fixed) must contain; ``full`` is its :func:`full_text`."""
    m = block.marker
    full = full_text(block) if full is None else full
    if m.get("from") or m.get("to"):
        return excerpt(full, m.get("from", ""), m.get("to", ""), block.where())
    return full.rstrip("\n") + "\n" if full else ""


def command(block: Block) -> str:
    """The command whose result a generated block shows (for messages and notes)."""
    m = block.marker
    if block.kind == "example":
        return f"hpcwidgets examples {m['example']} --profile {block.profile}"
    if block.kind == "fixed":
        return f"hpcwidgets lint --fix {m['fixed']} --profile {block.profile}"
    options = "".join(f" --{k} {','.join(m[k])}" for k in ("select", "ignore") if m.get(k))
    return f"hpcwidgets lint {m['lint']} --profile {block.profile}{options}"


def sync_text(text: str, profile: str | None = None) -> str:
    """The deck with every generated (``example``, ``lint``, ``fixed``) block and every value marker in the
    text (:func:`fill_values`) refreshed; ``profile`` is the deck's profile for markers that name none."""
    out = []
    pos = 0
    for block in code_blocks(text, profile):
        if block.kind not in GENERATED:
            continue
        body = expected_body(block)
        if block.indent:
            body = "".join(" " * block.indent + ln if ln.strip() else ln for ln in body.splitlines(True))
        out.append(text[pos:block.start])
        out.append(body)
        pos = block.end
    out.append(text[pos:])
    return fill_values("".join(out), profile)


def sync_deck(path: Path | None = None, *, write: bool = True, profile: str | None = None) -> bool:
    """Refresh the generated blocks of the deck; True when something changed."""
    path = path or SLIDES_DIR / DECK_NAME
    text = path.read_text(encoding="utf-8")
    new = sync_text(text, profile)
    if new != text and write:
        tmp = path.with_suffix(".md.tmp")
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, path)
    return new != text


# ------------------------------------------------------------------------------------------------
# values of a generated example written in the text
# ------------------------------------------------------------------------------------------------
#: what ``<!-- hpcw: value EXAMPLE KEY -->…<!-- hpcw: end -->`` can fill in, with what each is
VALUE_KEYS = {
    "nodes": "nodes",
    "gpus-per-node": "GPUs per node",
    "cpus-per-task": "CPUs per task",
    "ntasks-per-node": "tasks per node",
    "nproc-per-node": "torchrun workers per node",
    "workers": "torchrun workers in all (nodes × workers per node)",
    "gpu-option": "GPU request as the script writes it (--gres=gpu:N or --gpus-per-node=N)",
    "partition": "partition",
    "mem": "memory",
    "time": "time limit",
}
#: the keys whose values are counts, which :func:`source_numbers` looks for in the text
NUMERIC_KEYS = ("nodes", "gpus-per-node", "cpus-per-task", "nproc-per-node", "workers")
#: the nouns a count's value marker may be followed by (singular: plural), whose number follows the count
COUNT_NOUNS = {"node": "nodes", "GPU": "GPUs", "CPU": "CPUs", "worker": "workers", "task": "tasks",
               "process": "processes", "launcher": "launchers"}
_PLURAL_OF = {**{one: (one, many) for one, many in COUNT_NOUNS.items()},
              **{many: (one, many) for one, many in COUNT_NOUNS.items()}}
#: the end of a value marker and the word after it (one space between them)
_END_WORD = re.compile(r"<!--\s*hpcw:\s*end\s*-->(?P<gap> )(?P<noun>[A-Za-z]+)\b")


def count_noun(noun: str, count: str) -> str:
    """``noun`` (singular or plural, one of :data:`COUNT_NOUNS`) in the number ``count`` asks for: singular for 1,
    plural for any other count; any other word, or a value that is not a count, is left as it is."""
    forms = _PLURAL_OF.get(noun)
    if forms is None or not count.isdigit():
        return noun
    return forms[0] if int(count) == 1 else forms[1]


#: the verbs that agree with a count's noun (singular: plural), after the noun or after an "of the …" phrase that
#: follows it: "32 CPUs of the task are shared" is "1 CPU of the task is shared"
COUNT_VERBS = {"is": "are", "was": "were", "has": "have"}
_VERB_FORMS = {**{one: (one, many) for one, many in COUNT_VERBS.items()},
               **{many: (one, many) for one, many in COUNT_VERBS.items()}}
#: the verb after a count's noun: right after it, or after "of the task" (of the/its/each/a/this NOUN)
_VERB_AFTER_NOUN = re.compile(r"(?: of (?:the|its|each|a|this) [A-Za-z-]+)? (?P<verb>[a-z]+)\b")
#: "All" (or "all") right before a count's value marker, which a count of 1 reads as "The 1 CPU"
_ALL_BEFORE = re.compile(r"(?<![\w-])(?P<word>[Aa]ll|[Tt]he) $")


def count_verb(verb: str, count: str) -> str:
    """``verb`` (one of :data:`COUNT_VERBS`, either number) in the number ``count`` asks for, as
    :func:`count_noun` does for a noun; any other word, or a value that is not a count, is left as it is."""
    forms = _VERB_FORMS.get(verb)
    if forms is None or not count.isdigit():
        return verb
    return forms[0] if int(count) == 1 else forms[1]


def count_all(word: str, was: str, count: str) -> str:
    """The word before a count's value marker, ``All`` or ``The`` (either case), when the count goes from ``was`` to
    ``count``: "All 32 CPUs" becomes "The 1 CPU" (all of one thing is that thing), and a "The 1" that was
    written so becomes "All" again when the count grows; "The 4 GPUs" as written stays."""
    if not (was.isdigit() and count.isdigit()) or word.lower() not in ("all", "the"):
        return word
    if int(count) == 1 and word.lower() == "all":
        return ("The" if word[0].isupper() else "the")
    if int(was) == 1 and int(count) != 1 and word.lower() == "the":
        return ("All" if word[0].isupper() else "all")
    return word


@dataclass(frozen=True)
class ValueSpan:
    """One ``<!-- hpcw: value EXAMPLE KEY [profile=P] -->VALUE<!-- hpcw: end -->`` of the text."""

    example: str
    key: str
    profile: str
    value: str
    start: int                   # offsets of VALUE in the deck text
    end: int
    line: int
    noun: str = ""               # the count's noun after the end marker (:data:`COUNT_NOUNS`), if any
    noun_start: int = -1         # its offsets in the deck text
    noun_end: int = -1
    lead: str = ""               # "All" or "The" right before the value marker of a count with a noun (count_all)
    lead_start: int = -1
    verb: str = ""               # the verb that agrees with the noun (:data:`COUNT_VERBS`), if any
    verb_start: int = -1
    verb_end: int = -1

    def command(self) -> str:
        return f"hpcwidgets examples {self.example} --profile {self.profile}"


def example_values(name: str, profile: str) -> dict[str, str]:
    """What :data:`VALUE_KEYS` are in ``examples(profile)[name]``, as text (a key the example has no value
    for, such as ``nproc-per-node`` of a job without torchrun, is left out)."""
    from .examples import examples
    found = examples(profile)
    if name not in found:
        raise SlidesError(f"the deck asks for example {name!r}, which profile {profile} does not have; "
                          f"choose one of: {', '.join(found)}")
    model = found[name].model
    job = getattr(model, "job", None)
    out: dict[str, str] = {}
    if job is not None:
        nodes = job.nodes if job.nodes not in (None, "") else 1
        out["nodes"] = str(nodes)
        if job.gpus_on_each_node:
            out["gpus-per-node"] = str(job.gpus_on_each_node)
        for key, attr in (("cpus-per-task", "cpus_per_task"), ("ntasks-per-node", "ntasks_per_node"),
                          ("partition", "partition"), ("mem", "mem"), ("time", "time")):
            value = getattr(job, attr, None)
            if value not in (None, ""):
                out[key] = str(value)
    nproc = getattr(getattr(model, "launcher", None), "nproc_per_node", None)
    if nproc not in (None, ""):
        out["nproc-per-node"] = str(nproc)
        if str(nproc).isdigit() and out.get("nodes", "").isdigit():
            out["workers"] = str(int(nproc) * int(out["nodes"]))
    for line in example_script(name, profile).splitlines():
        option = line.removeprefix("#SBATCH").strip()
        if line.startswith("#SBATCH") and (option.startswith(("--gpus-per-node=", "--gpus=", "--gpus-per-task="))
                                           or (option.startswith("--gres=") and "gpu" in option)):
            out["gpu-option"] = option
            break
    return out


def _parse_value_spec(spec: str, line: int, deck_profile: str) -> tuple[str, str, str]:
    """``EXAMPLE KEY [profile=P]`` → (example, key, profile)."""
    sample = "<!-- hpcw: value multi-node-torchrun gpus-per-node -->4<!-- hpcw: end -->"
    try:
        words = shlex.split(spec)
    except ValueError as exc:
        raise SlidesError(f"{DECK_NAME}:{line}: cannot read the hpcw value marker {spec.strip()!r}: {exc}") from exc
    profile = ""
    plain = []
    for word in words:
        if word.startswith("profile="):
            profile = word.partition("=")[2]
        else:
            plain.append(word)
    if len(plain) != 2:
        raise SlidesError(f"{DECK_NAME}:{line}: an hpcw value marker names an example and what to fill in, e.g. "
                          f"{sample}")
    if plain[1] not in VALUE_KEYS:
        raise SlidesError(f"{DECK_NAME}:{line}: unknown value {plain[1]!r} in an hpcw value marker; use one of "
                          f"{', '.join(VALUE_KEYS)}")
    return plain[0], plain[1], profile or deck_profile


def value_spans(text: str, profile: str | None = None) -> list[ValueSpan]:
    """Every ``<!-- hpcw: value … -->VALUE<!-- hpcw: end -->`` outside the code blocks; ``profile`` is the
    deck's, for a marker that names none. A value marker without its end on the same line is an error."""
    deck_profile = profile or DEFAULT_PROFILE
    prose = _blank_blocks(text, code_blocks(text, profile))
    notes = [(m.start(), m.end()) for m in _COMMENT.finditer(prose) if not m.group(1).strip().startswith("hpcw:")]
    out = []
    covered: set[int] = set()
    for m in _VALUE.finditer(prose):
        line = prose.count("\n", 0, m.start()) + 1
        if any(a < m.start() < b for a, b in notes):
            raise SlidesError(f"{DECK_NAME}:{line}: an hpcw value marker cannot go into speaker notes (an HTML "
                              "comment ends at the first -->): move the number to the slide, or word the note "
                              "without it")
        example, key, pinned = _parse_value_spec(m.group("spec"), line, deck_profile)
        noun: tuple[str, int, int] = ("", -1, -1)
        lead: tuple[str, int] = ("", -1)
        verb: tuple[str, int, int] = ("", -1, -1)
        if key in (*NUMERIC_KEYS, "ntasks-per-node"):
            word = _END_WORD.match(prose, m.end("value"))
            if word and word.group("noun") in _PLURAL_OF:
                noun = (word.group("noun"), word.start("noun"), word.end("noun"))
                before = _ALL_BEFORE.search(prose, max(0, m.start() - 5), m.start())
                if before:
                    lead = (before.group("word"), before.start("word"))
                after = _VERB_AFTER_NOUN.match(prose, word.end("noun"))
                if after and after.group("verb") in _VERB_FORMS:
                    verb = (after.group("verb"), after.start("verb"), after.end("verb"))
        out.append(ValueSpan(example, key, pinned, m.group("value"), m.start("value"), m.end("value"), line, *noun,
                             *lead, *verb))
        covered.update((m.start(), m.end("value")))
    for m in _VALUE_START.finditer(prose):
        if m.start() not in covered:
            line = prose.count("\n", 0, m.start()) + 1
            raise SlidesError(f"{DECK_NAME}:{line}: an hpcw value marker needs the value and <!-- hpcw: end --> "
                              "after it on the same line, e.g. <!-- hpcw: value multi-node-torchrun nodes -->2"
                              "<!-- hpcw: end -->")
    return out


def _span_value(span: ValueSpan, cache: dict[tuple[str, str], dict[str, str]]) -> str:
    """What the span must say today."""
    if (span.example, span.profile) not in cache:
        try:
            cache[span.example, span.profile] = example_values(span.example, span.profile)
        except SlidesError as exc:
            raise SlidesError(f"{DECK_NAME}:{span.line}: {exc}") from None
    values = cache[span.example, span.profile]
    if span.key not in values:
        raise SlidesError(f"{DECK_NAME}:{span.line}: `{span.command()}` gives no {span.key} "
                          f"({VALUE_KEYS[span.key]}); fill in another value, or write the text without the marker")
    return values[span.key]


def fill_values(text: str, profile: str | None = None) -> str:
    """The text with every value marker's value refreshed from its example (``sync`` does this)."""
    cache: dict[tuple[str, str], dict[str, str]] = {}
    out = []
    pos = 0
    for span in value_spans(text, profile):
        value = _span_value(span, cache)
        edits = [(span.start, span.end, value)]
        if span.lead:
            edits.insert(0, (span.lead_start, span.lead_start + len(span.lead),
                             count_all(span.lead, span.value, value)))
        if span.noun:
            edits.append((span.noun_start, span.noun_end, count_noun(span.noun, value)))
        if span.verb:
            edits.append((span.verb_start, span.verb_end, count_verb(span.verb, value)))
        for start, end, new in edits:
            out.append(text[pos:start])
            out.append(new)
            pos = end
    out.append(text[pos:])
    return "".join(out)


def stale_values(text: str, profile: str | None = None) -> list[str]:
    """Value markers whose value is not what their example gives for the profile today."""
    cache: dict[tuple[str, str], dict[str, str]] = {}
    out = []
    try:
        spans = value_spans(text, profile)
    except HpcWidgetsError as exc:
        return [str(exc)]
    for span in spans:
        try:
            want = _span_value(span, cache)
        except HpcWidgetsError as exc:
            out.append(str(exc))
            continue
        if span.value != want:
            out.append(f"{DECK_NAME}:{span.line}: stale: the text says {span.value!r} where `{span.command()}` gives "
                       f"{want!r} ({VALUE_KEYS[span.key]}); refresh it with: {_refresh_command(profile)}")
        elif span.noun and count_noun(span.noun, want) != span.noun:
            out.append(f"{DECK_NAME}:{span.line}: the text says '{span.value} {span.noun}': write "
                       f"'{want} {count_noun(span.noun, want)}' (the noun after a count's value marker follows the "
                       f"count); refresh it with: {_refresh_command(profile)}")
        elif span.lead and count_all(span.lead, want, want) != span.lead:
            out.append(f"{DECK_NAME}:{span.line}: the text says '{span.lead} {span.value} {span.noun}': write "
                       f"'{count_all(span.lead, want, want)} {want} {span.noun}' (all of one is the one); refresh it "
                       f"with: {_refresh_command(profile)}")
        elif span.verb and count_verb(span.verb, want) != span.verb:
            out.append(f"{DECK_NAME}:{span.line}: the text says '{span.value} {span.noun} … {span.verb}': write "
                       f"'{count_verb(span.verb, want)}' (the verb after a count's noun follows the count); refresh "
                       f"it with: {_refresh_command(profile)}")
    return out


def _refresh_command(profile: str | None) -> str:
    if profile in (None, "", DEFAULT_PROFILE):
        return "python -m hpcwidgets.slides sync (or make slides)"
    return f"python -m hpcwidgets.slides sync --profile {profile}"


# ------------------------------------------------------------------------------------------------
# verifying blocks
# ------------------------------------------------------------------------------------------------
def is_job_script(body: str) -> bool:
    return body.startswith("#!") or any(ln.startswith("#SBATCH") for ln in body.splitlines())


def lint_block(block: Block, text: str | None = None) -> list[Any]:
    """The linter's findings for a bash block (for a generated block: for the whole generated script)."""
    from .lint import lint
    source = text if text is not None else block.body
    if is_job_script(source):
        return lint(source, block.profile, path=DECK_NAME)
    return lint(source, block.profile, path=DECK_NAME, ignore=tuple(INTERACTIVE_IGNORE))


def _command_problems(block: Block) -> list[str]:
    """Interactive commands of modelled programs, read back into models: each must parse and be valid."""
    from .errors import ParseError
    from .parse import parse_command, read_script
    out = []
    for cmd in read_script(block.body).lexed.code:
        if cmd.kind != "simple" or not cmd.words or cmd.words[0].value not in MODELLED:
            continue
        line = block.line + cmd.line
        try:
            model = parse_command(cmd.text)
        except ParseError as exc:
            out.append(f"{DECK_NAME}:{line}: the command cannot be read: {exc}")
            continue
        for p in model.problems():
            out.append(f"{DECK_NAME}:{line}: {p}")
    return out


def check_block(block: Block) -> list[str]:
    """Problems with one block (empty when it is fine). Line numbers point into the deck."""
    problems: list[str] = []
    script = None
    if block.kind in GENERATED:
        fence = "text" if block.kind == "lint" else "bash"
        if block.lang != fence:
            return [f"{block.where()}: a {block.kind} block must be fenced as ```{fence}"]
        try:
            script = full_text(block)
            problems = _stale(block, script)
        except HpcWidgetsError as exc:
            return [str(exc)]
        if block.kind == "lint":
            return problems
    if block.lang == "dockerfile":
        return _buildfile_problems(block, "dockerfile")
    if block.lang == "deffile":
        return _buildfile_problems(block, "deffile")
    if block.lang != "bash":
        return []
    findings = lint_block(block, script)
    serious = [f for f in findings if f.severity in ("error", "warning") or f.code == "HPC000"]
    if block.kind == "expect":
        want_codes = set(block.marker["expect"])
        got = {f.code for f in serious} | {f.code for f in findings if f.code in want_codes}
        if got != want_codes:
            missing = ", ".join(sorted(want_codes - got)) or "none"
            extra = ", ".join(sorted(got - want_codes)) or "none"
            problems.append(f"{block.where()}: the marker expects {', '.join(sorted(want_codes))} but the linter "
                            f"reports {', '.join(sorted(got)) or 'nothing'} (missing: {missing}; unexpected: {extra}); "
                            "change the block or the marker")
        return problems
    for f in serious:
        if script is not None:  # a generated script: its own line numbers, and no marker can excuse it
            problems.append(f"{block.where()}: line {f.line} of what `{command(block)}` gives: {f.severity} "
                            f"{f.code} {f.message} (change the site profile, or what the block is made from)")
        else:
            problems.append(f"{DECK_NAME}:{f.line + block.line}: {f.severity} {f.code} {f.message} (mark the block "
                            f"with <!-- hpcw: expect {f.code} --> if the mistake is on purpose)")
    if not is_job_script(block.body) and block.kind == "plain" and not serious:
        problems += _command_problems(block)  # (what lint reported, the model would say again)
    return problems


def _stale(block: Block, full: str) -> list[str]:
    """A generated block that is not what its command gives today (``full``: its :func:`full_text`)."""
    if block.body == expected_body(block, full):
        return []
    return [f"{block.where()}: stale: not what `{command(block)}` gives today; refresh it with: {_refresh(block)}"]


def _refresh(block: Block) -> str:
    """The command that refreshes the deck for the profile it is being checked against."""
    return _refresh_command(block.default_profile)


def _buildfile_problems(block: Block, kind: str) -> list[str]:
    from .errors import ParseError
    from .parse.buildfiles import parse_deffile, parse_dockerfile
    reader = parse_dockerfile if kind == "dockerfile" else parse_deffile
    try:
        model = reader(block.body, DECK_NAME)
    except ParseError as exc:
        return [f"{block.where()}: the {kind} cannot be read: {exc}"]
    return [f"{block.where()}: {p}" for p in model.problems()]


def check_deck(path: Path | None = None, profile: str | None = None) -> list[str]:
    """Every problem of the deck (``profile``: the deck's, for unmarked blocks): of every checked block, the
    value markers of the text that are stale (:func:`stale_values`), what it still says for another site
    (:func:`site_leftovers`), the modules it loads by hand that the profile does not name
    (:func:`unknown_modules`), the source site's counts next to its examples (:func:`source_numbers`) and
    paths (:func:`source_paths`), the other GPU vendor's words and a container program the site lacks
    (:func:`vendor_leftovers`), and diagrams next to it that were drawn for another profile
    (:func:`diagram_problems`)."""
    path = path or SLIDES_DIR / DECK_NAME
    text = path.read_text(encoding="utf-8")
    out: list[str] = []
    for block in iter_checked(text, profile):
        out += check_block(block)
    out += stale_values(text, profile)
    out += site_leftovers(text, profile)
    out += unknown_modules(text, profile)
    out += source_numbers(text, profile)
    out += source_paths(text, profile)
    out += vendor_leftovers(text, profile)
    if (path.parent / "diagrams" / "draw.py").is_file():
        out += diagram_problems(path.parent, profile)
    return out


# ------------------------------------------------------------------------------------------------
# what the linter cannot see: words of another site left in the deck
# ------------------------------------------------------------------------------------------------
#: ``--profile NAME`` in a command or a sentence (a placeholder such as ``<site>`` or ``$P`` is not a name)
_PROFILE_OPTION = re.compile(r"--profile[ =](?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)")
#: ssh options that take a value (ssh(1)); the first word that is neither one of them, nor their value, nor a
#: flag is the destination
_SSH_VALUE_OPTIONS = set("BbcDEeFIiJLlmOoPpQRSWw")


def site_leftovers(text: str, profile: str | None = None) -> list[str]:
    """What the deck says for another site than ``profile`` (default :data:`DEFAULT_PROFILE`) where the
    linter does not look: ``--profile NAME`` naming another profile (in a hand-written block, the block's own
    profile; anywhere else, the deck's), and a hand-written tunnel ``ssh -L … user@HOST`` whose HOST is not the
    profile's login host. Generated blocks are left out: they are made from the profile."""
    from .profiles import load_profile
    deck_profile = profile or DEFAULT_PROFILE
    names = {deck_profile: _profile_names(deck_profile)}
    out: list[tuple[int, str]] = []  # (line, problem), to report them in the deck's order
    blocks = code_blocks(text, profile)
    for block in blocks:
        if block.kind in GENERATED:
            continue
        names.setdefault(block.profile, _profile_names(block.profile))
        for m in _PROFILE_OPTION.finditer(block.body):
            if m.group("name") not in names[block.profile]:
                line = block.line + block.body.count("\n", 0, m.start()) + 1
                out.append((line, _other_profile(line, m.group("name"), block.profile)))
        if block.lang == "bash":
            out += _tunnel_problems(block, load_profile(block.profile))
    prose = _blank_blocks(text, blocks)
    for m in _PROFILE_OPTION.finditer(prose):
        if m.group("name") not in names[deck_profile]:
            line = prose.count("\n", 0, m.start()) + 1
            out.append((line, _other_profile(line, m.group("name"), deck_profile)))
    return [problem for _, problem in sorted(out)]


def _profile_names(profile: str) -> set[str]:
    """The words that name ``profile`` after ``--profile``: as given (a name or a .toml path) and its name."""
    from .profiles import load_profile
    return {profile, load_profile(profile).name}


def _other_profile(line: int, name: str, profile: str) -> str:
    return (f"{DECK_NAME}:{line}: --profile {name} names another site than the one the deck is checked against; "
            f"write --profile {profile} (a sentence about another site on purpose can name it without --profile)")


def _tunnel_problems(block: Block, site: Any) -> list[tuple[int, str]]:
    """A hand-written ``ssh … -L …`` whose destination is not the profile's login host (directly or as a jump
    host): the tunnel learners type on their laptop must reach the site the deck is built for."""
    from .parse import read_script
    out = []
    login = site.login_host.lower().rstrip(".")
    for cmd in read_script(block.body).lexed.code:
        if cmd.kind != "simple" or not cmd.words or cmd.words[0].value != "ssh":
            continue
        forwards, jumps, destination = _read_ssh([w.value for w in cmd.words[1:]])
        if not forwards or not destination or "$" in destination:
            continue
        host = _ssh_host(destination)
        line = block.line + cmd.line
        if not login:
            out.append((line, f"{DECK_NAME}:{line}: the tunnel goes to {host}, and profile {site.name} names no "
                              "login host to check it against; set login_host in the profile"))
        elif login != host and login not in {_ssh_host(j) for j in jumps}:
            out.append((line, f"{DECK_NAME}:{line}: the tunnel goes to {host}, not to {site.name}'s login host "
                              f"{site.login_host}; write the destination as USER@{site.login_host}"))
    return out


def _read_ssh(args: Sequence[str]) -> tuple[list[str], list[str], str]:
    """``ssh`` arguments → (the ``-L`` forwards, the ``-J`` hops, the destination or "")."""
    forwards: list[str] = []
    jumps: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            i += 1
            break
        if not word.startswith("-") or word == "-":
            break
        for j, letter in enumerate(word[1:], start=1):
            if letter in _SSH_VALUE_OPTIONS:
                value = word[j + 1:]
                if not value and i + 1 < len(args):
                    i += 1
                    value = args[i]
                if letter == "L":
                    forwards.append(value)
                elif letter == "J":
                    jumps += value.split(",")
                break
        i += 1
    return forwards, jumps, args[i] if i < len(args) else ""


def _ssh_host(destination: str) -> str:
    """``[ssh://][user@]host[:port]`` → ``host`` (lower case, no trailing dot)."""
    rest = destination.removeprefix("ssh://").rpartition("@")[2]
    if rest.startswith("["):
        rest = rest[1:].partition("]")[0]
    elif rest.count(":") == 1:
        rest = rest.partition(":")[0]
    return rest.lower().rstrip(".")


#: inline code in the prose that loads a module: `module load apptainer`, `ml cuda/12.1`
_INLINE_MODULE = re.compile(r"`(?P<code>(?:module|ml)\s[^`\n]*)`")


def unknown_modules(text: str, profile: str | None = None) -> list[str]:
    """Modules the deck loads by hand (``module load NAME``, ``module add``, ``ml NAME``, in a hand-written
    ``bash`` block or in inline code of the prose and notes) that the site profile's ``[modules]`` does not
    name, each with the names it has that are nearest. The linter cannot see these: a module that does not
    exist on the site, or has another name there (``apptainer/1.3.4``), fails only when a learner types it.

    Only for a profile given on purpose (``profile``; the deck as shipped is checked without one), and only
    against a profile that lists modules: one that lists none (programs on PATH, or modules not described
    yet) gives nothing to compare with. Generated blocks are left out: they load what the profile names."""
    if not profile:
        return []
    from .parse import read_script
    from .profiles import load_profile
    out: list[tuple[int, str]] = []
    blocks = code_blocks(text, profile)
    for block in blocks:
        if block.kind in GENERATED or block.lang != "bash":
            continue
        site = load_profile(block.profile)
        for name, line in read_script(block.body).modules:
            out += _unknown_module(block.line + line, name, site)
    prose = _blank_blocks(text, blocks)
    site = load_profile(profile)
    for m in _INLINE_MODULE.finditer(prose):
        line = prose.count("\n", 0, m.start()) + 1
        for name, _ in read_script(m.group("code")).modules:
            out += _unknown_module(line, name, site)
    return [problem for _, problem in sorted(out, key=lambda found: found[0])]


def _unknown_module(line: int, name: str, site: Any) -> list[tuple[int, str]]:
    """The problem with one module the deck loads, if ``site`` lists modules and not this one."""
    known = [m.name for m in site.modules]
    if not known or name in known or name.startswith("-") or "$" in name or "`" in name:
        return []  # ml -NAME unloads NAME (ml(1)); a variable's value is known only when the job runs
    near = _nearest_modules(name, site)
    return [(line, f"{DECK_NAME}:{line}: the deck loads module {name}, which profile {site.name} does not name "
                   f"({'nearest: ' + ', '.join(near) if near else 'its modules: ' + ', '.join(known)}); write the "
                   "site's module, or add it to the profile's [modules] if the site has it")]


def _nearest_modules(name: str, site: Any) -> list[str]:
    """The profile's modules nearest ``name``: the one for the same purpose (a runtime's, as jobs load it:
    singularity falls back to the apptainer module), then those of the same name in another version, then the
    names spelled alike."""
    import difflib

    from .spec.profile import RUNTIME_PURPOSES
    known = [m.name for m in site.modules]
    family = name.split("/", 1)[0].lower()
    same_purpose = [site.module(p) for p in RUNTIME_PURPOSES.get(family, (family,))]
    same_family = [k for k in known if k.split("/", 1)[0].lower() == family]
    alike = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return [n for n in dict.fromkeys(same_purpose + same_family + alike) if n]


def _blank_blocks(text: str, blocks: Sequence[Block]) -> str:
    """The deck with its code blocks' bodies blanked out, keeping the line numbers of the rest."""
    for block in reversed(blocks):
        text = text[:block.start] + re.sub(r"[^\n]", " ", text[block.start:block.end]) + text[block.end:]
    return text


# ------------------------------------------------------------------------------------------------
# what the hand-written text still says of the source site: its numbers near the examples, its paths
# ------------------------------------------------------------------------------------------------
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                 "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty")
#: the number of an ordered list item (``4. …``), which counts the list, not anything of the site
_LIST_NUMBER = re.compile(r"^[ \t]*\d+[.)][ \t]", re.M)
_ANY_MARKER = re.compile(r"<!--\s*hpcw:.*?-->", re.S)


def _number(n: int) -> re.Pattern[str]:
    """``n`` as a number of its own (``4``, ``gpu:4``, ``=4``, ``4×``; not ``HPC104``, ``0.4``, ``4G``) or as
    a word (``four``)."""
    digits = rf"(?<![\w.]){n}(?!\w|\.\d)"
    if n < len(_NUMBER_WORDS):
        return re.compile(rf"{digits}|\b{_NUMBER_WORDS[n]}\b", re.I)
    return re.compile(digits)


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def _slide_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of each slide of :func:`split_slides` in ``text``."""
    spans: list[tuple[int, int]] = []
    pos = 0
    lines = text.split("\n")
    offsets = []
    for ln in lines:
        offsets.append(pos)
        pos += len(ln) + 1
    first = 0
    if lines and lines[0].strip() == "---":
        for i in range(1, len(lines)):
            if lines[i].strip() == "---":
                first = i + 1
                break
    start = offsets[first] if first < len(offsets) else len(text)
    in_fence = False
    for i in range(first, len(lines)):
        if lines[i].lstrip().startswith("```"):
            in_fence = not in_fence
        if not in_fence and lines[i].rstrip() == "---":
            spans.append((start, offsets[i]))
            start = offsets[i] + len(lines[i]) + 1
    spans.append((min(start, len(text)), len(text)))
    return spans


def _is_default_site(profile: str | None) -> bool:
    from .profiles import load_profile
    return not profile or load_profile(profile).name == load_profile(DEFAULT_PROFILE).name


def source_numbers(text: str, profile: str | None = None) -> list[str]:
    """Counts of the source site (:data:`DEFAULT_PROFILE`) that the text still states next to a generated
    example where the profile's example has others: nodes, GPUs per node, CPUs per task, torchrun's workers
    per node and in all (:data:`NUMERIC_KEYS`), as digits (``--gres=gpu:4``, ``4 workers``) or words
    (``four GPUs each``), outside value markers (which ``sync`` fills).

    "Next to" is the prose, headings, alt text and speaker notes of the slides of the example's section (a
    section starts at a slide with a ``#`` heading) that show no code but generated examples: a slide with a
    hand-written script, or the linter's output on one, speaks of that script's numbers. Blocks pinned to a
    profile are left out (their prose is about that site on purpose)."""
    if _is_default_site(profile):
        return []
    blocks = code_blocks(text, profile)
    prose = _blank_blocks(text, blocks)
    for m in list(_VALUE.finditer(prose)) + list(_ANY_MARKER.finditer(prose)) + list(_LIST_NUMBER.finditer(prose)):
        prose = _blank(prose, m.start(), m.end())
    slides_at = _slide_spans(text)

    def slide_of(offset: int) -> int:
        return next(i for i, (a, b) in enumerate(slides_at) if a <= offset <= b)

    sections: list[list[int]] = []
    for i, (a, b) in enumerate(slides_at):
        if not sections or re.search(r"^# ", prose[a:b], re.M):
            sections.append([])
        sections[-1].append(i)
    out: list[tuple[int, str]] = []
    cache: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
    for section in sections:
        inside = [b for b in blocks if slide_of(b.start) in section]
        shown = [b for b in inside if b.kind == "example" and "profile" not in b.marker]
        if not shown:
            continue
        others = {slide_of(b.start) for b in inside if b.kind != "example"}
        wanted: dict[int, list[tuple[str, str, str, Block]]] = {}
        for block in shown:
            name = block.marker["example"]
            if name not in cache:
                cache[name] = (example_values(name, DEFAULT_PROFILE), example_values(name, block.profile))
            source, target = cache[name]
            for key in NUMERIC_KEYS:
                was, now = source.get(key, ""), target.get(key, "")
                if was.isdigit() and was != now and (name, key) not in {(w[0], w[1]) for w in wanted.get(int(was), [])}:
                    wanted.setdefault(int(was), []).append((name, key, now, block))
        for i in section:
            if i in others:
                continue
            a, b = slides_at[i]
            for n, what in sorted(wanted.items()):
                for m in _number(n).finditer(prose, a, b):
                    line = prose.count("\n", 0, m.start()) + 1
                    out.append((line, _source_number(line, m.group(0), what, profile or DEFAULT_PROFILE)))
    return [problem for _, problem in sorted(out, key=lambda found: found[0])]


def _source_number(line: int, said: str, what: list[tuple[str, str, str, Block]], profile: str) -> str:
    name, key, now, block = what[0]
    meaning = " and ".join(f"{VALUE_KEYS[k].split(' (')[0]} ({k})" for _, k, _, _ in what)
    now_text = " and ".join(v or "none" for _, _, v, _ in what)
    return (f"{DECK_NAME}:{line}: the text says {said!r}: {DEFAULT_PROFILE}'s {meaning} in {name}, but for {profile} "
            f"the block at {DECK_NAME}:{block.line} has {now_text}; write the number as "
            f"<!-- hpcw: value {name} {key} -->{now or '…'}<!-- hpcw: end -->"
            f"{''.join(f' (or {k})' for _, k, _, _ in what[1:])} so sync fills it from the profile (not in speaker "
            "notes: reword those)")


#: a site path's own folders and the user's folder under it, as scripts write it
_USER_TAIL = r"(?:/(?:\$USER|\$\{USER\}))?"
#: profile fields that name a place on the site (image_dir and cache_dir count when they are not under one of
#: the first two: a folder under the site's own scratch works whatever it is called)
_PLACES = {"scratch": "scratch folder", "node_local": "node-local disk", "image_dir": "image folder",
           "cache_dir": "Apptainer cache"}


def source_paths(text: str, profile: str | None = None) -> list[str]:
    """Paths of the source site (:data:`DEFAULT_PROFILE`) that do not exist on ``profile``'s: its scratch
    (``/scratch/midway3/$USER``) and node-local disk (``/scratch/local/$USER``), and its image folder and cache
    when they are elsewhere, written by hand in a block (not generated, not pinned to a profile) or in the
    text, where ``profile`` has other ones. Only for a profile given on purpose: the deck as shipped is the
    source site's."""
    if _is_default_site(profile):
        return []
    from .profiles import load_profile
    source, target = load_profile(DEFAULT_PROFILE), load_profile(profile)
    places: list[tuple[str, str, re.Pattern[str]]] = []
    for attr, what in _PLACES.items():
        value = str(getattr(source, attr) or "").rstrip("/")
        if not value or value == str(getattr(target, attr) or "").rstrip("/"):
            continue
        if attr in ("image_dir", "cache_dir") and any(
                value.startswith(str(getattr(source, a)).rstrip("/") + "/") for a in ("scratch", "node_local")):
            continue
        base = re.sub(r"/(?:\$USER|\$\{USER\})$", "", value)
        if not base.strip("/"):
            continue
        places.append((attr, what, re.compile(re.escape(base) + _USER_TAIL + r"(?![\w.-])")))
    if not places:
        return []
    blocks = code_blocks(text, profile)
    texts = [(b.line, b.body) for b in blocks if b.kind not in GENERATED and "profile" not in b.marker]
    prose = _blank_blocks(text, blocks)
    for m in _ANY_MARKER.finditer(prose):
        prose = _blank(prose, m.start(), m.end())
    texts.append((0, prose))
    out: dict[tuple[int, str], str] = {}
    for first, body in texts:
        for attr, what, pattern in places:
            for m in pattern.finditer(body):
                line = first + body.count("\n", 0, m.start()) + 1
                have = str(getattr(target, attr) or "")
                out.setdefault((line, attr), (
                    f"{DECK_NAME}:{line}: {m.group(0)} is {source.name}'s {what} ({attr}); "
                    f"{target.name}'s is {have or 'not set in its profile'}: write that here (sync changes only "
                    "generated blocks and value markers, not hand-written text)"))
    return [problem for _, problem in sorted(out.items(), key=lambda item: item[0][0])]


#: what one GPU vendor's software is called, which a deck for a site whose GPUs are all the other vendor's should not
#: tell learners to type: ``(pattern, kind, what it is)``; the GPU flags come from
#: :data:`hpcwidgets.spec.workflow.GPU_FLAGS` and image names are read by :func:`hpcwidgets.spec.profile.image_vendor`
_VENDOR_WORDS = {
    "nvidia": ((rf"(?<![\w-])(?:{'|'.join(GPU_TOOLS['nvidia'])})(?![\w-])", "tool", "NVIDIA's GPU tool"),
               (r"(?<![\w.-])nvcr\.io(?![\w-])|\bNGC\b", "image", "NVIDIA's image registry (NGC)"),
               (r"(?<![\w-])ch-fromhost\s+--nvidia(?![\w-])", "step", "Charliecloud's step for NVIDIA drivers")),
    "amd": ((rf"(?<![\w-])(?:{'|'.join(GPU_TOOLS['amd'])})(?![\w-])", "tool", "AMD's GPU tool"),
            (r"(?<![\w./-])rocm/[\w.-]+", "image", "an AMD image (Docker Hub's rocm/)")),
}
#: what the other vendor's tools become on a site of the vendor (its first tool)
_VENDOR_ADVICE = {tool: GPU_TOOLS[vendor][0] for vendor, other in (("nvidia", "amd"), ("amd", "nvidia"))
                  for tool in GPU_TOOLS[other]}
#: an image reference written with its scheme (docker://…), or after FROM / From: in a build file
_IMAGE_REF = re.compile(r"(?:docker|oras|library)://[^\s`'\")\]]+|^[ \t]*(?:FROM|From:)[ \t]+(?P<base>[^\s`'\"]+)",
                        re.M)
#: Apptainer's program with one of its commands, as a learner types it (``apptainer exec``, ``apptainer pull``)
_APPTAINER_COMMAND = re.compile(r"(?<![\w/.$-])apptainer[ \t]+(?:exec|run|shell|pull|build|inspect|instance|cache"
                                r"|remote|registry|sign|verify|overlay|push|search|key|plugin|version|test)\b")


def _site_vendor(site: Any) -> str:
    """The vendor of all of ``site``'s GPUs (``nvidia`` or ``amd``; its GPU partitions' own, else the profile's), or
    "" where it has both, another or none: the other vendor's words are then not wrong."""
    vendors = {site.vendor_of(p) for p in site.gpu_partitions()} or {str(site.gpu_vendor or "")}
    return next(iter(vendors)) if len(vendors) == 1 and vendors <= {"nvidia", "amd"} else ""


def vendor_leftovers(text: str, profile: str | None = None) -> list[str]:
    """Words of the other GPU vendor, and a container program the site lacks, that the hand-written text still uses
    where the generated blocks use the site's own: on a site whose GPUs are all AMD, ``--nv``, ``nvidia-smi``,
    NGC (``nvcr.io``, "NGC images"), CUDA images and ``ch-fromhost --nvidia``; on an all-NVIDIA site, ``--rocm``,
    ``rocm-smi``/``amd-smi``/``rocminfo`` and ROCm images (``rocm/pytorch``); on a site with SingularityCE only
    (runtimes and apptainer_binary), ``apptainer exec``/``pull``/… . Looked for in the prose, headings and speaker
    notes, and in the blocks that are neither generated nor pinned to a profile (in ``bash`` blocks only what the
    linter does not report, the tools: HPC218, HPC237 and HPC414 report the flag, the image and the program). A line
    of prose that also names the site's own flag, tool or images (or its program) compares the two and is left
    alone: "``--nv`` for NVIDIA, ``--rocm`` for AMD"."""
    from .examples import EXAMPLE_IMAGES
    from .lint.profile_rules import site_has_program
    from .profiles import load_profile
    from .spec.profile import image_vendor
    from .spec.workflow import GPU_FLAGS
    site = load_profile(profile or DEFAULT_PROFILE)
    vendor = _site_vendor(site)
    other = {"nvidia": "amd", "amd": "nvidia"}.get(vendor, "")
    singularity_only = site_has_program(site, "singularity") and not site_has_program(site, "apptainer")
    if not other and not singularity_only:
        return []
    names = {"nvidia": "NVIDIA", "amd": "AMD"}
    image = (site.examples.image_source or EXAMPLE_IMAGES[vendor][0]) if vendor else ""
    wrong_flag = re.compile(rf"(?<![\w-])--{GPU_FLAGS[other]}(?![\w-])") if other else None
    own = [re.compile(rf"(?<![\w-])--{GPU_FLAGS[vendor]}(?![\w-])")] if vendor else []
    own += [re.compile(pattern) for pattern, _, _ in _VENDOR_WORDS.get(vendor, ())]
    own_program = [re.compile(rf"(?<![\w/.-]){re.escape(site.apptainer_binary)}\b")]
    words = [(re.compile(pattern), kind, what) for pattern, kind, what in _VENDOR_WORDS.get(other, ())]

    def vendor_problem(line: int, said: str, what: str) -> str:
        fix = (f"write {_VENDOR_ADVICE[said]}" if said in _VENDOR_ADVICE else
               f"write --{GPU_FLAGS[vendor]}, as the generated blocks do" if said.startswith("--") else
               "on AMD nodes ch-run needs no such step (the GPUs are visible through the host's /dev; the ROCm "
               "libraries must be in the image)" if said.startswith("ch-fromhost") else
               f"use an {names[vendor]} build, such as the examples' {image}")
        return (f"{DECK_NAME}:{line}: {said!r} is {what}, but {site.name}'s GPUs are {names[vendor]}: {fix} (sync "
                "changes only generated blocks and value markers, not hand-written text)")

    def program_problem(line: int, said: str) -> str:
        return (f"{DECK_NAME}:{line}: {said!r}: {site.name} has no apptainer command (runtimes: "
                f"{', '.join(site.runtimes)}, apptainer_binary = {site.apptainer_binary}); write "
                f"{site.apptainer_binary}, the site's name for it (the same commands and options), as the generated "
                "blocks do")

    def scan(first: int, body: str, prose: bool, flags: bool) -> dict[tuple[int, str], str]:
        """Problems of ``body`` (whose first line is deck line ``first`` + 1), one a line for each kind of word;
        without ``flags`` (a ``bash`` block, which the linter reads: HPC218 the flag, HPC237 the image, HPC414 the
        program) only the tools."""
        lines = body.split("\n")
        hits: list[tuple[int, str, str, str]] = []  # (offset, kind, as written, what it is)
        if other:
            hits += [(m.start(), kind, m.group(0), what) for pattern, kind, what in words
                     for m in pattern.finditer(body) if kind != "image" or flags]
            for m in _IMAGE_REF.finditer(body if flags else ""):
                ref = m.group("base") or m.group(0)
                if image_vendor(ref) == other:
                    hits.append((m.start("base") if m.group("base") else m.start(), "image", ref,
                                 f"a {'CUDA' if other == 'nvidia' else 'ROCm'} image"))
            if flags and wrong_flag is not None:
                hits += [(m.start(), "flag", m.group(0), f"the GPU flag for {names[other]} GPUs")
                         for m in wrong_flag.finditer(body)]
        if singularity_only and flags:
            hits += [(m.start(), "program", " ".join(m.group(0).split()), "")
                     for m in _APPTAINER_COMMAND.finditer(body)]
        found: dict[tuple[int, str], str] = {}
        for offset, kind, said, what in sorted(hits):
            n = body.count("\n", 0, offset)
            if prose and any(p.search(lines[n]) for p in (own_program if kind == "program" else own)):
                continue  # the line compares the two vendors (or programs)
            line = first + n + 1
            found.setdefault((line, kind), program_problem(line, said) if kind == "program"
                             else vendor_problem(line, said, what))
        return found

    blocks = code_blocks(text, profile)
    out: dict[tuple[int, str], str] = {}
    for block in blocks:
        if block.kind in GENERATED or "profile" in block.marker:
            continue
        out.update(scan(block.line, block.body, False, block.lang != "bash"))
    prose = _blank_blocks(text, blocks)
    for m in list(_VALUE.finditer(prose)) + list(_ANY_MARKER.finditer(prose)):
        prose = _blank(prose, m.start(), m.end())
    out.update(scan(0, prose, True, True))
    return [problem for _, problem in sorted(out.items(), key=lambda item: item[0][0])]


def diagram_problems(slides_dir: Path, profile: str | None = None) -> list[str]:
    """Diagrams in ``slides_dir/diagrams`` that are not what ``draw.py`` draws for ``profile`` (drawn for
    another site, or edited since)."""
    out = []
    for name, svg in render_diagrams(slides_dir, profile=profile, write=False).items():
        target = slides_dir / "diagrams" / f"{name}.svg"
        if not target.is_file() or target.read_text(encoding="utf-8") != svg:
            option = f" --profile {profile}" if profile else ""
            out.append(f"diagrams/{name}.svg is not what diagrams/draw.py draws for {profile or DEFAULT_PROFILE}; "
                       f"redraw it with: python -m hpcwidgets.slides diagrams{option}")
    return out


# ------------------------------------------------------------------------------------------------
# SVG diagrams (written directly; text stays text)
# ------------------------------------------------------------------------------------------------
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"


class Svg:
    """A tiny, deterministic SVG writer: boxes, text and arrows."""

    def __init__(self, width: int, height: int, title: str) -> None:
        self.width, self.height, self.title = width, height, title
        self.parts: list[str] = []

    @staticmethod
    def _a(**attrs: Any) -> str:
        return "".join(f' {k.rstrip("_").replace("_", "-")}="{html.escape(str(v), quote=True)}"'
                       for k, v in attrs.items() if v is not None)

    def text(self, x: float, y: float, text: str, *, size: int = 18, weight: str = "normal", anchor: str = "middle",
             fill: str = "#1f2933", family: str = FONT, style: str | None = None) -> None:
        lines = text.split("\n")
        y0 = y - (len(lines) - 1) * size * 0.6
        for i, ln in enumerate(lines):
            self.parts.append(f"<text{self._a(x=_n(x), y=_n(y0 + i * size * 1.2), font_size=size, font_weight=weight, text_anchor=anchor, fill=fill, font_family=family, font_style=style, dominant_baseline='middle')}>"
                              f"{html.escape(ln)}</text>")

    def box(self, x: float, y: float, w: float, h: float, label: str = "", *, fill: str = "#ffffff",
            stroke: str = "#52606d", size: int = 18, weight: str = "normal", rx: int = 10, dash: str | None = None,
            color: str = "#1f2933", mono: bool = False, stroke_width: float = 2) -> None:
        self.parts.append(f"<rect{self._a(x=_n(x), y=_n(y), width=_n(w), height=_n(h), rx=rx, fill=fill, stroke=stroke, stroke_width=stroke_width, stroke_dasharray=dash)}/>")
        if label:
            self.text(x + w / 2, y + h / 2, label, size=size, weight=weight, fill=color,
                      family="DejaVu Sans Mono, Menlo, Consolas, monospace" if mono else FONT)

    def arrow(self, x1: float, y1: float, x2: float, y2: float, label: str = "", *, color: str = "#52606d",
              size: int = 15, both: bool = False, dash: str | None = None, label_dx: float = 0,
              label_dy: float = -12) -> None:
        self.parts.append(f"<line{self._a(x1=_n(x1), y1=_n(y1), x2=_n(x2), y2=_n(y2), stroke=color, stroke_width=2.5, stroke_dasharray=dash, marker_end='url(#head)', marker_start='url(#tail)' if both else None)}/>")
        if label:
            self.text((x1 + x2) / 2 + label_dx, (y1 + y2) / 2 + label_dy, label, size=size, fill=color)

    def to_string(self) -> str:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
                f'viewBox="0 0 {self.width} {self.height}" role="img" aria-label="{html.escape(self.title)}">\n'
                f"<title>{html.escape(self.title)}</title>\n"
                "<defs>"
                '<marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
                'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#52606d"/></marker>'
                '<marker id="tail" viewBox="0 0 10 10" refX="1" refY="5" markerWidth="7" markerHeight="7" '
                'orient="auto"><path d="M10,0 L0,5 L10,10 z" fill="#52606d"/></marker>'
                "</defs>\n")
        return head + "\n".join(self.parts) + "\n</svg>\n"


def _n(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.1f}"


def render_diagrams(slides_dir: Path | None = None, *, write: bool = True,
                    profile: str | None = None) -> dict[str, str]:
    """Run ``slides/diagrams/draw.py`` and (when ``write``) save each drawing as ``slides/diagrams/NAME.svg``.
    Each drawing is given the deck's profile (default :data:`DEFAULT_PROFILE`), so what it shows of a site
    (the image's path, the nodes and GPUs of the two-node job) is that site's."""
    slides_dir = slides_dir or SLIDES_DIR
    source = slides_dir / "diagrams" / "draw.py"
    if not source.is_file():
        raise SlidesError(f"the diagram source {source} is missing")
    namespace = runpy.run_path(str(source))
    drawings = namespace.get("DIAGRAMS")
    if not isinstance(drawings, dict):
        raise SlidesError(f"{source} must define DIAGRAMS = {{name: function(profile) returning an Svg}}")
    out = {name: make(profile or DEFAULT_PROFILE).to_string() for name, make in drawings.items()}
    if write:
        for name, svg in out.items():
            target = slides_dir / "diagrams" / f"{name}.svg"
            if not target.is_file() or target.read_text(encoding="utf-8") != svg:
                target.write_text(svg, encoding="utf-8")
    return out


# ------------------------------------------------------------------------------------------------
# building the HTML (and PDF)
# ------------------------------------------------------------------------------------------------
_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_MIME = {".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def inline_images(text: str, base: Path) -> str:
    """Markdown images → ``<img>`` with a data URI (``w:N``/``h:N`` in the alt text set the size)."""
    def repl(m: re.Match[str]) -> str:
        src = m.group("src")
        if re.match(r"^[a-z]+:", src):
            raise SlidesError(f"the deck loads the image {src} from elsewhere; save it under slides/diagrams and "
                              "reference it by a relative path (the built HTML must be self-contained)")
        path = (base / src).resolve()
        mime = _MIME.get(path.suffix.lower())
        if mime is None or not path.is_file():
            raise SlidesError(f"the deck's image {src} is missing or not svg/png/jpeg; run "
                              "python -m hpcwidgets.slides diagrams")
        words = m.group("alt").split()
        style = []
        alt = []
        for w in words:
            size = re.fullmatch(r"(w|h|width|height):(\d+)(px)?", w)
            if size:
                style.append(f"{'width' if size.group(1)[0] == 'w' else 'height'}:{size.group(2)}px")
            else:
                alt.append(w)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        style_attr = f' style="{";".join(style)}"' if style else ""
        return f'<img class="diagram" alt="{html.escape(" ".join(alt))}"{style_attr} src="data:{mime};base64,{data}">'
    out = []
    in_fence = False
    for ln in text.split("\n"):
        if ln.lstrip().startswith("```"):
            in_fence = not in_fence
        out.append(ln if in_fence else _IMAGE.sub(repl, ln))
    return "\n".join(out)


def strip_markers(text: str) -> str:
    """Remove the ``hpcw:`` marker comments (Marp would show them as presenter notes); a value marker in the
    text leaves its value."""
    text = _VALUE.sub(lambda m: m.group("value"), text)
    return re.sub(r"[ \t]*<!--\s*hpcw:.*?-->[ \t]*\n?", "", text, flags=re.S)


def prepare(text: str, base: Path) -> str:
    """The deck as Marp gets it: markers removed, images inlined."""
    return inline_images(strip_markers(text), base)


#: seconds npm may take to install Marp (about 140 packages) before the install counts as stalled
NPM_TIMEOUT = 900


def marp_binary(slides_dir: Path | None = None, *, install: bool = True) -> Path:
    """The Marp CLI in ``slides/.marp``, installed from the npm registry when missing."""
    slides_dir = slides_dir or SLIDES_DIR
    prefix = slides_dir / ".marp"
    marp = prefix / "node_modules" / ".bin" / "marp"
    if marp.exists():
        return marp
    if not install:
        raise SlidesError(f"Marp CLI is not installed in {prefix}; run: npm install --prefix {prefix} {MARP_PACKAGE}")
    npm = shutil.which("npm")
    if npm is None:
        raise SlidesError("npm is not installed: install Node.js and npm (apt-get install nodejs npm), then run "
                          "make slides again")
    prefix.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", MARP_PACKAGE],
                              capture_output=True, text=True, timeout=NPM_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise SlidesError(f"npm did not install {MARP_PACKAGE} within {NPM_TIMEOUT} s; check that the npm registry "
                          "is reachable, then run make slides again") from None
    if proc.returncode != 0 or not marp.exists():
        raise SlidesError(f"npm could not install {MARP_PACKAGE} into {prefix} (exit {proc.returncode}):\n"
                          f"{proc.stderr.strip()}")
    return marp


MARP_CONFIG = """\
# written by hpcwidgets.slides: raw HTML on (for the inlined diagrams), math off (KaTeX would fetch fonts)
html: true
options:
  math: false
"""


@dataclass(frozen=True)
class BuildResult:
    html: Path
    pdf: Path | None
    deck_changed: bool
    diagrams: tuple[str, ...]


def build(slides_dir: Path | None = None, out_dir: Path | None = None, *, pdf: bool | None = None,
          sync: bool = True, browser: str = CHROMIUM, profile: str | None = None) -> BuildResult:
    """Diagrams → sync → verify → self-contained HTML (+ PDF when ``pdf`` or, by default, when Chromium exists).
    ``profile`` is the deck's profile for the blocks whose marker names none."""
    slides_dir = slides_dir or SLIDES_DIR
    out_dir = out_dir or slides_dir / "build"
    deck = slides_dir / DECK_NAME
    diagrams = tuple(render_diagrams(slides_dir, profile=profile))
    changed = sync_deck(deck, write=True, profile=profile) if sync else False
    problems = check_deck(deck, profile)
    if problems:
        raise SlidesError("the deck's code blocks do not pass the linter:\n  " + "\n  ".join(problems))
    out_dir.mkdir(parents=True, exist_ok=True)
    source = out_dir / "workshop.prepared.md"
    source.write_text(prepare(deck.read_text(encoding="utf-8"), slides_dir), encoding="utf-8")
    config = out_dir / "marp.config.yml"
    config.write_text(MARP_CONFIG, encoding="utf-8")
    marp = marp_binary(slides_dir)
    theme = slides_dir / "theme" / "hpcw.css"
    html_out = out_dir / "workshop.html"
    base = [str(marp), "--config-file", str(config), "--theme-set", str(theme), "--no-stdin"]
    _run(base + ["--html", "-o", str(html_out), str(source)], "HTML")
    pdf_out = None
    want_pdf = Path(browser).exists() if pdf is None else pdf
    if want_pdf:
        if not Path(browser).exists():
            raise SlidesError(f"a PDF needs Chromium at {browser}; install it (apt-get install chromium) or build "
                              "without the PDF")
        pdf_out = out_dir / "workshop.pdf"
        _run(base + ["--html", "--pdf", "--pdf-notes", "--allow-local-files", "--browser", "chrome",
                     "--browser-path", browser, "-o", str(pdf_out), str(source)], "PDF")
    return BuildResult(html_out, pdf_out, changed, diagrams)


def _run(argv: Sequence[str], what: str) -> None:
    env = dict(os.environ)
    # Chromium refuses to start as root without --no-sandbox; Marp CLI passes it when this is set
    env.setdefault("CHROME_NO_SANDBOX", "1")
    env.setdefault("CHROME_PATH", CHROMIUM)
    proc = subprocess.run(list(argv), capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SlidesError(f"Marp CLI failed to build the {what} (exit {proc.returncode}): {' '.join(argv)}\n"
                          f"{proc.stderr.strip()}")


# ------------------------------------------------------------------------------------------------
# checking the built HTML
# ------------------------------------------------------------------------------------------------
def external_references(html_text: str) -> list[str]:
    """``src``/``href`` of scripts, stylesheets and images (and CSS ``url()``/``@import``) that leave the file."""
    from html.parser import HTMLParser

    found: list[str] = []

    class _Scan(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = {k: v or "" for k, v in attrs}
            if tag in ("script", "img", "source", "image", "iframe", "video", "audio") and _remote(a.get("src", "")):
                found.append(f"<{tag} src={a['src']}>")
            if tag == "link" and _remote(a.get("href", "")):
                found.append(f"<link rel={a.get('rel', '')} href={a['href']}>")
            if tag == "image" and _remote(a.get("href", "") or a.get("xlink:href", "")):
                found.append(f"<image href={a.get('href') or a.get('xlink:href')}>")

    _Scan().feed(html_text)
    for m in re.finditer(r"""(?:url\(\s*['"]?|@import\s+['"])(https?:)?//[^'")\s]+""", html_text):
        found.append(m.group(0))
    return found


def _remote(url: str) -> bool:
    return bool(re.match(r"^\s*(https?:)?//", url, re.I))


def count_slides(text: str) -> int:
    return len(split_slides(text))


# ------------------------------------------------------------------------------------------------
# command line: python -m hpcwidgets.slides sync|check|diagrams|build
# ------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hpcwidgets.slides", description=__doc__.split("\n")[0])
    p.add_argument("action", choices=("sync", "check", "diagrams", "build"),
                   help="sync: refresh the generated blocks of the deck; check: lint its code blocks; diagrams: "
                        "draw the SVG diagrams; build: all three, then the HTML (and the PDF when Chromium is present)")
    p.add_argument("--slides-dir", type=Path, default=None, metavar="DIR",
                   help=f"the folder holding {DECK_NAME} and diagrams/draw.py; build writes into its build/ "
                        f"(default: slides/ of the checkout you run it in, the nearest slides/{DECK_NAME} in "
                        "the current folder or a parent; outside a checkout, the one next to this package)")
    p.add_argument("--no-pdf", action="store_true", help="build the HTML only")
    p.add_argument("--profile", metavar="NAME",
                   help=f"the site profile for every block whose marker names none (default {DEFAULT_PROFILE}); "
                        "a marker's own profile= wins")
    args = p.parse_args(argv)
    if args.slides_dir is None:
        args.slides_dir = default_slides_dir()
    deck = args.slides_dir / DECK_NAME
    profile = args.profile
    try:
        if profile:
            from .profiles import load_profile
            load_profile(profile)  # an unknown name stops here, before the deck is touched
        if args.action == "sync":
            print(f"{deck}: {'refreshed' if sync_deck(deck, profile=profile) else 'already in sync'}")
        elif args.action == "diagrams":
            for name in render_diagrams(args.slides_dir, profile=profile):
                print(f"{args.slides_dir / 'diagrams' / name}.svg")
        elif args.action == "check":
            problems = check_deck(deck, profile)
            for line in problems:
                print(line, file=sys.stderr)
            n = sum(1 for _ in iter_checked(deck.read_text(encoding="utf-8"), profile))
            print(f"{deck}: {n} code blocks checked against {profile or DEFAULT_PROFILE}, {len(problems)} problem(s)")
            return 1 if problems else 0
        else:
            result = build(args.slides_dir, pdf=False if args.no_pdf else None, profile=profile)
            if result.deck_changed:
                print(f"{deck}: generated blocks refreshed from the examples")
            print(f"wrote {result.html}")
            if result.pdf:
                print(f"wrote {result.pdf}")
            elif not args.no_pdf:
                print(f"no PDF: Chromium is not at {CHROMIUM}")
    except HpcWidgetsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def iter_checked(text: str, profile: str | None = None) -> Iterator[Block]:
    """The blocks :func:`check_deck` looks at: those in :data:`CHECKED_LANGS` and every generated one."""
    return (b for b in code_blocks(text, profile) if b.lang in CHECKED_LANGS or b.kind in GENERATED)


__all__ = ["Block", "BuildResult", "COUNT_NOUNS", "DEFAULT_PROFILE", "GENERATED", "INTERACTIVE_IGNORE", "KINDS",
           "NUMERIC_KEYS", "count_noun",
           "SlidesError", "VALUE_KEYS", "ValueSpan",
           "Svg", "build", "check_block", "check_deck", "code_blocks", "command", "count_slides", "default_slides_dir",
           "example_script", "example_values", "excerpt", "expected_body", "fill_values", "full_text",
           "source_numbers", "source_paths", "stale_values", "value_spans",
           "diagram_problems", "external_references", "inline_images", "iter_checked", "main", "parse_marker",
           "prepare", "render_diagrams", "site_leftovers", "speaker_notes", "split_slides", "strip_markers",
           "sync_deck", "sync_text", "unknown_modules", "vendor_leftovers"]


if __name__ == "__main__":
    sys.exit(main())
