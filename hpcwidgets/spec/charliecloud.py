"""Charliecloud (0.31) commands and a minimal Dockerfile as pure models.

Charliecloud is fully unprivileged: ``ch-image`` builds images from Dockerfiles, ``ch-convert``
moves them between formats, ``ch-run`` runs a command in an image that is a plain directory, a
SquashFS file or a name in ``ch-image`` storage, and ``ch-fromhost`` copies host files (the NVIDIA
driver libraries) into an image directory. There is no GPU flag and no read-only bind.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from ..errors import Problem, ValidationError
from ._meta import Spec, opt
from ._words import Verbatim, passed_text, split_assignment
from .common import Bind, EnvVar, extra_problems, option_like_operands

#: ch-run refuses to start when ``$USER`` is unset (it is in some batch environments, e.g. jobs of
#: root or from a stripped environment); a script that runs ch-run sets it first, on the host
USER_LINE = 'export USER="${USER:-$(id -un)}"'
USER_COMMENT = "ch-run needs $USER, which some batch environments leave unset"

#: image formats ``ch-convert`` knows (``-i``/``-o``)
FORMATS = ("ch-image", "dir", "squash", "tar", "docker", "podman")
SQUASH_SUFFIXES = (".sqfs", ".squash", ".squashfs")
_TAR = re.compile(r".*\.(tar|t.z|tar\..|tar\...)$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SCHEMES = ("docker://", "oras://", "library://", "shub://")


def image_format(descriptor: str) -> str:
    """The format ``ch-convert`` infers for an image descriptor (its rules, by file name only).

    ``squash`` for ``*.sqfs``/``*.squash``/``*.squashfs``, ``tar`` for tarballs, ``dir`` for an
    absolute path or one starting with ``./``, ``ch-image`` for anything else (a name in storage).
    Two extras that Charliecloud cannot read at all: ``sif`` (an Apptainer image) and ``registry``
    (a ``docker://``-style reference). ``""`` for an empty descriptor.
    """
    d = descriptor.strip()
    if not d:
        return ""
    if d.startswith(_SCHEMES):
        return "registry"
    if d.endswith(".sif"):
        return "sif"
    if d.endswith(SQUASH_SUFFIXES):
        return "squash"
    if _TAR.fullmatch(d):
        return "tar"
    if d.startswith(("/", "./", "../", "$", "~")) or d in (".", ".."):
        return "dir"
    return "ch-image"


def ch_run_lookups(value: str) -> list[str]:
    """The items of a ``--set-env`` value (a contract value) that reach ch-run starting with a literal ``$``, without
    the ``$``: ch-run replaces each by the variable of that name, or drops the item when it is unset or empty.
    ``PATH=/opt/bin:\\$PATH`` (``'PATH=/opt/bin:$PATH'`` in a script) gives ``['PATH']``: Charliecloud's documented way
    to build on a value of the container's environment (the image's /ch/environment after a bare ``--set-env``)."""
    out = []
    for item in value.split(":"):
        if item.startswith("\\$"):
            out.append(item[2:])
        elif item.startswith("$") and not re.match(r"\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_])", item):
            out.append(item[1:])
    return out


def _lookup_problems(item: str, names: list[str]) -> list[Problem]:
    """A ``$`` item ch-run would look up under a name no variable can have (``$HOME/bin`` names ``HOME/bin``,
    ``$(id)`` names ``(id)``): ch-run drops it. An item that is ``$`` and a name is ch-run's own expansion, on purpose."""
    bad = [n for n in names if not _NAME.fullmatch(n)]
    if not bad:
        return []
    shown = item.replace("\\$", "$")  # the literal dollar as ch-run gets it (the model writes it \$)
    return [Problem("set_env", f"ch-run reads ${bad[0]} in '{shown}' as the variable named {bad[0]!r}, which cannot "
                               "exist, and drops that item (ch-run expands a $ only at the start of a ':'-separated "
                               "item, and the whole rest of the item is the name); for the host's value let the shell "
                               "expand it (double quotes), or turn on env_no_expand (--env-no-expand) to keep the "
                               "text as written")]


