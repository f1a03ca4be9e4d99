"""Session 21: two profile rules that lived in the form now live in the profile model, and lint says the second.

1. The CPUs a job gives its workers (up to 8 per GPU, a GPU node's CPUs shared out among its GPUs, within the
   partition's CPUs per job): :meth:`Partition.cpus_for_workers`, which the shipped examples and the workflow form
   both call. The two differ on a partition that does not say its CPUs (4 per worker in the examples, none in the
   form), and say so.
2. A container runtime the profile lists as render-only (the practice cluster renders Apptainer, runs Charliecloud):
   :meth:`ClusterProfile.runnable_runtime` and :meth:`ClusterProfile.render_only_message`. The form refuses to submit
   such a job as before; ``hpcwidgets lint --profile`` and ``hpcwidgets workflow --profile`` now report it (HPC416).
3. The form's container keeps one vendor's GPU flag when it comes back from being parked after the job moved to the
   other vendor's GPUs (or changed its GPU count there).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hpcwidgets.cli import main
from hpcwidgets.examples import examples
from hpcwidgets.lint import lint, rules
from hpcwidgets.parse import parse_script
from hpcwidgets.profiles import list_profiles, load_profile
from hpcwidgets.spec.profile import CPUS_PER_WORKER, Partition

pytest.importorskip("ipywidgets")
from hpcwidgets.widgets import WorkflowBuilder  # noqa: E402
from hpcwidgets.widgets.builder import render_only_message, runnable_runtime  # noqa: E402


def codes(text: str, profile) -> list[str]:
    return [f.code for f in lint(text, profile)]


def hpc416(text: str, profile) -> list[str]:
    """The messages of lint's rule about a runtime the profile lists as render-only."""
    return [f.message for f in lint(text, profile) if f.code == "HPC416"]


# ------------------------------------------------------------------------------------------------
# 1. CPUs per worker: one rule

@pytest.mark.parametrize("fields, workers, nodes, expected", [
    (dict(cpus_per_node=64, gpus_per_node=4), 4, 1, 4 * CPUS_PER_WORKER),   # 16 per GPU there: capped at 8
    (dict(cpus_per_node=64, gpus_per_node=4), 1, 1, CPUS_PER_WORKER),
    (dict(cpus_per_node=16, gpus_per_node=4), 4, 1, 16),                     # 4 per GPU: the node's CPUs shared out
    (dict(cpus_per_node=2, gpus_per_node=4), 4, 1, 2),                       # at least 1 each, at most the node
    (dict(cpus_per_node=128, gpus_per_node=4, gpu_node_cpus=12), 4, 1, 12),  # the GPU nodes' own CPUs
    (dict(cpus_per_node=64, gpus_per_node=4, max_cpus_per_job=10), 4, 1, 10),
    (dict(cpus_per_node=64, gpus_per_node=4, max_cpus_per_job=10), 4, 2, 5),  # the per-job limit over 2 nodes
    (dict(cpus_per_node=4, gpus_per_node=0), 2, 1, 4),                       # no GPUs: nothing shared out
    (dict(cpus_per_node=64, gpus_per_node=4), 0, 1, 0),                      # no workers: no CPUs asked for
])
def test_cpus_for_workers(fields, workers, nodes, expected):
    assert Partition(name="p", **fields).cpus_for_workers(workers, nodes=nodes) == expected


def test_a_partition_that_does_not_say_its_cpus_gets_what_the_caller_asks_for():
    part = Partition(name="p", gpus_per_node=2)
    assert part.cpus_for_workers(2) == 0, "the form's case: no --cpus-per-task"
    assert part.cpus_for_workers(2, unknown=4) == 8, "the examples' case: 4 per worker"
    assert Partition(name="p", gpus_per_node=2, max_cpus_per_job=6).cpus_for_workers(2, unknown=4) == 6


def test_the_examples_and_the_form_both_ask_the_partition(monkeypatch):
    asked = []

    def fake(self, workers, nodes=1, unknown=0):
        asked.append((self.name, workers, nodes, unknown))
        return 3

    monkeypatch.setattr(Partition, "cpus_for_workers", fake)
    exs = examples("generic")
    assert exs["single-gpu"].model.job.cpus_per_task == 3
    assert exs["multi-node-torchrun"].model.job.cpus_per_task == 3
    assert ("gpu", 4, 2, 4) in asked, asked  # multi-node: 4 GPUs' workers on each of 2 nodes, 4 where unknown
    asked.clear()
    model = WorkflowBuilder.default_model(load_profile("generic"))
    assert model.job.cpus_per_task == 3 and asked == [("gpu", 4, 1, 0)]


@pytest.mark.parametrize("profile", sorted(list_profiles()))
def test_the_form_asks_for_the_cpus_the_multi_node_example_asks_for_on_one_node(profile):
    site = load_profile(profile)
    part = site.default(gpu=True)
    if part is None:
        pytest.skip(f"{profile} has no GPU partition")
    model = WorkflowBuilder.default_model(site)
    assert model.job.cpus_per_task == part.cpus_for_workers(part.gpus_per_node) > 0


