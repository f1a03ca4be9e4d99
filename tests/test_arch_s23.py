"""The CPU architecture of a site (``cpu_arch``): the profile field and its checks, detection from ``Arch=``, the image
the examples and lessons pull on Arm nodes, and the lint rules that need it (HPC418-HPC420, HPC710, HPC711)."""

from __future__ import annotations

import pytest

from hpcwidgets import lessons
from hpcwidgets.errors import HpcWidgetsError
from hpcwidgets.examples import EXAMPLE_IMAGES, examples
from hpcwidgets.lint import lint, rules
from hpcwidgets.profiles import load_profile
from hpcwidgets.run.detect import profile_from_scontrol
from hpcwidgets.spec.profile import (ClusterProfile, Partition, arch_name, arch_named_files, image_arches,
                                     image_repository)
from hpcwidgets.spec.slurm import SlurmJob

NGC = "docker://nvcr.io/nvidia/pytorch:24.05-py3"
HUB = EXAMPLE_IMAGES["other"][0]
ARCH_CODES = ("HPC418", "HPC419", "HPC420", "HPC710", "HPC711")

#: an NVIDIA Grace CPU site without GPUs (as Isambard 3): the one kind of site where the examples used to pull an
#: image with no arm64 build
GRACE = """name = "grace"
runtimes = ["apptainer"]
gpu_vendor = "none"
cpu_arch = "{arch}"
default_partition = "grace"

[modules]
apptainer = "apptainer"

[[partitions]]
name = "grace"
max_time = "24:00:00"
cpus_per_node = 144
mem_per_node = "230G"
is_default = true
"""

#: a GH200 site (4 GPUs per node, aarch64), as CSCS Alps or Isambard-AI
GH200 = """name = "gh200"
runtimes = ["apptainer"]
gpu_vendor = "nvidia"
cpu_arch = "aarch64"
default_partition = "workq"
default_gpu_partition = "workq"

[modules]
apptainer = "apptainer"

[[partitions]]
name = "workq"
max_time = "24:00:00"
max_nodes = 64
cpus_per_node = 288
mem_per_node = "460G"
gpus_per_node = 4
is_default = true
"""


def _site(tmp_path, text: str, name: str = "site") -> ClusterProfile:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return load_profile(path)


def _arm(profile: str = "generic") -> ClusterProfile:
    return load_profile(profile).replace(cpu_arch="aarch64")


def _codes(text: str, profile, path: str = "") -> list[str]:
    return [f.code for f in lint(text, profile, path=path) if f.code in ARCH_CODES]


# ------------------------------------------------------------------------------------------------
# the profile field


def test_arch_names_are_read_in_slurm_words():
    assert [arch_name(w) for w in ("aarch64", "arm64", "ARM64", "amd64", "x86_64", "linux/arm64/v8", "ppc64el")] == \
        ["aarch64", "aarch64", "aarch64", "x86_64", "x86_64", "aarch64", "ppc64le"]
    assert arch_name("arm") == arch_name("386") == arch_name("$ARCH") == ""


def test_a_profile_takes_the_three_architectures_and_empty(tmp_path):
    for arch in ("x86_64", "aarch64", "ppc64le", ""):
        assert _site(tmp_path, GRACE.format(arch=arch)).cpu_arch == arch


@pytest.mark.parametrize("value,expected", [
    ("arm64", 'write cpu_arch = "aarch64"'),
    ("amd64", 'write cpu_arch = "x86_64"'),
    ("sparc", "write x86_64, aarch64 or ppc64le"),
])
def test_a_wrong_architecture_names_the_fix(tmp_path, value, expected):
    with pytest.raises(HpcWidgetsError) as err:
        _site(tmp_path, GRACE.format(arch=value))
    assert "cpu_arch" in str(err.value) and expected in str(err.value)


def test_a_partitions_own_architecture_is_checked_and_wins(tmp_path):
    text = GRACE.format(arch="x86_64") + 'cpu_arch = "arm64"\n'
    with pytest.raises(HpcWidgetsError) as err:
        _site(tmp_path, text)
    assert "partitions" in str(err.value) and 'write cpu_arch = "aarch64"' in str(err.value)
    site = _site(tmp_path, GRACE.format(arch="x86_64") + 'cpu_arch = "aarch64"\n')
    part = site.partition("grace")
    assert site.arch_of(part) == "aarch64" and site.arch_of(None) == "x86_64"
    assert site.arch_for(SlurmJob(partition="grace")) == "aarch64"