def ch_run_expands(value: str) -> bool:
    """True when ch-run would expand part of a ``--set-env`` value (a contract value) itself.

    ch-run splits the value at ``:`` and replaces every item that starts with ``$`` by that
    variable. References (``$NAME``) are expanded by the shell first; a literal dollar at the start
    of an item (``\\$HOME``, ``$(id)``) reaches ch-run and is expanded there unless
    ``--env-no-expand`` is given.
    """
    return bool(ch_run_lookups(value))


def _image_problems(field: str, image: str, what: str) -> list[Problem]:
    out = []
    kind = image_format(image)
    if kind == "sif":
        out.append(Problem(field, f"{image!r} is an Apptainer SIF file, which {what} cannot read; build the image "
                                  "for Charliecloud from its Dockerfile or registry source (ch-image build/pull), "
                                  "or unpack the SIF with 'apptainer build --sandbox DIR IMAGE' and use DIR"))
    elif kind == "registry":
        out.append(Problem(field, f"{image!r} is a registry reference; {what} needs a local image: run "
                                  f"'ch-image pull {image.split('://', 1)[1]}' and use that name"))
    return out


def _program(name: str):
    return opt(name, label="Program", role="program", choices=(name,), help=f"The {name} executable.")


def _storage():
    return opt("", label="Storage directory", env="CH_IMAGE_STORAGE", path=True, advanced=True,
               help="CH_IMAGE_STORAGE: where ch-image keeps images and its build cache (an absolute path, "
                    "e.g. on scratch; the default is under /var/tmp).")


def _storage_problems(storage: str) -> list[Problem]:
    if storage and not storage.startswith(("/", "$")):
        return [Problem("storage", f"CH_IMAGE_STORAGE must be an absolute path, got {storage!r}; e.g. $SCRATCH/ch-image")]
    return []


@dataclass(frozen=True)
class ChImageBuild(Spec):
    """``ch-image build --tag NAME [--file DOCKERFILE] [--force] [--build-arg K=V]… CONTEXT`` (``-t``, ``-f``)."""

    kind = "charliecloud.build"

    program: str = _program("ch-image")
    action: str = opt("build", label="Action", role="subcommand", choices=("build",),
                      help="Build an image from a Dockerfile, without privileges.")
    storage: str = _storage()
    tag: str = opt("", label="Image name", flag="--tag", short="-t", style="space", placeholder="pytorch-env",
                   help="Name of the image to create in ch-image storage (-t), e.g. myenv or myenv:1.0.")
    file: str = opt("", label="Dockerfile", flag="--file", short="-f", style="space", path=True,
                    placeholder="Dockerfile", help="The Dockerfile to use instead of CONTEXT/Dockerfile.")
    force: bool = opt(False, label="Force (fakeroot workarounds)", flag="--force",
                      help="Inject the unprivileged build workarounds (needed when the build installs "
                           "distribution packages with apt or dnf).")
    build_args: tuple[EnvVar, ...] = opt((), label="Build arguments", flag="--build-arg", style="space",
                                         help="Values for ARG instructions in the Dockerfile: NAME=value.")
    context: str = opt(".", label="Context directory", role="positional", path=True,
                       help="The directory whose files COPY can read (usually the one holding the Dockerfile).")

    def _check(self) -> list[Problem]:
        out = _storage_problems(self.storage)
        if not self.tag:
            out.append(Problem("tag", "name the image with --tag (-t), e.g. --tag myenv"))
        elif re.search(r"\s", self.tag):
            out.append(Problem("tag", f"image name {self.tag!r} contains white space; use letters, digits, '.', '-', '_', ':' and '/'"))
        if not self.context:
            out.append(Problem("context", "a context directory is required; use . for the current directory"))
        return out