def test_where_the_cpus_are_unknown_the_example_asks_for_4_per_gpu_and_the_form_for_none():
    site = load_profile("generic")
    parts = tuple(dataclasses.replace(p, cpus_per_node=None) for p in site.partitions)
    site = site.replace(partitions=parts)
    assert examples(site)["single-gpu"].model.job.cpus_per_task == 4
    job = WorkflowBuilder.default_model(site).job
    assert job.cpus_per_task in (None, 0)
    assert "--cpus-per-task" not in WorkflowBuilder(profile=site, submit=False).text


# ------------------------------------------------------------------------------------------------
# 2. render-only runtimes: in the profile model, and said by lint and the command line

LOCAL_APPTAINER = """\
#!/bin/bash
#SBATCH --partition=debug
#SBATCH --gres=gpu:1
#SBATCH --time=00:10:00
srun apptainer exec --nv /var/tmp/hpcw-images/trainer.sif python train.py
"""


def test_the_runtime_a_new_job_uses():
    local, generic = load_profile("local"), load_profile("generic")
    assert local.runnable_runtimes() == ("charliecloud",) and local.runnable_runtime() == "charliecloud"
    assert generic.runnable_runtimes() == ("apptainer",) and generic.runnable_runtime() == "apptainer"
    shown = generic.replace(runtimes=("charliecloud",), runtimes_render_only=("charliecloud",))
    assert shown.runnable_runtimes() == () and shown.runnable_runtime() == "charliecloud", \
        "nothing runs: the runtime it lists, whose commands are shown"
    assert runnable_runtime(local) == "charliecloud" and runnable_runtime(None) == "apptainer"
    singularity = generic.replace(runtimes=("singularity",), apptainer_binary="singularity")
    assert singularity.runnable_runtime() == "singularity" and runnable_runtime(singularity) == "apptainer"


def test_which_programs_a_render_only_runtime_leaves_out():
    local = load_profile("local")
    assert local.render_only_runtime("apptainer") == "apptainer"
    assert local.render_only_runtime("/usr/bin/apptainer") == "apptainer"
    assert local.render_only_runtime("singularity") == "apptainer", "Apptainer's second name goes with it"
    assert local.render_only_runtime("ch-run") == "" and local.render_only_runtime("python") == ""
    both = local.replace(runtimes=("apptainer", "singularity", "charliecloud"))
    assert both.render_only_runtime("singularity") == "", "SingularityCE is installed"
    assert load_profile("generic").render_only_runtime("apptainer") == ""
    assert load_profile("generic").render_only_runtime("ch-run") == "", "not listed at all: not this rule's"


def test_the_message_names_the_runtime_the_cluster_runs():
    local = load_profile("local")
    msg = local.render_only_message("apptainer")
    assert "apptainer is not installed on the cluster of profile local" in msg
    assert "'apptainer: command not found'" in msg and "use charliecloud in its place" in msg
    assert "which provides singularity" in local.render_only_message("singularity")
    assert "No such file or directory" in local.render_only_message("/usr/bin/apptainer")
    assert local.render_only_message("ch-run") == ""
    assert local.render_only_message("apptainer", "do this").endswith("; do this")
    nothing = local.replace(runtimes_render_only=("apptainer", "charliecloud"))
    assert "without a container" in nothing.render_only_message("ch-run")


def test_lint_reports_a_render_only_runtime():
    local = load_profile("local")
    (msg,) = hpc416(LOCAL_APPTAINER, local)
    assert "render-only" in msg and "use charliecloud" in msg
    assert hpc416(LOCAL_APPTAINER.replace("srun apptainer", "mpirun -np 2 apptainer"), local)
    assert hpc416(LOCAL_APPTAINER.replace("apptainer exec", "singularity exec"), local)


def test_lint_leaves_runtimes_the_cluster_runs_alone():
    local, generic = load_profile("local"), load_profile("generic")
    assert hpc416(LOCAL_APPTAINER, generic) == []
    assert hpc416(LOCAL_APPTAINER, None) == []
    assert hpc416(LOCAL_APPTAINER.replace("srun apptainer", "srun /opt/apptainer/bin/apptainer"), local) == [], \
        "called by its path: the person's own installation"
    assert hpc416(LOCAL_APPTAINER.replace("srun apptainer", "command -v apptainer\nsrun apptainer"), local) == []
    ch = LOCAL_APPTAINER.replace("apptainer exec --nv /var/tmp/hpcw-images/trainer.sif",
                                 "ch-run -b \"$PWD:/mnt/0\" -c /mnt/0 /var/tmp/hpcw-images/trainer --")
    assert hpc416(ch, local) == []
    charliecloud_shown = local.replace(runtimes_render_only=("charliecloud",))
    assert hpc416(ch, charliecloud_shown) and hpc416(LOCAL_APPTAINER, charliecloud_shown) == []


def test_lint_finds_nothing_of_the_kind_in_the_shipped_examples():
    for profile in sorted(list_profiles()):
        site = load_profile(profile)
        for name, ex in examples(site).items():
            assert hpc416(ex.render(), site) == [], (profile, name)


