"""Rules about container runtimes the models have no layer for: NERSC's podman-hpc (``podman-hpc run``) and
NVIDIA's pyxis, the Slurm plugin that runs a step in an enroot container (``srun --container-image=…``). The reader
keeps their commands as plain programs and srun options, so these rules read the words themselves.

Each rule checks what the runtime's own source decides on, so a script can be judged without the site:
podman-hpc turns its GPU support on only with the ``--gpu`` flag (``etc/modules.d/gpu.yaml`` and
``siteconfig.get_cmd_extensions`` in NERSC/podman-hpc), and pyxis reads ``--container-image`` as a squashfs file only
when it starts with ``.`` or ``/`` and checks each ``--container-mounts`` entry's source and target the same way
(``pyxis_slurmstepd.c`` and ``args.c`` in NVIDIA/pyxis), and any other image name is read as enroot reads it
(``docker::import`` in NVIDIA/enroot's ``src/docker.sh``).

Imported by :func:`hpcwidgets.lint.rules`; the helpers the rules share are in :mod:`hpcwidgets.lint.catalogue`.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from ..parse.script import launch_words
from . import Context, Fix, rule
from .catalogue import _Inner, _simple_commands, heterogeneous, own_gpu_request, run_words, steps
from .container_rules import gpu_vendor

#: the podman-hpc subcommands that start a container and take its site modules (--gpu, --mpi …)
_PODMAN_HPC_RUNS = ("run", "shared-run")

#: podman options that hand the container GPUs without podman-hpc's module: CDI devices (--device nvidia.com/gpu=all,
#: --device /dev/nvidia0) and podman's own --gpus
_PODMAN_GPU_DEVICE = re.compile(r"(?:--device=?)?(?:nvidia\.com/gpu|/dev/nvidia)")


def _podman_hpc_runs(ctx: Context) -> list[tuple[Any, Any, list[str]]]:
    """``(command, srun model or None, podman-hpc words)`` for every ``podman-hpc run``/``shared-run`` of the script:
    at the top level, under srun, in functions, loops and ``bash -c '…'`` scripts. The srun model is the one of the
    step the reader made of the command (for a command of a ``bash -c`` script, of the step that runs the script:
    ``srun --gpus=4 bash -c 'podman-hpc run …'``); a command that starts with srun and is no step (its options cannot
    be read) is left out."""
    by_command = {s.command: s for s in steps(ctx)}
    out = []
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        inner = isinstance(cmd, _Inner)
        step = by_command.get(cmd.outer if inner else cmd)
        srun = step.chain.srun if step is not None else None
        words = launch_words([str(v) for v in cmd.argv])
        if not inner and srun is not None:
            words = launch_words([str(w) for w in step.chain.program])  # type: ignore[union-attr]
        if len(words) > 1 and words[0].rsplit("/", 1)[-1] == "podman-hpc" and words[1] in _PODMAN_HPC_RUNS:
            out.append((cmd, srun, words))
    return out


def _podman_hpc_gpu(cmd: Any, words: list[str], ctx: Context) -> bool | None:
    """Whether a podman-hpc command hands the container the GPUs (--gpu, a GPU device, --gpus); None when a word
    may hold options the script does not show (an unquoted ``$OPTS``, ``"${ARGS[@]}"``), which could be --gpu."""
    if any(w == "--gpu" or w == "--gpus" or w.startswith("--gpus=") or _PODMAN_GPU_DEVICE.match(w) for w in words):
        return True
    if any(ctx.parsed.may_split(w, cmd.line) for w in getattr(cmd, "cmd", cmd).words):
        return None
    return False


@rule("HPC230", "podman-hpc-gpu-missing", "error",
      summary="a GPU job runs podman-hpc run without --gpu",
      why="podman-hpc (NERSC's wrapper around podman, also at Isambard-AI) adds the NVIDIA device files, nvidia-smi and "
          "the host's driver libraries (libcuda, libnvidia-*) to a container only through its gpu module, which the "
          "--gpu flag turns on (etc/modules.d/gpu.yaml in NERSC/podman-hpc). Without it the container has no GPU: "
          "PyTorch falls back to the CPU or stops with 'no CUDA GPUs are available' while the job is charged for "
          "the GPUs. When another podman-hpc command of the job has --gpu, a command without it is taken for a "
          "CPU-only helper and left alone; a CDI device (--device nvidia.com/gpu=all) or podman's --gpus counts as "
          "the flag, and AMD sites are left alone.",
      fix="Add --gpu to podman-hpc run (or shared-run), before the image: podman-hpc run --gpu IMAGE COMMAND.",
      bad="""#!/bin/bash