@dataclass(frozen=True)
class ChImagePull(Spec):
    """``ch-image pull REF [DEST]``: copy an image from a registry into ch-image storage."""

    kind = "charliecloud.pull"
    #: a lone operand is the reference (DEST is the optional one), where Apptainer's pull [DEST] SOURCE has it last
    operands_fill_from_first = True

    program: str = _program("ch-image")
    action: str = opt("pull", label="Action", role="subcommand", choices=("pull",),
                      help="Download an image from a registry into ch-image storage.")
    storage: str = _storage()
    source: str = opt("", label="Image reference", role="positional", placeholder="pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime",
                      help="A registry reference repo:tag (no docker:// prefix), e.g. nvcr.io/nvidia/pytorch:24.05-py3.")
    dest: str = opt("", label="Name in storage", role="positional",
                    help="The name to store it under (default: the same as the reference).")

    def _check(self) -> list[Problem]:
        out = _storage_problems(self.storage)
        if not self.source:
            out.append(Problem("source", "an image reference is required, e.g. almalinux:8"))
        elif self.source.startswith(_SCHEMES):
            out.append(Problem("source", f"ch-image pull takes a bare reference; write "
                                         f"{self.source.split('://', 1)[1]!r} without the scheme"))
        return out + option_like_operands(self, "source", "dest")


@dataclass(frozen=True)
class ChImageImport(Spec):
    """``ch-image import PATH NAME``: copy an image directory or tarball into ch-image storage."""

    kind = "charliecloud.import"

    program: str = _program("ch-image")
    action: str = opt("import", label="Action", role="subcommand", choices=("import",),
                      help="Copy an image directory or tarball into ch-image storage.")
    storage: str = _storage()
    path: str = opt("", label="Image directory or tarball", role="positional", path=True,
                    help="An unpacked image directory or a tarball of one.")
    name: str = opt("", label="Name in storage", role="positional", placeholder="base",
                    help="The name to store it under; FROM in a Dockerfile can then use it.")

    def _check(self) -> list[Problem]:
        out = _storage_problems(self.storage)
        if not self.path:
            out.append(Problem("path", "a directory or tarball to import is required"))
        elif image_format(self.path) == "sif":
            out.append(Problem("path", "ch-image cannot import an Apptainer SIF file; unpack it with "
                                       "'apptainer build --sandbox DIR IMAGE' and import DIR"))
        if not self.name:
            out.append(Problem("name", "a name for the imported image is required, e.g. base"))
        return out + option_like_operands(self, "path", "name")


@dataclass(frozen=True)
class ChConvert(Spec):
    """``ch-convert [--in-fmt FMT] [--out-fmt FMT] IN OUT`` (``-i``, ``-o``): copy an image into another format.

    Formats are inferred from the names when not given (``*.sqfs`` squash, ``*.tar.gz`` tar,
    ``/path`` or ``./path`` dir, anything else a ch-image name). ch-convert cannot read or write SIF.
    """

    kind = "charliecloud.convert"

    program: str = _program("ch-convert")
    input_format: str = opt("", label="Input format", flag="--in-fmt", short="-i", style="space", choices=FORMATS,
                            help="Format of IN; inferred from its name when empty.")
    output_format: str = opt("", label="Output format", flag="--out-fmt", short="-o", style="space", choices=FORMATS,
                             help="Format of OUT; inferred from its name when empty. squash is best for ch-run.")
    no_clobber: bool = opt(False, label="Keep existing output", flag="--no-clobber",
                           help="Fail if OUT exists instead of replacing it.")
    input: str = opt("", label="Input image", role="positional", path=True, placeholder="myenv",
                     help="An image name (ch-image, docker, podman) or a path (directory, tarball, SquashFS file).")
    output: str = opt("", label="Output image", role="positional", path=True, placeholder="$SCRATCH/myenv.sqfs",
                      help="Where to write the converted image.")

    def input_kind(self) -> str:
        return self.input_format or image_format(self.input)

    def output_kind(self) -> str:
        return self.output_format or image_format(self.output)

    def _check(self) -> list[Problem]:
        out = []
        if not self.input:
            out.append(Problem("input", "an input image is required"))
        if not self.output:
            out.append(Problem("output", "an output image is required, e.g. $SCRATCH/myenv.sqfs"))
        if image_format(self.input) == "sif" and not self.input_format:
            out.append(Problem("input", "ch-convert cannot read Apptainer SIF files; unpack with "
                                        "'apptainer build --sandbox DIR IMAGE' and convert DIR, or rebuild from the Dockerfile"))
        if image_format(self.output) == "sif" and not self.output_format:
            out.append(Problem("output", "ch-convert cannot write SIF files; use .sqfs (SquashFS) or a directory for ch-run"))
        if self.input and self.output and self.input_kind() == self.output_kind() and self.input_kind() in FORMATS:
            out.append(Problem("output_format", f"input and output are both {self.input_kind()}; ch-convert needs two "
                                                "different formats (name the output .sqfs, .tar.gz or ./dir, or set -o)"))
        if self.output and self.output_kind() == "tar" and not self.output.endswith(".tar.gz"):
            out.append(Problem("output", f"ch-convert writes gzipped tarballs whose name ends in .tar.gz; rename {self.output!r}"))
        if self.output_format == "dir" and image_format(self.output) == "ch-image":
            out.append(Problem("output", f"write the output directory as a path ({'./' + self.output!r} or an absolute path) "
                                         "so it is not mistaken for an image name"))
        return out + option_like_operands(self, "input", "output")


