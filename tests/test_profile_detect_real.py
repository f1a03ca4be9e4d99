"""Detection against real clusters' Slurm output (tests/data/profiles/, sources in its README.md).

The session-15 audit (A2) found: AllowQos read as "restricted" (every EPCC Cirrus partition closed), hidden and
other groups' partitions missing (no --all), Intel's gpu:pvc detected as NVIDIA (lint then demanded --nv), MIG
names written mig-2g.20gb counted as full GPUs, and node sizes ignored when only the partition record is known.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcwidgets.cli import main
from hpcwidgets.errors import ProfileError
from hpcwidgets.lint import lint
from hpcwidgets.profiles import profile_from_toml, profile_to_toml
from hpcwidgets.run import detect
from hpcwidgets.run.detect import detect_from_saved, guess_gpu_vendor, profile_from_scontrol
from hpcwidgets.spec.profile import Partition, gpu_type_vendor

DATA = Path(__file__).parent / "data" / "profiles"


def saved(site: str, notes: list[str] | None = None):
    return detect_from_saved(DATA / site, site, notes=notes)


def by_name(profile) -> dict[str, Partition]:
    return {p.name: p for p in profile.partitions}


# ------------------------------------------------------------------------------------------------
# AllowQos, AllowGroups, Hidden (EPCC Cirrus)
# ------------------------------------------------------------------------------------------------
def test_allow_qos_fills_allowed_qos_and_leaves_the_partition_open():
    notes: list[str] = []
    parts = by_name(saved("cirrus", notes))
    for name in ("standard", "highmem", "gpu"):
        assert parts[name].restricted is False, name
    assert parts["gpu"].allowed_qos == ("gpu", "short", "long", "largescale", "reservation", "lowpriority")
    assert "AllowQos" not in parts["gpu"].description
    # the open GPU partition is the examples' partition, without the "no GPU partition is open" note
    assert saved("cirrus").default_gpu_partition == "gpu"
    assert not any("no GPU partition is UP" in n for n in notes)


def test_allow_groups_partitions_are_restricted_and_say_why():
    parts = by_name(saved("cirrus"))
    assert parts["tds"].restricted and parts["gpu-tds"].restricted
    assert parts["gpu-tds"].description == "AllowGroups=w01,z04"
    assert parts["tds"].allowed_qos == ("sysadm", "standard")


def test_hidden_partitions_are_detected_restricted_and_the_list_is_complete():
    site = saved("cirrus")
    parts = by_name(site)
    assert list(parts)[:2] == ["maintenance-all", "maintenance-gpu"]
    for name in ("maintenance-all", "maintenance-gpu"):
        assert parts[name].restricted and "hidden (Hidden=YES)" in parts[name].description
    assert parts["maintenance-gpu"].state == "DOWN"
    assert site.partitions_complete is True
    assert site.problems() == []


def test_detection_asks_scontrol_for_hidden_and_other_groups_partitions():
    calls: list[list[str]] = []
    texts = {detect.PARTITIONS_ARGV: (DATA / "owner" / "partitions.txt").read_text(),
             detect.NODES_ARGV: (DATA / "owner" / "nodes.txt").read_text(),
             detect.VERSION_ARGV: "slurm 23.11.4\n", detect.CONFIG_ARGV: "MpiDefault = pmix\n", detect.QOS_ARGV: ""}

    def runner(argv: list[str]) -> str:
        calls.append(argv)
        return texts[tuple(argv)]
    detect.detect_profile("owner", runner=runner, which=lambda program: None, login_host=lambda: "login.example.org")
    assert calls[0][:2] == ["scontrol", "--all"] and calls[1][:2] == ["scontrol", "--all"]


def test_owner_partition_is_restricted_and_the_open_one_is_not():
    parts = by_name(saved("owner"))
    assert parts["gpu-smithlab"].restricted and parts["gpu-smithlab"].description == "AllowAccounts=smithlab"
    assert not parts["gpu"].restricted and parts["gpu"].allowed_qos == ()


# ------------------------------------------------------------------------------------------------
# GPU vendor from type names
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, vendor", [
    # Intel, as real job scripts write them: TAMU ACES, TU Darmstadt, Clementina XXI, Intel's Arc partitions
    ("pvc", "intel"), ("pvc128g", "intel"), ("max1550", "intel"), ("max_1100", "intel"), ("intel_xt1550", "intel"),
    ("intel_max_1550", "intel"), ("ARC770", "intel"), ("flex170", "intel"),
    ("GV100GL", "nvidia"), ("tesla", "nvidia"), ("kepler", "nvidia"), ("maxwell", "nvidia"), ("a100", "nvidia"),
    ("v100-32g", "nvidia"), ("nvidia_a100_80gb_pcie", "nvidia"), ("1g.10gb", "nvidia"), ("mig-2g.20gb", "nvidia"),
    ("mi250", "amd"), ("MI300A", "amd"),
    ("fast", ""), ("gpu", ""),
])
def test_gpu_type_vendor(name, vendor):
    assert gpu_type_vendor(name) == vendor


def test_intel_pvc_partition_is_intel_and_lint_asks_for_no_nv():
    notes: list[str] = []
    site = saved("gres", notes)
    assert by_name(site)["pvc"].gpu_vendor == "intel"
    script = ("#!/bin/bash\n#SBATCH --partition=pvc\n#SBATCH --gres=gpu:pvc:1\n#SBATCH --time=01:00:00\n"
              "apptainer exec --bind /dev/dri /scratch/u/xpu.sif python train.py\n")
    assert [f for f in lint(script, site) if f.code == "HPC201"] == []
    # the same job on the V100 partition needs --nv
    nvidia = script.replace("=pvc", "=gpu").replace("gpu:pvc:1", "gpu:v100:1")
    assert [f.code for f in lint(nvidia, site) if f.code == "HPC201"] == ["HPC201"]


def test_a_vendor_no_name_says_is_noted_as_a_guess():
    notes: list[str] = []
    saved("gres", notes)
    guesses = [n for n in notes if "is a guess" in n]
    assert len(guesses) == 1 and "shared-gpu (no GPU type)" in guesses[0]  # gpu:2,shard:64
    assert "tux" not in guesses[0] and "pvc" not in guesses[0]            # tesla/kepler, pvc: known names


def test_untyped_gpus_take_the_vendor_a_node_feature_names_but_not_a_cpu_feature():
    assert guess_gpu_vendor([], True, ["pvc", "xelink4"]) == "intel"
    assert guess_gpu_vendor([], True, ["intel", "icelake"]) == "nvidia"   # an Intel CPU with NVIDIA GPUs
    assert guess_gpu_vendor(["pvc", "a100"], True) == "mixed"


# ------------------------------------------------------------------------------------------------
# MIG names, node sizes from the partition record
# ------------------------------------------------------------------------------------------------
def test_mig_slices_written_with_a_mig_prefix_are_not_counted_as_gpus():
    parts = "PartitionName=gpu Nodes=g1 State=UP MaxTime=1-00:00:00\n"
    nodes = "NodeName=g1 CPUTot=64 RealMemory=512000 Gres=gpu:a100:2,gpu:mig-2g.20gb:3 Partitions=gpu\n"
    part = profile_from_scontrol(parts, nodes).partitions[0]
    assert part.gpus_per_node == 2 and part.gpus_of_type("mig-2g.20gb") == 3


def test_partition_record_alone_gives_node_sizes_and_a_note():
    notes: list[str] = []
    part = saved("aris", notes).partitions[0]   # real multi-line output, no node records published
    assert (part.name, part.cpus_per_node, part.mem_per_node, part.max_nodes) == ("compute", 128, "496G", 48)
    assert any("no node records for compute" in n for n in notes)


def test_uneven_totals_give_no_cpu_count():
    parts = "PartitionName=mixed Nodes=n[1-2] State=UP TotalCPUs=128 TotalNodes=3 MaxMemPerNode=UNLIMITED\n"
    part = profile_from_scontrol(parts, "").partitions[0]
    assert part.cpus_per_node is None and part.mem_per_node == ""


# ------------------------------------------------------------------------------------------------
# the new fields
# ------------------------------------------------------------------------------------------------
def test_allowed_qos_and_partitions_complete_round_trip_through_toml():
    site = saved("cirrus").replace(partitions_complete=False)
    text = profile_to_toml(site)
    assert "partitions_complete = false" in text and 'allowed_qos = ["sysadm", "highmem", "reservation"]' in text
    assert profile_from_toml(text) == site


def test_allowed_qos_is_checked():
    bad = Partition(name="gpu", qos="standard", allowed_qos=("gpu", "gpu", "bad qos"))
    messages = [str(p) for p in bad.problems()]
    assert any("'bad qos' is not a QOS name" in m for m in messages)
    assert any("listed twice" in m for m in messages)
    assert any(m.startswith("qos: QOS 'standard' is not among the allowed QOS") for m in messages)
    assert Partition(name="gpu", qos="gpu", allowed_qos=("gpu", "short")).problems() == []


# ------------------------------------------------------------------------------------------------
# detection from saved output
# ------------------------------------------------------------------------------------------------
def test_detect_from_dir_writes_a_profile_that_loads(tmp_path, capsys):
    out = tmp_path / "cirrus.toml"
    assert main(["profile", "detect", "--name", "cirrus", "--from-dir", str(DATA / "cirrus"), "-o", str(out)]) == 0
    site = profile_from_toml(out.read_text())
    assert site.mpi_default == "pmi2" and "gpu" in site.slurm_partition_names()
    err = capsys.readouterr().err
    assert "set runtimes" in err and "login_host" in err


def test_detect_from_dir_reads_the_version_from_the_config(tmp_path):
    (tmp_path / "partitions.txt").write_text((DATA / "owner" / "partitions.txt").read_text())
    (tmp_path / "config.txt").write_text("ClusterName             = owner\nSLURM_VERSION           = 23.02.7\n")
    assert detect_from_saved(tmp_path).scheduler_version == "23.02"


def test_detect_from_dir_without_partitions_names_the_commands(tmp_path):
    notes: list[str] = []
    with pytest.raises(ProfileError) as info:
        detect_from_saved(tmp_path, notes=notes)
    assert "has no partitions.txt" in str(info.value)
    assert "scontrol --all --oneliner show partition > partitions.txt" in str(info.value)
    with pytest.raises(ProfileError, match="is not a folder"):
        detect_from_saved(tmp_path / "missing")


def test_detect_help_says_which_commands_save_the_files(capsys):
    with pytest.raises(SystemExit):
        main(["profile", "detect", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for line in detect.saved_commands().splitlines():
        assert line in help_text
