"""Launches behind transparent wrappers (``srun env -u X torchrun``, ``uv run torchrun``…), the HPC502 cases
where the batch shell's value is never used (set again per task, or a node rank c10d ignores), HPC118 through
variables, HPC102 for a quoted one-element node array, and HPC520 (``NAME = value``)."""

from __future__ import annotations

import re

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint
from hpcwidgets.lint.buildfile import _program
from hpcwidgets.parse import parse_script
from hpcwidgets.parse.lexer import lex_command
from hpcwidgets.parse.script import launch_words, read_script
from hpcwidgets.render import render

HEAD = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node={tasks}\n#SBATCH --gres=gpu:4\n"
LOCALHOST = "torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=localhost:29500 train.py"


def codes(text: str) -> list[str]:
    return [f.code for f in lint(text)]


# -- D1: wrappers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("wrapper", [
    "env -u ROCR_VISIBLE_DEVICES", "env --unset=X -i A=1", "env -uX", "uv run --no-sync --",
    "uv run --python 3.11 --with x", "conda run -n myenv --no-capture-output", "conda run -p /x --live-stream",
    "micromamba run -n x", "mamba run -n x", "pixi run -e cuda", "numactl --cpunodebind=0 --membind 0",
    "numactl -C 0-3", "nice -n 10", "nice -10", "stdbuf -oL -eL", "taskset -c 0-7", "timeout 2h",
    "ionice -c 3", "poetry run", "/usr/bin/time -v", "env A=1 nice -n 5 uv run",
])
def test_torchrun_rules_see_through_a_wrapper_after_srun(wrapper: str) -> None:
    assert "HPC103" in codes(HEAD.format(tasks=1) + f"srun {wrapper} {LOCALHOST}\n")


@pytest.mark.parametrize("prefix", ["env -u X srun", "time -p srun", "nice -n 5 uv run srun", "/usr/bin/time -v srun"])
def test_wrappers_before_srun_are_read_past(prefix: str) -> None:
    assert "HPC103" in codes(HEAD.format(tasks=1) + f"{prefix} {LOCALHOST}\n")


def test_uv_run_torchrun_in_the_batch_shell_of_a_two_node_job() -> None:
    text = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --gres=gpu:4\nuv run " + LOCALHOST.replace("localhost", "n1") + "\n"
    assert "HPC110" in codes(text)


def test_uv_run_torchrun_under_four_tasks_per_node_oversubscribes() -> None:
    text = HEAD.format(tasks=4) + ('head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
                                   "srun uv run " + LOCALHOST.replace("localhost", "$head") + "\n")
    assert "HPC101" in codes(text)


@pytest.mark.parametrize("line", [
    f"srun apptainer exec --nv img.sif env -u X {LOCALHOST}",
    f"srun env A=1 apptainer exec --nv img.sif uv run {LOCALHOST}",
    f"srun bash -c \"uv run --no-sync {LOCALHOST}\"",
    f"srun uv run bash -c \"{LOCALHOST}\"",
    f"srun bash -c \"apptainer exec --nv img.sif numactl -C 0-3 {LOCALHOST}\"",
])
def test_wrappers_inside_a_container_or_a_bash_c_script(line: str) -> None:
    assert "HPC103" in codes(HEAD.format(tasks=1) + line + "\n")


@pytest.mark.parametrize("unknown, known", [
    ("env -S 'a b'", "env -u X"), ("uv run --weird", "uv run --no-sync"), ("numactl --show", "numactl -l"),
    ("taskset -p 1", "taskset -c 1"), ("conda run --", "conda run -n x"), ("command -v", "command -p"),
])
def test_a_wrapper_option_the_table_does_not_know_leaves_the_command_alone(unknown: str, known: str) -> None:
    assert "HPC103" not in codes(HEAD.format(tasks=1) + f"srun {unknown} {LOCALHOST}\n")
    assert "HPC103" in codes(HEAD.format(tasks=1) + f"srun {known} {LOCALHOST}\n")


def test_launch_words_reads_each_wrappers_own_options() -> None:
    assert launch_words("env -u X -C /tmp A=1 B=2 torchrun x".split()) == ["torchrun", "x"]
    assert launch_words("uv run -p 3.11 -vv --with=a torchrun".split()) == ["torchrun"]
    assert launch_words("taskset -ac 0-3 python t.py".split()) == ["python", "t.py"]
    assert launch_words("stdbuf -oL python".split()) == ["python"]
    assert launch_words("exec".split()) == []  # exec >log: runs nothing
    assert launch_words("env --frobnicate torchrun".split()) == ["env", "--frobnicate", "torchrun"]
    assert launch_words("nohup env --frobnicate torchrun".split()) == ["env", "--frobnicate", "torchrun"]