@dataclass(frozen=True)
class ChRun(Spec):
    """``ch-run [options] IMAGE -- CMD [ARG…]``.

    Unlike Apptainer, ch-run passes the host environment through, does not mount $HOME unless
    asked (``--home``), mounts the image read-only, and has no GPU flag (see :class:`ChFromhost`).
    ch-run applies ``--set-env`` and ``--unset-env`` in the order written; the fields are written
    ``--unset-env`` first, then the bare ``--set-env``, then the other ``--set-env``. A command read
    back with another order keeps the options from the first one out of that order in ``extra``, as
    written (:meth:`environment` gives them all in order).
    """

    kind = "charliecloud.run"
    #: ch-run options the model has no field for that take the next word as their value (ch-run 0.31's
    #: ``--help``; --set-env-file is an older release's spelling; --device, --cdi-dirs, --warnings and --test are
    #: in later releases' bin/ch-run.c)
    other_value_options = frozenset({"--join-ct", "--join-pid", "--join-tag", "--mount", "-m", "--feature",
                                     "--set-env-file", "--test", "--device", "--cdi-dirs", "--warnings"})
    #: ch-run options without a field that take no next word (kept in ``extra`` without a note): -W/--write-fake,
    #: --set-env0 and --color (later releases) take their optional value only after '='. -d (--devices in later
    #: releases) is not listed: as for an unknown option, the words before -- decide whether it has a value
    other_switch_options = frozenset({"-v", "--verbose", "-q", "--quiet", "--no-home", "--ch-ssh", "--unsafe",
                                      "--seccomp", "-W", "--write-fake", "--set-env0", "--devices",
                                      "--abort-fatal", "--color", "-V", "--version"})
    #: short options whose value is optional, so it can only be attached (argp's OPTION_ARG_OPTIONAL): in a
    #: cluster such an option takes the rest of the word as its value (-tW1G is -t -W1G)
    attached_value_options = frozenset({"-W"})
    #: each -b/--bind is one SRC[:DST], commas and all: ch-run splits its value once, at the first ':' (parse_opt
    #: in bin/ch-run.c), and has no comma-separated list of binds as Apptainer's --bind has
    one_bind_per_option = True
    #: the options ch-run applies in command-line order, and the options that imply --join
    ordered_options = ("--unset-env", "--set-env")
    _JOINING = ("--join-ct", "--join-tag", "--join-pid")

    program: str = _program("ch-run")
    binds: tuple[Bind, ...] = opt((), label="Bind mounts", flag="--bind", short="-b",
                                  help="Host paths visible in the container: SRC[:DST]. DST must exist in a read-only "
                                       "image (most images have /mnt/0 … /mnt/9). There are no bind modes: ch-run "
                                       "takes SRC:DST:ro as the destination DST:ro.")
    cd: str = opt("", label="Working directory", flag="--cd", short="-c", path=True,
                  help="Directory inside the container to start the command in.")
    home: bool = opt(False, label="Mount home", flag="--home",
                     help="Bind-mount the host's $HOME at /home/$USER and set HOME to it (not done by default).")
    private_tmp: bool = opt(False, label="Private /tmp", flag="--private-tmp", short="-t",
                            help="Use an empty in-memory /tmp instead of the host's /tmp.")
    no_passwd: bool = opt(False, label="Image's passwd", flag="--no-passwd", advanced=True,
                          help="Use the image's /etc/passwd and /etc/group instead of generated ones.")
    uid: int | None = opt(None, label="UID inside", flag="--uid", short="-u", minimum=0, advanced=True,
                          help="Appear as this user ID inside the container (0 looks like root; no privileges gained).")
    gid: int | None = opt(None, label="GID inside", flag="--gid", short="-g", minimum=0, advanced=True,
                          help="Appear as this group ID inside the container.")
    join: bool = opt(False, label="Join peers", flag="--join", short="-j", advanced=True,
                     help="Share one container among the ch-run processes of a node (MPI shared-memory transports need it).")
    storage: str = opt("", label="Storage directory", flag="--storage", short="-s", path=True, advanced=True,
                       help="ch-image storage directory holding images named by IMAGE.")
    env_no_expand: bool = opt(False, label="Do not expand $ in --set-env", flag="--env-no-expand", advanced=True,
                              help="Keep $NAME items in --set-env values literal (ch-run expands them otherwise).")
    unset_env: tuple[str, ...] = opt((), label="Unset variables", flag="--unset-env",
                                     help="Remove host variables whose names match these globs ('*' removes all).")
    image_env: bool = opt(False, label="Image's environment", flag="--set-env",
                          help="Set the variables listed in the image's /ch/environment (its Dockerfile ENV lines).")
    set_env: tuple[str, ...] = opt((), label="Set variables", flag="--set-env",
                                   help="NAME=value to set a variable, or a host FILE of NAME=value lines.")
    extra: tuple[str, ...] = opt((), label="Other options", advanced=True,
                                 help="Further options written as they are, before the image (kept from a parsed "
                                      "command: -v, --join-ct=N, -m DIR …, and --set-env/--unset-env read after "
                                      "one that the fields above would move).")
    write: bool = opt(False, label="Writable image", flag="--write", short="-w",
                      help="Mount a directory image read-write (changes persist in the image).")
    image: str = opt("", label="Image", role="positional", path=True, placeholder="$SCRATCH/images/myenv.sqfs",
                     help="An image directory, a SquashFS file (.sqfs) or the name of an image in ch-image storage.")
    command: tuple[str, ...] = opt((), label="Command", role="rest",
                                   help="The program and its arguments, written after --.")

    def _argv_tail(self, command: tuple[str, ...] | list[str] | None = None) -> list[str]:
        """ch-run reads its own options up to ``--``; everything after is the command (``command``
        when given: the launcher a workflow puts in the container)."""
        return ["--"] if (self.command if command is None else command) else []

    @property
    def env(self) -> tuple[EnvVar, ...]:
        """The NAME=value items of ``set_env`` as :class:`EnvVar` (files left out)."""
        return tuple(EnvVar.from_token(s) for s in self.set_env if "=" in s)

    @property
    def joins(self) -> bool:
        """Whether the ch-run processes of a node share one container: --join, or an option that implies it."""
        return self.join or any(str(w).split("=", 1)[0] in self._JOINING for w in self._extra())

    def environment(self) -> tuple[tuple[str, str | None], ...]:
        """Every ``--unset-env``/``--set-env`` in the order ch-run applies them, as ``(flag, value)``; the value of a
        bare ``--set-env`` (the image's /ch/environment) is None. Those kept in ``extra`` come last, as written."""
        out: list[tuple[str, str | None]] = [("--unset-env", g) for g in self.unset_env if isinstance(g, str)]
        if self.image_env is True:
            out.append(("--set-env", None))
        out += [("--set-env", s) for s in self.set_env if isinstance(s, str)]
        for word in self._extra():
            flag, eq, value = word.partition("=")
            if flag in self.ordered_options:
                out.append((flag, (Verbatim(value) if isinstance(word, Verbatim) else value) if eq else None))
        return tuple(out)

    def _extra(self) -> tuple[str, ...]:
        return tuple(w for w in self.extra if isinstance(w, str)) if isinstance(self.extra, tuple) else ()

    def _check(self) -> list[Problem]:
        out = []
        if not self.image:
            out.append(Problem("image", "an image is required: a directory, a .sqfs file or a ch-image name"))
        out += _image_problems("image", self.image, "ch-run")
        if self.write and image_format(self.image) == "squash":
            out.append(Problem("write", "a SquashFS image is read-only; drop --write, or convert it to a directory "
                                        "(ch-convert IMAGE ./DIR) to write into it"))
        if not self.command:
            out.append(Problem("command", "ch-run needs a command after --, e.g. python train.py"))
        for i, b in enumerate(self.binds):
            if not isinstance(b, Bind):
                continue
            if b.mode:
                out.append(Problem(f"binds.{i}.mode", f"ch-run has no read-only or read-write bind modes: it takes "
                                                      f"{(b.dst or b.src) + ':' + b.mode!r} as the destination (not in a "
                                                      f"read-only image, so it stops); remove ':{b.mode}' from {b.src!r} (binds are "
                                                      "read-write; protect input data with file permissions instead)"))
            if (":" in b.src and not isinstance(b.src, Verbatim)) or ":" in b.dst:  # shell text: SRC:DST as written
                out.append(Problem(f"binds.{i}", f"ch-run cannot bind a path containing ':' ({b.src!r}); "
                                                 "rename it or bind a parent directory"))
        if self.cd and not self.cd.startswith(("/", "$")):
            out.append(Problem("cd", f"working directory {self.cd!r} must be an absolute path inside the container"))
        for flag, item in self.environment():
            if flag != "--set-env" or item is None:
                continue
            if not item:
                out.append(Problem("set_env", "empty --set-env item; write NAME=value or the path of a file"))
            elif isinstance(item, Verbatim):
                out += self._shell_item_problems(item)
            elif "=" in item:
                name, value = item.split("=", 1)
                if not _NAME.fullmatch(name):
                    out.append(Problem("set_env", f"{name!r} is not a valid variable name in {item!r} "
                                                  "(letters, digits, _; not starting with a digit)"))
                if not self.env_no_expand:
                    out += _lookup_problems(item, ch_run_lookups(value))
                if len(value) >= 2 and value[0] == value[-1] == "'":
                    out.append(Problem("set_env", f"ch-run strips the single quotes around the value in {item!r}; "
                                                  "remove them (the value is passed as one word already)"))
            elif item.startswith("~"):
                out.append(Problem("set_env", f"'~' is not expanded here; write $HOME{item[1:]} instead"))
        for flag, glob in self.environment():
            if flag == "--unset-env" and not glob:
                out.append(Problem("unset_env", "--unset-env needs a non-empty name or glob, e.g. SLURM_*"))
        out += extra_problems(self.extra, self.other_value_options, "ch-run")
        if self.storage and not self.storage.startswith(("/", "$")):
            out.append(Problem("storage", f"storage directory {self.storage!r} must be an absolute path"))
        return out + option_like_operands(self, "image")

    def _shell_item_problems(self, item: Verbatim) -> list[Problem]:
        """A ``--set-env`` item read from a script as shell text (``"NAME=${X:-d}"``): the host's shell expands it
        before ch-run sees it, so ch-run expands only a ``$`` that the shell passes on (``\\$X``, ``'$X'``)."""
        split = split_assignment(item)
        if split is None or self.env_no_expand:
            return []  # a file, or a word only the job's shell can spell out ("$PAIR")
        return _lookup_problems(item, [part[1:] for part in passed_text(split[1]).split(":") if part.startswith("$")])


