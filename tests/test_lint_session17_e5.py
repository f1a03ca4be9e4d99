"""Session 17 (E5): lint follow-ups from the audits of site documentation and real scripts.

- HPC201/HPC220: a GPU job's container step whose program plainly uses no GPU (cowsay, a version check) is advice,
  not an error; every other program keeps the error and its --nv fix.
- HPC000: a template's ``<placeholder>`` is named as such, and the ``#SBATCH`` lines are still checked.
- HPC307: ``--gres=gpu:N`` together with ``--gpus-per-node=M``.
- HPC138: a rendezvous variable (MASTER_ADDR, MASTER_PORT) that nothing in the script sets.
"""

from __future__ import annotations

import pytest

from hpcwidgets import parse_script
from hpcwidgets.errors import ParseError
from hpcwidgets.lint import lint


def codes(text: str, profile: str | None = None) -> list[str]:
    return [f.code for f in lint(text, profile)]


def only(text: str, code: str) -> list:
    return [f for f in lint(text) if f.code == code]


GPU_JOB = "#!/bin/bash\n#SBATCH --gpus-per-node=A40:1\n#SBATCH --time=00:05:00\n"


# --------------------------------------------------------------------------------------------
# HPC201 / HPC220: a container step that does no GPU work

@pytest.mark.parametrize("program", [
    'python -c "import torch; print(torch.__version__)"',
    'python3 -c "import torch, sys; print(f\'torch {torch.__version__} cuda {torch.version.cuda}\', sys.version)"',
    "cowsay moo",
    "python --version",
    "cat /etc/os-release",
    "bash -c 'echo start; cowsay moo'",
])
def test_a_step_without_gpu_work_is_advice_not_an_error(program: str) -> None:
    found = lint(GPU_JOB + f"apptainer exec image.sif {program}\n")
    assert "HPC201" not in [f.code for f in found]
    advice = [f for f in found if f.code == "HPC220"]
    assert len(advice) == 1 and advice[0].severity == "info" and advice[0].fix is None
    assert "no GPU (fine" in advice[0].message


def test_the_c3se_getting_started_example_keeps_only_advice() -> None:
    text = (GPU_JOB + "singularity exec /apps/containers/PyTorch/PyTorch-1.10-NGC-21.08.sif "
            "python -c \"import torch; print(torch.__version__)\"\n")
    found = only(text, "HPC220")
    assert "python -c only imports and prints versions" in found[0].message
    assert "HPC201" not in codes(text)


@pytest.mark.parametrize("program", [
    "python train.py",
    'python -c "import torch; print(torch.cuda.is_available())"',   # the GPU check itself: it needs --nv
    'python -c "import torch; torch.zeros(1).cuda()"',
    "nvidia-smi",
    "nvidia-smi --version",                                         # --nv brings nvidia-smi into the container
    "bash -c 'echo start; python train.py'",
    "echo $(python train.py)",
    "./run_benchmark --version --quick",
])
def test_a_program_that_may_use_the_gpu_keeps_the_error_and_its_fix(program: str) -> None:
    found = only(GPU_JOB + f"apptainer exec image.sif {program}\n", "HPC201")
    assert len(found) == 1 and found[0].severity == "error"
    assert found[0].fix is not None and "--nv" in found[0].fix.description


def test_runscript_and_launcher_steps_are_not_judged_by_their_program() -> None:
    assert "HPC201" in codes(GPU_JOB + "apptainer run image.sif --version\n")
    text = GPU_JOB + "srun apptainer exec image.sif torchrun --nproc-per-node=1 train.py\n"
    assert "HPC201" in codes(text)


def test_a_data_helper_in_a_job_where_no_step_has_the_flag_is_still_an_error() -> None:
    # the flag was most likely forgotten on every step: the helper is advice only beside a step with --nv
    text = GPU_JOB + "apptainer exec image.sif tar -xf data.tar -C /tmp\napptainer exec image.sif python train.py\n"
    assert [f.line for f in only(text, "HPC201")] == [4, 5] and not only(text, "HPC220")