def test_the_model_read_back_keeps_the_wrapper_words() -> None:
    for line in (f"srun env -u ROCR_VISIBLE_DEVICES {LOCALHOST}", f"uv run --no-sync {LOCALHOST}",
                 f"srun apptainer exec --nv img.sif env -u X {LOCALHOST}"):
        text = HEAD.format(tasks=1) + line + "\n"
        assert "HPC103" in codes(text)  # the linter reads the launcher behind the wrapper …
        written = render(parse_script(text), validate=False)  # … and the model keeps the wrapper's words
        assert line in re.sub(r"\s*\\\n\s*", " ", written)  # as one line, continuations joined


def test_no_fix_drops_a_wrapper_read_past_after_srun() -> None:
    text = HEAD.format(tasks=1) + f"srun env -u ROCR_VISIBLE_DEVICES {LOCALHOST}\n"
    fixed, _ = fix_script(text)
    assert "srun env -u ROCR_VISIBLE_DEVICES torchrun" in fixed
    step = read_script(text).steps_as_run[0]
    assert step.looked_through == ("env", "-u", "ROCR_VISIBLE_DEVICES") and step.chain.launcher is not None


def test_env_assignments_after_srun_reach_the_container() -> None:
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:1\nsrun env NVIDIA_VISIBLE_DEVICES=all apptainer exec --nvccli "
            "--containall pytorch_2.3.sif python train.py\n")
    assert "HPC225" not in codes(text)
    assert "HPC225" in codes(text.replace("env NVIDIA_VISIBLE_DEVICES=all ", "env -u X "))


def test_build_files_read_past_the_same_wrappers() -> None:
    assert _program(lex_command("sudo -u bob pip install x")) == ["pip", "install", "x"]
    assert _program(lex_command("nice -n 10 pip install x")) == ["pip", "install", "x"]
    assert _program(lex_command("DEBIAN_FRONTEND=noninteractive env A=1 apt-get install -y x"))[0] == "apt-get"


# -- D3/D4: HPC502 ----------------------------------------------------------------------------------

RESET = HEAD.format(tasks=1) + """export NODE_RANK=$SLURM_PROCID
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun bash -c "export NODE_RANK=\\$SLURM_PROCID; torchrun --nnodes=2 --nproc-per-node=4 --master-addr=$head \\
  --master-port=29500 --node-rank=\\$NODE_RANK train.py"
"""


def test_hpc502_not_when_every_step_sets_the_variable_again_per_task() -> None:
    assert "HPC502" not in codes(RESET)


@pytest.mark.parametrize("change", [
    ("export NODE_RANK=\\$SLURM_PROCID; ", ""),                      # the step uses the batch shell's value
    ("export NODE_RANK=\\$SLURM_PROCID; torchrun", "echo \\$NODE_RANK; export NODE_RANK=\\$SLURM_PROCID; torchrun"),
    ("train.py\"\n", "train.py\"\nsrun python eval.py\n"),           # exported: a later step reads it from its env
])
def test_hpc502_stays_when_the_batch_shells_value_is_read(change: tuple[str, str]) -> None:
    assert "HPC502" not in codes(RESET) and "HPC502" in codes(RESET.replace(*change))


C10D = HEAD.format(tasks=1) + """head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=2 --nproc-per-node=4 --node-rank="$SLURM_NODEID" --rdzv-backend=c10d \\
  --rdzv-endpoint="$head:29500" train.py
"""


def test_hpc502_not_for_a_node_rank_the_c10d_rendezvous_ignores() -> None:
    found = codes(C10D)
    assert "HPC502" not in found and "HPC105" in found


def test_hpc502_not_for_a_c10d_launch_held_in_a_variable() -> None:
    text = HEAD.format(tasks=1) + ("LAUNCHER=\"torchrun --nproc_per_node=4 --nnodes=2 --node_rank=$SLURM_NODEID "
                                   "--rdzv_endpoint n1:29500 --rdzv_backend c10d\"\nsrun $LAUNCHER train.py\n")
    assert "HPC502" not in codes(text)


def test_hpc502_not_for_a_c10d_node_rank_in_a_double_quoted_bash_c_script() -> None:
    step = ('srun bash -c "torchrun --nnodes=2 --nproc_per_node=4 --node_rank=$SLURM_NODEID --rdzv_backend=c10d '
            '--rdzv_endpoint=$head:29500 train.py{extra}"\n')
    text = HEAD.format(tasks=1) + 'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)\n' + step
    assert "HPC502" not in codes(text.format(extra="")) and "HPC105" in codes(text.format(extra=""))
    assert "HPC502" in codes(text.format(extra=" --seed $SLURM_NODEID"))  # the program reads it too: the same seed
    static = text.format(extra="").replace("--rdzv_backend=c10d --rdzv_endpoint=$head:29500", "--master_addr=$head")
    assert "HPC502" in codes(static)  # the static rendezvous reads --node_rank: every node claims rank 0