#SBATCH -C gpu
#SBATCH --gpus-per-node=4
srun podman-hpc run --rm -v "$PWD:/work" -w /work nvcr.io/nvidia/pytorch:24.05-py3 python train.py
""",
      good="""#!/bin/bash
#SBATCH -C gpu
#SBATCH --gpus-per-node=4
srun podman-hpc run --rm --gpu -v "$PWD:/work" -w /work nvcr.io/nvidia/pytorch:24.05-py3 python train.py
""")
def _podman_hpc_without_gpu(ctx: Context) -> Iterator[Any]:
    if heterogeneous(ctx) or gpu_vendor(ctx) != "nvidia":
        return
    runs = _podman_hpc_runs(ctx)
    gpu = [_podman_hpc_gpu(cmd, words, ctx) for cmd, _, words in runs]
    if any(g is not False for g in gpu):
        return  # one command passes the GPUs in (or may): the others are CPU helpers, or pass them in unseen
    for (cmd, srun, words), _ in zip(runs, gpu):
        if ctx.job.gpus_on_each_node or (srun is not None and own_gpu_request(srun)):
            yield (cmd.line, f"the job requests GPUs but podman-hpc {words[1]} runs without --gpu: podman-hpc adds the "
                             "NVIDIA devices and driver libraries only with that flag, so no GPU is visible inside "
                             f"the container; add --gpu (podman-hpc {words[1]} --gpu …)")


#: the names pyxis's ``--container-*`` options go by on srun, and in #SBATCH lines (pyxis reads them for sbatch too)
_IMAGE_OPTION = "--container-image"
_MOUNTS_OPTION = "--container-mounts"

#: file names of squashfs images (enroot import writes *.sqsh)
_SQUASHFS_NAME = re.compile(r"\.(?:sqsh|squashfs|sqfs)$")


def _option_values(extra: Any, name: str) -> list[tuple[str, bool]]:
    """The values an srun's other options give ``name`` (``--name=value`` or ``--name value``), in order, each with
    whether a ``~`` at its start reaches pyxis as it is: bash expands it at the start of a word, not after
    ``--name=`` (tilde expansion after = is for assignments only)."""
    words = [str(e) for e in extra]
    out = []
    for i, word in enumerate(words):
        if word.startswith(name + "="):
            out.append((word[len(name) + 1:], True))
        elif word == name and i + 1 < len(words):
            out.append((words[i + 1], False))
    return out


def _pyxis_values(ctx: Context, name: str) -> list[tuple[int, str, bool, str]]:
    """``(line, value, literal ~, joiner)`` for every value a pyxis option takes in the script: from #SBATCH lines
    (which no shell expands) and srun steps, resolved through the script's variables. ``joiner`` is what the script
    writes between the option and its value, ``=`` or a space, so that a message quotes the option as written."""
    out = [(d.line, ctx.parsed.resolve(str(d.value), d.line), True, _directive_joiner(ctx, d.line, name))
           for d in ctx.parsed.directives if d.flag == name and d.applied]
    for step in steps(ctx):
        srun = step.chain.srun
        if srun is not None:
            out += [(step.line, ctx.parsed.resolve(v, step.line), literal, "=" if literal else " ")
                    for v, literal in _option_values(srun.extra, name)]
    return out


def _directive_joiner(ctx: Context, line: int, name: str) -> str:
    """``=`` where the #SBATCH line on ``line`` writes ``name=value``, else a space (``name value``)."""
    text = ctx.parsed.lines[line - 1] if 0 < line <= len(ctx.parsed.lines) else ""
    return "=" if re.search(re.escape(name) + r"=", text) else " "


