"""Argument vectors → command models, driven by the same field metadata that renders them.

A command is recognised by its program and subcommand words (``apptainer exec``, ``ch-image build``,
``python -m torch.distributed.run``); its options are read with the flag spellings each field
declares (long, short, aliases; ``--opt=value`` and ``--opt value``). Nested launches
(``srun … apptainer exec … torchrun …``) are read one layer at a time with :func:`parse_chain`.
"""

from __future__ import annotations

import csv
import functools
import os
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import ParseError
from ..spec._meta import FieldSpec, Spec, all_kinds
from ..spec._words import Verbatim
from ..spec.common import BIND_OPTION, LIST_WORD, Bind, EnvVar, bind_from_mount_text


class Expansion(str):
    """An unquoted word that is only a variable reference (``$nv``, ``${OPTS}``), as a script reader passes it
    to :func:`parse_argv`: bash splits its value into words, or drops the word when the value is empty. Its
    text is the word's value; ``raw`` is the word as written. ``values`` holds the values the script gives the
    variable there (None: not known, e.g. a variable the script does not set), ``single`` whether it is exactly
    one value given unconditionally (not in an ``if``, a loop or a function). Where an option may stand, a word
    whose values all start with ``-`` (or are empty) is read as options, not as the image or program.
    """

    raw: str
    values: tuple[str, ...] | None
    single: bool

    def __new__(cls, text: str, raw: str, values: tuple[str, ...] | None, single: bool = False) -> "Expansion":
        obj = super().__new__(cls, text)
        obj.raw, obj.values, obj.single = raw, values, single
        return obj


def _plain(word: Any) -> Any:
    """A word as the models hold it: an :class:`Expansion` becomes the plain text of its value."""
    return str(word) if isinstance(word, Expansion) else word


#: a value that splits into plain option words (no quotes, globs or expansions left in it)
_PLAIN_WORDS = re.compile(r"[A-Za-z0-9_./:=,+@%-]+(?:[ \t]+[A-Za-z0-9_./:=,+@%-]+)*")


def _as_options(word: Expansion, table: dict[str, tuple[FieldSpec, ...]]) -> list[str] | None:
    """The option words an :class:`Expansion` stands for when the script gives it one value made only of
    options the model has fields for (``--nv``, ``--bind /data``), else None."""
    value = (word.values or ("",))[0].strip()
    if not word.single or not value or not _PLAIN_WORDS.fullmatch(value):
        return None
    parts = value.split()
    i = 0
    while i < len(parts):
        text = parts[i]
        if not text.startswith("-") or text == "-":
            return None
        name, eq, _ = text.partition("=") if text.startswith("--") else (text, "", "")
        f = _pick(table.get(name), bool(eq))
        if f is None or (f.base_type is bool and eq):
            return None
        if f.base_type is not bool and not eq:
            if i + 1 >= len(parts):
                return None
            i += 1  # its value
        i += 1
    return parts


def _may_be_options(word: Any) -> bool:
    """Whether ``word`` is an :class:`Expansion` every value of which is options (or nothing)."""
    return isinstance(word, Expansion) and word.values is not None \
        and all(v.strip() == "" or v.lstrip().startswith("-") for v in word.values)


def _options_list(cls: type, word: Any, following: int) -> bool:
    """Whether ``word`` is an array or ``"$@"`` whose elements the reader cannot tell, with more words after it,
    on a launcher that reads such a list as options (``lists_hold_options``): ``torchrun "${DIST[@]}" train.py``
    passes the array's elements before the script, so they are its options (Megatron-LM's launchers are written
    so), not the script. A container command does not guess: its list may hold the image."""
    return getattr(cls, "lists_hold_options", False) and isinstance(word, Expansion) and word.values is None \
        and following > 0 and LIST_WORD.fullmatch(word.raw) is not None