@pytest.mark.parametrize("change", [
    ("--rdzv-backend=c10d \\\n  --rdzv-endpoint=\"$head:29500\"", "--master-addr=$head --master-port=29500"),  # static
    ("--rdzv-backend=c10d", "--rdzv-backend=static"),
    ("--rdzv-backend=c10d", "--rdzv-backend=$BACKEND"),
    ("train.py", "train.py --seed $SLURM_PROCID"),                 # it reaches the program too
])
def test_hpc502_stays_when_the_node_rank_is_used(change: tuple[str, str]) -> None:
    assert "HPC502" not in codes(C10D) and "HPC502" in codes(C10D.replace(*change))


# -- D5: HPC118 -------------------------------------------------------------------------------------

def test_hpc118_reads_num_processes_through_a_variable() -> None:
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gres=gpu:8\nNP=8\n"
            "srun bash -c \"accelerate launch --num_machines 2 --num_processes $NP --main_process_ip n1 "
            "--main_process_port 6000 --machine_rank \\$SLURM_NODEID train.py\"\n")
    assert "HPC118" in codes(text)
    assert "HPC118" not in codes(text.replace("NP=8", "NP=16"))


# -- D6: HPC102 -------------------------------------------------------------------------------------

QUOTED_ARRAY = HEAD.format(tasks=1) + """nodes=$(scontrol show hostnames "$SLURM_JOB_NODELIST")
nodes_array=("$nodes")
head_node=${nodes_array[0]}
srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" train.py
"""


def test_hpc102_for_the_first_element_of_a_quoted_one_element_node_array() -> None:
    found = [f for f in lint(QUOTED_ARRAY) if f.code == "HPC102"]
    assert len(found) == 1 and 'nodes_array=("$nodes") (line 6)' in found[0].message and found[0].fix is None


@pytest.mark.parametrize("change", [
    ('nodes_array=("$nodes")', "nodes_array=($nodes)"),                  # split: element 0 is the head node
    ('"$SLURM_JOB_NODELIST")', '"$SLURM_JOB_NODELIST" | head -n 1)'),    # one host
    ("nodes=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\")", "nodes=$(cat hosts)"),  # not known to be a list
])
def test_hpc102_not_when_the_element_is_one_host(change: tuple[str, str]) -> None:
    assert "HPC102" in codes(QUOTED_ARRAY) and "HPC102" not in codes(QUOTED_ARRAY.replace(*change))


def test_hpc102_for_master_addr_from_the_quoted_array() -> None:
    text = QUOTED_ARRAY.replace('--rdzv-backend=c10d --rdzv-endpoint="$head_node:29500"',
                                "--master-addr=$head_node --master-port=29500 --node-rank=\\$SLURM_NODEID")
    assert "HPC102" in codes(text)


# -- D7: HPC520 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, fixed", [
    ("NPROC = 4", "NPROC=4"),
    ("NUM_PROCESSES = $(($WORLD_SIZE-1))", "NUM_PROCESSES=$(($WORLD_SIZE-1))"),
    ("output_dir = '/p/scratch/out'", "output_dir='/p/scratch/out'"),
    ("X =5", "X=5"),
    ("Y= 7 # seven", "Y=7 # seven"),
    ("lr = 0.1", "lr=0.1"),
    ("if true; then NUM = 3; fi", "if true; then NUM=3; fi"),
])
def test_hpc520_spaced_assignment_and_its_fix(line: str, fixed: str) -> None:
    text = "#!/bin/bash\nset -e\n" + line + "\necho done\n"
    found = [f for f in lint(text) if f.code == "HPC520"]
    assert len(found) == 1 and found[0].severity == "error" and found[0].line == 3
    assert fix_script(text)[0] == "#!/bin/bash\nset -e\n" + fixed + "\necho done\n"


@pytest.mark.parametrize("line", ["A = a b", "num_gpus = $((N*2)) > log"])
def test_hpc520_without_a_fix_when_the_result_is_not_one_plain_assignment(line: str) -> None:
    found = [f for f in lint("#!/bin/bash\n" + line + "\n") if f.code == "HPC520"]
    assert len(found) == 1 and found[0].fix is None