#: what pyxis gets for a ~ bash left as it is (after --container-image=, or in an #SBATCH line)
_TILDE = ("bash expands ~ only at the start of a word (not after --option= or a comma; sbatch never does in an "
          "#SBATCH line), so pyxis receives the ~ itself")


@rule("HPC231", "pyxis-squashfs-without-path", "error",
      summary="srun --container-image names a squashfs file without ./ or /, so pyxis pulls it from a registry",
      why="pyxis reads --container-image as the path of a squashfs file only when it starts with '.' or '/'; any "
          "other value is an image name that enroot pulls from a registry (docker://pytorch.sqsh), so the step fails "
          "with an authentication or 'not found' error from Docker Hub instead of starting the local image "
          "(pyxis_slurmstepd.c in NVIDIA/pyxis; the maintainer's answer in NVIDIA/pyxis#127). The same happens to "
          "--container-image=~/images/x.sqsh: bash expands ~ only at the start of a word, not after the =.",
      fix="Write the file's path with ./ in front of a relative path (--container-image=./pytorch.sqsh) or as an "
          "absolute path (--container-image=\"$SCRATCH/images/pytorch.sqsh\", $HOME for ~).",
      bad="""#!/bin/bash
#SBATCH --gpus-per-node=8
srun --container-image=images/pytorch-24.05.sqsh --container-mounts="$PWD:/work" python /work/train.py
""",
      good="""#!/bin/bash
#SBATCH --gpus-per-node=8
srun --container-image=./images/pytorch-24.05.sqsh --container-mounts="$PWD:/work" python /work/train.py
""")
def _squashfs_read_as_registry_image(ctx: Context) -> Iterator[Any]:
    for line, image, literal, joiner in _pyxis_values(ctx, _IMAGE_OPTION):
        if image.startswith("~") and literal and "$" not in image:
            yield (line, f"{_IMAGE_OPTION}{joiner}{image}: {_TILDE} and takes it for an image name to pull from a "
                         f"registry; write $HOME{image[1:]} (or the absolute path)")
            continue
        if "$" in image or image.startswith((".", "/", "~")) or not _SQUASHFS_NAME.search(image):
            continue
        yield (line, f"{_IMAGE_OPTION}{joiner}{image} does not start with ./ or /, so pyxis takes it for an image name "
                     f"and pulls docker://{image} from a registry instead of opening the squashfs file; write "
                     f"{_IMAGE_OPTION}{joiner}./{image} (or its absolute path)")


#: mount flags a --container-mounts entry may end with (after SRC:DST:), which pyxis joins with '+'
_MOUNT_FLAGS = frozenset({"ro", "rw", "bind", "rbind", "private", "rprivate", "slave", "rslave", "shared", "rshared",
                          "unbindable", "runbindable", "nosuid", "nodev", "noexec", "suid", "dev", "exec", "nofail",
                          "recursive", "x-create=dir",
                          "x-create=file", "x-create=auto", "x-detach"})

#: the sources pyxis takes that are not paths
_MOUNT_KEYWORDS = ("tmpfs", "umount")


def _mount_problem(entry: str) -> str:
    """What pyxis rejects in one comma-separated ``--container-mounts`` entry (``SRC[:DST[:FLAGS]]``), "" if nothing:
    args.c wants a source that starts with '.' or '/' (or is tmpfs/umount) and, when given, such a target."""
    if not entry:
        return "an empty entry (two commas, or one at the end): pyxis stops with 'invalid format'"
    src, _, rest = entry.partition(":")
    dst = rest.split(":", 1)[0] if rest else src
    if src in _MOUNT_FLAGS or src.split("+", 1)[0] in _MOUNT_FLAGS:
        return (f"{entry!r} is a mount flag after a comma: pyxis separates mounts with ',' and the flags of one mount "
                "with '+' (SRC:DST:ro+rprivate)")
    if not src.startswith((".", "/")) and src not in _MOUNT_KEYWORDS:
        return (f"the source {src!r} is neither an absolute path nor one starting with ./: pyxis refuses it "
                f"(write ./{src} or its absolute path)")
    if not dst.startswith((".", "/")):
        return f"the target {dst!r} is not a path in the container: pyxis wants it to start with / (SRC:/DST)"
    return ""


