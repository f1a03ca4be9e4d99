"""Apptainer (and Singularity, its former name: same flags) commands as pure models."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any

from ..errors import Problem
from ._meta import Spec, opt
from .common import Bind, EnvVar, extra_problems, list_items, option_like_operands

BINARIES = ("apptainer", "singularity")
IMAGE_SOURCES = ("docker://", "oras://", "library://", "shub://", "docker-archive:", "docker-daemon:")


#: a program's path where the image belongs (``apptainer exec --bind X /bin/bash run.sh``)
_PROGRAM_PATH = re.compile(r"/(?:usr/)?(?:local/)?s?bin/[^/]+|(?:/\S*/)?(?:ba|z|da)?sh|(?:/\S*/)?python[0-9.]*")

#: the fields the checks of an apptainer exec/run read, fetched in one call
_CHECKED = operator.attrgetter("image", "action", "command", "nv", "rocm", "contain", "containall", "home", "no_home",
                               "nvccli", "env", "extra")


def env_prefix(binary: str) -> str:
    """The prefix that passes a host variable into the container ``binary`` starts: SINGULARITYENV_ for singularity
    (SingularityCE reads no other, and Apptainer reads it too), APPTAINERENV_ for apptainer."""
    return "SINGULARITYENV_" if str(binary).rsplit("/", 1)[-1] == "singularity" else "APPTAINERENV_"


def _binary(default: str = "apptainer"):
    return opt(default, label="Binary", role="program", choices=BINARIES,
               help="apptainer (current name) or singularity (older installs; same flags).")


@dataclass(frozen=True)
class ApptainerRun(Spec):
    """``apptainer exec|run|shell|test [flags] IMAGE [command…]``.

    Every flag is written before the image: anything after the image goes to the program.
    """

    kind = "apptainer.run"
    #: apptainer exec/run options the model has no field for that take the next word as their value
    #: (--passphrase is a switch: it prompts for the passphrase). Where the tables come from: cmd/internal/cli/
    #: action_flags.go of Apptainer 1.1 (its VM and DMTCP options are Singularity 3's), of SingularityCE 3.7 and of
    #: SingularityCE 4 (OCI mode: --oci, --no-compat, --keep-layers, --tmp-sandbox; --device and --cdi-dirs for CDI
    #: devices, --data, --netns-path, the hidden --proot), and the option lists of the Apptainer 1.3, 1.4 and 1.5
    #: reference (apptainer.org docs/user/1.x/cli/apptainer_exec): --sharens from 1.3, --netns-path from 1.4, and
    #: --device, --cdi-dirs, --no-env and --intel-hpu from 1.5; the hidden --runscript-timeout is in Apptainer's
    #: end-to-end tests. --library, --platform and --arch belong to pull and build, not to exec/run/shell.
    other_value_options = frozenset({
        "--app", "--network", "--network-args", "--hostname", "--workdir", "-W", "--scratch", "-S", "--security",
        "--dns", "--fusemount", "--add-caps", "--drop-caps", "--apply-cgroups", "--cpus", "--memory",
        "--memory-reservation", "--memory-swap", "--cpu-shares", "--cpuset-cpus", "--cpuset-mems", "--blkio-weight",
        "--blkio-weight-device", "--pids-limit", "--pem-path", "--authfile", "--data", "--sif-fuse-path", "--mount",
        "--no-mount", "--shell", "-s", "--containlibs", "--tmpdir", "--docker-host", "--docker-username",
        "--docker-password", "--dmtcp-launch", "--dmtcp-restart", "--vm-ram", "--vm-cpu", "--vm-ip",
        "--device", "--cdi-dirs", "--netns-path", "--proot", "--runscript-timeout", "--no-env"})
    #: the switches the model has no field for, from the same files: the namespace ones (known, so a cluster such as
    #: -Cp reads as -C -p), and every other one some supported version has, hidden and deprecated ones included
    #: (--nonet and --nohttps of Singularity 3, the VM options Apptainer dropped, SingularityCE's --oci mode), so that
    #: an option none of them has can be reported
    other_switch_options = frozenset({
        "-p", "--pid", "-i", "--ipc", "-n", "--net", "-u", "--userns", "--uts", "--no-pid", "--sharens",
        "--compat", "--no-compat", "--no-init", "--no-umask", "--no-eval", "--unsquash", "--underlay", "--keep-privs",
        "--no-privs", "--allow-setuid", "--boot", "--disable-cache", "--no-nv", "--no-rocm", "--intel-hpu",
        "--no-setgroups", "--oom-kill-disable", "--sif-fuse", "--ignore-subuid", "--ignore-fakeroot-command",
        "--ignore-userns", "--oci", "--no-oci", "--keep-layers", "--tmp-sandbox", "--no-tmp-sandbox", "--passphrase",
        "--docker-login", "--no-https", "--nohttps", "--nonet", "--vm", "--vm-err", "--syos", "-h", "--help"})
    #: options pflag reads as a map (StringToString): a value with more than one '=' is a comma-separated list
    #: of NAME=value pairs (--env A=1,B=2 sets two variables), one with a single '=' is one pair (--env A=x,y)
    map_options = frozenset({"--env"})

    binary: str = _binary()
    action: str = opt("exec", label="Action", role="subcommand", choices=("exec", "run", "shell", "test"),
                      help="exec: run a command; run: the image's runscript; shell: interactive shell; test: the image's tests.")
    # isolation
    cleanenv: bool = opt(False, label="Clean environment", flag="--cleanenv", short="-e",
                         help="Do not pass the host's environment variables into the container.")
    contain: bool = opt(False, label="Contain", flag="--contain", short="-c",
                        help="Use minimal /dev and empty /tmp and $HOME instead of the host's.")
    containall: bool = opt(False, label="Contain all", flag="--containall", short="-C",
                           help="Like --contain, and also isolate PID and IPC namespaces and the environment.")
    no_home: bool = opt(False, label="No home", flag="--no-home",
                        help="Do not mount $HOME (keeps host ~/.local packages out of the container).")
    home: str = opt("", label="Home", flag="--home", short="-H", style="space", path=True,
                    help="Use this host directory as $HOME inside the container (src[:dst]).")
    # GPUs
    nv: bool = opt(False, label="NVIDIA GPUs (--nv)", flag="--nv",
                   help="Make the host's NVIDIA driver and GPUs available inside the container.")
    nvccli: bool = opt(False, label="nvidia-container-cli", flag="--nvccli", advanced=True,
                       help="Set up NVIDIA GPUs with nvidia-container-cli (implies --nv; a writable layer is added for it). "
                            "SingularityCE allows it an ordinary user only with --writable on a sandbox folder: use --nv "
                            "there.")
    rocm: bool = opt(False, label="AMD GPUs (--rocm)", flag="--rocm",
                     help="Make the host's AMD ROCm driver and GPUs available inside the container.")
    # files
    binds: tuple[Bind, ...] = opt((), label="Bind mounts", flag="--bind", short="-B", aliases=("--mount",),
                                  style="space",
                                  help="Host paths visible in the container: src[:dst[:ro|rw]]. Paths with ':' or ',' are written with --mount.")
    # written --pwd: every Singularity and Apptainer reads it, while --cwd only exists from Apptainer 1.3
    cwd: str = opt("", label="Working directory", flag="--pwd", aliases=("--cwd",), cli="--cwd", style="space",
                   path=True, help="Directory inside the container to start the program in (written --pwd, which "
                                   "Singularity and every Apptainer read; --cwd needs Apptainer 1.3).")
    writable_tmpfs: bool = opt(False, label="Writable tmpfs", flag="--writable-tmpfs",
                               help="A temporary in-memory writable layer over the image (changes are lost at exit).")
    overlay: tuple[str, ...] = opt((), label="Overlays", flag="--overlay", short="-o", style="space", path=True,
                                   advanced=True, help="Overlay images or directories layered over the image.")
    writable: bool = opt(False, label="Writable", flag="--writable", short="-w", advanced=True,
                         help="Open a sandbox image read-write.")
    fakeroot: bool = opt(False, label="Fake root", flag="--fakeroot", short="-f", advanced=True,
                         help="Appear as root inside the container (user namespace).")
    # environment
    env: tuple[EnvVar, ...] = opt((), label="Environment", flag="--env", style="space",
                                  help="Variables set inside the container: NAME=value.")
    env_file: str = opt("", label="Environment file", flag="--env-file", style="space", path=True,
                        help="A file of NAME=value lines to set inside the container (keeps secrets off the command line).")
    extra: tuple[str, ...] = opt((), label="Other options", advanced=True,
                                 help="Further options written as they are, before the image (kept from a parsed command).")
    # what to run
    image: str = opt("", label="Image", role="positional", path=True, placeholder="$SCRATCH/images/pytorch_24.05.sif",
                     help="A .sif file, a sandbox directory or a docker://, oras://, library:// reference.")
    command: tuple[str, ...] = opt((), label="Command", role="rest",
                                   help="The program and its arguments (exec), or arguments for the runscript (run).")

    def _check(self) -> list[Problem]:
        out = []
        image, action, command, nv, rocm, contain, containall, home, no_home, nvccli, env, extra = _CHECKED(self)
        if not image:
            out.append(Problem("image", "an image is required (a .sif file or docker://repo:tag)"))
        elif isinstance(image, str) and _PROGRAM_PATH.fullmatch(image):
            out.append(Problem("image", f"{image} is a program, not an image: the image is missing, so {self.binary} "
                                        f"would try to open {image} as one; write {action} [options] IMAGE.sif "
                                        f"{image} …"))
        if action == "exec" and not command:
            out.append(Problem("command", "exec needs a command to run, e.g. python train.py"))
        elif action == "exec" and str(command[0]).startswith("-"):
            out.append(Problem("command", f"{command[0]} comes after the image, so {self.binary} runs it as the "
                                          f"program; put it before the image (exec {command[0]} IMAGE …)"))
        if action == "shell" and command:
            out.append(Problem("command", "shell takes no command; use exec to run one"))
        if nv and rocm:
            out.append(Problem("rocm", "choose --nv (NVIDIA) or --rocm (AMD), not both"))
        if contain and containall:
            out.append(Problem("contain", "--containall already implies --contain; keep one"))
        if home and no_home:
            out.append(Problem("no_home", "--home and --no-home contradict each other; keep one"))
        if env:
            out += self._env_problems()
        if extra:
            out += extra_problems(extra, self.other_value_options, self.binary)
        return out + option_like_operands(self, "image")

    def _env_problems(self) -> list[Problem]:
        """A value that ``--env NAME=value`` cannot carry: with both ',' and '=' in it, Apptainer reads the word as
        a comma-separated list of pairs (see ``map_options``), so NAME gets only the part before the first comma."""
        out = []
        for e in self.env if isinstance(self.env, tuple) else ():
            if isinstance(e, EnvVar) and e.value.__class__ is str and "," in e.value and "=" in e.value:
                prefix = env_prefix(self.binary)
                out.append(Problem("env", f"--env {e.name}={e.value}: {self.binary} splits a value holding both ',' "
                                          f"and '=' at its commas into NAME=value pairs, so {e.name} would be "
                                          f"{e.value.split(',')[0]!r}; set it in a file given with --env-file, or "
                                          f"export {prefix}{e.name}='{e.value}' before the command"))
        return out

    @property
    def gpu(self) -> bool:
        """Whether the container sees the GPUs: --nv, --rocm, --nvccli, or a CDI device naming a GPU."""
        return self.nv or self.rocm or self.nvccli or any(_CDI_GPU.fullmatch(d) for d in self.cdi_devices())

    def cdi_devices(self) -> list[str]:
        """The CDI devices ``--device`` injects (SingularityCE 4's OCI mode: ``--device nvidia.com/gpu=all``), from
        the other options; a comma-separated value names several."""
        return [name.strip() for value in _option_values(self.extra, "--device") for name in value.split(",")
                if name.strip()]

    @property
    def nvccli_needs_writable(self) -> bool:
        """--nvccli under ``singularity`` without --writable: where ``singularity`` is SingularityCE (not Apptainer's
        second name for itself, which a model cannot tell: lint's HPC216 decides from the profile or the module), an
        ordinary user's nvidia-container-cli runs only with --writable (a user namespace) or not at all (a setuid
        installation). Both runtimes add --writable-tmpfs for it themselves; that is not what is missing."""
        return self.nvccli is True and self.binary == "singularity" and not self.writable

    @property
    def hides_home(self) -> bool:
        """Whether the host's home directory stays out of the container: --no-home, --contain, --containall, or
        --no-mount home (which turns off the configuration's home mount)."""
        return self.no_home or self.contain or self.containall or "home" in self.no_mounts()

    def no_mounts(self) -> set[str]:
        """The mounts ``--no-mount`` turns off (``--no-mount home,cwd`` → {"home", "cwd"}), from the other options."""
        return {v.strip() for value in _option_values(self.extra, "--no-mount") for v in value.split(",") if v.strip()}


#: a CDI device name of the GPU class: VENDOR/gpu=NAME (nvidia.com/gpu=all, amd.com/gpu=0)
_CDI_GPU = re.compile(r"[A-Za-z0-9_.-]+/gpu=\S+")


def _option_values(extra: Any, flag: str) -> list[str]:
    """The values ``flag`` is given in an "other options" list, as ``flag VALUE`` or ``flag=VALUE``."""
    words = [str(w) for w in extra] if isinstance(extra, (tuple, list)) else []
    out = []
    for i, word in enumerate(words):
        if word == flag and i + 1 < len(words):
            out.append(words[i + 1])
        elif word.startswith(flag + "="):
            out.append(word.partition("=")[2])
    return out


#: a bare parameter reference at the end of a name (``docker://$IMG`` → ``$IMG``)
_TRAILING_REF = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class ApptainerPull(Spec):
    """``apptainer pull [--force] [--dir D] [--disable-cache] DEST.sif SOURCE``.

    The cache and temporary directories default to ``$HOME/.apptainer``: point them at scratch so
    large images do not fill the home quota. Registry passwords are never written here: use
    ``APPTAINER_DOCKER_USERNAME`` / ``APPTAINER_DOCKER_PASSWORD`` from the environment or ``--docker-login``.
    """

    kind = "apptainer.pull"
    #: pull's options the model has no field for (cmd/internal/cli/pull.go of Apptainer and SingularityCE; --platform,
    #: --oci and --keep-layers are SingularityCE 4's, --reproducible Apptainer 1.5's from its pull reference), known
    #: so that an option none of them has can be reported
    other_value_options = frozenset({"--arch", "--arch-variant", "--platform", "--library", "--name", "--tmpdir",
                                     "--docker-host", "--docker-username", "--docker-password", "--authfile"})
    other_switch_options = frozenset({"--no-https", "--nohttps", "--no-cleanup", "-U", "--allow-unsigned",
                                      "--allow-unauthenticated", "--sandbox", "--oci", "--keep-layers", "--reproducible",
                                      "-h", "--help"})

    binary: str = _binary()
    action: str = opt("pull", label="Action", role="subcommand", choices=("pull",), help="Download an image and convert it to SIF.")
    force: bool = opt(False, label="Overwrite", flag="--force", short="-F", help="Replace DEST if it exists.")
    dir: str = opt("", label="Directory", flag="--dir", style="space", path=True,
                   help="Directory to write the image into, e.g. $SCRATCH/images.")
    disable_cache: bool = opt(False, label="Disable cache", flag="--disable-cache",
                              help="Do not use or fill the layer cache.")
    docker_login: bool = opt(False, label="Ask for registry login", flag="--docker-login", advanced=True,
                             help="Prompt for the registry's user name and password interactively (never put them on the line).")
    cachedir: str = opt("", label="Cache directory", env="APPTAINER_CACHEDIR", path=True,
                        help="APPTAINER_CACHEDIR (SINGULARITY_CACHEDIR for singularity): where downloaded layers "
                             "are cached; keep it on scratch, not $HOME.")
    tmpdir: str = opt("", label="Temporary directory", env="APPTAINER_TMPDIR", path=True,
                      help="APPTAINER_TMPDIR (SINGULARITY_TMPDIR for singularity): where images are assembled; "
                           "keep it on scratch or node-local disk.")
    dest: str = opt("", label="Output file", role="positional", path=True, placeholder="pytorch_24.05.sif",
                    help="The .sif file to create (optional: derived from the source's name and tag).")
    extra: tuple[str, ...] = opt((), label="Other options", advanced=True,
                                 help="Further options written as they are, before the output file (kept from a parsed "
                                      "command: --arch arm64, --sandbox …).")
    source: str = opt("", label="Source", role="positional", placeholder="docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime",
                      help="docker://repo:tag, oras://…, library://…")

    def env_name(self, name: str) -> str:
        """The variable a field is written as: SingularityCE reads ``SINGULARITY_CACHEDIR`` and ignores
        ``APPTAINER_CACHEDIR``; Apptainer reads both, so ``singularity`` gets the older name."""
        if self.binary == "singularity" and name.startswith("APPTAINER_"):
            return "SINGULARITY_" + name[len("APPTAINER_"):]
        return name

    def _check(self) -> list[Problem]:
        out = []
        if not self.source:
            out.append(Problem("source", "a source is required, e.g. docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime"))
        elif not self.source.startswith(IMAGE_SOURCES):
            out.append(Problem("source", f"{self.source!r} needs a scheme: docker://, oras:// or library://"))
        if self.dest and not self.dest.endswith(".sif") and not self.dest.startswith("$") and not self.sandbox:
            out.append(Problem("dest", f"{self.dest!r}: name the output file with a .sif extension"))
        return out + extra_problems(self.extra, self.other_value_options, self.binary) + option_like_operands(self, "dest")

    @property
    def sandbox(self) -> bool:
        """Whether the pull writes a sandbox directory (--sandbox among the other options) rather than a SIF file."""
        return "--sandbox" in (str(w) for w in list_items(self.extra))

    def default_dest(self) -> str:
        """The file name apptainer derives from the source (``pytorch_latest.sif``)."""
        if self.dest:
            return self.dest
        ref = self.source.split("://", 1)[-1]
        name = ref.rsplit("/", 1)[-1]
        base, _, tag = name.partition(":")
        # "_tag" must not grow a reference at the end of the name ($IMG_latest is another variable): brace it,
        # and keep a lone trailing "$" a literal dollar (the value language's \$)
        base = _TRAILING_REF.sub(r"${\1}", base)
        if base.endswith("$") and not base.endswith("\\$"):
            base = base[:-1] + "\\$"
        return f"{base}_{tag or 'latest'}.sif"

    def image_path(self) -> str:
        dest = self.default_dest()
        return f"{self.dir}/{dest}" if self.dir and not dest.startswith(("/", "$")) else dest


@dataclass(frozen=True)
class ApptainerBuild(Spec):
    """``apptainer build [--fakeroot] [--sandbox] [--force] OUT.sif DEF|docker://…``."""

    kind = "apptainer.build"
    #: build's options the model has no field for (cmd/internal/cli/build.go of Apptainer and SingularityCE 3.x and 4.x:
    #: the remote-build ones --remote, --builder and --detached are SingularityCE's; --arch-variant, --buildkit-host,
    #: --mksquashfs-args, --data and --reproducible from the Apptainer 1.5 build reference), known so that an option
    #: none of them has can be reported
    other_value_options = frozenset({"--section", "--library", "--arch", "--arch-variant", "--platform", "--builder",
                                     "--tmpdir", "--docker-host", "--buildkit-host", "--docker-username",
                                     "--docker-password", "--pem-path", "--bind", "-B", "--mount", "--build-arg-file",
                                     "--authfile", "--mksquashfs-args"})
    other_switch_options = frozenset({"--json", "-u", "--update", "-T", "--notest", "--disable-cache", "--no-cleanup",
                                      "-e", "--encrypt", "--fix-perms", "--no-https", "--nohttps", "--docker-login",
                                      "--passphrase", "--nv", "--nvccli", "--rocm", "--writable-tmpfs", "--userns",
                                      "--ignore-subuid", "--ignore-fakeroot-command", "--ignore-userns", "-r",
                                      "--remote", "-d", "--detached", "--no-setgroups", "--warn-unused-build-args",
                                      "--oci", "--no-oci", "--keep-layers", "--data", "--reproducible", "-h", "--help"})

    binary: str = _binary()
    action: str = opt("build", label="Action", role="subcommand", choices=("build",), help="Build an image.")
    fakeroot: bool = opt(False, label="Fake root", flag="--fakeroot", short="-f",
                         help="Build without root privileges (needs user namespaces or /etc/subuid).")
    sandbox: bool = opt(False, label="Sandbox", flag="--sandbox", short="-s",
                        help="Build a writable directory instead of a SIF file.")
    force: bool = opt(False, label="Overwrite", flag="--force", short="-F", help="Replace the output if it exists.")
    build_args: tuple[EnvVar, ...] = opt((), label="Build arguments", flag="--build-arg", style="space",
                                         help="Values for {{ var }} placeholders in the definition file: NAME=value.")
    extra: tuple[str, ...] = opt((), label="Other options", advanced=True,
                                 help="Further options written as they are, before the output (kept from a parsed "
                                      "command: --fix-perms, --section post …).")
    output: str = opt("", label="Output", role="positional", path=True, placeholder="myenv.sif", help="The .sif file (or directory with --sandbox) to create.")
    source: str = opt("", label="Source", role="positional", path=True, placeholder="myenv.def",
                      help="A definition file, docker://repo:tag or another image.")

    def _check(self) -> list[Problem]:
        out = []
        if not self.output:
            out.append(Problem("output", "an output file is required, e.g. myenv.sif"))
        if not self.source:
            out.append(Problem("source", "a source is required: a .def file or docker://repo:tag"))
        return out + extra_problems(self.extra, self.other_value_options, self.binary) \
            + option_like_operands(self, "output", "source")


@dataclass(frozen=True)
class ApptainerInspect(Spec):
    """``apptainer inspect [--runscript|--labels|--deffile] IMAGE``."""

    kind = "apptainer.inspect"

    binary: str = _binary()
    action: str = opt("inspect", label="Action", role="subcommand", choices=("inspect",), help="Show an image's metadata.")
    runscript: bool = opt(False, label="Runscript", flag="--runscript", short="-r", help="Show the runscript.")
    labels: bool = opt(False, label="Labels", flag="--labels", short="-l", help="Show the labels.")
    deffile: bool = opt(False, label="Definition file", flag="--deffile", short="-d", help="Show the definition file it was built from.")
    image: str = opt("", label="Image", role="positional", path=True, help="The image to inspect.")

    def _check(self) -> list[Problem]:
        return option_like_operands(self, "image") if self.image else [Problem("image", "an image is required")]


@dataclass(frozen=True)
class ApptainerInstance(Spec):
    """``apptainer instance start [flags] IMAGE NAME`` / ``instance stop NAME`` / ``instance list``."""

    kind = "apptainer.instance"

    binary: str = _binary()
    action: str = opt("instance start", label="Action", role="subcommand",
                      choices=("instance start", "instance stop", "instance list"),
                      help="Start, stop or list background instances (long-running services).")
    nv: bool = opt(False, label="NVIDIA GPUs (--nv)", flag="--nv", help="Make NVIDIA GPUs available.")
    cleanenv: bool = opt(False, label="Clean environment", flag="--cleanenv", short="-e", help="Do not pass the host environment.")
    binds: tuple[Bind, ...] = opt((), label="Bind mounts", flag="--bind", short="-B", aliases=("--mount",),
                                  style="space", help="Host paths visible in the instance: src[:dst[:ro|rw]].")
    image: str = opt("", label="Image", role="positional", path=True, help="The image (start only).")
    name: str = opt("", label="Instance name", role="positional", help="A name to refer to the instance by.")

    def _check(self) -> list[Problem]:
        out = []
        if self.action == "instance start" and not self.image:
            out.append(Problem("image", "instance start needs an image"))
        if self.action != "instance list" and not self.name:
            out.append(Problem("name", f"{self.action} needs an instance name"))
        if self.action == "instance stop" and self.image:
            out.append(Problem("image", "instance stop takes only the instance name"))
        out += option_like_operands(self, "image", "name")
        if self.action != "instance start":  # apptainer rejects a start's options on stop and list
            used = [flag for flag, on in (("--nv", self.nv), ("--cleanenv", self.cleanenv), ("--bind", self.binds)) if on]
            if used:
                out.append(Problem("nv" if self.nv else "cleanenv" if self.cleanenv else "binds",
                                   f"{', '.join(used)} belong{'s' if len(used) == 1 else ''} to instance start; "
                                   f"{self.action} takes {'only the instance name' if self.action == 'instance stop' else 'no such option'}"))
        return out


#: the sections a definition file model holds field by field, in the order they are written (the order apptainer
#: runs them in)
DEF_SECTIONS = ("arguments", "setup", "files", "post", "test", "environment", "startscript", "runscript", "labels", "help")
#: app (SCIF) sections, ``%apprun NAME`` …: the model keeps them verbatim (in ``extra``)
APP_SECTIONS = ("appinstall", "apphelp", "apprun", "applabels", "appfiles", "appenv", "apptest", "appstart")
#: every section name Apptainer accepts (%pre is an old one it still takes; the model keeps it verbatim)
ALL_DEF_SECTIONS = DEF_SECTIONS + ("pre",) + APP_SECTIONS


#: the header keywords Apptainer reads (``validHeaders`` in its pkg/build/types/parser/deffile.go; OtherURL takes a
#: number, OtherURL0, OtherURL1 …); it stops the build at any other with "invalid header keyword found"
DEF_HEADER_KEYWORDS = ("Bootstrap", "From", "Stage", "IncludeCmd", "MirrorURL", "UpdateURL", "OSVersion", "Include",
                       "Library", "Registry", "Namespace", "Fingerprints", "Product", "User", "Regcode", "ProductPGP",
                       "RegisterURL", "Modules", "OtherURL<N>", "ConfURL", "SetOpt")


def header_keyword_problem(key: str) -> str:
    """Why Apptainer refuses the header keyword ``key`` and the fix, or "" when it reads it (in any case)."""
    known = {k.lower(): k for k in DEF_HEADER_KEYWORDS if "<" not in k}
    name = key.strip().lower()
    if name in known or re.fullmatch(r"otherurl[0-9]+", name):
        return ""
    import difflib
    near = next(iter(difflib.get_close_matches(name, list(known), 1, 0.75)), "")
    labels = "metadata such as a maintainer or a version belongs in %labels (Maintainer alice@example.org)"
    fix = (f"write {known[near]}: if that is what was meant; {labels}" if near else
           f"{labels}; the header keywords are {', '.join(DEF_HEADER_KEYWORDS)}")
    return (f"{key.strip()}: is not an Apptainer header keyword: the build stops with 'invalid header keyword found: "
            f"{name}'; {fix}")


@dataclass(frozen=True)
class DefFile(Spec):
    """An Apptainer definition file: a header and ``%section`` bodies.

    In a multi-stage build this is the last stage; earlier stages are kept verbatim in ``before``.
    Sections the model does not break down are kept verbatim in ``extra``.
    """

    kind = "apptainer.def"

    bootstrap: str = opt("docker", label="Bootstrap", role="internal",
                         choices=("docker", "localimage", "library", "oras", "shub", "docker-daemon", "docker-archive",
                                  "oci", "oci-archive", "debootstrap", "yum", "zypper", "arch", "busybox", "scratch"),
                         help="Where the base comes from: docker (a registry image), localimage (a .sif file), …")
    from_: str = opt("", label="From", role="internal", cli="--from-image", placeholder="pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime",
                     help="The base image (repo:tag for docker; a path for localimage). Pin a version tag.")
    files: tuple[str, ...] = opt((), label="%files", role="internal", help="Lines 'host_path [container_path]' copied into the image.")
    post: tuple[str, ...] = opt((), label="%post", role="internal", help="Shell commands run once at build time (install packages here).")
    environment: tuple[EnvVar, ...] = opt((), label="%environment", role="internal", help="Variables set whenever the container runs.")
    runscript: tuple[str, ...] = opt((), label="%runscript", role="internal", help="Commands 'apptainer run' executes.")
    labels: tuple[EnvVar, ...] = opt((), label="%labels", role="internal", help="Metadata: NAME value pairs (author, version).")
    help: str = opt("", label="%help", role="internal", cli="--help-text", help="Text 'apptainer run-help' shows.")
    test: tuple[str, ...] = opt((), label="%test", role="internal", help="Commands run at the end of the build and by 'apptainer test'.")
    header: tuple[EnvVar, ...] = opt((), label="Other header keywords", role="internal",
                                     help="Header lines besides Bootstrap/From, in order: Stage, IncludeCmd, "
                                          "Fingerprints, OSVersion, MirrorURL, Include …")
    arguments: tuple[str, ...] = opt((), label="%arguments", role="internal",
                                     help="NAME=default lines for {{ NAME }} placeholders (apptainer build --build-arg).")
    setup: tuple[str, ...] = opt((), label="%setup", role="internal",
                                 help="Commands run on the host during the build ($APPTAINER_ROOTFS is the image).")
    startscript: tuple[str, ...] = opt((), label="%startscript", role="internal",
                                       help="Commands 'apptainer instance start' runs.")
    extra: tuple[str, ...] = opt((), label="Other sections (verbatim)", role="internal",
                                 help="Sections kept exactly as written, written after the others: app sections "
                                      "(%apprun NAME …), sections with options (%post -c /bin/bash, %files from STAGE), "
                                      "a repeated section, or an %environment with shell logic.")
    before: tuple[str, ...] = opt((), label="Earlier stages (verbatim)", role="internal",
                                  help="The lines before this stage's header: earlier stages of a multi-stage build, "
                                       "kept exactly as written.")

    def _check(self) -> list[Problem]:
        out = []
        # agents that build from a mirror (MirrorURL/OSVersion) or from nothing take no From:
        if not self.from_ and self.bootstrap not in ("scratch", "yum", "zypper", "debootstrap", "arch", "busybox"):
            out.append(Problem("from_", "From: is required, e.g. pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime"))
        for h in self.header:
            if h.name.lower() in ("bootstrap", "from"):
                out.append(Problem("header", f"write {h.name}: in its own field, not among the other header keywords"))
            elif header_keyword_problem(h.name):
                out.append(Problem("header", header_keyword_problem(h.name)))
        for field, name, value in [("bootstrap", "Bootstrap", self.bootstrap), ("from_", "From", self.from_),
                                   *(("header", h.name, h.value) for h in self.header)]:
            if isinstance(value, str) and "#" in value:  # Apptainer drops a header line's # and what follows
                out.append(Problem(field, f"{name}: {value!r}: Apptainer reads a # on a header line as the start of a "
                                          "comment and drops the rest; remove it"))
        first = next((line for line in self.extra if line.strip()), "")
        if first and not first.startswith("%"):
            out.append(Problem("extra", f"the verbatim sections must start with a %section line, not {first.strip()[:30]!r}"))
        return out + self._unwritable()

    def _unwritable(self) -> list[Problem]:
        """Values a definition file cannot hold as the model has them: Apptainer would read the text otherwise (and
        so would :func:`hpcwidgets.parse.buildfiles.parse_deffile`, which reads it as Apptainer does).

        A header value is one line: a line break starts another header line. A section line whose first word starts
        with ``%`` starts a new section, wherever it is; indented, as a section body is, it names no section and the
        build stops ("invalid section(s) specified"). The verbatim sections may start sections, at the start of a
        line, with a name Apptainer knows."""
        out = []
        for field, label, value in [("bootstrap", "Bootstrap", self.bootstrap), ("from_", "From", self.from_),
                                    *(("header", h.name, h.value) for h in list_items(self.header) if isinstance(h, EnvVar))]:
            if isinstance(value, str) and "\n" in value:
                out.append(Problem(field, f"{label}: {value!r} holds a line break, which starts another header line; "
                                          "a header value is one line"))
        for section in DEF_SECTIONS:
            if section == "environment":
                continue  # written as export lines
            value = getattr(self, section)
            lines = [f"{v.name} {v.value}" for v in list_items(value) if isinstance(v, EnvVar)] if section == "labels" \
                else [value] if isinstance(value, str) else [str(v) for v in list_items(value)]
            line = next((x.strip() for v in lines for x in v.split("\n") if x.strip().startswith("%")), None)
            if line is not None:
                out.append(Problem(section, f"%{section}: the line {line!r} starts with %, so Apptainer reads it as the "
                                            "start of a new section (and, indented in this one, as a section without a "
                                            "name: the build stops); start the line with another character"))
        # %help is written as written (apptainer run-help shows it so), not indented: a line of it at the start of a
        # line that reads as Bootstrap: starts another stage of a multi-stage build there
        stage = next((x for x in str(self.help).split("\n") if re.match(r"bootstrap[ \t]*:", x, re.IGNORECASE)), None)
        if stage is not None:
            out.append(Problem("help", f"%help: the line {stage!r} starts with Bootstrap:, so Apptainer starts another "
                                       "stage of the build there; indent it"))
        for line in (x for v in list_items(self.extra) for x in str(v).split("\n")):
            word = line.split(None, 1)[0] if line.strip() else ""
            if not word.startswith("%"):
                continue
            if line[0].isspace():
                out.append(Problem("extra", f"{line.strip()!r} is indented: Apptainer starts a section at it but reads "
                                            "no name from an indented line, so the build stops; start it at the "
                                            "beginning of its line"))
            elif word[1:].lower() not in ALL_DEF_SECTIONS:
                out.append(Problem("extra", f"{word} is not an Apptainer section, so the build stops; the sections are "
                                            f"{', '.join('%' + x for x in DEF_SECTIONS + APP_SECTIONS)}"))
        return out