@dataclass(frozen=True)
class Parsed:
    """One command read into a model, with what the reader noticed on the way."""

    model: Spec
    notes: tuple[str, ...] = ()
    #: the trailing words as given (:class:`Expansion` marks kept), for the next layer of a nested launch
    tail: tuple[Any, ...] = ()
    #: the words (as written) read as options from a variable: ``${NV}`` read as --nv, or ``$nv`` kept as written
    expanded: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Signature:
    words: tuple[str, ...]          # program and subcommand words to match
    cls: type[Spec]
    fixed: tuple[tuple[str, str], ...]


def _load_models() -> None:
    """Import every model family so the registry is complete."""
    import importlib
    for name in ("apptainer", "slurm", "torchrun", "charliecloud"):
        try:
            importlib.import_module(f"hpcwidgets.spec.{name}")
        except ImportError:  # a family that is not installed is simply not recognised
            pass


@functools.cache
def _signatures() -> tuple[_Signature, ...]:
    _load_models()
    out = []
    for cls in all_kinds().values():
        specs = cls.field_specs()
        prog = next((f for f in specs if f.info.role == "program"), None)
        if prog is None:
            continue
        sub = next((f for f in specs if f.info.role == "subcommand"), None)
        programs = prog.info.choices or (prog.default,)
        subs = (sub.info.choices or (sub.default,)) if sub else ("",)
        for p in programs:
            for s in subs:
                fixed = [(prog.name, p)] + ([(sub.name, s)] if sub else [])
                out.append(_Signature(tuple(p.split()) + tuple(s.split()), cls, tuple(fixed)))
    # longest signatures first: "apptainer instance start" before "apptainer inspect"
    return tuple(sorted(out, key=lambda s: -len(s.words)))


@functools.cache
def _option_table(cls: type[Spec]) -> dict[str, tuple[FieldSpec, ...]]:
    """Flag spelling → the fields written with it (ch-run's bare ``--set-env`` and ``--set-env=X`` share one)."""
    table: dict[str, tuple[FieldSpec, ...]] = {}
    for f in cls.field_specs():
        if f.info.role == "option" and f.info.flag and not f.info.env:
            for spelling in f.info.spellings:
                table[spelling] = table.get(spelling, ()) + (f,)
    return table


def _pick(fields: tuple[FieldSpec, ...] | None, with_value: bool) -> FieldSpec | None:
    if not fields:
        return None
    for f in fields:
        if (f.base_type is not bool) == with_value:
            return f
    return fields[0]


#: options of apptainer/singularity itself, written before the subcommand (``singularity -s exec …``): the root
#: command's flags in cmd/internal/cli/apptainer.go and singularity.go (Apptainer 1.x, SingularityCE 3 and 4; the
#: Apptainer 1.5 reference lists the same), --build-config being Apptainer's. They change what it prints, or with
#: -c/--config FILE the configuration file it reads; the reader reads past them (a note says they are not kept)
GLOBAL_SWITCHES = frozenset({"-s", "--silent", "-q", "--quiet", "-d", "--debug", "-v", "--verbose", "--nocolor",
                             "--build-config", "-h", "--help"})
GLOBAL_VALUE_OPTIONS = frozenset({"-c", "--config"})
GLOBAL_OPTIONS = {"apptainer": GLOBAL_SWITCHES | GLOBAL_VALUE_OPTIONS}
GLOBAL_OPTIONS["singularity"] = GLOBAL_OPTIONS["apptainer"]


def global_option_words(words: Sequence[Any]) -> int:
    """How many words after the program ``words[0]`` are its own options (``apptainer --debug -c FILE exec …``: 3):
    switches, also clustered (``-dv``) or given a value (``--debug=true``), and ``-c``/``--config`` with its value,
    attached (``-cFILE``, ``--config=FILE``) or the next word. 0 for a program that has none."""
    if not words or os.path.basename(str(words[0])) not in GLOBAL_OPTIONS:
        return 0
    i = 1
    while i < len(words):
        text = str(words[i])
        name, eq, _ = text.partition("=") if text.startswith("--") else (text, "", "")
        used = 1 if name in GLOBAL_SWITCHES else (1 if eq else 2) if name in GLOBAL_VALUE_OPTIONS \
            else _global_cluster(text)
        if not used:
            break
        i += used
    return min(i, len(words)) - 1