@dataclass(frozen=True)
class ChFromhost(Spec):
    """``ch-fromhost --nvidia IMAGE_DIR``: copy host files (GPU driver libraries) into an image directory."""

    kind = "charliecloud.fromhost"

    program: str = _program("ch-fromhost")
    nvidia: bool = opt(False, label="NVIDIA libraries", flag="--nvidia",
                       help="Inject the host's NVIDIA driver libraries and tools (as nvidia-container-cli lists them).")
    cray_mpi: bool = opt(False, label="Cray MPI", flag="--cray-mpi", advanced=True,
                         help="Make MPICH/OpenMPI in the image use the host's Cray MPI.")
    paths: tuple[str, ...] = opt((), label="Files", flag="--path", short="-p", style="space", path=True, advanced=True,
                                 help="Individual host files to inject.")
    image: str = opt("", label="Image directory", role="positional", path=True, placeholder="$SCRATCH/images/myenv",
                     help="An image directory (not a SquashFS file: convert with ch-convert --out-fmt dir first).")

    def _check(self) -> list[Problem]:
        out = []
        if not self.image:
            out.append(Problem("image", "an image directory is required"))
        else:
            kind = image_format(self.image)
            if kind != "dir":
                out.append(Problem("image", f"ch-fromhost changes an image directory, and {self.image!r} looks like "
                                            f"a {kind} image; convert it first: ch-convert {self.image} ./DIR"))
        if not (self.nvidia or self.cray_mpi or self.paths):
            out.append(Problem("nvidia", "choose what to inject: --nvidia for GPU driver libraries, or --path FILE"))
        return out + option_like_operands(self, "image")