@rule("HPC232", "pyxis-mount-syntax", "error",
      summary="an entry of --container-mounts is one pyxis refuses (a flag after a comma, a source or target that is "
              "no path)",
      why="pyxis reads --container-mounts as SRC[:DST[:FLAGS]] entries separated by commas, with the flags of one "
          "mount joined by '+' (ro+rprivate); each source must be an absolute path, start with ./, or be tmpfs or "
          "umount, and each target must be a path (args.c in NVIDIA/pyxis). Any other entry, such as the 'rprivate' "
          "of /data:/data:ro,rprivate or a bare relative source like data:/data, makes srun stop with 'could not add "
          "mount entry' before the step starts.",
      fix="Join a mount's flags with + (/data:/data:ro+rprivate), write a relative source with ./ in front "
          "(./data:/data), and separate mounts with commas only.",
      bad="""#!/bin/bash
#SBATCH --gpus-per-node=8
srun --container-image=./pytorch-24.05.sqsh --container-mounts=/scratch/data:/data:ro,rprivate python train.py
""",
      good="""#!/bin/bash
#SBATCH --gpus-per-node=8
srun --container-image=./pytorch-24.05.sqsh --container-mounts=/scratch/data:/data:ro+rprivate python train.py
""")
def _pyxis_mounts(ctx: Context) -> Iterator[Any]:
    for line, value, literal, _ in _pyxis_values(ctx, _MOUNTS_OPTION):
        for k, entry in enumerate(value.split(",")):
            if entry.startswith("~") and (literal or k > 0) and "$" not in entry:  # bash expands ~ at a word's start
                yield (line, f"--container-mounts: {entry!r}: {_TILDE}, and refuses a source that does not start "
                             f"with / or ./; write $HOME{entry[1:]}")
                break
            if any(c in entry for c in "$`'\"") or entry.startswith("~"):
                continue  # a variable or a command's output, quoting bash removes, or the home bash expands
            problem = _mount_problem(entry)
            if problem:
                yield (line, f"--container-mounts: {problem}")
                break


#: an image name whose first path component names a registry (Docker's rule: a host with a dot or a port, or
#: localhost), after an optional USER@: nvcr.io/nvidia/pytorch:24.05-py3, ghcr.io/org/app, localhost:5000/app
_REGISTRY_WITH_SLASH = re.compile(r"^(?:[^/@#]+@)?(?P<registry>[^/@#]*[.:][^/@#]*|localhost)/(?P<path>[^#]+)$")


def _registry_with_slash(image: str) -> str:
    """The registry an enroot image name gives with ``/`` after it where enroot wants ``#`` ("" when it does not):
    not a path (./x.sqsh, /scratch/img.sqsh), a name already with its ``#``, a Docker Hub name (nvidia/cuda:12.4),
    a URI with its own scheme, or a registry named by a variable the script leaves to the job ($REGISTRY/app)."""
    if image.startswith((".", "/", "~")) or "://" in image:
        return ""
    m = _REGISTRY_WITH_SLASH.match(image)
    return m.group("registry") if m and "$" not in m.group(0)[:m.end("registry")] else ""


#: Docker Hub's names: enroot's default registry, so a name on it is written without one
_DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")


def _enroot_name(image: str, registry: str) -> str:
    """``image`` as enroot reads it: ``#`` after the registry (nvcr.io#nvidia/pytorch:24.05-py3), or, for Docker
    Hub, without the registry (docker.io/library/ubuntu:22.04 → library/ubuntu:22.04)."""
    return image.replace(f"{registry}/", "" if registry in _DOCKER_HUB else f"{registry}#", 1)