def test_a_version_check_beside_a_gpu_step_is_still_the_helper_advice() -> None:
    text = GPU_JOB + "apptainer exec image.sif cowsay moo\napptainer exec --nv image.sif python train.py\n"
    found = only(text, "HPC220")
    assert len(found) == 1 and "passes the GPUs in" in found[0].message
    assert "HPC201" not in codes(text)


# --------------------------------------------------------------------------------------------
# HPC000: a template's placeholder

PLACEHOLDER = """#!/bin/bash
#SBATCH --account=<project>
#SBATCH --gres=gpu:v100:4
#SBATCH --time=2h
srun python3 myprog.py <options>
"""


def test_the_placeholder_is_named_by_lint_and_by_the_reader() -> None:
    problem = only(PLACEHOLDER, "HPC000")
    assert len(problem) == 1 and problem[0].line == 5
    assert "`<options>` looks like a placeholder from a template: replace it" in problem[0].message
    assert "redirection" not in problem[0].message.split(";")[0].split("(")[0]
    with pytest.raises(ParseError) as caught:
        parse_script(PLACEHOLDER)
    assert "`<options>` looks like a placeholder" in str(caught.value)
    assert caught.value.line == 5 and caught.value.column == len("srun python3 myprog.py ") + 1


def test_a_placeholder_with_spaces_and_a_pipe_after_it() -> None:
    text = "#!/bin/bash\nsrun python3 myprog.py <further options> | tee log\n"
    assert "`<further options>` looks like a placeholder" in only(text, "HPC000")[0].message


def test_a_redirection_without_target_keeps_its_own_message() -> None:
    message = only("#!/bin/bash\nsrun python train.py >\n", "HPC000")[0].message
    assert "redirection `>` needs a target" in message and "placeholder" not in message


def test_the_sbatch_lines_of_an_unreadable_script_are_still_checked() -> None:
    found = lint(PLACEHOLDER)
    assert {f.code for f in found} == {"HPC000", "HPC301", "HPC536"}   # --time=2h: a directive rule still runs
    assert "until it reads, only its #SBATCH lines are checked (rules HPC3xx, HPC4xx and HPC536), not its commands" in \
        only(PLACEHOLDER, "HPC000")[0].message
    assert "HPC407" in codes(PLACEHOLDER.replace("--time=2h", "--time=02:00:00"), "generic")  # profile rules too


def test_an_unreadable_script_gets_no_findings_about_its_commands() -> None:
    text = "#!/bin/bash\n#SBATCH --signal=B:USR1@60\n#SBATCH --time=01:00:00\nsrun python train.py <args>\n"
    assert codes(text) == ["HPC000"]   # the trap HPC530 looks for may be in the code that cannot be read


def test_select_and_ignore_apply_to_the_directive_rules_of_an_unreadable_script() -> None:
    assert [f.code for f in lint(PLACEHOLDER, ignore="HPC301,HPC536")] == ["HPC000"]
    assert [f.code for f in lint(PLACEHOLDER, select="HPC4")] == ["HPC000"]


# --------------------------------------------------------------------------------------------
# HPC307: --gres=gpu:N and --gpus-per-node=M

def gpu_job(*directives: str) -> str:
    return "#!/bin/bash\n" + "".join(f"#SBATCH {d}\n" for d in directives) + "#SBATCH --time=01:00:00\nsrun python x.py\n"


@pytest.mark.parametrize("first, second", [("--gres=gpu:2", "--gpus-per-node=4"),
                                           ("--gpus-per-node=4", "--gres=gpu:2")])
def test_gres_wins_over_gpus_per_node_whatever_the_order(first: str, second: str) -> None:
    found = only(gpu_job(first, second), "HPC307")
    assert len(found) == 1 and found[0].line == 3 and found[0].severity == "error"
    assert "Slurm keeps the --gres count whatever the order of the lines, so each node gets 2 GPUs, not 4" \
        in found[0].message


def test_a_type_on_one_and_not_the_other_is_refused() -> None:
    found = only(gpu_job("--gres=gpu:a100:4", "--gpus-per-node=4"), "HPC307")
    assert "Invalid GRES specification (with and without type identification)" in found[0].message


