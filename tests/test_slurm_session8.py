"""The Slurm job model and the script reader against what sbatch (22.05, ``--test-only`` on the practice cluster) and
torchrun really accept (session 8, audit 8b defects 7-10 and audit 8a scripts s/51, s/52): GPUs in total with GPUs
per node, several GPU types per node, array, --signal and --gres-flags values, the word hetjob where sbatch does or
does not read it as the separator, srun's old --pack-group, and the static rendezvous at --master-addr."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint
from hpcwidgets.parse import read_script
from hpcwidgets.parse.layout import without_layout
from hpcwidgets.parse.workflow import parse_script
from hpcwidgets.render import render
from hpcwidgets.spec.slurm import SlurmJob, array_problem, array_task_ids, gres_flags_problem, signal_problem
from hpcwidgets.spec.torchrun import Torchrun

HEAD = "#!/bin/bash\n#SBATCH --time=00:10:00\n"
STEP = "srun apptainer exec --nv img.sif python train.py\n"


def codes(text: str) -> set[str]:
    return {f.code for f in lint(text)}


def read_back(text: str) -> str:
    """The script read into a workflow (which must hold no problem) and written again in the renderer's own layout
    (what the reader put in which field); unedited in its own layout it is written back as it was."""
    w = parse_script(text)
    assert w.problems() == [] and render(w) == text
    return render(without_layout(w))


def messages(job: SlurmJob, field: str) -> list[str]:
    return [p.message for p in job.problems() if p.field == field]


# ------------------------------------------------------------------------------------------------
# defect 8: GPUs in total with GPUs per node; several GPU types per node
# ------------------------------------------------------------------------------------------------
def test_gpus_in_total_and_per_node_together_as_on_lumi():
    text = HEAD + "#SBATCH --nodes=1\n#SBATCH --gpus=8\n#SBATCH --gpus-per-node=8\n" + STEP
    assert "HPC307" not in codes(text)
    out = read_back(text)
    assert "#SBATCH --gpus=8" in out and "#SBATCH --gpus-per-node=8" in out
    # without a node count, Slurm spreads them: 4 in total at 2 per node is two nodes
    assert messages(SlurmJob(gpus=4, gpus_per_node=2), "gpus") == []


@pytest.mark.parametrize("kwargs,text", [
    ({"gpus": 3, "gpus_per_node": 2}, "ask for 2 or 4 in total"),        # "--gpus is not multiple of --gres=gpu"
    ({"gpus": 1, "gpus_per_node": 2}, "ask for 2 in total"),        # "Failed to ensure --gpus >= --gres=gpu"
    ({"gpus": 4, "gpus_per_node": 2, "nodes": 1}, "--nodes=2"),     # "required nodes (2) doesn't fall between"
    ({"gpus": 2, "gpus_per_node": 2, "nodes": 2}, "ask for 4 GPUs in total"),
])
def test_gpus_in_total_that_slurm_refuses_with_gpus_per_node(kwargs, text):
    found = messages(SlurmJob(**kwargs), "gpus")
    assert found and text in found[0], found


def test_several_gpu_types_per_node_read_back_as_written():
    text = HEAD + "#SBATCH --nodes=1\n#SBATCH --gpus-per-node=a100:2,v100:1\n" + STEP
    job = read_script(text).job
    assert job.gpus_per_node == "a100:2,v100:1" and job.gpus_on_each_node == 3
    assert not codes(text) & {"HPC202", "HPC307", "HPC399"}
    assert "#SBATCH --gpus-per-node=a100:2,v100:1" in read_back(text)
    # with the default request style they are written as one gpu item per type (gpu:a100:2,v100:1 would be an a100
    # count and a generic resource named v100)
    job = SlurmJob(gpus_per_node="a100:2,v100:1")
    assert not job.problems() and "#SBATCH --gres=gpu:a100:2,gpu:v100:1\n" in render(job)


@pytest.mark.parametrize("gres,per_node,other", [
    ("gpu:a100:2,gpu:v100:1", "a100:2,v100:1", ()),
    ("gpu:a100,gpu:v100:3,lscratch:100", "a100:1,v100:3", ("lscratch:100",)),  # gpu:a100 is one a100
    ("lscratch:100,gpu:h100:4,gpu:a100_3g.40gb:1", "h100:4,a100_3g.40gb:1", ("lscratch:100",)),
])
def test_several_gpu_types_in_gres_read_back_as_written(gres, per_node, other):
    text = HEAD + f"#SBATCH --nodes=1\n#SBATCH --gres={gres}\n" + STEP
    job = read_script(text).job
    assert (job.gpus_per_node, job.gpu_type, job.other_gres) == (per_node, "", other)
    assert job.gpus_on_each_node == sum(int(c.rpartition(":")[2]) for c in per_node.split(","))
    assert not codes(text) & {"HPC202", "HPC307", "HPC399"}, codes(text)
    written = "gpu:" + per_node.replace(",", ",gpu:")
    assert f"#SBATCH --gres={','.join((written, *other))}" in read_back(text)


@pytest.mark.parametrize("gres", ["gpu:2,gpu:a100:1", "gpu:a100:1,gpu:a100:2", "gpu:a100:1,gpu:v100:x"])
def test_second_gpu_item_without_a_distinct_type_is_reported(gres):
    """An untyped item beside a typed one, one type twice, or a count that is no number: no reading of several types;
    the second item stays as written and the model names the fix."""
    job = read_script(HEAD + f"#SBATCH --gres={gres}\n" + STEP).job
    assert job.other_gres == (gres.split(",")[1],)
    assert messages(job, "other_gres")


# ------------------------------------------------------------------------------------------------
# defect 9: values sbatch reads, and values it refuses (each problem names the fix)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec,ids", [
    ("0-99%", list(range(100))),      # an empty limit: no limit
    ("1,2,", [1, 2]),                 # empty items are skipped
    ("0-15:4%4", [0, 4, 8, 12]),
])
def test_array_values_sbatch_accepts_read_back(spec, ids):
    assert array_problem(spec) == "" and array_task_ids(spec) == ids
    text = HEAD + f"#SBATCH --array={spec}\n#SBATCH --output=%x_%A_%a.out\n" + STEP
    assert "HPC304" not in codes(text)
    assert f"#SBATCH --array={spec}\n" in read_back(text)


@pytest.mark.parametrize("spec,fix", [
    ("3-0", "write 0-3"),
    ("0-9:0", "0-9:1"),
    ("0-9%x", "0-9%4"),
    ("%4", "names no index"),
])
def test_array_values_sbatch_refuses(spec, fix):
    assert fix in array_problem(spec) and array_task_ids(spec) is None
    assert "HPC304" in codes(HEAD + f"#SBATCH --array={spec}\n" + STEP)


@pytest.mark.parametrize("value,fix", [
    ("USR1@60s", "write @60"),
    ("B:USR3@60", "e.g. USR1"),
    ("BU:USR1@60", "write --signal=B:USR1@60"),
    ("USR1@70000", "0-65535"),
])
def test_signal_values_sbatch_refuses(value, fix):
    assert fix in signal_problem(value)
    text = HEAD + f"#SBATCH --signal={value}\n" + STEP
    assert "HPC399" in codes(text)
    assert any(fix in p.message for p in parse_script(text).problems())


@pytest.mark.parametrize("value", ["B:USR1@90", "RB:USR1@60", "usr1", "SIGTERM@120", "10@60", "R:USR2"])
def test_signal_values_sbatch_accepts(value):
    assert signal_problem(value) == ""
    read_back(HEAD + f"#SBATCH --signal={value}\n" + STEP)


def test_gres_flags_with_an_underscore():
    assert "write --gres-flags=enforce-binding" in gres_flags_problem("enforce_binding")
    assert gres_flags_problem("Enforce-Binding") == "" and gres_flags_problem("disable-binding") == ""
    assert "HPC399" in codes(HEAD + "#SBATCH --gres=gpu:1\n#SBATCH --gres-flags=enforce_binding\n" + STEP)


def test_a_later_components_values_are_not_judged_as_the_first_ones():
    job = SlurmJob(extra_directives=("hetjob", "--signal=USR1@60s -n 2"))
    assert messages(job, "extra_directives") == []


# ------------------------------------------------------------------------------------------------
# defect 10: the word hetjob
# ------------------------------------------------------------------------------------------------
def test_hetjob_after_an_option_starts_no_component():
    text = HEAD + "#SBATCH -p debug\n#SBATCH -n 1 hetjob\n#SBATCH -n 1\nsrun hostname\n"
    parsed = read_script(text)
    assert not parsed.heterogeneous and parsed.job.extra_directives == ()
    assert any("starts no new component" in message for _, message in parsed.problems)
    assert "hetjob" not in read_back(text)


def test_upper_case_hetjob_is_the_separator():
    text = HEAD + "#SBATCH -n 1\n#SBATCH HETJOB\n#SBATCH -n 3\nsrun --het-group=1 hostname\n"
    parsed = read_script(text)
    assert parsed.heterogeneous and parsed.job.extra_directives == ("hetjob", "-n 3")
    assert "HPC310" not in codes(text)
    assert "#SBATCH hetjob\n#SBATCH -n 3\n" in read_back(text)


def test_the_rest_of_a_separator_line_is_not_read():
    parsed = read_script(HEAD + "#SBATCH -n 1\n#SBATCH hetjob -n 5\nsrun hostname\n")
    assert parsed.job.extra_directives == ("hetjob",)
    assert any("-n 5 is ignored" in message for _, message in parsed.problems)


def test_quoted_hetjob_is_not_the_separator():
    parsed = read_script(HEAD + '#SBATCH -n 1\n#SBATCH "hetjob"\nsrun hostname\n')
    assert not parsed.heterogeneous


# ------------------------------------------------------------------------------------------------
# defect 7: srun --pack-group 0 (the old name of --het-group, its value after a space)
# ------------------------------------------------------------------------------------------------
def test_pack_group_with_its_value_after_a_space_is_a_step():
    text = (HEAD + "#SBATCH --ntasks=1 --gres=gpu:1\n#SBATCH hetjob\n#SBATCH --ntasks=1\n"
            "srun --pack-group 0 apptainer exec img.sif python train.py\n")
    step = read_script(text).steps[0]
    assert step.chain.srun.extra == ("--pack-group", "0") and step.chain.container is not None
    assert "HPC201" in codes(text)


# ------------------------------------------------------------------------------------------------
# torchrun: the static rendezvous (its default backend) meets at --master-addr
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {"master_addr": "$MASTER_ADDR", "master_port": "$MASTER_PORT", "node_rank": "$NODE_RANK"},
    {"rdzv_backend": "static", "master_addr": "n1", "node_rank": "0"},
])
def test_a_static_rendezvous_needs_no_endpoint(kwargs):
    t = Torchrun(nnodes="2", nproc_per_node="4", script="train.py", **kwargs)
    assert [p for p in t.problems() if p.field == "rdzv_endpoint"] == []


def test_a_static_rendezvous_without_a_host_names_master_addr():
    found = [p.message for p in Torchrun(nnodes="2", node_rank="$R", script="t.py").problems() if p.field == "rdzv_endpoint"]
    assert found and "--master-addr=$head_node" in found[0]


def test_c10d_with_master_addr_names_the_endpoint_to_write():
    t = Torchrun(nnodes="2", rdzv_backend="c10d", master_addr="$MASTER_ADDR", master_port="$MASTER_PORT", script="t.py")
    found = [p.message for p in t.problems() if p.field == "rdzv_endpoint"]
    assert found and "--rdzv-endpoint=$MASTER_ADDR:$MASTER_PORT" in found[0]


def test_a_static_multi_node_torchrun_reads_back_with_its_words():
    """Audit 8a's s/52: python -m torch.distributed.run with --master_addr and no backend. The launcher holds no
    problem; its words are written back as they were (the batch shell expands the same references)."""
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --gres=gpu:4\n"
            'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
            "srun --ntasks-per-node=1 python -m torch.distributed.run --nnodes=$SLURM_NNODES "
            "--nproc_per_node=4 --node_rank=$NODE_RANK --master_addr=$MASTER_ADDR --master_port=29500 main.py\n")
    w = parse_script(text)
    assert w.launcher.problems() == []
    out = read_back(text)
    assert '"--node_rank=$NODE_RANK"' in out and '"--master_addr=$MASTER_ADDR"' in out