def _enroot_imports(ctx: Context) -> list[tuple[int, str]]:
    """``(line, docker:// image name)`` of every ``enroot import docker://…`` the script runs, resolved through the
    script's variables, with the scheme taken off (``nvcr.io/nvidia/pytorch:24.05-py3``)."""
    out = []
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        words = launch_words([str(v) for v in cmd.argv])
        if len(words) > 2 and words[0].rsplit("/", 1)[-1] == "enroot" and words[1] == "import":
            uri = ctx.parsed.resolve(words[-1], cmd.line)
            if uri.startswith("docker://"):
                out.append((cmd.line, uri[len("docker://"):]))
    return out


def _registry_fix(ctx: Context, line: int, image: str, registry: str) -> Fix | None:
    """Write the image name as enroot reads it (:func:`_enroot_name`) where it is written out once in the command
    that starts on ``line`` (on it, or on a line its backslashes join to it); None when a variable holds it."""
    lines = ctx.parsed.lines
    last = line
    while last < len(lines) and lines[last - 1].endswith("\\"):
        last += 1
    holding = [k for k in range(line, last + 1) if lines[k - 1].count(image) == 1]
    if len(holding) != 1 or sum(lines[k - 1].count(image) for k in range(line, last + 1)) != 1:
        return None
    k = holding[0]
    text = lines[k - 1]
    at = text.index(image)
    fixed = _enroot_name(image, registry)
    return Fix(f"write {fixed}", k, k, text=text[:at] + fixed + text[at + len(image):])


@rule("HPC235", "enroot-registry-with-slash", "warning",
      summary="a pyxis --container-image (or enroot import docker://) writes the registry with / where enroot "
              "wants # (nvcr.io/nvidia/pytorch for nvcr.io#nvidia/pytorch)",
      why="pyxis hands --container-image to enroot, whose image names are [USER@][REGISTRY#]IMAGE[:TAG]: the "
          "registry is set apart with #, not / (enroot's doc/cmd/import.md and the srun --help text of pyxis). "
          "Without a #, enroot asks Docker Hub for the whole name, so --container-image=nvcr.io/nvidia/pytorch:24.05-py3 "
          "stops the step with \"registry-1.docker.io/v2/nvcr.io/nvidia/pytorch/manifests/24.05-py3 returned error "
          "code: 401 Unauthorized … pyxis: couldn't start container\" (NVIDIA/pyxis#39, #168). enroot reads the / "
          "form as a registry only when the user's enroot credentials file ($ENROOT_CONFIG_PATH/.credentials) has a "
          "machine line for that registry (src/docker.sh in NVIDIA/enroot), so it works for some users and not "
          "others: hence a warning (a registry with a port, localhost:5000/app, is refused as an invalid image "
          "reference whatever the credentials). A registry is the first part of the name when it has a dot or a port "
          "(nvcr.io, ghcr.io, localhost:5000); paths (./x.sqsh, /scratch/x.sqsh) and Docker Hub names "
          "(nvidia/cuda:12.4) are left alone. Apptainer's docker://nvcr.io/… is right as it is and is not read here.",
      fix="Write # after the registry: --container-image=nvcr.io#nvidia/pytorch:24.05-py3 (enroot import "
          "docker://nvcr.io#nvidia/pytorch:24.05-py3).",
      bad="""#!/bin/bash
#SBATCH --gpus-per-node=8
srun --container-image=nvcr.io/nvidia/pytorch:24.05-py3 python train.py
""",
      good="""#!/bin/bash
#SBATCH --gpus-per-node=8
srun --container-image=nvcr.io#nvidia/pytorch:24.05-py3 python train.py
""")
def _enroot_registry_with_slash(ctx: Context) -> Iterator[Any]:
    found = [(line, image, f"{_IMAGE_OPTION}{joiner}{image}")
             for line, image, _, joiner in _pyxis_values(ctx, _IMAGE_OPTION)]
    found += [(line, image, f"enroot import docker://{image}") for line, image in _enroot_imports(ctx)]
    for line, image, written in found:
        registry = _registry_with_slash(image)
        if registry:
            fixed = _enroot_name(image, registry)
            if ":" in registry:  # the port reads as a tag with a / in it, which enroot's name pattern refuses
                failure = "enroot refuses the name (\"Invalid image reference\")"
            else:
                failure = (f"enroot looks for {image.split('@')[-1]} on Docker Hub and the import fails (401 "
                           f"Unauthorized or not found) unless your enroot credentials file names {registry}")
            yield (line, f"{written}: enroot sets the registry apart with #, not /, so {failure}; write "
                         f"{written.replace(image, fixed)}", _registry_fix(ctx, line, image, registry))


