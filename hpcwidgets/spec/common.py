"""Small value models shared by several layers: bind mounts and environment variables."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

from ..errors import Problem
from ._meta import Spec, opt
from ._words import Verbatim, split_assignment

#: a variable name; a lone "_" is bash's own ($_, the last argument), which bash overwrites after each command
_VARIABLE = re.compile(r"[A-Za-z][A-Za-z0-9_]*|_[A-Za-z0-9_]+")
#: one option of an Apptainer bind: read-only or read-write, a file system image's directory to mount
#: (``data.sqfs:/data:image-src=/``) or its partition id
BIND_OPTION = re.compile(r"ro|rw|image-src(?:=\S+)?|id=[0-9]+")


_QUOTES = ("'", '"')
_SHELL_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
#: a whole-array expansion, quoted or not ("${OPTS[@]}", ${OPTS[*]}): bash passes the elements; group "array"
#: names the array
ARRAY_WORD = re.compile(rf'(?P<q>")?\$\{{(?P<array>{_SHELL_NAME})\[[@*]\]\}}(?(q)")')
#: a word bash turns into as many words as it holds, quoted or not: an array's elements or the script's arguments
#: ("${OPTS[@]}", "$@", ${OPTS[@]}, $@)
LIST_WORD = re.compile(rf'(")?\$(?:@|\{{{_SHELL_NAME}\[@\]\}})(?(1)")')
#: a value that is one reference and nothing else ($PAIRS, ${PAIRS})
_LONE_REFERENCE = re.compile(rf"\$(?:{_SHELL_NAME}|\{{{_SHELL_NAME}\}})")
#: a variable reference kept as written from a script, which may hold options (bash splits its value, or passes an
#: array's elements, as words): $nv, ${NV}, "${OPTS[@]}", "$@"
_REFERENCE = re.compile(rf'{_LONE_REFERENCE.pattern}|{ARRAY_WORD.pattern}|"?\$@"?')
#: an option and its value typed into one entry: "--bind /data:/data" (the space before any "=")
_SPACED_OPTION = re.compile(r"-[^=\s]*\s+\S")


def list_items(value: Any) -> tuple[Any, ...]:
    """The items of a list field, () when it holds something else (``problems()`` reports that, so a check that
    reads the items need not)."""
    return tuple(value) if isinstance(value, (tuple, list)) else ()


def extra_problems(extra: Any, takes_value: frozenset[str], program: str) -> list[Problem]:
    """What is wrong with an "other options" list: a word that is not an option (nor an option's value), or an
    option and its value typed as one entry, which the program receives as one word."""
    if not extra:
        return []
    out = [Problem("extra", f"{item!r} is not an option: {program} reads the words after it as the ones that follow "
                            "its options (the image, the command); remove it" if item in _END_OF_OPTIONS else
                   f"{item!r} is not an option (options start with -); write each as --opt or --opt=value")
           for item in stray_words(extra, takes_value)]
    for item in list_items(extra):
        if isinstance(item, str) and not isinstance(item, Verbatim) and _SPACED_OPTION.match(item):
            flag, value = item.split(None, 1)
            fix = ("write each option (and its value) as an entry of its own" if value.startswith("-")
                   or " -" in value else f"write {flag}={value.strip()}, or the option and its value as two entries")
            out.append(Problem("extra", f"{item!r} is one entry with a space in it, so {program} receives it as one "
                                        f"word; {fix}"))
    return out


def option_like_operands(model: Any, *names: str) -> list[Problem]:
    """A problem for each of ``names`` (the model's positional fields: an image, a source, an output) whose value
    starts with '-': the program reads such a word as an option, not as the file it was meant to name."""
    out = []
    for name in names:
        value = getattr(model, name)
        if value.__class__ is str and value.startswith("-"):
            program = getattr(model, "binary", "") or getattr(model, "program", "") or "the program"
            label = type(model).__dataclass_fields__[name].metadata["hpcw"].label.lower()
            out.append(Problem(name, f"{value!r} starts with '-', so {program} reads it as an option, not as the "
                                     f"{label}; write ./{value} for a file of that name"))
    return out


def kept_reference(word: Any) -> bool:
    """Whether ``word`` is a variable reference a script reader kept as written among the options (``$nv``,
    ``"${OPTS[@]}"``): it may hold any options, the GPU flag among them."""
    return isinstance(word, Verbatim) and _REFERENCE.fullmatch(str(word)) is not None


#: words that look like options but end them: "--", and "-" (standard input, or an operand)
_END_OF_OPTIONS = ("-", "--")


def stray_words(extra: Any, takes_value: frozenset[str] = frozenset()) -> list[Any]:
    """Words of an "other options" list that are neither an option nor the value of the option before
    them (``--redirects 3`` is one option with its value when ``--redirects`` is in ``takes_value``). A
    variable reference kept as written from a script (``$nv``, a :class:`Verbatim`) may hold options: not stray."""
    out = []
    items = list(extra) if isinstance(extra, (tuple, list)) else []
    i = 0
    while i < len(items):
        word = str(items[i])
        if (not word.startswith("-") or word in _END_OF_OPTIONS) and not kept_reference(items[i]):
            out.append(items[i])
        elif "=" not in word and (word in takes_value or word.replace("_", "-") in takes_value):
            i += 1  # its value
        i += 1
    return out


@dataclass(frozen=True)
class Bind(Spec):
    """A host path made visible inside the container."""

    kind = "bind"

    src: str = opt(label="Host path", help="Directory or file on the host, e.g. $SCRATCH/data.", path=True,
                   role="internal", placeholder="$SCRATCH/data")
    dst: str = opt("", label="Container path",
                   help="Where it appears inside the container; empty means the same path as on the host.",
                   path=True, role="internal", placeholder="/data")
    mode: str = opt("", label="Mode", placeholder="ro",
                    help="ro: read-only (use for input data); rw: read-write; empty: the runtime's default (rw). "
                         "Apptainer also takes image-src=PATH (mount a directory of a SquashFS or ext3 image file) "
                         "and id=N, comma-separated: ro,image-src=/.",
                    role="internal")

    def __post_init__(self) -> None:
        # one spelling for "same path inside", but for a destination a script wrote (see from_token): ch-run before
        # 0.26 mounts a bind without one at /mnt/0, so the same path written out is not the same bind there
        if self.dst and self.dst == self.src and not isinstance(self.dst, Verbatim):
            object.__setattr__(self, "dst", "")

    @property
    def options(self) -> tuple[str, ...]:
        """The bind's options (``ro``, ``image-src=/``…); () for the runtime's default."""
        return tuple(o for o in self.mode.split(",") if o) if isinstance(self.mode, str) else ()

    @property
    def read_only(self) -> bool:
        return "ro" in self.options

    def needs_mount_syntax(self) -> bool:
        """Values with ':' or ',' cannot be written as -B src:dst[:mode]; Apptainer needs --mount.

        A bind read from shell text it cannot split (``-B "$(pwd)":/work``) is written back as it was."""
        text = f"{self.src}{self.dst}{self.mode}"
        return (":" in text or "," in text) and not isinstance(self.src, Verbatim)

    def to_token(self) -> str:
        """The ``src[:dst[:mode]]`` form (callers check :meth:`needs_mount_syntax` first)."""
        src, dst, mode = self.src, self.dst, self.mode
        if mode:
            return ":".join((src, dst or src, mode))
        if dst:
            return ":".join((src, dst))
        if isinstance(src, Verbatim):
            return src  # shell text read from a script: written back unchanged
        return ":".join((src,))  # (plain text: itself)

    @classmethod
    def from_token(cls, token: str, *, written: bool = False) -> "Bind":
        """Read ``src[:dst[:options]]`` (options: ``ro``, ``rw``, ``image-src=/``…). A destination the same as the
        host path is dropped (``/data:/data`` is ``/data``), but for a bind ``written`` in a script read back, which
        keeps it as written (with options it is written anyway: ``/data:/data:ro``)."""
        parts = token.split(":")
        if len(parts) == 1:
            return cls(parts[0])
        if len(parts) == 2:
            if all(BIND_OPTION.fullmatch(o) for o in parts[1].split(",")):
                return cls(parts[0], "", parts[1])
            return cls(parts[0], Verbatim(parts[1]) if written and parts[1] == parts[0] else parts[1])
        return cls(parts[0], parts[1], ":".join(parts[2:]))  # (src:src:ro is src with mode ro: see __post_init__)

    def _check(self) -> list[Problem]:
        out = []
        if not self.src:
            out.append(Problem("src", "a bind needs a host path"))
        # (a leading ~ in either path is reported by the generic check of path fields)
        if self.dst and not self.dst.startswith(("/", "$", "~")):
            if isinstance(self.dst, Verbatim) and all(BIND_OPTION.fullmatch(o) for o in self.dst.split(",")):
                # SRC:ro as a script wrote it (see parse.argv._apptainer_bind)
                out.append(Problem("dst", f"{self.src}:{self.dst} binds {self.src} at a container path named "
                                          f"'{self.dst}': Apptainer takes options only after the container path "
                                          "and stops ('destination must be an absolute path'); write "
                                          f"{self.src}:{self.src}:{self.dst}"))
            else:
                out.append(Problem("dst", f"container path {self.dst!r} must be absolute (start with /)"))
        if self.mode in ("", "ro", "rw"):
            return out  # the usual modes: nothing more to read
        bad = [o for o in self.options if not BIND_OPTION.fullmatch(o)]
        if bad or (isinstance(self.mode, str) and self.mode and not self.options):
            out.append(Problem("mode", f"{self.mode!r} is not a bind mode; use ro or rw (Apptainer also takes "
                                       "image-src=PATH and id=N, comma-separated)"))
        elif {"ro", "rw"} <= set(self.options):
            out.append(Problem("mode", f"{self.mode!r}: a bind is read-only (ro) or read-write (rw), not both"))
        return out


class _NoValue(str):
    """The value of a variable written without ``=`` (``--env FOO``): empty, but told apart from ``FOO=`` (set it
    empty) so the model can say that a value is missing instead of silently clearing the variable."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"


@dataclass(frozen=True)
class EnvVar(Spec):
    """An environment variable set for the program inside the container."""

    kind = "env"

    name: str = opt(label="Name", help="Variable name, e.g. OMP_NUM_THREADS.", role="internal")
    value: str = opt("", label="Value", help="Its value; $NAME references expand on the host.", role="internal")

    def to_token(self) -> str:
        """``NAME=value``; shell text read from a script stays shell text (:class:`Verbatim`): ``NAME=`` then the
        value as written (``NAME="${X:-d}"``), or a word the reader kept whole (``"$PAIR"``) unchanged."""
        if isinstance(self.value, Verbatim):
            return Verbatim(f"{self.name}={self.value}")
        if isinstance(self.name, Verbatim) and not self.value:
            return self.name
        return f"{self.name}={self.value}"

    @classmethod
    def from_token(cls, token: str) -> "EnvVar":
        """Read ``NAME=value``. A :class:`Verbatim` word from a script is read as bash reads it, whatever its
        quotes (``"NAME=${X:-d}"``: NAME, and ``"${X:-d}"`` as written); one whose name only the job's shell
        knows (``"$PAIR"``) is kept whole as the name."""
        if isinstance(token, Verbatim):
            split = split_assignment(token)
            return cls(*split) if split else cls(token, "")
        name, eq, value = token.partition("=")
        if not eq and _LONE_REFERENCE.fullmatch(token):
            # --env "$PAIRS": the variable holds NAME=value (or several): kept whole, quoted as it was
            return cls(Verbatim(f'"{token}"'), "")
        return cls(name, value if eq else _NoValue())

    def _check(self) -> list[Problem]:
        name, value = self.name, self.value
        if isinstance(name, Verbatim) and not value:
            return []  # a word kept whole (--env "$PAIR"): its name is known only when the job runs
        if not _VARIABLE.fullmatch(name):
            if name.startswith("export ") and _VARIABLE.fullmatch(name[7:].strip()):
                return [Problem("name", f"{name!r}: drop 'export' (the variable is exported for you): "
                                        f"{name[7:].strip()}={value}")]
            return [Problem("name", f"{name!r} is not a valid variable name (letters, digits, _; not starting with a digit, "
                                    "not _ alone)")]
        if value.__class__ is not str:
            if value.__class__ is _NoValue:
                return [Problem("value", f"{name!r} has no value; write {name}=VALUE, {name}= to set it empty, "
                                         f"or {name}=${name} to pass on the value it has where the job starts")]
            return []
        if value[:1] in _QUOTES or " #" in value:  # shell syntax pasted with the value
            if len(value) > 1 and value[0] == value[-1] and value[0] not in value[1:-1]:
                return [Problem("value", f"{name}={value}: the quotes would be part of the value (a value is taken as "
                                         f"typed, and quoted for you); write {name}={value[1:-1]}")]
            if " #" in value:
                return [Problem("value", f"{name}={value}: the # and what follows would be part of the value; write "
                                         f"{name}={value.split(' #', 1)[0].rstrip()}")]
        return []


def bind_destination(bind: Any) -> str:
    """Where a bind appears in the container: its destination, else its source. A bind the reader kept whole
    because of a command substitution (``$(pwd):$HOME``) is split at its first colon outside ``$(…)``/``${…}``."""
    if bind.dst:
        return str(bind.dst)
    text = str(bind.src)
    if not isinstance(bind.src, Verbatim):
        return text
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch in "({") - (ch in ")}")
        if ch == ":" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return (parts[1] if len(parts) > 1 and parts[1] else parts[0]).strip("'\"")


#: the --mount keys a bind can hold, by the Bind part they fill (Apptainer takes the long names too)
_MOUNT_KEYS = {"src": "src", "source": "src", "dst": "dst", "destination": "dst", "target": "dst"}


def mount_text(bind: Bind) -> str:
    """``type=bind,src=SRC,dst=DST[,ro]``: the bind as Apptainer's ``--mount`` takes it, the text form of a bind
    whose paths hold ':' or ',' (``src:dst:mode`` cannot say those). Fields holding ',' or '"' are CSV-quoted."""
    fields = ["type=bind", f"src={bind.src}", f"dst={bind.dst or bind.src}", *(o for o in bind.options if o != "rw")]
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


def bind_from_mount_text(text: str) -> Bind | None:
    """The bind a ``--mount`` spec describes (``[type=bind,]src=…,dst=…[,ro]``, as :func:`mount_text` writes it),
    or None when ``text`` is not such a spec (another mount type, an option a Bind cannot hold, no source)."""
    try:
        fields = next(csv.reader([text.strip()]))
    except (csv.Error, StopIteration):
        return None
    paths: dict[str, str] = {}
    options: list[str] = []
    for field in (f.strip() for f in fields):
        key, eq, value = field.partition("=")
        if key in _MOUNT_KEYS and eq:
            paths[_MOUNT_KEYS[key]] = value
        elif field == "readonly" or field == "readonly=true":
            options.append("ro")
        elif BIND_OPTION.fullmatch(field):
            options.append(field)
        elif field != "type=bind":
            return None
    src, dst = paths.get("src"), paths.get("dst", "")
    if not src:
        return None
    return Bind(src, "" if dst == src else dst, ",".join(options))


def login_port_field(help: str) -> Any:
    """The login node's ssh port field, as a cluster profile and a Jupyter job both hold it (None: 22)."""
    return opt(None, label="Login SSH port", role="internal", minimum=1, maximum=65535, placeholder="8022", help=help)


def jump_host_field(help: str) -> Any:
    """The ``ssh -J`` jump host field, as a cluster profile and a Jupyter job both hold it ("": none)."""
    return opt("", label="Jump host", role="internal", placeholder="gateway.example.org", help=help)