def _global_cluster(text: str) -> int:
    """How many words a word of short global options uses, read as pflag reads it, letter by letter: 1 for switches
    (``-dv``) or -c with its value attached (``-cFILE``, ``-dc/etc/apptainer.conf``), 2 when -c ends the word and
    takes the next one; 0 when the word is no such cluster."""
    if not text.startswith("-") or text.startswith("--") or len(text) < 3:
        return 0
    for k, letter in enumerate(text[1:], start=2):
        if "-" + letter in GLOBAL_VALUE_OPTIONS:
            return 1 if text[k:] else 2
        if "-" + letter not in GLOBAL_SWITCHES:
            return 0
    return 1


def recognise(words: Sequence[str]) -> tuple[_Signature, int] | None:
    """The command signature that ``words`` start with, and how many words it used (global options
    between the program and its subcommand included)."""
    if not words:
        return None
    first = os.path.basename(str(words[0]))
    skip = global_option_words(words)
    rest = [str(w) for w in words[1 + skip:]]
    for sig in _signatures():
        n = len(sig.words)
        if len(rest) >= n - 1 and first == sig.words[0] and tuple(rest[:n - 1]) == sig.words[1:]:
            return sig, n + skip
    return None


def _unknown_command(words: Sequence[str]) -> str:
    """Why :func:`recognise` found no command in ``words``: a program it does not know, or, for one it knows
    (``apptainer instance run``), a subcommand it does not read, with the ones it reads."""
    first = os.path.basename(str(words[0])) if words else ""
    known = [s.words for s in _signatures() if s.words[0] == first and len(s.words) > 1]
    if known:
        sub = [str(w) for w in words[1 + global_option_words(words):]][:1]
        if sub and any(k[1] == sub[0] and len(k) > 2 for k in known):  # apptainer instance …: the word after it too
            sub = [str(w) for w in words[1 + global_option_words(words):]][:2]
        said = " ".join([first, *sub])
        return (f"{said!r} is not a command this reader knows; of {first}'s commands it reads "
                f"{', '.join(sorted(' '.join(k) for k in known))}")
    return (f"{str(words[0]) if words else 'an empty command'!r} is not a command this reader knows (apptainer, "
            "singularity, ch-run, ch-image, ch-convert, ch-fromhost, srun, torchrun, python -m torch.distributed.run)")


def is_command(words: Sequence[str]) -> bool:
    return recognise(words) is not None


#: a path from the home directory that bash expands plainly: ``~`` or ``~/…`` with no quote, expansion or glob after it
_HOME_PATH = re.compile(r"~(?:/[^\s'\"\\$`*?\[{]*)?")


def _split_binds(value: str, one_per_option: bool = False) -> list[Bind]:
    """The binds one bind option's value holds, each destination kept as written (see ``Bind.from_token``).
    ``one_per_option``: the program reads the value as one bind, commas and all (ch-run, see
    ``ChRun.one_bind_per_option``)."""
    if isinstance(value, Verbatim) and one_per_option and _HOME_PATH.fullmatch(value):
        # ~/data as the bash of the job expands it (from $HOME): ch-run's --bind=… word must say $HOME, as ~ expands
        # only at the start of a word, and a model that held ~ would be written so once and read back as $HOME
        value = "$HOME" + value[1:]
    if isinstance(value, Verbatim):
        return [Bind(value)]
    if one_per_option:
        return [Bind.from_token(value, written=True)]
    # as Apptainer reads it: binds are comma-separated, and so are the options after SRC:DST:
    # "a:/a:ro,image-src=/,b" is a with two options, then b
    parts: list[str] = []
    for part in value.split(","):
        if parts and parts[-1].count(":") >= 2 and BIND_OPTION.fullmatch(part):
            parts[-1] += "," + part
        elif part:
            parts.append(part)
    # an empty value (--bind '') stays a bind with no host path, for lint to report
    return [_apptainer_bind(part) for part in parts] if parts else [Bind("")]