#: the image types Shifter takes before the image (``docker:ubuntu:22.04``; ``id:`` and ``local:`` name no registry
#: image, so they have no tag): parse_ImageDescriptor in NERSC/shifter's ImageData.c; without a type the site's
#: defaultImageType (docker) is meant
_SHIFTER_TYPES = ("docker", "id", "local")

#: podman run options that take the next word as their value (podman-run(1)); podman-hpc's own flags (--gpu, --mpi …)
#: take none
_PODMAN_VALUE_OPTIONS = frozenset({
    "-v", "--volume", "-w", "--workdir", "-e", "--env", "--env-file", "--name", "--mount", "--device", "--entrypoint",
    "-u", "--user", "--network", "--net", "-p", "--publish", "--gpus", "--cap-add", "--cap-drop", "--security-opt",
    "--ipc", "--pid", "--shm-size", "--ulimit", "--userns", "--hostname", "-h", "--label", "-l", "--memory", "-m",
    "--cpus", "--cpuset-cpus", "--tmpfs", "--pull", "--platform", "--arch", "--os", "--group-add", "--add-host",
    "--dns", "--log-driver", "--log-opt", "--cidfile", "--annotation", "--restart", "--stop-signal", "--uidmap",
    "--gidmap", "--label-file", "--secret", "--pod", "--cgroupns", "--uts", "--stop-timeout", "--timeout",
    "--volumes-from", "--expose", "--health-cmd", "--init-path", "--passwd-entry", "--pidfile", "--requires",
    "--sdnotify", "--seccomp-policy", "--systemd", "--umask", "--variant", "--attach", "-a", "--detach-keys",
    "--image-volume", "--squash-dir"})
#: podman run switches: written alone, they take no value (short ones may be clustered, -it)
_PODMAN_SWITCHES = frozenset({
    "--rm", "-i", "--interactive", "-t", "--tty", "-d", "--detach", "--privileged", "--init", "--read-only",
    "--replace", "--rmi", "-q", "--quiet", "--no-hosts", "-P", "--publish-all", "--http-proxy", "--tls-verify",
    "--gpu", "--mpi", "--cuda-mpi", "--openmpi-pmi2", "--openmpi-pmix", "--nccl", "--cvmfs", "--scratch",
    "--shared-run"})


def _podman_image(words: list[str]) -> str:
    """The image of ``podman-hpc run [options] IMAGE [command …]`` (``words`` start after run): the first word that is
    neither an option nor the value of one; "" where an option the tables do not know, written without ``=``,
    leaves it unclear whether the next word is its value."""
    k = 0
    while k < len(words):
        word = words[k]
        if word == "--":
            return words[k + 1] if k + 1 < len(words) else ""
        if not word.startswith("-") or word == "-":
            return word
        if "=" in word:
            k += 1
        elif word in _PODMAN_VALUE_OPTIONS:
            k += 2
        elif word in _PODMAN_SWITCHES or re.fullmatch(r"-[itdPq]+", word):
            k += 1
        else:
            return ""
    return ""


def _built_here(ctx: Context) -> set[str]:
    """The image names the script gives images it builds or tags itself (``podman-hpc build -t NAME``, ``podman-hpc
    tag SRC NAME``): local names, whose :latest is the script's own build, not a registry's."""
    names: set[str] = set()
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        words = run_words([str(v) for v in cmd.argv])
        if len(words) < 3 or words[0].rsplit("/", 1)[-1] not in ("podman-hpc", "podman"):
            continue
        if words[1] == "tag":
            names.update(w for w in words[3:] if not w.startswith("-"))
        elif words[1] in ("build", "buildx"):
            names.update(value for k, w in enumerate(words) for value in
                         ([words[k + 1]] if w in ("-t", "--tag") and k + 1 < len(words) else
                          [w.split("=", 1)[1]] if w.startswith("--tag=") else []))
    return names


