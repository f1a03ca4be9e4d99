"""Translate container commands between Apptainer and Charliecloud.

The runtimes differ in defaults, not only in spelling: Apptainer mounts $HOME and applies the
image's environment; ch-run passes the host environment, mounts no home and has no GPU flag.
A :class:`Conversion` carries the translated command, the commands to run once before it (pull,
convert, inject GPU libraries) and a note for everything without an exact equivalent.
Pure functions, stdlib only.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
from dataclasses import dataclass
from typing import Any

from ..errors import HpcWidgetsError
from ._meta import Spec
from ._words import Verbatim, passed_text, split_assignment
from .apptainer import ApptainerBuild, ApptainerRun
from .charliecloud import ChConvert, ChFromhost, ChImagePull, ChRun, ch_run_expands, ch_run_lookups, image_format
from .common import Bind, EnvVar


@dataclass(frozen=True)
class Conversion:
    """The outcome of a translation.

    ``result`` is the translated command; ``steps`` are commands to run first, in order;
    ``notes`` explain every difference the translation could not express.
    """

    result: Spec
    steps: tuple[Spec, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def commands(self) -> tuple[Spec, ...]:
        """The steps followed by the result: everything to run, in order."""
        return (*self.steps, self.result)


#: ch-run --home sets HOME before --unset-env runs, so after --unset-env='*' it is set again with this
_HOME_AGAIN = "HOME=/home/$USER"


#: a file name by its extension: scripts, configurations, data and checkpoints (not a host name such as
#: gpu01.cluster, a version such as bert-base.v2, or a module such as torch.distributed.run)
_FILE_NAME = re.compile(r"[\w@+-][\w.@+-]*\.(?:py|sh|bash|R|r|jl|pl|rb|lua|m|ipynb|ya?ml|json|toml|ini|cfg|conf|txt|"
                        r"csv|tsv|parquet|arrow|jsonl|npy|npz|h5|hdf5|nc|pt|pth|ckpt|bin|safetensors|pkl|pickle|onnx|"
                        r"tar|gz|tgz|zip|sqfs|sif|log|out|env|lst|list|dat|in|inp|xml|fa|fasta|fastq|bam|vcf)")
#: programs whose -c takes code (shell text, Python), and those whose -m takes a module name
_SHELLS = re.compile(r"(?:ba|z|da|k)?sh")
_PYTHON = re.compile(r"python[0-9.]*")


def _relative_paths(words: tuple[str, ...] | list[str]) -> list[str]:
    """The words of a command that look like paths relative to the current directory (``train.py``,
    ``runners/job.sh``, ``--config=cfg/a.yaml``); absolute paths, ``$NAME`` paths, URLs, module names
    (``python -m a.b``) are not. The code of ``sh -c``/``python -c`` is read word by word; code that
    changes directory itself (``cd /opt && ./run.sh``) names nothing relative to the starting one."""
    words = [str(w) for w in words]
    program = os.path.basename(words[0]) if words else ""
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if i > 0 and word == "-m" and _PYTHON.fullmatch(program):
            i += 2  # a module name, not a path
            continue
        if i > 0 and word == "-c" and i + 1 < len(words) and (_SHELLS.fullmatch(program) or _PYTHON.fullmatch(program)):
            code = _code_words(words[i + 1])
            if "cd" not in code and "pushd" not in code:
                out += _relative_paths(["", *code])
            i += 2
            continue
        value = word.partition("=")[2] if word.startswith("-") else word
        i += 1
        if not value or value.startswith(("/", "$", "~")) or "://" in value:
            continue
        if value in (".", "..") or value.startswith(("./", "../")) or _FILE_NAME.fullmatch(value) or \
                ("/" in value and _FILE_NAME.fullmatch(value.rsplit("/", 1)[-1]) is not None) or \
                re.fullmatch(r"[\w.-]+/(?:[\w.-]+/?)*", value) is not None:
            out.append(value)
    return out


def _code_words(code: str) -> list[str]:
    """The words of shell (or Python) code given to -c, split at spaces and at shell punctuation."""
    lexer = shlex.shlex(code, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # an unclosed quote: the words as far as spaces tell
        return code.split()


def _directory_for(image: str) -> str:
    """An image directory path next to ``image`` (``x/pytorch.sif`` → ``x/pytorch``)."""
    ref = image.split("://", 1)[-1]
    if image_format(image) in ("ch-image", "registry"):
        ref = ref.rsplit("/", 1)[-1]
    if ref.startswith("~/"):  # an unquoted ~/x.sif read from shell text: next to it is $HOME/x
        ref = "$HOME/" + ref[2:]
    base = re.sub(r"(\.sif|\.sqfs|\.squashfs|\.squash|\.tar(\.\w+)?|\.t\wz)$", "", ref)
    base = re.sub(r"[^A-Za-z0-9_./$@{}-]", "_", base) or "image"
    return base if base.startswith(("/", "./", "../", "$")) else "./" + base


def to_charliecloud(run: ApptainerRun, *, image_dir: str = "") -> Conversion:
    """The ``ch-run`` equivalent of an ``apptainer exec|run|shell`` command.

    ``image_dir`` names the image directory to create when one is needed (a SIF to unpack, or
    GPU libraries to inject); by default it sits next to the image.
    """
    notes: list[str] = []
    steps: list[Spec] = []
    image = run.image
    if str(image).startswith("instance://"):
        raise HpcWidgetsError(f"{image} is a running Apptainer instance, and Charliecloud has no instances (each ch-run "
                              "starts its own container); translate the command with the instance's image instead "
                              f"({run.binary} {run.action} IMAGE …)")
    fmt = image_format(image)
    # NVIDIA GPUs: --nv, --nvccli, or a CDI device of NVIDIA's GPU class (SingularityCE 4: --device nvidia.com/gpu=all)
    gpu = run.nv or run.nvccli or any(d.startswith("nvidia.com/gpu=") for d in run.cdi_devices())
    if fmt == "ch-image":
        # Apptainer reads a bare name as a path in the current directory; ch-run and ch-convert would
        # look it up in ch-image storage instead
        image, fmt = "./" + image, "dir"
    directory = image_dir or _directory_for(image)

    # -- image -------------------------------------------------------------------------------
    if fmt == "sif":
        steps.append(ApptainerBuild(binary=run.binary, sandbox=True, output=directory, source=image))
        notes.append(f"ch-run and ch-convert cannot read SIF files: the first step unpacks {image} into the "
                     f"directory {directory} with 'apptainer build --sandbox' (run it where Apptainer is installed). "
                     "Better still, rebuild the image for Charliecloud from its Dockerfile with ch-image build.")
        notes.append("ch-run does not apply an Apptainer image's own environment (/.singularity.d/env); "
                     "set the variables the program needs with --set-env.")
        image = directory
    elif image.startswith("docker://"):
        ref = image.split("://", 1)[1]
        steps.append(ChImagePull(source=ref))
        if gpu:
            steps.append(ChConvert(input_format="ch-image", output_format="dir", input=ref, output=directory))
            image = directory
        else:
            image = ref
            notes.append(f"ch-run runs {ref} from ch-image storage by name; for jobs on many nodes convert it once "
                         f"to a SquashFS file on shared storage (ch-convert {ref} $SCRATCH/NAME.sqfs) and run that.")
    elif fmt == "registry":
        notes.append(f"Charliecloud cannot pull {image.split('://', 1)[0]}:// images; pull the image as a "
                     "Docker/OCI image (ch-image pull REF) or build it from its Dockerfile.")
    elif fmt == "tar":
        steps.append(ChConvert(input=image, output=directory, output_format="dir"))
        image = directory
    elif fmt == "dir" and re.fullmatch(r"\$(\w+|\{\w+\})", image):
        notes.append(f"{image} is taken to be an image directory; if it names a SIF file, unpack it first "
                     f"(apptainer build --sandbox DIR {image}) and run DIR.")

    # -- GPUs ----------------------------------------------------------------------------------
    if gpu:
        if image_format(image) != "dir":
            steps.append(ChConvert(input=image, output=directory, output_format="dir"))
            image = directory
        steps.append(ChFromhost(nvidia=True, image=image))
        notes.append(f"ch-run has no --nv: 'ch-fromhost --nvidia {image}' copies the host's NVIDIA driver libraries "
                     "into the image directory once (it needs nvidia-container-cli on the host; repeat it after a "
                     "driver update). The GPU devices are visible because ch-run shares the host's /dev.")
    if run.rocm:
        # Charliecloud's ch-fromhost injects NVIDIA's files (--nvidia, from nvidia-container-cli) and Cray MPI's, and
        # otherwise only files named one by one: nothing finds the host's ROCm libraries as --rocm does
        notes.append("ch-run has no --rocm, and ch-fromhost has no ROCm mode (its GPU option, --nvidia, asks "
                     "nvidia-container-cli for NVIDIA's files): no step is added. The AMD GPUs' devices, /dev/kfd and "
                     "/dev/dri, are visible because ch-run shares the host's /dev, but --rocm also binds the host's "
                     "ROCm libraries into the container and puts them first on LD_LIBRARY_PATH, which ch-run does not: "
                     "the program uses the ROCm the image carries, which must work with the host's amdgpu driver "
                     "(AMD's rocm/… images carry a whole ROCm). An image that relied on the host's libraries needs "
                     "them copied in by name, into an image directory (ch-fromhost --path FILE … or --file LIST DIR; "
                     "again after a driver update).")

    # -- files ---------------------------------------------------------------------------------
    binds: list[Bind] = []
    for b in run.binds:
        if b.read_only:
            notes.append(f"ch-run has no read-only binds: {b.src} is mounted read-write; protect input data "
                         "with file permissions.")
        if any(o.startswith(("image-src=", "id=")) for o in b.options):
            notes.append(f"ch-run cannot mount a directory of an image file ({b.src}:{b.mode}): it binds "
                         f"{b.src} itself; unpack the image on the host (unsquashfs) and bind that directory.")
        binds.append(Bind(b.src, b.dst))
    home = False
    set_env: list[str] = []
    if run.home:
        src, _, dst = run.home.partition(":")
        binds.append(Bind(src, dst if dst and dst != src else ""))
        set_env.append(f"HOME={dst or src}")
        notes.append(f"--home {run.home} becomes a bind of {src} plus HOME={dst or src} (ch-run --home always "
                     "mounts your own $HOME at /home/$USER).")
    elif run.no_home:
        notes.append("--no-home is ch-run's default: it does not mount $HOME unless given --home.")
    elif not (run.contain or run.containall):
        home = True
        notes.append("Apptainer mounts $HOME by default; ch-run needs --home, which mounts it at /home/$USER "
                     "and sets HOME there (the same path on most clusters). Newer ch-run releases (those with "
                     "--write-fake) make --home imply it, which needs unprivileged overlayfs (Linux 5.11, or a "
                     "distribution's backport): on an older kernel, such as RHEL 8's 4.18, such a ch-run fails to "
                     "start with 'operation not permitted'. There, leave --home out and bind the folders the program "
                     "needs (-b \"$HOME/project\":/mnt/0).")
    if binds:
        dests = ", ".join(b.dst or b.src for b in binds)
        notes.append(f"ch-run cannot create bind destinations in a read-only image: {dests} must already exist "
                     "in the image: images made by ch-image or ch-convert have /mnt/0 … /mnt/9 to bind to, but a "
                     "directory unpacked by apptainer build --sandbox needs them made first (mkdir -p DIR/mnt/0), "
                     "or use --write with an image directory.")
        if any(":" in b.src or ":" in b.dst for b in binds):
            notes.append("ch-run cannot bind paths containing ':'; rename them or bind a parent directory.")
    if run.overlay:
        notes.append("ch-run has no overlays; add the overlay's files to the image or bind them in.")
    if run.writable_tmpfs:
        notes.append("ch-run has no in-memory writable layer: the image stays read-only. Write to a bind or to /tmp "
                     "instead (--write would write into a directory image permanently). Charliecloud releases after "
                     "0.33 add --write-fake (-W), the same idea as --writable-tmpfs; 0.31 and 0.33 do not have it.")
    private_tmp = run.contain or run.containall
    cd = run.cwd
    if not cd and not private_tmp:
        # Apptainer starts in the current directory (and mounts it); ch-run starts in / unless told
        relative = _relative_paths(run.command)
        if relative or run.action == "shell":
            cd = "$PWD"
            why = f"the command names {relative[0]} relative to it" if relative else "a shell starts there"
            notes.append(f"Apptainer starts the program in the current directory, which it mounts into the container; "
                         f"ch-run starts in /. Here {why}, so --cd=$PWD is added: that directory must be visible "
                         "inside (under /tmp, under $HOME with --home, or inside a bind); otherwise bind it to a "
                         "free mount point, e.g. --bind=\"$PWD\":/mnt/9 --cd=/mnt/9.")
        else:
            notes.append("ch-run starts the program in /, Apptainer in the current directory; add --cd=$PWD (with "
                         "that directory visible inside) if the program reads or writes files relative to it.")
    if private_tmp:
        flag = "--containall" if run.containall else "--contain"
        notes.append(f"ch-run has no {flag}: --private-tmp gives an empty /tmp and $HOME is not mounted, but /dev "
                     "is always the host's" + (", and PID and IPC namespaces are shared with the host." if run.containall else ".")
                     + f" Apptainer's {flag} gives a fresh, writable home; under ch-run HOME names a folder of the "
                     "read-only image instead (/root in current releases; the host's path in "
                     "older ones), so programs that write caches under ~ (pip, matplotlib, Hugging Face, torch hub, "
                     "Triton) fail there. Add --set-env=HOME=/tmp (the private /tmp is writable), or bind a folder "
                     "and set HOME to it.")

    # -- environment -----------------------------------------------------------------------------
    unset_env: tuple[str, ...] = ()
    if run.cleanenv or run.containall:
        unset_env = ("*",)
        if home:
            # ch-run --home sets HOME before --unset-env runs, so '*' would remove it again
            set_env.insert(0, _HOME_AGAIN)
        flag = "--cleanenv" if run.cleanenv else "--containall"
        notes.append(f"Charliecloud passes the host environment by default; --unset-env='*' is the nearest to "
                     f"{flag}, but it also removes what Apptainer keeps: "
                     + ("HOME (set again here with --set-env), " if home or run.home else "HOME, ")
                     + "TERM, the proxy variables and PATH (only programs in /bin and /usr/bin are then found). "
                     "Add --set-env=PATH=… for the rest, or a bare --set-env to load /ch/environment, which only "
                     "images built or converted by Charliecloud have.")
    whole = [e for e in run.env if isinstance(e.name, Verbatim) and not e.value]  # --env "$PAIRS"
    if whole:
        notes.append(f"--env {' '.join(str(e.name) for e in whole)} passes the NAME=value pairs a variable holds, "
                     "which Apptainer splits at commas and ch-run does not (one --set-env is one variable): left "
                     "out; add a --set-env=NAME=value for each pair.")
    pairs, env_no_expand = _charliecloud_pairs(run)
    set_env += pairs
    if env_no_expand:
        notes.append("--env-no-expand keeps ch-run from expanding the literal $ in a --set-env value.")
    if run.env_file:
        set_env.append(run.env_file)
        notes.append(f"ch-run reads {run.env_file} as plain NAME=value lines (no export, quotes or shell "
                     "syntax), unlike Apptainer's --env-file, which is a shell script. It reads no comments either: "
                     "ch-run stops at a '# …' line (\"no delimiter\"); remove comment lines from the file.")

    # -- identity and writing ----------------------------------------------------------------------
    uid = gid = None
    if run.fakeroot:
        uid = gid = 0
        notes.append("--fakeroot becomes --uid=0 --gid=0, which only makes you look like root inside the "
                     "container; to install packages, build the image with ch-image build --force. (Apptainer's "
                     "--fakeroot also mounts your home at /root; ch-run --home mounts it at /home/$USER.)")
    if run.extra:
        notes.append(f"ch-run has no equivalent of {' '.join(run.extra)}; left out of the translation.")

    # -- what to run -------------------------------------------------------------------------------
    command = tuple(run.command)
    if run.action in ("run", "test"):
        command = _image_script(run, fmt, notes)
    elif run.action == "shell":
        command = ("/bin/sh",)
        notes.append("apptainer shell becomes ch-run IMAGE -- /bin/sh (use /bin/bash if the image has it).")

    result = ChRun(binds=tuple(binds), cd=cd, home=home, private_tmp=private_tmp, uid=uid, gid=gid,
                   env_no_expand=env_no_expand, unset_env=unset_env, set_env=tuple(set_env),
                   write=run.writable, image=image, command=command)
    return Conversion(result, tuple(steps), tuple(notes))


#: where an Apptainer image (a SIF, and the sandbox directory it unpacks to) keeps its runscript and %test section
_IMAGE_SCRIPTS = {"run": ("/.singularity.d/runscript", "runscript"), "test": ("/.singularity.d/test", "%test section")}


def _charliecloud_pairs(run: ApptainerRun) -> tuple[list[str], bool]:
    """Apptainer's ``--env`` items as ch-run's ``--set-env=NAME=value`` words, and whether a value holds a literal
    ``$`` ch-run would expand (then --env-no-expand); an item a variable holds whole (``--env "$PAIRS"``) is left
    out, as :func:`to_charliecloud` says."""
    env = [e for e in run.env if not (isinstance(e.name, Verbatim) and not e.value)]
    return [f"{e.name}={e.value}" for e in env], any(ch_run_expands(e.value) for e in env)


def carried_variables(old: Any, runtime: str) -> dict[str, Any]:
    """The variables a container sets, as the fields of a container of the other runtime (a form's runtime switch):
    Apptainer's --env as ch-run's --set-env (with --env-no-expand where needed), ch-run's --set-env and --unset-env
    as Apptainer's --env, each as the translations write them; {} for anything else."""
    if runtime == "charliecloud" and isinstance(old, ApptainerRun):
        pairs, no_expand = _charliecloud_pairs(old)
        return {"set_env": tuple(pairs), **({"env_no_expand": True} if no_expand else {})} if pairs else {}
    if runtime in ("apptainer", "singularity") and isinstance(old, ChRun):
        env = tuple(_environment(old, [])[0])
        return {"env": env} if env else {}
    return {}


def _environment(run: ChRun, notes: list[str]) -> tuple[list[EnvVar], str, bool]:
    """ch-run's --set-env/--unset-env, applied in their order, as Apptainer's ``--env`` items, ``--env-file`` and
    ``--cleanenv``: an --unset-env removes the variables set before it that it matches."""
    env: list[EnvVar] = []
    env_file = ""
    cleanenv = image_env = False
    for flag, item in run.environment():
        if flag == "--unset-env":
            gone = [e for e in env if fnmatch.fnmatchcase(e.name, str(item))]
            env = [e for e in env if e not in gone]
            if gone:
                notes.append(f"--unset-env={item} comes after --set-env of {', '.join(e.name for e in gone)}, which "
                             "it removes again: left out.")
            if image_env:
                notes.append(f"--unset-env={item} also removes the image's own variables (the bare --set-env before "
                             "it) that match; Apptainer applies the image's environment itself and cannot remove one: "
                             "unset it at the start of the command (sh -c 'unset NAME; exec …').")
            if item == "*":
                cleanenv = True
                notes.append("--unset-env='*' becomes --cleanenv (Apptainer then passes almost none of the host's "
                             "variables; add the ones the program needs with --env).")
            else:
                notes.append(f"--unset-env={item} has no Apptainer equivalent; use --cleanenv with --env for the "
                             "variables you need, or unset it at the start of the command.")
        elif item is None:
            image_env = True
            notes.append("the bare --set-env (the image's /ch/environment) is not needed: Apptainer applies the "
                         "image's environment itself.")
        elif item == _HOME_AGAIN and run.home and cleanenv:
            continue  # HOME put back after --unset-env='*': Apptainer keeps HOME under --cleanenv itself
        elif "=" in item:
            names = [] if run.env_no_expand else _lookups(item)
            if names:
                notes.append(f"ch-run itself replaces ${names[0]} in --set-env={item.replace(chr(92) + '$', '$')} by the "
                             "variable's value in the container (after a bare --set-env, the image's); Apptainer has no "
                             "option that expands a value inside the container, so it is left out: set it in the "
                             "command (sh -c 'export NAME=…; exec …') or in the image (%environment).")
                continue
            env.append(EnvVar.from_token(item))
        elif not env_file:
            env_file = item
            notes.append(f"Apptainer's --env-file {item} is read as a shell script; ch-run's NAME=value lines "
                         "work unchanged unless values contain spaces or quotes.")
        else:
            notes.append(f"Apptainer takes one --env-file; merge {item} into {env_file}.")
    return env, env_file, cleanenv


def _other_options(extra: tuple[str, ...]) -> list[str]:
    """ch-run's other options, each with its value (``-m DIR`` as one text)."""
    out: list[str] = []
    words = [str(w) for w in extra]
    while words:
        word = words.pop(0)
        if words and (word in ChRun.other_value_options or not words[0].startswith("-")):
            word += " " + words.pop(0)  # a known value option's value, or the word an unknown option took
        out.append(word)
    return out


def _lookups(item: str) -> list[str]:
    """The variables ch-run itself looks up for a --set-env NAME=value item (a value or shell text from a script)."""
    if isinstance(item, Verbatim):
        split = split_assignment(item)
        return [] if split is None else [p[1:] for p in passed_text(split[1]).split(":") if p.startswith("$")]
    return ch_run_lookups(item.split("=", 1)[1])


def _image_script(run: ApptainerRun, fmt: str, notes: list[str]) -> tuple[str, ...]:
    """The command for ``apptainer run|test``: the image's own script, which an Apptainer image (a SIF, or a
    sandbox directory: what a path or name is here) keeps under /.singularity.d, with the arguments given."""
    path, what = _IMAGE_SCRIPTS[run.action]
    if fmt in ("sif", "dir", "ch-image"):
        notes.append(f"{run.binary} {run.action} runs the image's {what}, which Apptainer keeps in the image at {path} "
                     f"(unpacked with it into a sandbox directory): ch-run runs that file. Apptainer sources "
                     "/.singularity.d/env first and ch-run does not; set the variables it needs with --set-env.")
        return (path, *run.command)
    if run.action == "test":
        raise HpcWidgetsError(f"apptainer test runs the %test section of an Apptainer image, and {run.image} is not "
                              "one (Charliecloud's copy would have no /.singularity.d/test); run the test commands "
                              "with ch-run IMAGE -- COMMAND instead")
    notes.append(f"{run.image} becomes an image without Apptainer's runscript (/.singularity.d/runscript): write the "
                 "program before its arguments, the image's ENTRYPOINT/CMD for a Docker-derived image.")
    if not run.command:
        raise HpcWidgetsError(f"apptainer run {run.image} runs the image's ENTRYPOINT/CMD, which ch-run does not: "
                              "give the program to run, e.g. apptainer exec IMAGE python train.py")
    return tuple(run.command)


#: the option that gives an Apptainer container the GPUs of each vendor (the profile's ``gpu_vendor`` names); Intel's
#: GPUs take none, and "" or "none" is a job without GPUs
_GPU_OPTIONS = {"nvidia": "nv", "amd": "rocm", "intel": "", "none": "", "": ""}


def to_apptainer(run: ChRun, *, gpu: str = "", nvidia: bool = False, binary: str = "apptainer") -> Conversion:
    """The ``apptainer exec`` equivalent of a ``ch-run`` command.

    ``gpu`` is the vendor of the GPUs the job gets (as a profile names it): ``"nvidia"`` adds ``--nv``, ``"amd"``
    adds ``--rocm``, ``"intel"``, ``"none"`` or ``""`` add no flag. A ch-run command does not show whether it uses
    GPUs (with Charliecloud, NVIDIA's libraries are injected into the image once by ch-fromhost, and a ROCm image
    carries its own), so the caller says so. ``nvidia=True`` is the same as ``gpu="nvidia"``.
    """
    vendor = gpu.strip().lower() if isinstance(gpu, str) else None
    if vendor not in _GPU_OPTIONS:
        raise HpcWidgetsError(f"gpu={gpu!r} is no GPU vendor: give gpu='nvidia' (--nv), 'amd' (--rocm), 'intel' (no "
                              "flag) or leave it out for a job without GPUs")
    if nvidia and vendor not in ("", "nvidia"):
        raise HpcWidgetsError(f"nvidia=True and gpu={gpu!r} name two vendors: give one of them (gpu='nvidia' is the "
                              "same as nvidia=True)")
    flag = "nv" if nvidia else _GPU_OPTIONS[vendor]
    notes: list[str] = []
    steps: list[Spec] = []
    image = run.image
    fmt = image_format(image)
    if fmt in ("ch-image", "tar"):
        directory = _directory_for(image)
        steps.append(ChConvert(input_format="ch-image" if fmt == "ch-image" else "", output_format="dir",
                               input=image, output=directory))
        if fmt == "ch-image":
            notes.append(f"Apptainer cannot read ch-image storage: the first step copies {image} into the directory "
                         f"{directory}, which Apptainer runs as a sandbox (or build a SIF from it: "
                         f"apptainer build NAME.sif {directory}).")
        image = directory
    elif fmt == "squash":
        notes.append(f"{image} is a plain SquashFS file; Apptainer can run it, but a SIF is the supported format "
                     "(convert to a directory with ch-convert, then apptainer build NAME.sif DIR).")

    env, env_file, cleanenv = _environment(run, notes)
    if run.env_no_expand:
        notes.append("--env-no-expand has no equivalent; Apptainer does not expand $ in --env values a second time.")

    no_home = not run.home
    home = ""
    if run.home:
        notes.append("Apptainer mounts $HOME by default, at its host path (ch-run --home uses /home/$USER).")
        if run.private_tmp:
            home = "$HOME"  # --contain alone would hide it; a --home given explicitly is still mounted
    else:
        notes.append("ch-run does not mount $HOME by default; --no-home keeps Apptainer from mounting it.")
    if run.private_tmp:
        notes.append("--private-tmp becomes --contain, which also gives a minimal /dev and "
                     + ("keeps $HOME mounted only because of --home $HOME." if home else "an empty $HOME."))
    cwd = run.cd
    if cwd in ("$PWD", "${PWD}"):
        cwd = ""
        notes.append(f"--cd={run.cd} needs no --pwd: Apptainer starts in the current directory by default.")
    elif not cwd:
        notes.append("ch-run without --cd starts the program in /, Apptainer in the current directory; add "
                     "--pwd / if the program relies on relative paths from /.")
    if run.no_passwd:
        notes.append("--no-passwd has no equivalent: Apptainer always adds your user to /etc/passwd.")
    fakeroot = False
    writable_tmpfs = False
    if run.uid is not None or run.gid is not None:
        if run.uid == 0 and run.gid in (0, None):
            fakeroot = True
            notes.append("--uid=0 becomes --fakeroot (root inside a user namespace).")
        else:
            notes.append("Apptainer cannot run as another user ID; --uid/--gid were dropped.")
    for option in _other_options(run.extra):
        flag = option.split("=", 1)[0].split(" ", 1)[0]
        if flag in ("-v", "--verbose", "-q", "--quiet"):
            notes.append(f"{option} changes only what ch-run prints; left out.")
        elif flag == "--write-fake" or flag.startswith("-W"):
            writable_tmpfs = True
            size = option.partition("=")[2] if flag == "--write-fake" else flag[2:]
            notes.append(f"{option} becomes --writable-tmpfs: both put a throw-away writable layer in memory over the "
                         "read-only image, discarded when the container exits. Apptainer's size is the site's "
                         "(sessiondir max size in apptainer.conf, 64 MiB by default), not set on the command line"
                         + (f", so the {size} asked for here is not carried over." if size else "."))
        elif flag not in ChRun.ordered_options and flag not in ChRun._JOINING:
            notes.append(f"ch-run's {option} has no Apptainer equivalent; left out.")
    if run.joins:
        notes.append("--join has no equivalent and is not needed: Apptainer processes share the host's IPC "
                     "namespace unless --ipc or --containall is given.")
    if run.write and image_format(image) != "dir":
        notes.append("--writable works only with a sandbox directory image.")
    if flag == "nv":
        notes.append("--nv binds the host's NVIDIA driver at run time; no ch-fromhost step is needed.")
    elif flag == "rocm":
        notes.append("--rocm makes the AMD GPUs' devices visible and binds the host's ROCm libraries at run time, "
                     "ahead of the image's own on LD_LIBRARY_PATH (ch-run used the image's): the program must be built "
                     "for a ROCm version that works with the host's.")
    elif vendor == "intel":
        notes.append("Intel GPUs take no Apptainer option: the container sees /dev/dri because Apptainer shares the "
                     "host's /dev" + (", except under --contain, whose /dev is minimal: add --bind /dev/dri."
                                      if run.private_tmp else "."))
    for b in run.binds:
        if b.mode:
            notes.append(f"ch-run has no bind modes, so -b {b.to_token()} cannot run as written (ch-run takes "
                         f"{b.dst or b.src}:{b.mode} as the destination); the translation binds {b.src} at "
                         f"{b.dst or b.src} with Apptainer's '{b.mode}' mode, which is presumably what was meant.")
    binds = tuple(Bind(b.src, b.dst, b.mode) for b in run.binds)
    result = ApptainerRun(binary=binary, action="exec", cleanenv=cleanenv, contain=run.private_tmp, no_home=no_home,
                          home=home, nv=flag == "nv", rocm=flag == "rocm", binds=binds, cwd=cwd, writable=run.write,
                          writable_tmpfs=writable_tmpfs, fakeroot=fakeroot, env=tuple(env), env_file=env_file,
                          image=image, command=tuple(run.command))
    return Conversion(result, tuple(steps), tuple(notes))
