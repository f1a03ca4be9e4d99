"""Session 18 (E4): lint follow-ups from the audit of real Ray, vLLM and SGLang job scripts and of odd input.

- HPC502: a per-task variable in srun's own --output/--error is advised srun's filename patterns (%n, %t), with a fix.
- HPC522: a server started as a background srun step (ray start --block, vllm serve, sglang) without --overlap
  blocks a later srun step on its node, as a monitor does.
- HPC537: ``unset $HF_HOME`` unsets the variable named by the value, not HF_HOME.
- HPC314: a script with carriage returns alone (old Mac line ends) is one line to sbatch and bash.
"""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint


def only(text: str, code: str) -> list:
    return [f for f in lint(text) if f.code == code]


def fixed(text: str, code: str) -> str:
    new, done = fix_script(text, select=code)
    assert done, f"no {code} fix was applied"
    return new


# --------------------------------------------------------------------------------------------
# HPC502: srun's own options

FOUR_NODES = "#!/bin/bash\n#SBATCH --nodes=4\n#SBATCH --ntasks-per-node=1\n#SBATCH -t 01:00:00\n"


@pytest.mark.parametrize("option, written", [
    ('--output="logs/%x_%j_node$SLURM_NODEID.out"', '--output="logs/%x_%j_node%n.out"'),
    ("--error=logs/err_${SLURM_NODEID}.txt", "--error=logs/err_%n.txt"),
    ('-o "logs/task_$SLURM_PROCID.out"', '-o "logs/task_%t.out"'),
    ("-ologs/n$SLURM_NODEID-t$SLURM_PROCID.out", "-ologs/n%n-t%t.out"),
])
def test_stream_option_gets_srun_filename_pattern(option: str, written: str) -> None:
    text = FOUR_NODES + f"srun {option} python server.py\n"
    [finding] = only(text, "HPC502")
    assert "srun's own" in finding.message and "bash -c '…' cannot change that" in finding.message
    assert "filename pattern" in finding.message and finding.fix is not None
    assert fixed(text, "HPC502") == FOUR_NODES + f"srun {written} python server.py\n"


def test_stream_options_on_continuation_lines_are_fixed_and_the_command_keeps_its_finding() -> None:
    """The audited SGLang launch (scripts/02): --output and --error on two lines, and --node-rank "$SLURM_NODEID"
    in the tasks' command, which is a real bug of its own."""
    text = FOUR_NODES + ('srun --ntasks=4 --nodes=4 --output="L/%x_node$SLURM_NODEID.out" \\\n'
                         '    --error="L/%x_node$SLURM_NODEID.err" \\\n'
                         '    python3 -m sglang.launch_server --nnodes 4 --node-rank "$SLURM_NODEID" &\nwait\n')
    own, command = only(text, "HPC502")
    assert "--output and --error" in own.message and "%n" in own.message
    assert "expanded once by the batch shell" in command.message and command.fix is None
    new = fixed(text, "HPC502")
    assert 'node%n.out" \\\n    --error="L/%x_node%n.err" \\\n' in new
    assert '--node-rank "$SLURM_NODEID"' in new
    assert ["expanded once by the batch shell" in f.message for f in only(new, "HPC502")] == [True]


def test_localid_in_output_has_no_pattern_and_no_fix() -> None:
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n"
            "srun --output=log_$SLURM_LOCALID.txt python x.py\n")
    [finding] = only(text, "HPC502")
    assert "%t" in finding.message and "%N" in finding.message and finding.fix is None


def test_other_srun_option_is_told_it_takes_no_per_task_value() -> None:
    text = FOUR_NODES + "srun --job-name=part_$SLURM_PROCID python x.py\n"
    [finding] = only(text, "HPC502")
    assert "--job-name" in finding.message and "no value per task" in finding.message and finding.fix is None


