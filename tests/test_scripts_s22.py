"""Session 22, real job scripts: HPC508 works out arithmetic array indexes (``$((SLURM_ARRAY_TASK_ID / 2))``, the
bare name, the grid picks the package writes) for every task of --array, and HPC322 takes sbatch's default of one
task per node for a one-node job that sets no task count (except where the job's CPUs are counted another way)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from helpers import need, need_tool

from hpcwidgets.lint import lint
from hpcwidgets.lint.shell import task_index
from hpcwidgets.parse import parse_script
from hpcwidgets.profiles import load_profile
from hpcwidgets.render import render
from hpcwidgets.spec.workflow import Workflow


def found(text: str, code: str, profile=None) -> list:
    return [f for f in lint(text, profile) if f.code == code]


# --------------------------------------------------------------------------------------------------------------------
# HPC508: the index, worked out for each task


def _array(spec: str, values: str, index: str) -> str:
    return (f"#!/bin/bash\n#SBATCH --array={spec}\nseeds=({values})\nSEED=${{seeds[{index}]}}\n"
            'python train.py --seed "$SEED"\n')


@pytest.mark.parametrize("index", ["$((SLURM_ARRAY_TASK_ID / 2))", "SLURM_ARRAY_TASK_ID / 2",
                                   "$(( $SLURM_ARRAY_TASK_ID / 2 ))", "${SLURM_ARRAY_TASK_ID}/2"])
def test_an_arithmetic_index_past_the_end_is_reported(index: str) -> None:
    hits = found(_array("0-9", "4 5 6 7", index), "HPC508")
    assert len(hits) == 1 and hits[0].line == 4, [f.format() for f in hits]
    message = hits[0].message
    assert "tasks 8, 9 index past seeds" in message and "4 values (indexes 0-3)" in message
    assert message.endswith("use --array=0-7")
    # the ids the advice names are the ones that reach a value: the same script with them is clean
    assert found(_array("0-7", "4 5 6 7", index), "HPC508") == []


def test_the_throttle_is_kept_and_a_step_in_the_ids_is_followed() -> None:
    hits = found(_array("0-9%4", "4 5 6 7", "SLURM_ARRAY_TASK_ID / 2"), "HPC508")
    assert len(hits) == 1 and hits[0].message.endswith("use --array=0-7%4")
    # 0-18:2 is 0, 2, …, 18: halved, 0-9, which ten values hold and nine do not (task 18 is the one past)
    assert found(_array("0-18:2", " ".join("abcdefghij"), "SLURM_ARRAY_TASK_ID / 2"), "HPC508") == []
    past = found(_array("0-18:2", " ".join("abcdefghi"), "SLURM_ARRAY_TASK_ID / 2"), "HPC508")
    assert len(past) == 1 and "task 18 index" in past[0].message


@pytest.mark.parametrize("index", [
    "SLURM_ARRAY_TASK_ID ** 2",                # a power: not read
    "SLURM_ARRAY_TASK_ID / STRIDE",            # another variable
    "010 + SLURM_ARRAY_TASK_ID",               # octal to bash
    "0x10 + SLURM_ARRAY_TASK_ID",              # hex
    "SLURM_ARRAY_TASK_ID << 2",                # a shift
    "SLURM_ARRAY_TASK_ID / 0",                 # bash stops: division by 0
    "SLURM_ARRAY_TASK_ID++",                   # an increment
    "$(cat idx)",                              # a command
    "SLURM_ARRAY_TASK_ID > 3 ? 0 : 1",         # a condition
])
def test_an_index_it_cannot_work_out_is_left_alone(index: str) -> None:
    assert found(_array("0-99", "4 5 6 7", index), "HPC508") == []


# expressions checked against bash itself, task by task
EXPRESSIONS = ["SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_ID / 3 % 2", "(SLURM_ARRAY_TASK_ID - 7) / 2",
               "(SLURM_ARRAY_TASK_ID - 7) % 3", "-SLURM_ARRAY_TASK_ID / 4", "2 * (SLURM_ARRAY_TASK_ID + 1) - 5",
               "$((SLURM_ARRAY_TASK_ID * 3)) % 4 - 1", "- -SLURM_ARRAY_TASK_ID", "$SLURM_ARRAY_TASK_ID-1",
               "10 - SLURM_ARRAY_TASK_ID / 2 * 3"]


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_the_evaluator_computes_what_bash_computes(expr: str) -> None:
    need_tool("bash", "bash")
    index = task_index(expr)
    assert index is not None, expr
    loop = f'for SLURM_ARRAY_TASK_ID in $(seq 0 20); do echo $(( {expr} )); done'
    bash = subprocess.run(["bash", "-c", loop], capture_output=True, text=True, check=True).stdout.split()
    assert [index(i) for i in range(21)] == [int(v) for v in bash]


def test_negative_indexes_wrap_or_fail_as_bash_reads_them() -> None:
    text = ("#!/bin/bash\n#SBATCH --array=0-2\nS=(a b c)\n"
            'python train.py "${S[SLURM_ARRAY_TASK_ID - 5]}"\n')
    hits = found(text, "HPC508")
    assert len(hits) == 1
    message = hits[0].message
    # task 2 reads S[-3], the first value counted from the end; tasks 0 and 1 read S[-5] and S[-4]: nothing
    assert "task 2 reads S[-3], a negative index that bash counts from the end" in message
    assert "tasks 0, 1 read S[-5], before the start of the list" in message and "bad array subscript" in message
    assert message.endswith("use --array=5-7")
    # bash truncates toward zero: (1 - 3) / 2 is -1 (task 1 reported), (2 - 3) / 2 is 0 (task 2 is not)
    shifted = found(text.replace("--array=0-2", "--array=1-8").replace("SLURM_ARRAY_TASK_ID - 5",
                                                                       "(SLURM_ARRAY_TASK_ID - 3) / 2"), "HPC508")
    assert len(shifted) == 1 and "task 1 reads S[-1]" in shifted[0].message, shifted[0].message
    assert "task 2" not in shifted[0].message


# --------------------------------------------------------------------------------------------------------------------
# HPC508: the package's grid, as the model says it


def _grid(array: str | None = None) -> str:
    wf = Workflow.grid({"lr": [0.1, 0.03, 0.01], "batch_size": [32, 64]}, "train.py",
                       image="$SCRATCH/pytorch.sif", runtime="apptainer")
    text = render(wf)
    return text if array is None else text.replace("--array=0-5", f"--array={array}")


def test_a_grid_with_more_tasks_than_combinations_is_reported_as_the_model_says() -> None:
    assert "--array=0-5" in _grid() and found(_grid(), "HPC508") == []
    text = _grid("0-9")
    hits = found(text, "HPC508")
    assert len(hits) == 1, [f.format() for f in hits]
    message = hits[0].message
    assert hits[0].line == next(n for n, line in enumerate(text.split("\n"), 1) if line.startswith("lr="))
    assert "tasks 6, 7, 8, 9 run combinations 0, 1, 2, 3 again" in message
    # the model read back from the same script says it in the same words
    model = [p.message for p in parse_script(text).problems() if p.field == "job.array"]
    assert len(model) == 1
    head, _, advice = model[0].partition("; ")
    assert message.startswith(head.split(": task i")[0]) and "task i takes combination i" in message
    assert message.endswith(advice) and advice == "use --array=0-5"
    throttled = found(_grid("0-7%2"), "HPC508")
    assert len(throttled) == 1 and throttled[0].message.endswith("use --array=0-5%2")


def test_a_grid_run_in_part_is_not_reported() -> None:
    # a rerun of some combinations (--array=3,4) runs each once: nothing is repeated or missing a value
    assert found(_grid("3,4"), "HPC508") == []
    assert found(_grid("0-5%3"), "HPC508") == []


def test_a_hand_written_modulo_is_not_taken_for_the_packages_grid() -> None:
    # a % of the user's own: every index stays in its list, and what the tasks repeat may be meant
    text = ("#!/bin/bash\n#SBATCH --array=0-9\nLR=(0.1 0.01 0.001)\nBS=(32 64)\n"
            'python train.py --lr "${LR[SLURM_ARRAY_TASK_ID % 3]}" --bs "${BS[SLURM_ARRAY_TASK_ID / 3 % 2]}"\n')
    assert found(text, "HPC508") == []


# --------------------------------------------------------------------------------------------------------------------
# HPC322: sbatch's default of one task per node

B3 = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --time=00:10:00\n{extra}srun --ntasks=4 --cpus-per-task=8 python prep.py\n"


def _whole_profile(tmp_path: Path, **fields: object) -> object:
    lines = [f"{k} = {str(v).lower() if isinstance(v, bool) else v}" for k, v in fields.items()]
    (tmp_path / "site22.toml").write_text(
        'name = "site22"\ndescription = "test"\nruntimes = ["apptainer"]\ngpu_vendor = "nvidia"\ndefault_partition = "main"\n'
        '[[partitions]]\nname = "main"\nmax_time = "1-00:00:00"\ncpus_per_node = 64\nmem_per_node = "250G"\n'
        "gpus_per_node = 4\nis_default = true\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return load_profile(str(tmp_path / "site22.toml"))


def test_a_one_node_job_without_a_task_count_has_one_task() -> None:
    hits = found(B3.format(extra=""), "HPC322")
    assert len(hits) == 1 and hits[0].line == 4
    message = hits[0].message
    assert "sets no --ntasks or --ntasks-per-node, so sbatch gives it its default of one task, with 1 CPU" in message
    assert "the step asks for 32 CPUs of the job's 1" in message and "#SBATCH --ntasks=4" in message
    assert "add --exclusive" in message
    assert found(B3.format(extra="#SBATCH --ntasks=4\n#SBATCH --cpus-per-task=8\n"), "HPC322") == []
    # no --nodes at all is one node too
    assert len(found(B3.format(extra="").replace("#SBATCH --nodes=1\n", ""), "HPC322")) == 1


def test_the_default_takes_the_jobs_cpus_per_task_and_its_fix_shares_them() -> None:
    text = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --cpus-per-task=8\nsrun -n 4 python prep.py\n"
    found_all = lint(text)
    hits = [f for f in found_all if f.code == "HPC322"]
    assert len(hits) == 1 and "with 8 CPUs" in hits[0].message and "of the job's 8" in hits[0].message
    assert not [f for f in found_all if f.code == "HPC309"]  # the share, not the job's count, is what the step needs
    from hpcwidgets.fixes import fix_script
    fixed, done = fix_script(text)
    assert [f.code for f in done] == ["HPC322"]
    assert "srun --cpus-per-task=2 -n 4 python prep.py" in fixed
    assert found(fixed, "HPC322") == [] and found(fixed, "HPC309") == []


@pytest.mark.parametrize("extra", [
    "#SBATCH --exclusive\n",                   # the whole node
    "#SBATCH --cpus-per-gpu=8\n#SBATCH --gpus=1\n",
    "#SBATCH --mincpus=32\n",
    "#SBATCH --overcommit\n",
    "#SBATCH --ntasks-per-core=1\n",           # tasks counted from the node's CPUs
    "#SBATCH --gres=gpu:4\n",                  # no profile: the site's CPUs per GPU are not known
])
def test_a_job_whose_cpus_are_counted_another_way_is_left_alone(extra: str) -> None:
    assert found(B3.format(extra=extra), "HPC322") == []


def test_mem_zero_is_a_nodes_memory_not_its_cpus() -> None:
    assert len(found(B3.format(extra="#SBATCH --mem=0\n"), "HPC322")) == 1


def test_a_job_of_several_nodes_without_a_task_count_is_left_alone() -> None:
    # written for whole nodes (NERSC): srun -n64 -c2 on two nodes of 64 CPUs
    text = "#!/bin/bash\n#SBATCH -N 2\n#SBATCH -q regular\n#SBATCH -C haswell\nsrun -n64 -c2 --cpu_bind=cores ./a.out\n"
    assert found(text, "HPC322") == []


def test_whole_node_partitions_and_cpus_per_gpu_follow_the_profile(tmp_path: Path) -> None:
    whole = _whole_profile(tmp_path, whole_nodes=True)
    assert found(B3.format(extra=""), "HPC322", whole) == []
    shared = _whole_profile(tmp_path)
    assert len(found(B3.format(extra=""), "HPC322", shared)) == 1
    gpus = B3.format(extra="#SBATCH --gres=gpu:4\n")
    assert len(found(gpus, "HPC322", shared)) == 1       # the site gives no CPUs per GPU: one CPU
    per_gpu = _whole_profile(tmp_path, def_cpus_per_gpu=16)
    assert found(gpus, "HPC322", per_gpu) == []          # 4 GPUs × 16 CPUs: the job has 64
    # a job that names its task count: the partition's CPUs per GPU count as well
    named = gpus.replace("#SBATCH --nodes=1\n", "#SBATCH --nodes=1\n#SBATCH --ntasks=1\n")
    assert len(found(named, "HPC322", shared)) == 1 and found(named, "HPC322", per_gpu) == []


def test_a_step_sized_by_its_gpus_is_not_counted() -> None:
    text = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gpus-per-node=4\n"
            "srun --ntasks=4 --gpus-per-task=1 --cpus-per-gpu=8 python train.py\n")
    assert found(text, "HPC322") == []


def test_two_threads_a_core_still_allowed_for_the_default_task() -> None:
    # one task of one CPU holds a whole core: two CPUs on nodes with two threads a core (no profile says
    # how many threads a core has), so srun -n 2 is not reported and srun -n 3 is
    text = "#!/bin/bash\n#SBATCH --nodes=1\nsrun --ntasks={n} --cpus-per-task=1 hostname\n"
    assert found(text.format(n=2), "HPC322") == []
    assert len(found(text.format(n=3), "HPC322")) == 1


# --------------------------------------------------------------------------------------------------------------------
# on the practice cluster: the default task's step fails as lint says


@pytest.mark.real
def test_the_default_task_step_fails_on_the_practice_cluster(tmp_path: Path) -> None:
    from hpcwidgets.run import practice_cluster as pc
    need_tool("sbatch", "Slurm's client programs (apt-get install slurm-client)")
    need(pc.status().running, "the practice cluster is not up (run: sudo hpcwidgets practice-cluster up)")
    out = tmp_path / "default.out"
    text = (f"#!/bin/bash\n#SBATCH --partition={pc.PARTITION}\n#SBATCH --nodes=1\n#SBATCH --time=00:01:00\n"
            f"#SBATCH --output={out}\nsrun --ntasks=3 --cpus-per-task=1 hostname\necho \"srun rc=$?\"\n")
    assert [f.code for f in lint(text, load_profile("local")) if f.severity == "error"] == ["HPC322"]
    script = tmp_path / "default.sbatch"
    script.write_text(text, encoding="utf-8")
    env = {**os.environ, **pc.env()}
    done = subprocess.run(["sbatch", "--parsable", "--wait", str(script)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    job = done.stdout.strip().split(";")[0]
    try:
        for _ in range(50):
            if out.exists() and "srun rc=" in out.read_text():
                break
            time.sleep(0.2)
        log = out.read_text()
    finally:
        if job:
            subprocess.run(["scancel", job], env=env, capture_output=True)
    assert "More processors requested than permitted" in log and "srun rc=1" in log