def test_site_arch_is_the_profiles_else_what_every_partition_says():
    base = load_profile("generic")
    assert base.cpu_arch == "" and base.site_arch() == ""
    same = base.replace(partitions=tuple(p.replace(cpu_arch="aarch64") for p in base.partitions))
    assert same.site_arch() == "aarch64"
    parts = base.partitions
    differ = base.replace(partitions=(parts[0].replace(cpu_arch="aarch64"), *parts[1:]))
    assert differ.site_arch() == ""


def test_profile_check_refuses_an_example_image_without_a_build_for_the_nodes(tmp_path):
    text = GRACE.format(arch="aarch64") + f'\n[examples]\nimage_source = "{HUB}"\n'
    with pytest.raises(HpcWidgetsError) as err:
        _site(tmp_path, text.replace("[[partitions]]", "[[partitions]]", 1))
    message = str(err.value)
    assert "examples.image_source" in message and "x86_64 only" in message and "nvcr.io/nvidia/pytorch" in message
    # the same source is fine on x86_64 nodes, and NGC's on Arm ones
    assert _site(tmp_path, GRACE.format(arch="x86_64") + f'\n[examples]\nimage_source = "{HUB}"\n')
    assert _site(tmp_path, GRACE.format(arch="aarch64") + f'\n[examples]\nimage_source = "{NGC}"\n')


def test_the_profile_round_trips_with_its_architecture(tmp_path):
    from hpcwidgets.profiles import profile_to_toml
    site = _site(tmp_path, GH200)
    again = tmp_path / "again.toml"
    again.write_text(profile_to_toml(site), encoding="utf-8")
    assert load_profile(again) == site


# ------------------------------------------------------------------------------------------------
# detection

NODE = ("NodeName={name} Arch={arch} CoresPerSocket=72 CPUAlloc=0 CPUEfctv=144 CPUTot=144 Gres={gres} "
        "RealMemory=240000 State=IDLE ThreadsPerCore=1 Partitions={part}")
PART = "PartitionName={name} Default={default} MaxTime=1-00:00:00 Nodes={nodes} State=UP TotalNodes=2"


def _detect(nodes: list[tuple[str, str, str, str]], parts: list[tuple[str, str, str]]):
    notes: list[str] = []
    node_text = "\n".join(NODE.format(name=n, arch=a, gres=g, part=p) for n, a, g, p in nodes)
    part_text = "\n".join(PART.format(name=n, default=d, nodes=ns) for n, d, ns in parts)
    return profile_from_scontrol(part_text, node_text, notes=notes), notes


def test_detection_reads_arch_for_the_whole_site():
    site, notes = _detect([("a1", "aarch64", "gpu:4", "normal"), ("a2", "aarch64", "gpu:4", "normal")],
                          [("normal", "YES", "a[1-2]")])
    assert site.cpu_arch == "aarch64" and site.partition("normal").cpu_arch == ""
    assert not [n for n in notes if "architecture" in n]


def test_detection_gives_each_partition_its_own_where_they_differ():
    site, notes = _detect([("x1", "x86_64", "(null)", "cpu"), ("g1", "aarch64", "gpu:4", "gh")],
                          [("cpu", "YES", "x1"), ("gh", "NO", "g1")])
    assert site.cpu_arch == ""
    assert site.partition("cpu").cpu_arch == "x86_64" and site.partition("gh").cpu_arch == "aarch64"
    assert any("differs by partition" in n and "gh: aarch64" in n for n in notes)
    assert site.arch_for(SlurmJob(partition="gh")) == "aarch64"


def test_detection_leaves_out_a_partition_whose_nodes_differ_and_says_so():
    site, _ = _detect([("x1", "x86_64", "(null)", "mixed,cpu"), ("g1", "aarch64", "(null)", "mixed"),
                       ("x2", "x86_64", "(null)", "cpu")],
                      [("cpu", "YES", "x[1-2]"), ("mixed", "NO", "x1,g1")])
    mixed = site.partition("mixed")
    assert mixed.cpu_arch == "" and "differ in CPU architecture" in mixed.description
    # the site has no one architecture, so the mixed partition inherits none
    assert site.cpu_arch == "" and site.arch_of(mixed) == ""
    assert site.partition("cpu").cpu_arch == "x86_64"