def test_reference_with_a_default_is_reported_without_a_fix() -> None:
    """${SLURM_NODEID:-0} is no plain reference the pattern can stand for as it is."""
    [finding] = only(FOUR_NODES + 'srun --output="logs/${SLURM_NODEID:-0}.out" python x.py\n', "HPC502")
    assert "%n" in finding.message and finding.fix is None


@pytest.mark.parametrize("text", [
    FOUR_NODES + 'srun --output="logs/%x_node%n.out" python server.py\n',        # the pattern itself
    FOUR_NODES + "srun --output='logs/node$SLURM_NODEID.out' python x.py\n",      # single quotes: no expansion
    "#!/bin/bash\n#SBATCH --ntasks=1\nsrun --output=log_$SLURM_PROCID.txt python x.py\n",  # one task: 0 is right
    FOUR_NODES + "srun -N1 -n1 --output=log_$SLURM_NODEID.txt python x.py\n",   # a step of one task
])
def test_no_per_task_value_in_srun_options(text: str) -> None:
    assert not only(text, "HPC502")


# --------------------------------------------------------------------------------------------
# HPC522: servers that never end, started as background steps

RAY_JOB = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --cpus-per-task=32\n"
           "#SBATCH --gpus-per-node=4\n#SBATCH -t 01:00:00\n"
           'nodes=($(scontrol show hostnames "$SLURM_JOB_NODELIST"))\nhead=${nodes[0]}\n')
HEAD = 'srun --nodes=1 --ntasks=1 -c 32 -w "$head" ray start --head --port=6379 --block &\n'
WORKER = 'srun --nodes=1 --ntasks=1 -c 32 -w "${nodes[1]}" ray start --address="$head:6379" --block &\n'
DRIVER = 'srun --nodes=1 --ntasks=1 -c 1 -w "$head" python -u driver.py\n'


def test_ray_head_blocks_a_driver_step_on_its_node() -> None:
    """The audit's minimal case (m13): the head holds the GPUs of its node; the worker, on the other node, does not
    block the driver."""
    text = RAY_JOB + HEAD + "sleep 20\n" + WORKER + "sleep 20\n" + DRIVER
    [finding] = only(text, "HPC522")
    assert finding.line == 9 and "ray start --block" in finding.message and "line 13" in finding.message
    assert "GPUs" in finding.message and "--overlap" in finding.message
    assert fixed(text, "HPC522").splitlines()[8].startswith('srun --overlap --nodes=1 --ntasks=1 -c 32 -w "$head"')


def test_a_server_written_over_several_lines_gets_overlap_after_srun() -> None:
    """The audited script 04's head step, with its driver moved under srun."""
    head = ('srun --nodes=1 --ntasks=1 --nodelist="$head" \\\n'
            '     uv run ray start --head --block \\\n     --port=6015 &\n')
    text = RAY_JOB + head + "sleep 5\n" + DRIVER
    [finding] = only(text, "HPC522")
    assert finding.line == 9 and "line 13" in finding.message
    assert fixed(text, "HPC522") == text.replace("srun --nodes=1 --ntasks=1 --nodelist", "srun --overlap --nodes=1 "
                                                 "--ntasks=1 --nodelist")


@pytest.mark.parametrize("server", [
    "vllm serve meta-llama/Llama-3.1-8B --port 8000",
    "python3 -u -m vllm.entrypoints.openai.api_server --model m",
    "python -m sglang.launch_server --model-path m --port 30000",
    "uv run ray start --head --block",
    "apptainer exec --nv vllm.sif vllm serve m",
    "bash -c 'ray start --head --port=6379 --block'",
    "jupyter lab --no-browser --port=8888",
    "tensorboard --logdir runs",
    "dask scheduler --scheduler-file s.json",
])
def test_servers_block_a_later_step(server: str) -> None:
    text = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=2\n#SBATCH --gres=gpu:4\n#SBATCH -t 01:00:00\n"
            f"srun -n 1 {server} &\nsleep 60\nsrun -n 1 python client.py\n")
    [finding] = only(text, "HPC522")
    assert finding.line == 6 and "never ends by itself" in finding.message and "line 8" in finding.message