def _apptainer_bind(part: str) -> Bind:
    """One bind as Apptainer reads it: ``SRC:ro`` binds SRC at a container path named ``ro`` (options come only
    third, after SRC:DST), which Apptainer refuses ('destination must be an absolute path'); kept so, for the
    model to name the fix, where a bind typed into hpcwidgets reads ``SRC:ro`` as the mode."""
    src, colon, rest = part.partition(":")
    if colon and ":" not in rest and rest and all(BIND_OPTION.fullmatch(o) for o in rest.split(",")):
        return Bind(src, Verbatim(rest))
    return Bind.from_token(part, written=True)


#: the keys Apptainer's --mount reads a bind's destination from (``dst=``, ``destination=``, ``target=``)
_MOUNT_DESTINATION = re.compile(r"(?:dst|destination|target)=")


def _mount_to_bind(value: str) -> Bind | None:
    """``type=bind,src=/a,dst=/b[,ro]`` (CSV fields, optionally quoted) → Bind; None for what a bind cannot say
    (another mount type, bind-propagation=…) and for a mount without a destination, which Apptainer refuses (a
    ``--bind`` would mount it): that --mount stays as written. A destination written the same as the source is
    kept as written (``dst=/a`` comes back as ``/a:/a``), as for ``--bind /a:/a``."""
    bind = None if isinstance(value, Verbatim) else bind_from_mount_text(value)
    if bind is None or bind.dst:
        return bind
    try:
        fields = next(csv.reader([value.strip()]))
    except (csv.Error, StopIteration):
        return None
    if not any(_MOUNT_DESTINATION.match(f.strip()) for f in fields):
        return None
    return Bind(bind.src, Verbatim(bind.src), bind.mode)


def _env_pairs(raw: str) -> list[EnvVar]:
    """The variables a map option's value sets, as pflag's StringToString reads it (Apptainer's ``--env``): a value
    with one '=' is one pair, commas and all (``A=x,y``); one with more is a CSV record of NAME=value fields
    (``A=1,B=2``: two). A record pflag refuses (a field without '='), and shell text, stay one pair as written,
    for the model's checks to report."""
    if isinstance(raw, Verbatim) or raw.count("=") < 2:
        return [EnvVar.from_token(raw)]
    try:
        fields = next(csv.reader([raw]))
    except (csv.Error, StopIteration):
        return [EnvVar.from_token(raw)]
    if not all("=" in item for item in fields):
        return [EnvVar.from_token(raw)]
    return [EnvVar.from_token(item) for item in fields]


def _convert(f: FieldSpec, raw: str, as_map: bool = False, one_bind: bool = False) -> list[Any]:
    base = f.base_type
    if base is Bind:
        return _split_binds(raw, one_bind)
    if base is EnvVar:
        return _env_pairs(raw) if as_map else [EnvVar.from_token(raw)]
    if base is int:
        try:
            return [int(raw)]
        except ValueError:
            return [raw]  # "$SLURM_NNODES": kept, reported by the model's checks
    return [raw]


def _underscored(name: str, f: FieldSpec | None, known: frozenset[str]) -> bool:
    """Whether the option ``name`` is the underscore spelling of a hyphenated one (``--nproc_per_node`` for the
    field's ``--nproc-per-node``, ``--monitor_interval`` or ``--run_path`` for one of the ``known`` options without
    a field)."""
    hyphens = "--" + name[2:].replace("_", "-")
    return name.startswith("--") and hyphens != name and (hyphens == f.info.flag if f else hyphens in known)


class _Ordered:
    """Options a program applies in the order written (ch-run's ``--unset-env`` and ``--set-env``: its
    ``ordered_options``), whose fields are written in their declaration order. From the first such option that
    comes before one already read in that order, the rest are kept as written, in order, among the other options."""

    def __init__(self, cls: type[Spec]) -> None:
        flags = getattr(cls, "ordered_options", ())
        self.rank = {f.name: k for k, f in enumerate(cls.field_specs()) if f.info.flag in flags}
        self.last = -1
        self.moving = False

    def moves(self, f: FieldSpec, values: dict[str, Any]) -> bool:
        """Whether the option of field ``f`` is out of the fields' order (or a switch given twice), and so is kept
        as written: from then on, every ordered option is."""
        rank = self.rank.get(f.name)
        if rank is None:
            return False
        self.moving = self.moving or rank < self.last or (f.base_type is bool and values.get(f.name) is True)
        self.last = max(self.last, rank)
        return self.moving

    @staticmethod
    def as_written(name: str, eq: str, word: Any, after: Any) -> tuple[Any, int]:
        """The option as one word (``--unset-env X`` as ``--unset-env=X``) and how many words it used."""
        if eq or name == "--set-env" or after is None:  # --set-env takes its value only after '='
            return _plain(word), 1
        if isinstance(after, Verbatim):
            return Verbatim(f"{name}={after}"), 2
        return f"{name}={_plain(after)}", 2