def test_detection_of_saved_gh200_output():
    """``profile detect --from-dir`` on the saved scontrol records of a GH200 site (tests/data/profiles/gh200: four
    nodes of four GH200, 288 Arm cores each): the site's architecture is aarch64."""
    from pathlib import Path
    from hpcwidgets.run.detect import detect_from_saved
    site = detect_from_saved(Path(__file__).parent / "data" / "profiles" / "gh200")
    assert site.cpu_arch == "aarch64"
    assert [(p.name, p.gpus_per_node, p.cpus_per_node) for p in site.partitions] == [("normal", 4, 288),
                                                                                      ("debug", 4, 288)]


# ------------------------------------------------------------------------------------------------
# the examples and the lessons


def test_on_grace_nodes_the_examples_pull_ngcs_image_and_say_why(tmp_path):
    exs = examples(_site(tmp_path, GRACE.format(arch="aarch64")))
    text = exs["single-gpu"].render()
    assert NGC in text and HUB not in text and "pytorch_24.05.sif" in text
    for name in ("single-gpu", "multi-node-torchrun"):
        description = exs[name].description
        assert "aarch64" in description and HUB in description and "arm64" in description, description
    # every example of the site lints clean with it (the jupyter one runs the same file)
    site = _site(tmp_path, GRACE.format(arch="aarch64"))
    for name, ex in exs.items():
        assert not _codes(ex.render(), site), name


def test_without_an_architecture_the_cpu_site_keeps_its_image(tmp_path):
    exs = examples(_site(tmp_path, GRACE.format(arch="")))
    assert HUB in exs["single-gpu"].render()
    assert "aarch64" not in exs["single-gpu"].description


def test_a_gh200_site_keeps_ngcs_image_with_no_note(tmp_path):
    site = _site(tmp_path, GH200)
    exs = examples(site)
    assert NGC in exs["single-gpu"].render()
    assert "aarch64" not in exs["single-gpu"].description
    for name, ex in exs.items():
        assert not _codes(ex.render(), site), name


def test_a_site_whose_image_has_no_known_replacement_is_told_to_set_one(tmp_path):
    description = examples(_site(tmp_path, GRACE.format(arch="ppc64le")))["single-gpu"].description
    assert "ppc64le" in description and "examples.image_source" in description and "has no build" in description


def test_the_profiles_own_source_is_kept_and_not_explained(tmp_path):
    source = "docker://armswdev/pytorch-arm-neoverse:r24.07-torch-2.3.0-openblas"
    exs = examples(_site(tmp_path, GRACE.format(arch="aarch64") + f'\n[examples]\nimage_source = "{source}"\n'))
    assert source in exs["single-gpu"].render() and "aarch64" not in exs["single-gpu"].description


def test_the_lessons_pull_what_the_examples_pull(tmp_path):
    arm = _site(tmp_path, GRACE.format(arch="aarch64"))
    assert lessons.site_pull(arm).source == NGC and lessons.site_image(arm).endswith("pytorch_24.05.sif")
    plain = _site(tmp_path, GRACE.format(arch=""))
    assert lessons.site_pull(plain).source == HUB and lessons.site_image(plain).endswith("pytorch_2.3.1.sif")
    # the example's own pull writes the same file from the same source
    pull = examples(arm)["single-gpu"].model.prepare[0]
    assert (pull.source, pull.dest) == (lessons.site_pull(arm).source, lessons.site_pull(arm).dest)


# ------------------------------------------------------------------------------------------------
# image and file names


@pytest.mark.parametrize("ref,repo", [
    ("docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime", "docker.io/pytorch/pytorch"),
    ("pytorch/pytorch@sha256:0123", "docker.io/pytorch/pytorch"),
    ("docker://docker.io/pytorch/pytorch:2.3.1", "docker.io/pytorch/pytorch"),
    ("index.docker.io/pytorch/pytorch", "docker.io/pytorch/pytorch"),
    ("ubuntu:24.04", "docker.io/library/ubuntu"),
    ("nvcr.io/nvidia/pytorch:24.05-py3", "nvcr.io/nvidia/pytorch"),
    ("localhost:5000/me/img:1", "localhost:5000/me/img"),
    ("oras://ghcr.io/me/img:1", ""),
    ("docker://$IMAGE", ""),
])
def test_image_repository(ref, repo):
    assert image_repository(ref) == repo


def test_only_known_images_have_architectures():
    assert image_arches("docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime") == ("x86_64",)
    assert image_arches(NGC) == ("x86_64", "aarch64") and image_arches("docker://someone/pytorch:1") == ()