def test_the_monitor_case_keeps_its_finding() -> None:
    text = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=1\n#SBATCH --gres=gpu:4\n"
            "srun nvidia-smi dmon -s u -d 30 > gpu_util.log &\nsrun python train.py\n")
    [finding] = only(text, "HPC522")
    assert "nvidia-smi dmon" in finding.message
    assert fixed(text, "HPC522").splitlines()[4] == "srun --overlap nvidia-smi dmon -s u -d 30 > gpu_util.log &"


@pytest.mark.parametrize("script", [
    # --overlap on the server, or on the later step (srun(1): such a step overlaps all others)
    RAY_JOB + HEAD.replace("srun ", "srun --overlap ") + "sleep 20\n" + DRIVER,
    RAY_JOB + HEAD + "sleep 20\n" + DRIVER.replace("srun ", "srun --overlap "),
    # the driver runs in the batch shell (the audited scripts 04 and 14)
    RAY_JOB + HEAD + "sleep 20\n" + WORKER + "sleep 20\npython -u driver.py\n",
    # the server step is the job's last srun
    RAY_JOB + HEAD + "sleep 20\n" + WORKER + "wait\n",
    # the later step is on another node by name (-w), or leaves the head out (-x)
    RAY_JOB + HEAD + "sleep 20\n" + DRIVER.replace('-w "$head"', '-w "${nodes[1]}"'),
    RAY_JOB + HEAD + "sleep 20\n" + DRIVER.replace('-w "$head"', '-x "$head"'),
    # the server takes only its own CPUs and GPUs
    RAY_JOB + HEAD.replace("-c 32", "-c 16 --gpus=2") + "sleep 20\n" + DRIVER,
    # ray start without --block returns at once
    RAY_JOB + HEAD.replace(" --block", "") + "sleep 20\n" + DRIVER,
    # a worker loop over the other nodes, in a job of one node, starts no step there (audit 12's repro)
    ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node=4\n"
     'nodes=($(scontrol show hostnames "$SLURM_JOB_NODELIST"))\n'
     'srun --nodes=1 --ntasks=1 -w "${nodes[0]}" ray start --head --block &\n'
     "for ((i = 1; i < SLURM_JOB_NUM_NODES; i++)); do\n"
     '    srun --nodes=1 --ntasks=1 -w "${nodes[$i]}" ray start --address "${nodes[0]}:6379" --block &\n'
     "done\nsleep 10\npython train_with_ray.py\n"),
])
def test_correct_server_patterns_are_left_alone(script: str) -> None:
    assert not only(script, "HPC522")


def test_two_servers_side_by_side_are_not_also_reported_as_steps_run_one_after_another() -> None:
    """HPC518 leaves a step that never ends to HPC522: 'one after another' would suggest the first one ends."""
    text = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=2\n#SBATCH --gres=gpu:2\n"
            "srun -n 1 vllm serve a --port 8000 &\nsrun -n 1 vllm serve b --port 8001 &\nwait\n")
    found = {f.code for f in lint(text)}
    assert "HPC522" in found and "HPC518" not in found


# --------------------------------------------------------------------------------------------
# HPC537: unset $NAME

UNSET_JOB = "#!/bin/bash\n#SBATCH -t 00:10:00\n"


