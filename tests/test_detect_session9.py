"""Detected profiles that give right jobs (audit 9b).

The cluster texts under tests/data/clusters/ are cut down from the audit's captures: `bunya` follows UQ Bunya's
node table (UQ-RCC/hpc-docs guides/qos.md: MI210 and NVIDIA partitions, one A100 cut into 21 MIG slices),
`hpcfund` AMD HPC Fund (AMDResearch/hpcfund #45: DRAIN and DOWN partitions, no default), `puhti` CSC Puhti's
partition order (gputest before gpu) with a restricted and a catch-all partition added, `cpuonly` the memory of
Azure CycleCloud's hb60rs (MemSpecLimit=5120), an AWS ParallelCluster queue without configured memory
(RealMemory=1) and JGU Mogon's one-node default partition.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hpcwidgets.examples import examples
from hpcwidgets.lint import lint
from hpcwidgets.profiles import profile_from_toml, profile_to_toml
from hpcwidgets.run.detect import QOS_ARGV, detect_profile, login_host_name, profile_from_scontrol, real_host_name
from hpcwidgets.spec.profile import check_job
from hpcwidgets.spec.slurm import SlurmJob

CLUSTERS = Path(__file__).parent / "data" / "clusters"


def detected(name: str, notes: list[str] | None = None):
    folder = CLUSTERS / name
    return profile_from_scontrol((folder / "partitions.txt").read_text(), (folder / "nodes.txt").read_text(),
                                 name=name, login_host="login.example.org", notes=notes)


def codes(text: str, profile) -> list[str]:
    return [f.code for f in lint(text, profile) if f.severity == "error"]


def script(*directives: str, body: str) -> str:
    return "\n".join(["#!/bin/bash", *(f"#SBATCH {d}" for d in directives), "export PYTHONNOUSERSITE=1", body, ""])


# -- 1. mixed vendors ---------------------------------------------------------------------------------------
def test_mixed_vendor_site_gets_a_vendor_per_partition():
    notes: list[str] = []
    site = detected("bunya", notes)
    assert site.partition("gpu_rocm").gpu_vendor == "amd"
    assert site.partition("gpu_cuda").gpu_vendor == "nvidia"
    assert site.partition("general").gpu_vendor == ""
    assert any("differs by partition" in n for n in notes)
    assert profile_from_toml(profile_to_toml(site)) == site


def test_lint_uses_the_vendor_of_the_jobs_partition():
    site = detected("bunya")
    rocm = script("--partition=gpu_rocm", "--gres=gpu:mi210:1", "--time=01:00:00",
                  body="apptainer exec --rocm pytorch_rocm6.2.sif python train.py")
    assert "HPC218" not in codes(rocm, site)
    assert "HPC218" in codes(rocm.replace("--rocm", "--nv"), site)
    cuda = script("--partition=gpu_cuda", "--gres=gpu:a100:1", "--time=01:00:00",
                  body="apptainer exec --rocm pytorch_rocm6.2.sif python train.py")
    found = [f for f in lint(cuda, site) if f.code == "HPC218"]
    assert found and "partition gpu_cuda" in found[0].message


def test_profiles_without_partition_vendors_keep_working():
    site = profile_from_toml('name = "old"\ngpu_vendor = "amd"\ndefault_gpu_partition = "g"\n'
                             '[[partitions]]\nname = "g"\ngpus_per_node = 4\ngpu_types = ["mi250"]\n')
    assert site.vendor_of(site.partition("g")) == "amd"
    nv = script("--partition=g", "--gres=gpu:1", body="apptainer exec --nv img.sif python train.py")
    assert "HPC218" in codes(nv, site)


def test_examples_on_an_amd_partition_use_rocm_and_its_image():
    site = detected("bunya").replace(default_gpu_partition="gpu_rocm")
    text = examples(site)["single-gpu"].render()
    assert "--partition=gpu_rocm" in text and "--rocm" in text and "--nv" not in text
    assert "docker://rocm/pytorch" in text


# -- 2. the default GPU partition and the examples' partitions ---------------------------------------------
def test_default_gpu_partition_skips_test_restricted_and_catch_all_partitions():
    site = detected("puhti")
    assert site.default_gpu_partition == "gpu"
    assert site.partition("gpu-lab").restricted is True
    assert site.partition("all").gpu_nodes == 3
    text = examples(site)["single-gpu"].render()
    assert "#SBATCH --partition=gpu\n" in text
    assert "--time=01:00:00" in text


def test_default_gpu_partition_skips_drained_and_devel_partitions():
    site = detected("hpcfund")
    assert site.default_gpu_partition == "mi2104x"
    assert site.partition("mi1008x").state == "DRAIN"
    assert site.partition("mi3008x_long").state == "DOWN"


def test_detection_notes_a_fallback_default_gpu_partition():
    parts = ("PartitionName=gputest AllowAccounts=ALL Default=YES MaxTime=00:15:00 Nodes=g1 State=UP TotalNodes=1\n")
    nodes = "NodeName=g1 CPUTot=8 RealMemory=64000 Gres=gpu:a100:2 Partitions=gputest\n"
    notes: list[str] = []
    site = profile_from_scontrol(parts, nodes, notes=notes)
    assert site.default_gpu_partition == "gputest"
    assert any("default_gpu_partition = 'gputest'" in n for n in notes)


def test_multi_node_example_picks_a_partition_that_allows_two_nodes():
    site = detected("cpuonly")
    ex = examples(site)["multi-node-torchrun"]
    text = ex.render()
    assert "#SBATCH --partition=parallel" in text and "#SBATCH --nodes=2" in text
    assert codes(text, site) == []


def test_multi_node_example_on_one_node_partitions_says_so():
    site = detected("cpuonly")
    site = site.replace(partitions=tuple(p.replace(max_nodes=1) for p in site.partitions))
    ex = examples(site)["multi-node-torchrun"]
    assert "#SBATCH --nodes=1" in ex.render() and "allows 2 nodes" in ex.description
    assert codes(ex.render(), site) == []


# -- 3. node shapes ------------------------------------------------------------------------------------------
def test_gpus_per_node_is_one_nodes_full_gpus_and_types_keep_their_counts():
    part = detected("bunya").partition("gpu_cuda")
    assert part.gpus_per_node == 3  # not the 21 MIG slices of bun005
    assert part.gpus_per_type == ("nvidia_a100_80gb_pcie_1g.10gb:21",)
    assert part.gpus_of_type("a100") == 3


def test_lint_rejects_more_gpus_of_a_type_than_any_node_has():
    site = detected("bunya")
    assert "HPC403" in codes(script("--partition=gpu_cuda", "--gres=gpu:a100:8", "--time=01:00:00",
                                     body="apptainer exec --nv img.sif python train.py"), site)
    mig = script("--partition=gpu_cuda", "--gres=gpu:nvidia_a100_80gb_pcie_1g.10gb:21", "--time=01:00:00",
                 body="apptainer exec --nv img.sif python train.py")
    assert "HPC403" not in codes(mig, site)


def test_multi_node_example_uses_whole_gpus():
    site = detected("bunya").replace(default_gpu_partition="gpu_cuda")
    text = examples(site)["single-gpu"].render()
    assert "--gres=gpu:1" in text or "--gpus-per-node=1" in text
    assert codes(examples(site)["multi-node-torchrun"].render(), site) == []


def test_gpus_per_type_must_name_a_listed_type():
    site = detected("bunya")
    bad = site.replace(partitions=(site.partition("gpu_cuda").replace(gpus_per_type=("v100:2",)),),
                       default_gpu_partition="", default_partition="")
    assert any(p.field == "partitions.gpus_per_type" for p in bad.problems())


# -- 4, 5, 6. memory and small nodes ------------------------------------------------------------------------
def test_memspeclimit_is_subtracted_and_realmemory_1_is_unknown():
    site = detected("cpuonly")
    assert site.partition("hb60rs").mem_per_node == "219G"  # 229376 - 5120 MiB
    assert site.partition("compute").mem_per_node == ""
    job = script("--partition=hb60rs", "--mem=224G", "--time=01:00:00", body="python train.py")
    assert "HPC405" in codes(job, site)


def test_examples_leave_mem_out_where_it_is_unknown():
    site = detected("cpuonly").replace(default_partition="compute")
    site = site.replace(partitions=tuple(p.replace(is_default=p.name == "compute") for p in site.partitions))
    text = examples(site)["single-gpu"].render()
    assert "--mem" not in text


def test_examples_fit_small_cpu_only_nodes():
    site = detected("cpuonly").replace(default_partition="compute")
    site = site.replace(partitions=tuple(p.replace(is_default=p.name == "compute") for p in site.partitions))
    for name in ("single-gpu", "array-sweep", "jupyter"):
        assert not {"HPC405", "HPC406"} & set(codes(examples(site)[name].render(), site)), name


# -- 7. partitions that take no jobs ------------------------------------------------------------------------
def test_lint_says_a_job_on_a_drained_partition_will_not_run():
    site = detected("hpcfund")
    found = [f for f in lint(script("--partition=mi1008x", "--gres=gpu:mi100:1", "--time=01:00:00",
                                    body="apptainer exec --rocm img.sif python train.py"), site)
             if f.code == "HPC401"]
    assert found and "will not run" in found[0].message and "DRAIN" in found[0].message
    assert "mi3008x_long" not in found[0].message


def test_hints_name_only_usable_gpu_partitions():
    site = detected("hpcfund")
    problems = check_job(site, SlurmJob(partition="devel", gpus_per_node=1, time="2-00:00:00"))
    hint = next(p.message for p in problems if p.field == "time")
    assert "mi2104x" in hint and "mi1008x" not in hint and "mi3008x_long" not in hint
    puhti = detected("puhti")
    hint = next(p.message for p in check_job(puhti, SlurmJob(partition="gputest", gpus_per_node=1, time="1-00:00:00"))
                if p.field == "time")
    assert "small" not in hint.split("it: ")[1] and "gpu" in hint


def test_no_default_partition_hint_lists_only_partitions_that_take_jobs():
    site = detected("hpcfund")
    problems = check_job(site, SlurmJob(gpus_per_node=1))
    msg = next(p.message for p in problems if p.field == "partition")
    assert "mi2104x" in msg and "mi1008x" not in msg


def test_gpu_job_on_a_catch_all_cannot_use_more_nodes_than_have_gpus():
    site = detected("puhti")
    problems = check_job(site, SlurmJob(partition="all", nodes=4, gpus_per_node=1, time="01:00:00"))
    assert any(p.field == "nodes" and "only 3" in p.message for p in problems)


# -- 8. login host ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["localhost", "localhost.localdomain", "127.0.1.1", "::1", "ip6-localhost", ""])
def test_loopback_names_are_not_login_hosts(name):
    assert real_host_name(name) == ""


def test_login_host_falls_back_to_the_host_name_then_to_empty():
    assert login_host_name(lambda: "localhost", lambda: "puhti-login11") == "puhti-login11"
    assert login_host_name(lambda: "login1.example.org", lambda: "x") == "login1.example.org"
    assert login_host_name(lambda: "localhost", lambda: "localhost") == ""


def test_detect_leaves_login_host_empty_and_notes_how_to_set_it():
    folder = CLUSTERS / "puhti"
    texts = {"partition": (folder / "partitions.txt").read_text(), "node": (folder / "nodes.txt").read_text(),
             "--version": "slurm 23.02.7", "config": "MpiDefault = none\n", QOS_ARGV[-1]: ""}
    notes: list[str] = []
    site = detect_profile("p", runner=lambda argv: texts[argv[-1]], which=lambda _: None,
                          login_host=lambda: "", notes=notes)
    assert site.login_host == ""
    assert any("set login_host" in n for n in notes)


# -- 9. help ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", ["detect", "show"])
def test_profile_help_says_toml_is_the_default(action):
    out = subprocess.run([sys.executable, "-m", "hpcwidgets", "profile", action, "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "toml: the profile as a TOML file (default" in " ".join(out.split())
    assert "shell: the command or script" not in out