@pytest.mark.parametrize("line", [
    "echo = hi", "echo =====", 'test "$a" = b', '[ "$a" = b ] && echo y', "[[ $a = b ]]", "let x = 1",
    "(( i = 1 ))", "alias ll = x", "IFS= read -r line", "CUDA_VISIBLE_DEVICES= nvidia-smi",
    "myfn = x", '"X" = 1', "printf '%s\\n' = x",
])
def test_hpc520_not_for_commands_that_take_an_equals_sign(line: str) -> None:
    text = "#!/bin/bash\nmyfn() { echo \"$@\"; }\n" + line + "\nNPROC = 4\n"
    assert [f.line for f in lint(text) if f.code == "HPC520"] == [4]  # NPROC only


def test_hpc520_not_for_text_that_is_no_shell_script() -> None:
    toml = 'name = "cluster"\nsrun_default = "srun"\n'
    assert "HPC520" not in codes(toml) and "HPC520" in codes("#!/bin/bash\n" + toml)


# -- D2: torchtune's tune run -------------------------------------------------------------------------

TUNE = HEAD.format(tasks=8) + """head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun tune run --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint "$head_node:29500" \\
  full_finetune_distributed --config llama3/8B_full
"""


def test_tune_run_is_read_as_the_torchrun_launch_it_starts() -> None:
    assert "HPC101" in codes(TUNE)  # 8 launchers per node, each with 8 workers
    assert "HPC101" not in codes(TUNE.replace("--ntasks-per-node=8", "--ntasks-per-node=1"))
    local = TUNE.replace("--ntasks-per-node=8", "--ntasks-per-node=1").replace('"$head_node:29500"', "localhost:29500")
    assert "HPC103" in codes(local) and "HPC103" in codes(local.replace("srun tune", "srun bash -c 'tune") + "'")
    assert "srun tune run --nnodes 2" in fix_script(TUNE)[0]  # no fix writes torchrun in its place


def test_tune_run_in_one_process_is_no_launch() -> None:
    text = HEAD.format(tasks=8) + "srun tune run full_finetune_single_device --config llama3/8B_lora_single_device\n"
    assert read_script(text).steps_as_run[0].chain.launcher is None
    eight = text.replace("tune run", "tune run --nproc_per_node 8")
    assert read_script(eight).steps_as_run[0].chain.launcher is not None


@pytest.mark.parametrize("program", ["singularity exec --nv img.sif python3", "apptainer exec --nv img.sif python",
                                     "bash run.sh", "/usr/bin/ch-run ./img -- python"])
def test_hpc114_for_a_program_given_to_torchrun_as_its_script(program) -> None:
    text = f"#!/bin/bash\n#SBATCH --gres=gpu:4\ntorchrun --standalone --nproc-per-node=4 {program} train.py\n"
    found = [f.message for f in lint(text) if f.code == "HPC114"]
    assert len(found) == 1 and "taken for a Python file" in found[0] and "--no-python" in found[0]
    with_flag = text.replace("--nproc-per-node=4", "--nproc-per-node=4 --no-python")
    assert "HPC114" not in codes(with_flag)  # each worker runs the command itself


@pytest.mark.parametrize("shell", ["bash -lc", "bash -l -c", "sh -ec", "/bin/bash -o pipefail -c"])
def test_a_bash_c_script_with_other_options_is_read_like_bash_c(shell) -> None:
    """srun bash -lc "module load …; torchrun …" (a login shell, for the module command): the script is read as
    for bash -c, so the launch in it gets the same findings."""
    step = ('srun {shell} "module load cuda; torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d '
            '--rdzv-endpoint=localhost:29500 train.py"\n')
    head = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gres=gpu:4\n"
    assert codes(head + step.format(shell=shell)) == codes(head + step.format(shell="bash -c"))
    assert {"HPC101", "HPC103"} <= set(codes(head + step.format(shell=shell)))
    assert "HPC101" not in codes(head + "srun bash -l run.sh\n")  # a script file, not a -c script: not read


@pytest.mark.parametrize("wrapper, fixed", [("numactl -C 0-3", False), ("taskset -c 0-3", False),
                                            ("uv run", True), ("env NCCL_DEBUG=INFO", True)])
def test_hpc110_fix_is_left_out_behind_a_wrapper_that_pins_the_process(wrapper, fixed) -> None:
    """The fix writes srun where the launch starts, after the wrappers: numactl or taskset would then pin srun, not
    the tasks it starts on the nodes, so that step gets the finding without a fix."""
    text = (HEAD.format(tasks=1) + 'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
            f"{wrapper} torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=$head:29500 t.py\n")
    found = [f for f in lint(text) if f.code == "HPC110"]
    assert len(found) == 1 and (found[0].fix is not None) is fixed
