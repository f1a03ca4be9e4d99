"""HPC141: a hostfile written by ``srun hostname`` in a job of several tasks per node names each node once per task
(srun runs its command once per task). DeepSpeed's launcher refuses a host named twice ('Hostfile contains multiple
entries for HOST'); horovodrun --gloo gives each line its own slots and local ranks. Checked on the practice cluster
(Slurm 22.05): a job of 2 nodes x 2 tasks writes 4 lines, and srun --ntasks-per-node=1 alone is ignored there."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from hpcwidgets.fixes import apply_fix, fix_script
from hpcwidgets.lint import lint, rules

from helpers import need, need_tool, sbatch_and_wait

HEAD = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-node=4\n"
DS = "deepspeed --hostfile hostfile.txt train.py --deepspeed --deepspeed_config ds.json\n"


def found(text: str) -> list:
    return [f for f in lint(text) if f.code == "HPC141"]


def bash_reads(text: str) -> bool:
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run([bash, "-n"], input=text, text=True, capture_output=True).returncode == 0


# --- reported --------------------------------------------------------------------------------------------------------

def test_the_auditors_script_is_reported_on_the_srun_line_with_deepspeeds_refusal():
    text = HEAD + "srun hostname -s | sed 's/$/ slots=4/' > hostfile.txt\n" + DS
    hits = found(text)
    assert len(hits) == 1
    hit = hits[0]
    assert hit.line == 5 and hit.severity == "error"
    assert "once per task (4 on a node)" in hit.message
    assert "Hostfile contains multiple entries" in hit.message and "(line 6)" in hit.message
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST"' in hit.message
    assert "srun --ntasks-per-node=1 --ntasks=2 hostname -s" in hit.message


def test_the_fix_inserts_one_task_per_node_with_the_count_and_leaves_the_rest_of_the_line():
    text = HEAD + "srun hostname -s | sed 's/$/ slots=4/' > hostfile.txt\n" + DS
    fixed = apply_fix(text, found(text)[0].fix)
    line = fixed.splitlines()[4]
    assert line.startswith("srun ") and line.endswith(" hostname -s | sed 's/$/ slots=4/' > hostfile.txt")
    assert "--ntasks-per-node=1" in line and "--ntasks=2" in line
    assert bash_reads(fixed) and found(fixed) == []
    # fix_script (what --fix runs) gives the same line
    assert fix_script(text)[0].splitlines()[4] == line


def test_a_node_count_slurm_chooses_gets_slurm_nnodes_in_the_fix():
    text = HEAD.replace("--nodes=2", "--nodes=2-4") + "srun hostname > hostfile.txt\n" + DS
    hit = found(text)[0]
    assert '--ntasks="$SLURM_NNODES"' in hit.message
    fixed = apply_fix(text, hit.fix)
    assert "--ntasks=$SLURM_NNODES" in shlex.split(fixed.splitlines()[4]) and bash_reads(fixed)
    assert found(fixed) == []


@pytest.mark.parametrize("write,launch", [
    ("srun hostname > hostfile.txt\n", DS),
    ("srun -l bash -c 'echo $(hostname) slots=4' | cut -d' ' -f2- > hostfile.txt\n", DS),
    ("srun uname -n | sed 's/$/ slots=4/' >> hostfile.txt\n", DS),
    ("srun hostname | sed 's/$/ slots=4/' | tee hostfile.txt\n", DS),
    ("HF=hosts-$SLURM_JOB_ID\nsrun hostname | sed 's/$/ slots=4/' > \"$HF\"\n",
     'deepspeed -H "$HF" train.py --deepspeed ds.json\n'),
    # a deepspeed in a container or started by srun reads the file all the same
    ("srun hostname | sed 's/$/ slots=4/' > hostfile.txt\n",
     "apptainer exec --nv ds.sif deepspeed --no_ssh --hostfile hostfile.txt train.py\n"),
])
def test_hostfiles_written_once_per_task_are_reported(write, launch):
    assert len(found(HEAD + write + launch)) == 1


@pytest.mark.parametrize("between", [
    "cat hostfile.txt\n",
    "sed -i 's/$/ slots=4/' hostfile.txt\n",
    "echo 'written hostfile.txt'\n",
])
def test_commands_that_keep_every_line_of_the_file_do_not_hide_it(between):
    text = HEAD + "srun hostname -s > hostfile.txt\n" + between + DS
    assert [f.line for f in found(text)] == [5]


def test_ntasks_per_node_one_alone_is_reported_and_the_message_says_why():
    """srun takes the job's task count (SLURM_NTASKS) as --ntasks; Slurm then ignores --ntasks-per-node=1
    (seen on the practice cluster: "can't honor --ntasks-per-node set to 1 … Ignoring --ntasks-per-node")."""
    text = HEAD + "srun --ntasks-per-node=1 hostname -s | sed 's/$/ slots=4/' > hostfile.txt\n" + DS
    hits = found(text)
    assert len(hits) == 1 and "--ntasks-per-node=1 alone is ignored" in hits[0].message
    assert hits[0].fix is None  # the step has a count of its own: the message says what to write


@pytest.mark.parametrize("head", [
    "#!/bin/bash\n#SBATCH -N 2\n#SBATCH -n 8\n",         # tasks over nodes: 4 on a node
    "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=4\n",  # one node, 4 tasks: the one host 4 times
    "#!/bin/bash\n#SBATCH -N 2\n#SBATCH -n 3\n",         # one node holds two of the tasks
])
def test_other_layouts_with_more_tasks_than_nodes(head):
    assert len(found(head + "srun hostname | sed 's/$/ slots=4/' > hostfile.txt\n" + DS)) == 1


def test_horovodrun_gloo_hostfile_and_host_list_from_srun_hostname():
    hostfile = HEAD + "srun hostname | sed 's/$/ slots=4/' > hosts\n" \
        "horovodrun --gloo -np 8 --hostfile hosts python train.py\n"
    hits = found(hostfile)
    assert len(hits) == 1 and "horovodrun --gloo --hostfile hosts" in hits[0].message
    assert "local ranks from 0 again" in hits[0].message
    host_list = HEAD + "H=$(srun hostname | sed 's/$/:4/' | paste -sd,)\n" \
        "horovodrun --gloo -np 8 -H \"$H\" python train.py\n"
    hits = found(host_list)
    assert len(hits) == 1 and hits[0].line == 5 and "the host list $H" in hits[0].message
    assert hits[0].fix is None


def test_accelerate_with_deepspeeds_multinode_launcher_reads_the_hostfile_too():
    text = HEAD.replace("=4\n#SBATCH --gpus", "=1\n#SBATCH --gpus").replace("#SBATCH --ntasks-per-node=1\n", "") + \
        "#SBATCH --ntasks=8\nsrun hostname | sed 's/$/ slots=4/' > hostfile.txt\n" \
        "accelerate launch --use_deepspeed --num_machines 2 --num_processes 8 --deepspeed_hostfile hostfile.txt " \
        "--deepspeed_multinode_launcher pdsh train.py\n"
    hits = found(text)
    assert len(hits) == 1 and "accelerate --deepspeed_hostfile hostfile.txt" in hits[0].message


# --- left alone ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    # the job's node list: one line per node
    HEAD + 'scontrol show hostnames "$SLURM_JOB_NODELIST" | sed \'s/$/ slots=4/\' > hostfile.txt\n' + DS,
    # repeats dropped in the pipeline, or afterwards in the file
    HEAD + "srun hostname -s | sort -u | sed 's/$/ slots=4/' > hostfile.txt\n" + DS,
    HEAD + "srun hostname -s | uniq | sed 's/$/ slots=4/' > hostfile.txt\n" + DS,
    HEAD + "srun hostname | awk '!seen[$0]++ {print $0\" slots=4\"}' > hostfile.txt\n" + DS,
    HEAD + "srun hostname | sed 's/$/ slots=4/' > hostfile.txt\nsort -u -o hostfile.txt hostfile.txt\n" + DS,
    # a helper that may rewrite the file: one named for it, or one given it
    HEAD + "srun hostname -s > hostfile.txt\npython edit_hostfile.py\n" + DS,
    HEAD + "srun hostname -s > hostfile.txt\n./fix_hosts.sh hostfile.txt\n" + DS,
    HEAD + 'HF=hosts-$SLURM_JOB_ID\nsrun hostname > "$HF"\nsort -u "$HF" -o "$HF"\ndeepspeed -H "$HF" train.py\n',
    # one task per node, with the count said
    HEAD + "srun --ntasks-per-node=1 --ntasks=2 hostname | sed 's/$/ slots=4/' > hostfile.txt\n" + DS,
    HEAD + "srun -N 2 -n 2 hostname | sed 's/$/ slots=4/' > hostfile.txt\n" + DS,
    HEAD + 'srun --ntasks-per-node=1 -n "$SLURM_NNODES" hostname | sed \'s/$/ slots=4/\' > hostfile.txt\n' + DS,
    # --nodes with --ntasks-per-node=1: newer Slurm honours it, so it is not reported
    HEAD + "srun -N 2 --ntasks-per-node=1 hostname | sed 's/$/ slots=4/' > hostfile.txt\n" + DS,
    # the job has one task per node
    HEAD.replace("--ntasks-per-node=4", "--ntasks-per-node=1")
    + "srun hostname | sed 's/$/ slots=4/' > hostfile.txt\n" + DS,
    # a task count without nodes: Slurm may give each task a node
    "#!/bin/bash\n#SBATCH --ntasks=4\nsrun hostname | sed 's/$/ slots=1/' > hostfile.txt\n" + DS,
    # written again from the job's nodes before the launch
    HEAD + "srun hostname > hostfile.txt\nscontrol show hostnames | sed 's/$/ slots=4/' > hostfile.txt\n" + DS,
    # another file, or a file written after the launch
    HEAD + "srun hostname > tasks.txt\n" + DS.replace("hostfile.txt", "other.txt"),
    HEAD + DS + "srun hostname | sed 's/$/ slots=4/' > hostfile.txt\n",
    # mpirun: one line per rank is how a machinefile gives a node its slots
    HEAD + "srun hostname > machines\nmpirun -np 8 --hostfile machines ./app\n",
    HEAD + "srun hostname > machines\nmpirun -np 8 -machinefile machines ./app\n",
    # horovodrun with MPI: the local ranks come from mpirun
    HEAD + "srun hostname | sed 's/$/ slots=4/' > hosts\nhorovodrun -np 8 --hostfile hosts python train.py\n",
    # a hostname that only names the batch node, or srun running something else
    HEAD + "hostname | sed 's/$/ slots=4/' > hostfile.txt\n" + DS,
    HEAD + "srun python list_nodes.py > hostfile.txt\n" + DS,
])
def test_left_alone(text):
    assert found(text) == [], [f.message for f in found(text)]


def test_the_rule_is_catalogued_with_its_examples():
    rule = rules()["HPC141"]
    assert rule.severity == "error" and "Hostfile contains multiple entries" in rule.why
    assert "can't honor --ntasks-per-node" in rule.why and "mpirun" in rule.why
    assert [f.code for f in lint(rule.bad) if f.code == "HPC141"] == ["HPC141"]
    assert not [f for f in lint(rule.good) if f.code == "HPC141"]


# --- on the practice cluster -----------------------------------------------------------------------------------------

@pytest.mark.real
def test_srun_hostname_writes_a_line_per_task_on_the_cluster(tmp_path: Path):
    """What the rule rests on: a job of 2 nodes x 2 tasks gets 4 lines from srun, 4 from srun --ntasks-per-node=1
    alone, and 2 from the fix's srun and from scontrol show hostnames. Lines are node names from $SLURMD_NODENAME
    (the practice nodes share one hostname)."""
    from hpcwidgets.run import practice_cluster as pc
    need_tool("sbatch", "Slurm's client programs (apt-get install slurm-client)")
    st = pc.status()
    need(st.running, "the practice cluster is not up (run: sudo hpcwidgets practice-cluster up)")
    env = {**os.environ, "SLURM_CONF": str(st.slurm_conf)}
    out = tmp_path / "out"
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n#SBATCH -N 2\n#SBATCH --ntasks-per-node=2\n#SBATCH --time=00:02:00\n"
        f"#SBATCH --output={tmp_path}/slurm.out\n"
        f"srun bash -c 'echo $SLURMD_NODENAME' > {out}.per_task\n"
        f"srun --ntasks-per-node=1 bash -c 'echo $SLURMD_NODENAME' > {out}.npn1\n"
        f"srun --ntasks-per-node=1 --ntasks=\"$SLURM_NNODES\" bash -c 'echo $SLURMD_NODENAME' > {out}.fixed\n"
        f"scontrol show hostnames \"$SLURM_JOB_NODELIST\" > {out}.scontrol\n")
    sbatch_and_wait(script, env)
    lines = {k: Path(f"{out}.{k}").read_text().split() for k in ("per_task", "npn1", "fixed", "scontrol")}
    assert len(lines["per_task"]) == 4 and len(set(lines["per_task"])) == 2
    assert len(lines["npn1"]) == 4  # --ntasks-per-node=1 alone is ignored: the job's 4 tasks win
    assert sorted(lines["fixed"]) == sorted(lines["scontrol"]) and len(lines["fixed"]) == 2