def test_ngc_on_power_nodes_is_reported_and_on_arm_nodes_not():
    """NGC's PyTorch image has amd64 and arm64 builds (one table for lint, profile check and the examples)."""
    from hpcwidgets.lint import lint
    from hpcwidgets.profiles import load_profile
    script = f"#!/bin/bash\n#SBATCH --time=01:00:00\napptainer pull pytorch.sif {NGC}\n"
    for arch, expected in (("ppc64le", ["HPC419"]), ("aarch64", []), ("x86_64", [])):
        site = load_profile("generic").replace(cpu_arch=arch)
        assert [f.code for f in lint(script, site) if f.code.startswith("HPC419")] == expected, arch


def test_files_named_for_an_architecture():
    text = ("pip install https://download.pytorch.org/whl/cu121/torch-2.3.0%2Bcu121-cp311-cp311-linux_x86_64.whl "
            "numpy-1.26.4-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl "
            "Miniconda3-py311_24.1.2-0-Linux-x86_64.sh Miniforge3-$(uname)-$(uname -m).sh tool_1.0_arm64.deb "
            "tool_1.0_all.deb tool-1.0.x86_64.rpm tool-1.0.noarch.rpm")
    found = [(name.split("-")[0], kind, arch) for name, kind, arch in arch_named_files(text)]
    assert found == [("torch", "a Python wheel", "x86_64"), ("numpy", "a Python wheel", "aarch64"),
                     ("Miniconda3", "a conda installer", "x86_64"), ("tool_1.0_arm64.deb", "a Debian package", "aarch64"),
                     ("tool", "an RPM package", "x86_64")]


# ------------------------------------------------------------------------------------------------
# lint

HEAD = "#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --time=00:30:00\nmodule load apptainer\n"
GUARD = '[ -f "$SCRATCH/img.sif" ] || '


@pytest.mark.parametrize("code", ARCH_CODES)
def test_each_rules_examples_on_an_arm_site(code):
    r = rules()[code]
    bad = lint(r.bad, _arm())
    assert code in [f.code for f in bad], [f.format() for f in bad]
    assert not [f for f in bad if f.code != code and f.severity != "info"], [f.format() for f in bad]
    assert not [f for f in lint(r.good, _arm()) if f.severity != "info"]
    # without the architecture the profile says nothing, so neither does the rule
    assert code not in [f.code for f in lint(r.bad, load_profile("generic"))]
    assert code not in [f.code for f in lint(r.bad)]


@pytest.mark.parametrize("line,arch,found", [
    ("apptainer pull --arch amd64 img.sif docker://alpine:3.20", "aarch64", True),
    ("apptainer pull --arch=amd64 img.sif docker://alpine:3.20", "aarch64", True),
    ("singularity pull --platform linux/amd64 img.sif docker://alpine:3.20", "aarch64", True),
    ("apptainer build --arch amd64 img.sif docker://alpine:3.20", "aarch64", True),
    ("apptainer pull --arch arm64 img.sif docker://alpine:3.20", "x86_64", True),
    ("apptainer pull --arch arm --arch-variant 6 img.sif docker://alpine:3.20", "aarch64", True),
    ("apptainer pull --arch arm64 img.sif docker://alpine:3.20", "aarch64", False),
    ("apptainer pull --arch amd64 img.sif docker://alpine:3.20", "x86_64", False),
    ("apptainer pull --arch \"$ARCH\" img.sif docker://alpine:3.20", "aarch64", False),
    ("apptainer pull img.sif docker://alpine:3.20", "aarch64", False),
])
def test_hpc418_pull_for_another_architecture(line, arch, found):
    text = HEAD + GUARD + line + "\n"
    assert ("HPC418" in _codes(text, load_profile("generic").replace(cpu_arch=arch))) is found


def test_hpc418_names_the_partitions_architecture(tmp_path):
    site = load_profile("generic")
    parts = tuple(p.replace(cpu_arch="aarch64") if p.name == "gpu" else p for p in site.partitions)
    site = site.replace(cpu_arch="x86_64", partitions=parts)
    text = HEAD + GUARD + "apptainer pull --arch amd64 img.sif docker://alpine:3.20\n"
    found = [f for f in lint(text, site) if f.code == "HPC418"]
    assert found and "partition gpu" in found[0].message and "aarch64" in found[0].message
    assert "--arch arm64" in found[0].message
    # the same pull in a job on the x86_64 partition is right
    assert "HPC418" not in _codes(text.replace("--partition=gpu", "--partition=cpu"), site)