def _short_kind(cls: type[Spec], table: dict[str, tuple[FieldSpec, ...]], option: str) -> str:
    """What the short option ``option`` (``-e``) takes: "switch" (nothing), "value" (a value, attached or the next
    word), "attached" (an optional value, attached only) or "" (an option the model does not know)."""
    if option in getattr(cls, "attached_value_options", ()):
        return "attached"
    fields = table.get(option)
    if fields:
        return "switch" if any(f.base_type is bool for f in fields) else "value"
    if option in getattr(cls, "other_switch_options", ()):
        return "switch"
    return "value" if option in getattr(cls, "other_value_options", ()) else ""


def _short_cluster(cls: type[Spec], table: dict[str, tuple[FieldSpec, ...]], text: str) -> list[str] | None:
    """The options a cluster of short options stands for, read as getopt (srun), argp (ch-run) and pflag (apptainer)
    read one: switch after switch (``-eC`` is ``-e -C``), until an option that takes a value, which takes the rest of
    the word, or the next word when nothing is left (``-eB/data`` is ``-e -B/data``, ``-lK0`` is ``-l -K0``). None
    when the word does not start with a switch (``-B/data``, ``-K1``: one option and its value) or holds a letter
    the model does not know as one of the program's options: it is then read as written."""
    out: list[str] = []
    for k, letter in enumerate(text[1:], start=2):
        option = "-" + letter
        kind = _short_kind(cls, table, option)
        if kind == "switch":
            out.append(option)
        elif kind and out:
            return out + [option + text[k:]]
        else:
            return None
    return out if len(out) > 1 else None


def _takes_a_value(following: Sequence[Any], positionals: int) -> bool:
    """Whether an unknown option takes the word after it: with a ``--`` ending the options, when more plain words
    stand before it than the command has positionals (``ch-run -d DIR IMAGE -- cmd``: DIR is the option's)."""
    texts = [str(w) for w in following]
    if "--" not in texts or not texts or texts[0].startswith("-"):
        return False
    plain = [t for t in texts[:texts.index("--")] if not t.startswith("-")]
    return len(plain) > max(positionals, 1)