def test_two_gpu_types_are_both_asked_for() -> None:
    found = only(gpu_job("--gres=gpu:a100:2", "--gpus-per-node=v100:4"), "HPC307")
    assert "4 v100 and 2 a100 GPUs" in found[0].message


def test_same_type_and_count_twice_the_last_gres_and_other_resources_are_left_alone() -> None:
    assert not only(gpu_job("--gres=gpu:4", "--gpus-per-node=4"), "HPC307")
    assert not only(gpu_job("--gres=gpu:a100:2,lscratch:10", "--gpus-per-node=a100:2"), "HPC307")
    assert not only(gpu_job("--gres=lscratch:100", "--gpus-per-node=4"), "HPC307")
    # sbatch keeps the last --gres: an earlier GPU one is HPC330's
    assert not only(gpu_job("--gres=gpu:2", "--gres=lscratch:100", "--gpus-per-node=4"), "HPC307")


def test_each_heterogeneous_component_is_read_on_its_own() -> None:
    text = gpu_job("--gres=gpu:2", "hetjob", "--gpus-per-node=4")
    assert not only(text, "HPC307")


# --------------------------------------------------------------------------------------------
# HPC138: a rendezvous variable nothing sets

LAUNCH = ('srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d '
          '--rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" train.py\n')
HEAD = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --time=01:00:00\n"


def test_master_addr_and_port_that_nothing_sets() -> None:
    found = only(HEAD + LAUNCH, "HPC138")
    assert len(found) == 1 and found[0].severity == "warning" and found[0].line == 5
    message = found[0].message
    assert "nothing in the script sets $MASTER_ADDR and $MASTER_PORT, and Slurm does not either" in message
    assert "sbatch passes its environment on" in message
    assert 'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1); ' \
           "export MASTER_PORT=29500" in message


def test_the_static_options_and_the_scripts_own_spelling() -> None:
    text = HEAD + "srun torchrun --nnodes=2 --nproc_per_node=4 --master_addr=$MASTER_ADDR --master_port=29500 train.py\n"
    found = only(text, "HPC138")
    assert len(found) == 1 and found[0].message.startswith("--master_addr=$MASTER_ADDR: nothing in the script sets")


def test_alvis_tutorial_launch_inside_bash_c() -> None:
    text = HEAD + ('srun bash -c "python -m torch.distributed.run --nnodes=2 --nproc_per_node=4 '
                   '--rdzv_backend=c10d --rdzv_endpoint=\\"$MASTER_ADDR:$MASTER_PORT\\" ddp.py"\n')
    assert len(only(text, "HPC138")) == 1


@pytest.mark.parametrize("setting", [
    'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\nexport MASTER_PORT=29500\n',
    "source ./cluster_env.sh\n",
    ". ./cluster_env.sh\n",
    'eval "$(python get_rendezvous.py)"\n',
    "export $(grep -v '^#' rendezvous.env | xargs)\n",
    "read -r MASTER_ADDR MASTER_PORT < rendezvous.txt\n",
    "#SBATCH --export=ALL,MASTER_ADDR=node01,MASTER_PORT=29500\n",
])
def test_a_script_that_may_set_them_is_left_alone(setting: str) -> None:
    if setting.startswith("#SBATCH"):
        text = HEAD.replace("#SBATCH --time", setting + "#SBATCH --time") + LAUNCH
    else:
        text = HEAD + setting + LAUNCH
    assert not only(text, "HPC138")


def test_defaults_and_slurms_own_variables_are_left_alone() -> None:
    text = HEAD + ('srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d '
                   '--rdzv-id=$SLURM_JOB_ID --rdzv-endpoint="${MASTER_ADDR:-$SLURMD_NODENAME}:${MASTER_PORT:-29500}" '
                   "train.py\n")
    assert not only(text, "HPC138")


def test_one_of_the_two_set_names_only_the_other() -> None:
    found = only(HEAD + "export MASTER_PORT=29500\n" + LAUNCH, "HPC138")
    assert "sets $MASTER_ADDR, and Slurm" in found[0].message and "MASTER_PORT=" not in found[0].message