# -- Dockerfile ------------------------------------------------------------------------------

#: instructions the model (and ch-image) understands; FROM is the model's from_ field
INSTRUCTIONS = ("ARG", "ENV", "RUN", "COPY", "ADD", "WORKDIR", "LABEL", "USER", "SHELL", "CMD", "ENTRYPOINT",
                # image metadata for Docker that ch-image reads past: kept so a Dockerfile reads back whole
                "EXPOSE", "VOLUME", "HEALTHCHECK", "STOPSIGNAL", "ONBUILD", "MAINTAINER")


def _leaves_quote_open(line: str) -> bool:
    """Whether a line of shell text ends inside a quoted string."""
    try:
        shlex.split(line)
    except ValueError:
        return True
    return False


@dataclass(frozen=True)
class Instruction(Spec):
    """One Dockerfile instruction: its keyword and the text after it.

    Lines of a multi-line instruction are separated by newlines in ``text``; they are written with
    a backslash continuation.
    """

    kind = "dockerfile.instruction"

    op: str = opt("RUN", label="Instruction", role="internal", choices=INSTRUCTIONS,
                  help="RUN (a build command), ENV, COPY, WORKDIR, ARG, LABEL, CMD, ENTRYPOINT, …")
    text: str = opt("", label="Arguments", role="internal",
                    help="Everything after the keyword, e.g. 'pip install torch' or '[\"python\", \"train.py\"]'.")

    @classmethod
    def from_token(cls, text: str) -> "Instruction":
        """One instruction as a Dockerfile line writes it, ``OP text`` (``RUN dnf install -y python3.11``): how
        ``--set instructions=…`` gives one. :class:`ValidationError` naming that form when ``text`` does not start
        with an instruction keyword."""
        op, _, rest = str(text).strip().partition(" ")
        if op.upper() not in INSTRUCTIONS:
            what = ("FROM is the base image (the from_ field, --from-value), not one of the instructions"
                    if op.upper() == "FROM" else f"{str(text)[:40]!r} does not start with an instruction keyword")
            raise ValidationError([Problem("", f"{what}; write an instruction as 'OP text', e.g. 'RUN dnf install -y "
                                               f"python3.11' (OP: {', '.join(INSTRUCTIONS)})")])
        return cls(op.upper(), rest.strip())

    @classmethod
    def exec_form(cls, op: str, args: tuple[str, ...] | list[str]) -> "Instruction":
        """``CMD``/``ENTRYPOINT``/``RUN`` in JSON (exec) form: no shell is involved."""
        return cls(op, json.dumps(list(args), ensure_ascii=False))

    @classmethod
    def env(cls, name: str, value: str) -> "Instruction":
        """``ENV NAME="value"`` (double quotes; ``$NAME`` references expand at build time)."""
        return cls("ENV", f"{name}={dockerfile_quote(value)}")

    def exec_args(self) -> tuple[str, ...] | None:
        """The argument list of an exec-form instruction, or None for shell form."""
        text = self.text.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        return None

    def _check(self) -> list[Problem]:
        out = []
        if not self.text.strip():
            out.append(Problem("text", f"{self.op} needs arguments"))
            return out
        if isinstance(self.text, Verbatim):
            return out  # read from a file as it stands (a heredoc, a line broken inside a word): written back unchanged
        lines = self.text.split("\n")
        if any(line.rstrip().endswith("\\") for line in lines):
            out.append(Problem("text", "do not end lines with a backslash; put each line on its own line and the "
                                       "continuations are written for you"))
        if any(line.strip().startswith("#") for line in lines[1:]):
            out.append(Problem("text", "a continued line starting with # is read as a comment and dropped; "
                                       "move the comment above the instruction"))
        if self.op in ("ENV", "ARG", "LABEL", "WORKDIR", "USER") and len(lines) > 1:
            out.append(Problem("text", f"keep {self.op} on one line"))
        elif any(_leaves_quote_open(line) for line in lines[:-1]):
            out.append(Problem("text", "a quoted string goes on over a line break: the builder joins the lines and the "
                                       "next line's indentation ends up inside the string; close the quote before "
                                       "the line ends"))
        if self.op in ("COPY", "ADD") and self.exec_args() is None and len(self.text.split()) < 2:
            out.append(Problem("text", f"{self.op} needs a source and a destination, e.g. requirements.txt /opt/"))
        if self.op in ("SHELL",) and self.exec_args() is None:
            out.append(Problem("text", 'SHELL takes a JSON list, e.g. ["/bin/bash", "-c"]'))
        if self.text.lstrip().startswith("[") and self.exec_args() is None and self.op in ("CMD", "ENTRYPOINT", "RUN", "SHELL"):
            out.append(Problem("text", f"{self.op} starts with '[' but is not a JSON list of strings; "
                                       'write ["prog", "arg"] with double quotes'))
        if self.op == "ENV" and not re.match(r"[A-Za-z_][A-Za-z0-9_]*[= ]", self.text.strip() + " "):
            out.append(Problem("text", "ENV needs NAME=value"))
        return out