def parse_argv(words: Sequence[str], *, env: dict[str, str] | None = None, source_line: int = 0) -> Parsed:
    """Read one command (no nesting: the rest field keeps the trailing words as they are).

    ``env`` holds the ``NAME=value`` assignments written before the command; those that a field
    renders (``APPTAINER_CACHEDIR``) are read into it, the others are ignored here.
    """
    found = recognise(words)
    if found is None:
        raise ParseError(_unknown_command(words), source_line)
    sig, start = found
    cls = sig.cls
    table = _option_table(cls)
    specs = cls.field_specs()
    positional = [f for f in specs if f.info.role == "positional"]
    rest_field = next((f for f in specs if f.info.role == "rest"), None)
    extra_field = next((f for f in specs if f.info.role == "option" and not f.info.flag and f.is_tuple), None)
    after_separator = any(f.name == "command" for f in specs) and getattr(cls, "_argv_tail", None) is not None

    values: dict[str, Any] = dict(sig.fixed)
    lists: dict[str, list[Any]] = {}
    extras: list[str] = []
    pos_words: list[str] = []
    rest: list[str] = []
    notes: list[str] = []
    expanded: list[str] = []
    underscored = False  # an option written --nproc_per_node where --nproc-per-node is the field's flag
    ordered = _Ordered(cls)
    words = list(words)
    if str(words[0]) != sig.words[0]:
        notes.append(f"{words[0]} is written as {sig.words[0]}")
    if start > len(sig.words):
        dropped = " ".join(str(w) for w in words[1:start - len(sig.words) + 1])
        notes.append(f"{sig.words[0]}'s own options ({dropped}) are not kept: the model holds only those of "
                     f"{' '.join(sig.words[1:])}")

    # the variable a field is written as may depend on the program (singularity: SINGULARITY_CACHEDIR)
    rename = cls(**values).env_name if env else None
    for f in specs:
        name = rename(f.info.env) if rename and f.info.env else f.info.env
        if name and env and name in env:
            values[f.name] = True if f.base_type is bool else env[name]

    i = start
    n = len(words)
    while i < n:
        w = words[i]
        text = str(w)
        if after_separator and text == "--":
            rest = list(words[i + 1:])
            break
        options_here = not (pos_words and rest_field and not after_separator)
        if options_here and extra_field is not None and _options_list(cls, w, n - i - 1):
            extras.append(Verbatim(w.raw))  # "${DIST[@]}" before the script: options out of sight, kept as written
            expanded.append(w.raw)
            notes.append(f"{w.raw} stands before the {'image' if positional else 'command'}, so it holds options: "
                         "kept as written")
            i += 1
            continue
        if options_here and _may_be_options(w):
            # an unquoted $VAR whose value is options (or nothing): bash splits it into those options
            spliced = _as_options(w, table)
            if spliced is not None:
                words[i:i + 1] = spliced  # one known value: read as the options it holds
                n = len(words)
                expanded.append(w.raw)
                notes.append(f"{w.raw} is read as the options it holds: {' '.join(spliced)}")
                continue
            if extra_field is not None:
                extras.append(Verbatim(w.raw))  # set conditionally, or not only known options: kept as written
                expanded.append(w.raw)
                notes.append(f"{w.raw} holds options (or nothing): kept as written, before the "
                             f"{'image' if positional else 'command'}")
                i += 1
                continue
        if text.startswith("-") and text != "-" and options_here:
            cluster = None if isinstance(w, (Verbatim, Expansion)) else _short_cluster(cls, table, text)
            if cluster is not None:
                words[i:i + 1] = cluster  # -eC: read as -e -C
                n = len(words)
                continue
            if text.startswith("--"):
                name, eq, val = text.partition("=")
            else:
                name, eq, val = text, "", ""
            f = _pick(table.get(name), bool(eq))
            if f is None and not text.startswith("--") and len(text) > 2 \
                    and _short_kind(cls, table, text[:2]) in ("value", "attached") and text[:2] in table:
                f, name, eq, val = _pick(table[text[:2]], True), text[:2], "=", text[2:]   # -B/data, -K1 attached
            takes = getattr(cls, "other_value_options", frozenset())
            known = takes | getattr(cls, "other_switch_options", frozenset())
            underscored = underscored or _underscored(name, f, known)
            if f is None:
                if extra_field is None:
                    raise ParseError(f"{sig.words[0]} has no option {name}; known: {', '.join(sorted(table))}", source_line)
                extras.append(_plain(w))
                i += 1
                if not eq and i < n and (name in takes or name.replace("_", "-") in takes):
                    extras.append(_plain(words[i]))  # its value, so the next word is not read as the image or script
                    i += 1
                elif name not in getattr(cls, "other_switch_options", frozenset()) and name not in takes:
                    notes.append(f"unknown {' '.join(sig.words)} option {name} kept as written")
                    if not eq and after_separator and _takes_a_value(words[i:], len(positional)):
                        extras.append(_plain(words[i]))  # ch-run -d DIR IMAGE -- …: more words than positionals
                        i += 1
                continue
            if ordered.moves(f, values):
                kept, used = ordered.as_written(name, eq, w, words[i + 1] if i + 1 < n else None)
                extras.append(kept)  # ch-run's --set-env/--unset-env after one the fields write later: kept in order
                i += used
                continue
            if eq and isinstance(w, Verbatim):
                val = Verbatim(val)
            if f.base_type is bool:
                if eq and str(val).lower() in ("false", "0", "no") and extra_field is not None:
                    extras.append(_plain(w))  # --kill-on-bad-exit=0 overrides a site default: kept as written
                elif eq:
                    values[f.name] = str(val).lower() not in ("false", "0", "no")
                else:
                    values[f.name] = True
                i += 1
                continue
            if not eq:
                if i + 1 >= n:
                    raise ParseError(f"{name} needs a value", source_line)
                val = _plain(words[i + 1])
                i += 1
            if f.name == "binds" and name == "--mount":
                b = _mount_to_bind(val)
                if b is None:
                    extras += ["--mount", val]
                    notes.append("a --mount that is not a plain bind kept as written")
                else:
                    lists.setdefault("binds", []).append(b)
            elif f.is_tuple:
                lists.setdefault(f.name, []).extend(_convert(f, val, name in getattr(cls, "map_options", ()),
                                                             getattr(cls, "one_bind_per_option", False)))
            else:
                values[f.name] = _convert(f, val)[0]
            i += 1
            continue
        if rest_field is not None and not after_separator and len(pos_words) >= max(len(positional), 1):
            rest = list(words[i:])
            break
        if len(pos_words) < len(positional):
            pos_words.append(_plain(w))
            i += 1
            if rest_field is not None and not after_separator and len(pos_words) == len(positional):
                rest = list(words[i:])
                break
            continue
        if rest_field is not None:
            rest = list(words[i:])
            break
        raise ParseError(f"unexpected argument {text!r} after {' '.join(str(x) for x in pos_words)}", source_line)

    # right-align positionals: `apptainer pull docker://x` fills `source`, not `dest`; a command whose optional
    # operand comes last (ch-image pull REF [DEST]) says so, and its operands fill from the first
    if getattr(cls, "operands_fill_from_first", False):
        targets = positional[:len(pos_words)]
    else:
        targets = positional[len(positional) - len(pos_words):]
    for f, w in zip(targets, pos_words):
        values[f.name] = w
    for name, items in lists.items():
        values[name] = tuple(items)
    if extras:
        values[extra_field.name] = tuple(extras)  # type: ignore[union-attr]
    if rest_field is not None and rest:
        values[rest_field.name] = tuple(_plain(w) for w in rest)
    if underscored and any(f.name == "option_style" for f in specs):
        values["option_style"] = "underscores"  # written for PyTorch 1.x's torchrun: written back the same way
    return Parsed(cls(**values), tuple(notes), tuple(rest), tuple(expanded))