@pytest.mark.parametrize("line,found", [
    ("apptainer pull img.sif docker://pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime", True),
    ("apptainer exec docker://pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime python train.py", True),
    ("apptainer build img.sif docker://pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime", True),
    ("ch-image pull pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime", True),
    (f"apptainer pull img.sif {NGC}", False),
    ("apptainer pull img.sif docker://someone/pytorch:2.3.0", False),
    # an explicit --arch is HPC418's business, not this rule's
    ("apptainer pull --arch amd64 img.sif docker://pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime", False),
])
def test_hpc419_image_without_a_build_for_the_nodes(line, found):
    text = HEAD + ("" if line.startswith(("apptainer exec", "ch-image")) else GUARD) + line + "\n"
    assert ("HPC419" in _codes(text, _arm())) is found
    assert "HPC419" not in _codes(text, load_profile("generic").replace(cpu_arch="x86_64"))


def test_hpc419_reads_the_image_through_a_variable():
    text = HEAD + 'IMG=docker://pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime\n' + GUARD + 'apptainer pull img.sif "$IMG"\n'
    assert "HPC419" in _codes(text, _arm())


@pytest.mark.parametrize("body,found", [
    ("pip install https://download.pytorch.org/whl/cu121/torch-2.3.0%2Bcu121-cp311-cp311-linux_x86_64.whl\n", True),
    ("URL=https://repo.anaconda.com/miniconda/Miniconda3-latest-Linux-x86_64.sh\nwget \"$URL\"\n", True),
    ("wget https://example.org/tool_1.0_amd64.deb\n", True),
    ("srun bash -c 'wget https://example.org/tool-1.0.x86_64.rpm'\n", True),
    ("pip install torch==2.3.0\n", False),
    ("pip install numpy-1.26.4-cp311-cp311-manylinux2014_aarch64.whl\n", False),
    ("wget \"https://example.org/Miniforge3-$(uname)-$(uname -m).sh\"\n", False),
    ("case $(uname -m) in\n  x86_64) f=Miniforge3-Linux-x86_64.sh ;;\n  aarch64) f=Miniforge3-Linux-aarch64.sh ;;\nesac\n"
     "wget \"https://example.org/$f\"\n", False),
    ("# Miniforge3-Linux-x86_64.sh is for x86 clusters\necho done\n", False),
])
def test_hpc420_files_for_another_architecture_in_a_job(body, found):
    assert ("HPC420" in _codes(HEAD + body, _arm())) is found


def test_hpc420_on_an_x86_site_reports_arm_files():
    text = HEAD + "pip install numpy-1.26.4-cp311-cp311-manylinux2014_aarch64.whl\n"
    found = [f for f in lint(text, load_profile("generic").replace(cpu_arch="x86_64")) if f.code == "HPC420"]
    assert found and "aarch64" in found[0].message and "x86_64" in found[0].message


DEF = "Bootstrap: docker\nFrom: {base}\n\n%post\n{post}"


@pytest.mark.parametrize("base,post,expected", [
    ("pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime", "    echo ok\n", ["HPC710"]),
    ("nvcr.io/nvidia/pytorch:24.05-py3", "    wget https://x.org/Miniforge3-Linux-x86_64.sh\n", ["HPC711"]),
    ("nvcr.io/nvidia/pytorch:24.05-py3", "    pip install /tmp/flash_attn-2.5.8-cp310-cp310-linux_x86_64.whl\n",
     ["HPC711"]),
    ("nvcr.io/nvidia/pytorch:24.05-py3", "    wget \"https://x.org/Miniforge3-$(uname)-$(uname -m).sh\"\n", []),
    ("nvcr.io/nvidia/pytorch:24.05-py3", "    pip install --no-cache-dir flash-attn==2.5.8\n", []),
])
def test_build_files_on_an_arm_site(base, post, expected):
    text = DEF.format(base=base, post=post)
    assert _codes(text, _arm(), path="image.def") == expected
    assert _codes(text, load_profile("generic"), path="image.def") == []