@pytest.mark.parametrize("lines, word", [
    ("unset $HF_HOME\n", "$HF_HOME"),                                    # from the environment
    ('unset "${CUDA_VISIBLE_DEVICES}"\n', '"${CUDA_VISIBLE_DEVICES}"'),
    ("HF_HOME=$SCRATCH/hf\nunset -v $HF_HOME\n", "$HF_HOME"),            # set to a path
])
def test_unset_of_a_value_is_reported_and_fixed(lines: str, word: str) -> None:
    text = UNSET_JOB + lines
    [finding] = only(text, "HPC537")
    name = word.strip('"${}')
    assert f"unset {word}" in finding.message and f"write unset {name}" in finding.message
    # bash 5: plain unset of a name that is no identifier does nothing and says nothing; unset -v fails
    assert ("not a valid identifier" in finding.message) == ("-v" in lines)
    assert ("silently unsets nothing" in finding.message) == ("-v" not in lines)
    assert fixed(text, "HPC537").splitlines()[-1].endswith(f"unset{' -v' if '-v' in lines else ''} {name}")


def test_unset_in_a_bash_c_script_is_reported_without_a_fix() -> None:
    [finding] = only(UNSET_JOB + "srun bash -c 'unset $HF_HOME; python x.py'\n", "HPC537")
    assert finding.line == 3 and finding.fix is None


@pytest.mark.parametrize("lines", [
    "unset HF_HOME\n",
    'vars="WANDB_API_KEY HF_TOKEN"\nunset $vars\n',                       # a list of names
    "vars=(A B)\nunset \"${vars[@]}\"\n",
    "for v in WANDB_API_KEY HF_TOKEN; do unset $v; done\n",
    'unset "${!SLURM_@}"\n',                                              # indirect: names of the variables
    "unset -f $fn\n",                                                     # functions
    "f() { local n=$1; unset $n; }\nf X\n",                               # a value the script cannot tell
    "read -r name\nunset $name\n",
    "N=$(cat names.txt)\nunset $N\n",
])
def test_unset_of_names_is_left_alone(lines: str) -> None:
    assert not only(UNSET_JOB + lines, "HPC537")


# --------------------------------------------------------------------------------------------
# HPC314: carriage returns alone

CR_ONLY = ("#!/bin/bash\r#SBATCH --job-name=train\r#SBATCH --nodes=1\r#SBATCH --time=01:00:00\r"
           "srun python train.py\r")


def test_old_mac_line_ends_are_reported_and_converted() -> None:
    [finding] = only(CR_ONLY, "HPC314")
    assert finding.line == 1 and "old Mac line endings" in finding.message and "on 5 lines" in finding.message
    assert "(/bin/bash\\r#SBATCH)" in finding.message and "mac2unix" in finding.message
    assert fixed(CR_ONLY, "HPC314") == CR_ONLY.replace("\r", "\n")


def test_a_lone_carriage_return_inside_an_lf_file() -> None:
    text = "#!/bin/bash\n#SBATCH -t 10\recho start\nsrun python x.py\n"
    [finding] = only(text, "HPC314")
    assert finding.line == 2 and "on 1 line" in finding.message and "interpreter" not in finding.message
    assert fixed(text, "HPC314") == text.replace("\r", "\n")


def test_mixed_windows_and_old_mac_line_ends() -> None:
    text = "#!/bin/bash\r\n#SBATCH -t 10\rsrun python x.py\r\n"
    [finding] = only(text, "HPC314")
    assert "old Mac" in finding.message and "Windows ones (\\r\\n) on 2 lines" in finding.message
    assert fixed(text, "HPC314") == "#!/bin/bash\n#SBATCH -t 10\nsrun python x.py\n"


@pytest.mark.parametrize("text", [
    "#!/bin/bash\n#SBATCH -t 10\nsrun python x.py\n",
    "#!/bin/bash\n#SBATCH -t 10\nprintf 'a\\rb'\n",      # a written \r escape is no carriage return
])
def test_unix_line_ends_are_left_alone(text: str) -> None:
    assert not only(text, "HPC314")


def test_windows_line_ends_keep_their_message() -> None:
    [finding] = only("#!/bin/bash\r\n#SBATCH -t 10\r\nsrun x\r\n", "HPC314")
    assert "Windows line endings" in finding.message and "dos2unix" in finding.message