@dataclass(frozen=True)
class Chain:
    """A nested launch read layer by layer: ``srun`` → container → launcher → program."""

    srun: Spec | None = None
    container: Spec | None = None
    launcher: Spec | None = None
    program: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    #: words (as written) of the outer layers read as options from a variable (see :class:`Expansion`)
    expanded: tuple[str, ...] = field(default=())


_CONTAINERS = ("apptainer.run", "charliecloud.run")


def parse_chain(words: Sequence[str], *, source_line: int = 0) -> Chain:
    """Split a (possibly nested) launch into its layers; the innermost words are the program.

    The models in the result have their ``command`` fields emptied: the layers are held apart.
    """
    srun = container = launcher = None
    notes: list[str] = []
    expanded: list[str] = []
    rest = list(words)
    while rest:
        found = recognise(rest)
        if found is None:
            break
        parsed = parse_argv(rest, source_line=source_line)
        model = parsed.model
        notes += parsed.notes
        if model.kind == "slurm.srun" and srun is None and container is None and launcher is None:
            srun, rest = model.replace(command=()), list(parsed.tail)
        elif model.kind in _CONTAINERS and container is None and launcher is None:
            container, rest = model.replace(command=()), list(parsed.tail)
        elif model.kind == "torchrun" and launcher is None:
            launcher = model
            rest = []
        else:
            break
        expanded += parsed.expanded
    return Chain(srun, container, launcher, tuple(_plain(w) for w in rest), tuple(notes), tuple(expanded))