def test_dockerfiles_too_and_targetarch_is_left_alone():
    text = ("FROM pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime\n"
            "RUN wget https://x.org/Miniforge3-Linux-x86_64.sh && bash Miniforge3-Linux-x86_64.sh -b -p /opt/conda\n")
    assert _codes(text, _arm(), path="Dockerfile") == ["HPC710", "HPC711"]
    picked = ("FROM nvcr.io/nvidia/pytorch:24.05-py3\nARG TARGETARCH\n"
              "RUN if [ \"$TARGETARCH\" = amd64 ]; then wget https://x.org/Miniforge3-Linux-x86_64.sh; fi\n")
    assert _codes(picked, _arm(), path="Dockerfile") == []


_GH_HEAD = "#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --gres=gpu:4\n#SBATCH --time=01:00:00\nmodule load apptainer\n"
_NGC_DEF = "Bootstrap: docker\nFrom: nvcr.io/nvidia/pytorch:24.05-py3\n%post\n"
#: a GH200 set of jobs and build files, each with the architecture rules it draws on aarch64 nodes
_GH200_SET = {
    "amd64-only-image.sh": (_GH_HEAD + "apptainer pull pt.sif docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime\n"
                            "srun apptainer exec --nv pt.sif python train.py\n", ["HPC419"]),
    "arch-amd64.sh": (_GH_HEAD + "apptainer pull --arch amd64 pt.sif docker://nvcr.io/nvidia/pytorch:24.05-py3\n"
                      "srun apptainer exec --nv pt.sif python train.py\n", ["HPC418"]),
    "x86-wheel.sh": (_GH_HEAD + "srun apptainer exec --nv ngc.sif pip install --user "
                     "https://x.org/flash_attn-2.5.8-cp310-cp310-linux_x86_64.whl\n", ["HPC420"]),
    "build-x86.def": (_NGC_DEF + "    wget https://x.org/Miniforge3-Linux-x86_64.sh\n"
                      "    bash Miniforge3-Linux-x86_64.sh -b -p /opt/conda\n", ["HPC711"]),
    # and the same work done for the nodes: none of the rules
    "ngc-image.sh": (_GH_HEAD + "apptainer pull ngc.sif docker://nvcr.io/nvidia/pytorch:24.05-py3\n"
                     "srun apptainer exec --nv ngc.sif python train.py\n", []),
    "uname-installer.sh": (_GH_HEAD + 'wget "https://x.org/Miniforge3-Linux-$(uname -m).sh"\n'
                           'bash "Miniforge3-Linux-$(uname -m).sh" -b -p "$SCRATCH/conda"\n', []),
    "build-arm.def": (_NGC_DEF + "    wget https://x.org/Miniforge3-Linux-aarch64.sh\n"
                      "    bash Miniforge3-Linux-aarch64.sh -b -p /opt/conda\n", []),
}


@pytest.mark.parametrize("name", sorted(_GH200_SET))
def test_a_gh200_set_of_jobs_and_build_files(name):
    text, codes = _GH200_SET[name]
    assert _codes(text, _arm().replace(name="gh200"), path=name) == codes


def test_shipped_profiles_say_no_architecture_so_their_examples_are_unchanged():
    for name in ("generic", "midway3", "local"):
        site = load_profile(name)
        assert site.site_arch() == ""
        for ex in examples(site).values():
            assert not _codes(ex.render(), site)


def test_partition_model_accepts_the_field_directly():
    assert Partition(name="gh", cpu_arch="aarch64").cpu_arch == "aarch64"


def test_profile_check_names_the_architecture(tmp_path, capsys):
    """`hpcwidgets profile check` says the site's CPU architecture, or each partition's where they differ."""
    from hpcwidgets.cli import main
    base = ('name = "armsite"\n{top}[[partitions]]\nname = "gh"\ncpus_per_node = 288\n{gh}'
            '[[partitions]]\nname = "x86"\ncpus_per_node = 64\n{x86}')
    cases = [(base.format(top='cpu_arch = "aarch64"\n', gh="", x86=""), ", CPU architecture aarch64"),
             (base.format(top="", gh='cpu_arch = "aarch64"\n', x86='cpu_arch = "x86_64"\n'),
              ", CPU architectures gh aarch64, x86 x86_64"),
             (base.format(top="", gh="", x86=""), "runtimes apptainer")]
    for k, (text, end) in enumerate(cases):
        path = tmp_path / f"site{k}.toml"
        path.write_text(text)
        assert main(["profile", "check", str(path)]) == 0
        assert capsys.readouterr().out.rstrip("\n").endswith(end)