def registry_images(ctx: Context) -> list[tuple[int, str, str]]:
    """``(line, image, where)`` for each registry image a runtime without a layer in the models fetches or runs:
    Shifter (``shifter --image=…``, its sbatch/srun ``--image`` option, ``shifterimg pull``), podman-hpc (``run``,
    ``shared-run``, ``pull``), enroot (``enroot import docker://…``) and pyxis (``--container-image``). ``image`` is
    resolved through the script's variables, in the runtime's own spelling (``docker:ubuntu:22.04`` for Shifter,
    ``nvcr.io#nvidia/pytorch:24.05-py3`` for enroot); ``where`` names the command or option. Paths, squashfs files
    and values a variable the script does not set leaves open are left out."""
    out: list[tuple[int, str, str]] = []
    out += [(d.line, ctx.parsed.resolve(str(d.value), d.line), "#SBATCH --image") for d in ctx.parsed.directives
            if d.flag == "--image" and d.applied]
    for step in steps(ctx):
        srun = step.chain.srun
        if srun is not None:
            out += [(step.line, ctx.parsed.resolve(v, step.line), "srun --image")
                    for v, _ in _option_values(srun.extra, "--image")]
    local = _built_here(ctx)
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        words = run_words([str(v) for v in cmd.argv])
        program = words[0].rsplit("/", 1)[-1] if words else ""
        found: list[tuple[str, str]] = []
        if program == "shifter":
            k = 1
            while k < len(words) and words[k].startswith("-") and words[k] != "--":
                name, eq, value = words[k].partition("=")
                if name in ("--image", "-i"):
                    value = value if eq else (words[k + 1] if k + 1 < len(words) else "")
                    found.append((value, "shifter --image"))
                # options with a value of their own (--entrypoint and --workdir take one only after =)
                k += 1 if eq or name not in ("--image", "-i", "-V", "--volume", "-m", "--module", "-e", "--env",
                                             "--env-file") else 2
        elif program == "shifterimg" and len(words) > 2 and words[1] == "pull":
            found += [(w, "shifterimg pull") for w in words[2:] if not w.startswith("-")][-1:]
        elif program == "podman-hpc" and len(words) > 2 and words[1] == "pull":
            found += [(w, "podman-hpc pull") for w in words[2:] if not w.startswith("-")][:1]
        elif program == "podman-hpc" and len(words) > 2 and words[1] in _PODMAN_HPC_RUNS:
            image = _podman_image(words[2:])
            if image and image not in local:
                found.append((image, f"podman-hpc {words[1]}"))
        out += [(cmd.line, ctx.parsed.resolve(value, cmd.line), where) for value, where in found if value]
    out += [(line, f"docker://{image}", "enroot import") for line, image in _enroot_imports(ctx)]
    out += [(line, image, f"pyxis's {_IMAGE_OPTION}") for line, image, _, _ in _pyxis_values(ctx, _IMAGE_OPTION)
            if not image.startswith((".", "/", "~")) and not _SQUASHFS_NAME.search(image)]
    return [(line, image, where) for line, image, where in out
            if image and "$" not in image and "`" not in image and not image.startswith((".", "/"))]


def image_tag(image: str, where: str) -> str | None:
    """The tag a registry image names (``latest``, ``24.05-py3``), "" for none (the runtime then takes :latest), None
    where a tag does not apply: a digest (``@sha256:…``), or a Shifter ``id:``/``local:`` image."""
    if where.endswith("--image") or where == "shifterimg pull":
        kind, colon, rest = image.partition(":")
        if colon and kind in _SHIFTER_TYPES:
            if kind != "docker":
                return None
            image = rest
    name = image.split("://", 1)[-1].rsplit("#", 1)[-1].rsplit("/", 1)[-1]
    if "@" in name:
        return None
    return name.partition(":")[2]