def dockerfile_quote(value: str) -> str:
    """A value as a double-quoted Dockerfile word; ``$NAME`` and ``\\$`` keep their meaning."""
    out = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and value[i + 1:i + 2] == "$":
            out.append("\\$")
            i += 2
            continue
        out.append({"\\": "\\\\", '"': '\\"'}.get(c, c))
        i += 1
    return '"' + "".join(out) + '"'


@dataclass(frozen=True)
class Dockerfile(Spec):
    """A minimal Dockerfile for ``ch-image build``: one ``FROM`` and a list of instructions.

    In a multi-stage build this is the last stage; what comes before its ``FROM`` (global ``ARG``
    lines, parser directives, earlier stages) is kept verbatim in ``before``.
    """

    kind = "dockerfile"

    from_: str = opt("", label="FROM", role="internal", placeholder="almalinux:8",
                     help="The base image with a version tag (a registry reference or a name in ch-image storage).")
    instructions: tuple[Instruction, ...] = opt((), label="Instructions", role="internal",
                                                help="RUN, ENV, COPY, WORKDIR, … in order, each written as its "
                                                     "Dockerfile line: 'RUN dnf install -y python3.11'.")
    before: tuple[str, ...] = opt((), label="Before FROM (verbatim)", role="internal",
                                  help="Lines before this FROM, kept exactly as written: parser directives "
                                       "(# syntax=…), ARG lines that FROM can use, earlier stages of a multi-stage build.")

    def _check(self) -> list[Problem]:
        out = []
        if not self.from_.strip():
            out.append(Problem("from_", "FROM needs a base image, e.g. almalinux:8"))
        elif "\n" in self.from_:
            out.append(Problem("from_", "FROM takes one line"))
        elif self.from_.startswith(_SCHEMES):
            out.append(Problem("from_", f"write the base image without a scheme: {self.from_.split('://', 1)[1]!r}"))
        return out