def test_the_rule_says_what_it_now_covers():
    rule = rules()["HPC416"]
    assert "render-only" in rule.summary and "runtimes_render_only" in rule.why
    assert "render-only" not in rules()["HPC414"].summary, "HPC414 is left the runtime the profile lacks"


def test_lint_and_workflow_on_the_command_line_say_it(tmp_path, capsys):
    script = tmp_path / "job.sh"
    script.write_text(LOCAL_APPTAINER)
    main(["lint", "--profile", "local", str(script)])
    out, err = capsys.readouterr()
    assert "HPC416" in out + err and "render-only" in out + err and "HPC414" not in out + err
    main(["workflow", "--profile", "local", "--container", "apptainer exec /var/tmp/img.sif",
          "--program", "python train.py", "--set", "job.time=00:10:00"])
    out, err = capsys.readouterr()
    assert "apptainer exec" in out
    assert "HPC416" in err and "'apptainer: command not found'" in err
    main(["workflow", "--profile", "generic", "--container", "apptainer exec /var/tmp/img.sif",
          "--program", "python train.py", "--set", "job.time=00:10:00"])
    assert "HPC416" not in capsys.readouterr().err


def test_the_form_refuses_as_before_and_says_it_once():
    local = load_profile("local")
    b = WorkflowBuilder(profile=local, submit=False)
    assert b.controls["container.runtime"].value == "charliecloud"
    assert not [f for f in b.findings if f.code in ("PROFILE", "HPC416")]
    b.controls["container.runtime"].value = "apptainer"
    (said,) = [f for f in b.findings if f.code == "PROFILE"]
    assert said.severity == "error" and said.message == render_only_message(local, b.spec)
    assert said.message.startswith(local.render_only_message("apptainer", "X")[:-len("X")])
    assert "choose Container = charliecloud" in said.message
    assert "HPC416" in codes(b.text, local), "lint says it of the script"
    assert not [f for f in b.findings if f.code == "HPC416"], "the form shows it once, as its own"
    assert "Submit refuses this job" in b.refused_note.value


# ------------------------------------------------------------------------------------------------
# 3. the form's GPU flag after the container was parked

SITE = """\
name = "{name}"
description = "NVIDIA and AMD partitions"
runtimes = ["apptainer", "charliecloud"]
gpu_vendor = "nvidia"
default_partition = "gpua"
default_gpu_partition = "gpua"

[[partitions]]
name = "gpua"
max_time = "1-00:00:00"
cpus_per_node = 64
mem_per_node = "500G"
gpus_per_node = 8
is_default = true

[[partitions]]
name = "gpum"
max_time = "1-00:00:00"
cpus_per_node = 128
mem_per_node = "500G"
gpus_per_node = 8
gpu_vendor = "amd"
"""

SCRIPT = """\
#!/bin/bash
#SBATCH --partition=gpua
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=32
#SBATCH --time=01:00:00

srun apptainer exec --nv img.sif torchrun --standalone --nproc-per-node=4 train.py
"""


@pytest.fixture
def site(tmp_path: Path):
    path = tmp_path / "twovendors.toml"
    path.write_text(SITE.format(name="twovendors"))
    return load_profile(path)


def flags(b) -> tuple[bool, bool]:
    box = parse_script(b.text).container
    return box.nv, box.rocm


def park_and_move(b, partition: str, gpus: str = "") -> None:
    """Container switched off, the job moved (and its GPUs changed), the container switched back on."""
    b.controls["container.runtime"].value = "none"
    b.controls["job.partition"].value = partition
    if gpus:
        b.controls["job.gpus_per_node"].value = gpus
    b.controls["container.runtime"].value = "apptainer"


@pytest.mark.parametrize("gpus", ["8", ""])
def test_a_parked_container_comes_back_with_the_new_vendors_flag_only(site, gpus):
    b = WorkflowBuilder.from_script(SCRIPT, profile=site, submit=False)
    assert flags(b) == (True, False)
    park_and_move(b, "gpum", gpus)
    assert (b.spec.container.nv, b.spec.container.rocm) == (False, True)
    assert flags(b) == (False, True)
    assert not [f for f in b.findings if f.severity == "error"], [f.message for f in b.findings]
    assert not [f for f in b.findings if f.code == "HPC218"]
    park_and_move(b, "gpua", "2")
    assert flags(b) == (True, False)


def test_a_parked_container_on_the_same_vendor_keeps_a_flag_left_off(site):
    b = WorkflowBuilder.from_script(SCRIPT.replace("exec --nv", "exec"), profile=site, submit=False)
    b.controls["container.runtime"].value = "none"
    b.controls["container.runtime"].value = "apptainer"
    assert (b.spec.container.nv, b.spec.container.rocm) == (False, False)


def test_without_a_profile_a_parked_amd_container_stays_amd():
    b = WorkflowBuilder.from_script(SCRIPT.replace("--nv", "--rocm"), submit=False)
    assert flags(b) == (False, True)
    b.controls["container.runtime"].value = "none"
    b.controls["job.gpus_per_node"].value = "2"
    b.controls["container.runtime"].value = "apptainer"
    assert (b.spec.container.nv, b.spec.container.rocm) == (False, True)
