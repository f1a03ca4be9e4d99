"""Rules for container runtimes the models have no layer for (lint/other_runtimes.py): podman-hpc without --gpu in a
GPU job (HPC230), a pyxis squashfs image named without ./ or / (HPC231), --container-mounts entries pyxis refuses
(HPC232)."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint

GPU = "#!/bin/bash\n#SBATCH -C gpu\n#SBATCH --gpus-per-node=4\n"
CPU = "#!/bin/bash\n#SBATCH -C cpu\n#SBATCH --nodes=1\n"


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


# --- HPC230: podman-hpc run without --gpu -----------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    "srun podman-hpc run --rm -v \"$PWD:/work\" -w /work myimage:1.0 python train.py\n",
    "podman-hpc run --rm myimage:1.0 python train.py\n",
    "srun --ntasks-per-node=4 podman-hpc shared-run --rm myimage:1.0 python train.py\n",
    "train() {\n  srun podman-hpc run --rm myimage:1.0 python train.py\n}\ntrain\n",
    "srun bash -c 'podman-hpc run --rm myimage:1.0 python train.py'\n",
])
def test_podman_hpc_in_a_gpu_job_without_gpu_is_an_error(line):
    hits = found(GPU + line, "HPC230")
    assert len(hits) == 1 and "without --gpu" in hits[0][1] and "add --gpu" in hits[0][1]


def test_srun_that_asks_for_gpus_itself_counts_as_a_gpu_job():
    assert found(CPU + "srun --gpus=4 podman-hpc run --rm myimage:1.0 python train.py\n", "HPC230")


@pytest.mark.parametrize("text", [
    GPU + "srun podman-hpc run --rm --gpu myimage:1.0 python train.py\n",
    GPU + "srun podman-hpc shared-run --gpu --mpi myimage:1.0 python train.py\n",
    GPU + "podman-hpc run --rm --device nvidia.com/gpu=all myimage:1.0 python train.py\n",
    GPU + "podman-hpc run --rm --gpus all myimage:1.0 python train.py\n",
    # another command passes the GPUs in: the one without --gpu is a CPU helper
    GPU + "podman-hpc run --rm myimage:1.0 tar -xf data.tar\nsrun podman-hpc run --rm --gpu myimage:1.0 python t.py\n",
    # options the script does not show may hold --gpu
    GPU + "srun podman-hpc run --rm $PODMAN_OPTS myimage:1.0 python train.py\n",
    GPU + 'srun podman-hpc run --rm "${OPTS[@]}" myimage:1.0 python train.py\n',
    # no GPUs requested, podman-hpc commands that start no container
    CPU + "srun podman-hpc run --rm myimage:1.0 python train.py\n",
    GPU + "podman-hpc pull myimage:1.0\npodman-hpc migrate myimage:1.0\n",
])
def test_podman_hpc_with_gpus_or_without_a_gpu_job_is_quiet(text):
    assert found(text, "HPC230") == []


def test_amd_gpus_are_left_alone():
    text = "#!/bin/bash\n#SBATCH --gpus-per-node=mi250:8\nsrun podman-hpc run --rm rocm/pytorch:6.1 python t.py\n"
    assert found(text, "HPC230") == []


# --- HPC231: a squashfs image pyxis reads as a registry name -----------------------------------------------------

@pytest.mark.parametrize("text, image", [
    (GPU + "srun --container-image=pytorch.sqsh python train.py\n", "pytorch.sqsh"),
    (GPU + "srun --container-image images/pytorch.squashfs python train.py\n", "images/pytorch.squashfs"),
    (GPU + "IMG=pytorch-24.05.sqsh\nsrun --container-image=\"$IMG\" python train.py\n", "pytorch-24.05.sqsh"),
    (GPU + "#SBATCH --container-image=pytorch.sqsh\npython train.py\n", "pytorch.sqsh"),
])
def test_a_squashfs_file_without_a_path_is_pulled_from_a_registry(text, image):
    hits = found(text, "HPC231")
    joiner = " " if f"--container-image {image}" in text else "="  # the option quoted as the script writes it
    assert len(hits) == 1 and f"pulls docker://{image}" in hits[0][1] \
        and f"--container-image{joiner}./{image}" in hits[0][1]


@pytest.mark.parametrize("image", [
    "./pytorch.sqsh", "/scratch/images/pytorch.sqsh", "../images/pytorch.sqsh", '"$SCRATCH/pytorch.sqsh"',
    "nvcr.io#nvidia/pytorch:24.05-py3", "ubuntu:22.04", "$IMAGE",
])
def test_squashfs_paths_and_registry_images_are_quiet(image):
    assert found(GPU + f"srun --container-image={image} python train.py\n", "HPC231") == []
    # a word of its own: bash expands the ~ of ~/images/pytorch.sqsh
    assert found(GPU + "srun --container-image ~/images/pytorch.sqsh python train.py\n", "HPC231") == []


# --- HPC232: --container-mounts entries pyxis refuses ------------------------------------------------------------

@pytest.mark.parametrize("mounts, says", [
    ("/data:/data:ro,rprivate", "'rprivate' is a mount flag after a comma"),
    ("/data:/data,ro", "'ro' is a mount flag after a comma"),
    ("data:/data", "the source 'data' is neither an absolute path nor one starting with ./"),
    ("/data:data", "the target 'data' is not a path in the container"),
    ("/a:/a,,/b:/b", "an empty entry"),
])
def test_mount_entries_pyxis_refuses(mounts, says):
    hits = found(GPU + f"srun --container-image=./p.sqsh --container-mounts={mounts} python t.py\n", "HPC232")
    assert len(hits) == 1 and says in hits[0][1]


def test_mount_entries_in_a_directive_are_read_too():
    text = GPU + "#SBATCH --container-mounts=/data:/data:ro,rprivate\nsrun --container-image=./p.sqsh python t.py\n"
    assert [line for line, _ in found(text, "HPC232")] == [4]


@pytest.mark.parametrize("mounts", [
    "/data:/data:ro+rprivate", "/data", "./data:/data", "/a:/a,/b:/b:ro", "tmpfs:/tmp", '"$PWD:/work"',
    '"$DATA_DIR:/data,$OUT:/out"', "${HOME}/x:/x",
])
def test_mount_entries_pyxis_takes_are_quiet(mounts):
    assert found(GPU + f"srun --container-image=./p.sqsh --container-mounts={mounts} python t.py\n", "HPC232") == []


# from the fact-check of the new rules (audit13 A3)

def _pyxis(text: str) -> list[tuple[str, int]]:
    return [(f.code, f.line) for f in lint(text) if f.code in ("HPC231", "HPC232")]


@pytest.mark.parametrize("mounts", ["/ds:/ds:ro,`pwd`:`pwd`", "\"$(pwd)\":/ws,'/data':/data", "~/d:/d"])
def test_mount_entries_bash_changes_before_pyxis_sees_them_are_left_alone(mounts):
    text = f"#!/bin/bash\nsrun --container-image=./x.sqsh --container-mounts {mounts} python t.py\n"
    assert _pyxis(text) == []


@pytest.mark.parametrize("line", ["srun --container-image=~/images/pytorch.sqsh python t.py",
                                  "srun --container-image=./x.sqsh --container-mounts=~/data:/data python t.py",
                                  "srun --container-image=./x.sqsh --container-mounts /a:/a,~/data:/data python t.py"])
def test_a_tilde_bash_leaves_alone_reaches_pyxis_and_is_reported(line):
    found = [f for f in lint(f"#!/bin/bash\n{line}\n") if f.code in ("HPC231", "HPC232")]
    assert len(found) == 1 and "pyxis receives the ~ itself" in found[0].message and "$HOME/" in found[0].message
