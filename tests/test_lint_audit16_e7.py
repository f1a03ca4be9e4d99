"""Session 16's fixes to what a researcher's first afternoon found (audit A2): GPU visibility set in the batch shell
from a per-task variable (HPC502, HPC513, HPC524), HPC103's advice for --master-addr, and a container program the
profile says the site lacks (HPC414, and ``workflow --from`` keeping what the script wrote)."""

from __future__ import annotations

import pytest

from hpcwidgets.cli import main
from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint
from hpcwidgets.spec.profile import ClusterProfile
from hpcwidgets.profiles import load_profile


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


def codes(text: str, profile=None) -> set[str]:
    return {f.code for f in lint(text, profile)}


GPU_CODES = {"HPC502", "HPC513", "HPC524"}

ONE_TASK = "#!/bin/bash\n#SBATCH --nodes={nodes}\n#SBATCH --ntasks-per-node={tasks}\n#SBATCH --gpus-per-node=8\n"
TORCHRUN = "srun singularity exec --rocm img.sif torchrun --standalone --nproc_per_node=8 train.py\n"
TWO_NODE_TORCHRUN = ('head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
                     "srun singularity exec --rocm img.sif torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d "
                     '--rdzv_endpoint="$head_node:29500" train.py\n')


# --- the batch shell's $SLURM_LOCALID in a GPU variable: 0 for every step ---------------------------------------

@pytest.mark.parametrize("value", ["$SLURM_LOCALID", "${SLURM_LOCALID}", '"$SLURM_LOCALID"'])
def test_rocr_from_the_batch_shells_local_id_with_one_launcher_per_node_is_the_fixed_list_0(value):
    text = ONE_TASK.format(nodes=1, tasks=1) + f"export ROCR_VISIBLE_DEVICES={value}\n" + TORCHRUN
    (line, message), = found(text, "HPC513")
    assert line == 5
    assert "ROCR_VISIBLE_DEVICES=0 in every task" in message and "names 1 GPU but the job requests 8" in message
    assert message.endswith("remove the line")
    assert codes(text) & GPU_CODES == {"HPC513"}


def test_on_several_nodes_each_launchers_local_id_is_0_too_so_it_is_hpc513_not_hpc502():
    """HPC502's fix (let each task expand it) would give each node's one task 0 all the same."""
    text = ONE_TASK.format(nodes=2, tasks=1) + "export ROCR_VISIBLE_DEVICES=$SLURM_LOCALID\n" + TWO_NODE_TORCHRUN
    assert codes(text) & GPU_CODES == {"HPC513"}


def test_the_batch_shells_own_program_given_its_local_id_sees_one_gpu():
    text = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=1\n#SBATCH --gpus-per-node=4\n"
            "export CUDA_VISIBLE_DEVICES=$SLURM_PROCID\npython train.py\n")
    (line, message), = found(text, "HPC513")
    assert line == 5 and "CUDA_VISIBLE_DEVICES=0 in every task" in message and "the other 3 stay hidden" in message


def test_several_tasks_per_node_stay_hpc502s():
    text = ONE_TASK.format(nodes=1, tasks=8) + "export ROCR_VISIBLE_DEVICES=$SLURM_LOCALID\n" \
        "srun singularity exec --rocm img.sif python train.py\n"
    assert codes(text) & GPU_CODES == {"HPC502"}


def test_the_node_id_of_one_task_per_node_on_several_nodes_differs_so_it_stays_hpc502s():
    text = ONE_TASK.format(nodes=2, tasks=1) + "export NODE=$SLURM_NODEID\nsrun python train.py --node $NODE\n"
    assert [line for line, _ in found(text, "HPC502")] == [5]


@pytest.mark.parametrize("text", [
    # one GPU for the one task: 0 is that GPU
    "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=1\n#SBATCH --gpus-per-task=1\n"
    "export CUDA_VISIBLE_DEVICES=$SLURM_LOCALID\nsrun python train.py\n",
    # each task expands its own (single quotes): one GPU per task of eight
    ONE_TASK.format(nodes=1, tasks=8) + "srun bash -c 'export ROCR_VISIBLE_DEVICES=$SLURM_LOCALID; python w.py'\n",
    # set again by every step before it is read: the batch shell's value never reaches a task
    ONE_TASK.format(nodes=1, tasks=8) + "export ROCR_VISIBLE_DEVICES=$SLURM_LOCALID\n"
    "srun bash -c 'export ROCR_VISIBLE_DEVICES=$SLURM_LOCALID; python w.py'\n",
    # no GPU variable: the launcher gives each worker its GPU by LOCAL_RANK
    ONE_TASK.format(nodes=1, tasks=1) + TORCHRUN,
])
def test_per_task_gpu_choices_that_work_are_not_reported(text):
    assert not codes(text) & GPU_CODES


# --- ROCR_VISIBLE_DEVICES and HIP_VISIBLE_DEVICES both in the batch shell ---------------------------------------

@pytest.mark.parametrize("rocr", ["$SLURM_LOCALID", "0"])
def test_a_hip_list_over_what_rocr_leaves_in_the_batch_shell_is_one_hpc524(rocr):
    text = (ONE_TASK.format(nodes=1, tasks=1) + 'export HIP_VISIBLE_DEVICES="0,1,2,3,4,5,6,7"\n'
            f"export ROCR_VISIBLE_DEVICES={rocr}\n" + TORCHRUN)
    (line, message), = found(text, "HPC524")
    assert line == 6
    assert "lists 8 GPUs where there is 1" in message
    assert "HIP_VISIBLE_DEVICES contains more devices than ROCR_VISIBLE_DEVICES" in message
    assert f"set only HIP_VISIBLE_DEVICES (remove ROCR_VISIBLE_DEVICES={rocr}" in message
    assert codes(text) & GPU_CODES == {"HPC524"}  # not also HPC513 for the ROCR_VISIBLE_DEVICES line


def test_the_batch_shells_local_id_is_named_as_task_0s():
    text = (ONE_TASK.format(nodes=1, tasks=1) + "export HIP_VISIBLE_DEVICES=0,1,2,3,4,5,6,7\n"
            "export ROCR_VISIBLE_DEVICES=$SLURM_LOCALID\n" + TORCHRUN)
    (_, message), = found(text, "HPC524")
    assert "which the batch shell expands once (to task 0's 0)" in message


def test_a_cuda_list_over_what_rocr_leaves_shows_one_gpu():
    text = (ONE_TASK.format(nodes=1, tasks=1) + "export ROCR_VISIBLE_DEVICES=0,1\n"
            "export CUDA_VISIBLE_DEVICES=0,1,2,3\n" + TORCHRUN)
    (_, message), = found(text, "HPC524")
    assert "lists 4 GPUs where there are 2 (the program sees only the first 2" in message


@pytest.mark.parametrize("settings", [
    "export ROCR_VISIBLE_DEVICES=0,1,2,3\nexport HIP_VISIBLE_DEVICES=0,1\n",   # indexes within what ROCR leaves
    "export ROCR_VISIBLE_DEVICES=0\nexport HIP_VISIBLE_DEVICES=0\n",
    'export HIP_VISIBLE_DEVICES="0,1,2,3,4,5,6,7"\n',                          # HIP alone
])
def test_hip_within_what_rocr_leaves_is_not_hpc524(settings):
    assert not found(ONE_TASK.format(nodes=1, tasks=1) + settings + TORCHRUN, "HPC524")


def test_nvidia_gpus_by_the_profile_leave_the_pair_alone():
    generic = load_profile("generic")
    text = ("#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=1\n"
            "#SBATCH --gres=gpu:4\nexport HIP_VISIBLE_DEVICES=0,1,2,3\nexport ROCR_VISIBLE_DEVICES=0\n"
            "srun torchrun --standalone --nproc_per_node=4 train.py\n")
    assert not found(text, "HPC524", generic)
    assert [line for line, _ in found(text, "HPC513", generic)] == [7]  # ROCR_VISIBLE_DEVICES=0 of 4: HPC513's


# --- HPC103: the head node in the option's own form -------------------------------------------------------------

TWO_NODES = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gres=gpu:4\n"


@pytest.mark.parametrize("sep", ["_", "-"])
def test_master_addr_at_localhost_is_told_to_take_a_host_only(sep):
    text = TWO_NODES + (f"srun torchrun --nnodes=2 --nproc{sep}per{sep}node=4 --master{sep}addr=localhost "
                        f"--master{sep}port=29400 train.py\n")
    (line, message), = found(text, "HPC103")
    assert line == 5
    assert f'--master{sep}addr="$head_node"' in message and f"a host only: the port is --master{sep}port's" in message
    assert "29500" not in message and ":29400" not in message


def test_master_addr_fix_resolves_the_head_node_and_keeps_the_port():
    text = TWO_NODES + "srun torchrun --nnodes=2 --nproc_per_node=4 --master_addr=localhost --master_port=29400 train.py\n"
    fixed_text, _ = fix_script(text)
    assert 'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST"' in fixed_text
    assert '"--master_addr=$head_node" --master_port=29400' in fixed_text
    assert not found(fixed_text, "HPC103")


def test_rdzv_endpoint_at_localhost_is_told_host_and_port():
    text = TWO_NODES + ("srun torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d "
                        "--rdzv_endpoint=localhost:29400 train.py\n")
    (_, message), = found(text, "HPC103")
    assert "($head_node:29400)" in message


def test_master_addr_that_c10d_ignores_is_hpc105s_not_hpc103s():
    text = TWO_NODES + ('head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
                        "srun torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d "
                        '--rdzv_endpoint="$head_node:29500" --master_addr=localhost train.py\n')
    assert not found(text, "HPC103")
    assert found(text, "HPC105")


# --- HPC414: a container program the site does not have ---------------------------------------------------------

def site(runtimes: tuple[str, ...], binary: str = "apptainer") -> ClusterProfile:
    return load_profile("generic").replace(name="mysite", runtimes=runtimes, apptainer_binary=binary)


JOB = "#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n#SBATCH --time=01:00:00\n#SBATCH --mem=40G\n"


@pytest.mark.parametrize("runtimes,binary", [(("singularity",), "singularity"), (("apptainer",), "singularity")])
def test_apptainer_on_a_singularity_site_names_the_sites_program(runtimes, binary):
    text = JOB + "srun apptainer exec --nv img.sif python train.py\n"
    (line, message), = found(text, "HPC414", site(runtimes, binary))
    assert line == 6
    # srun starts the program itself: each task fails as slurmstepd reports it (bash's error is for the batch shell)
    assert "'slurmstepd: error: execve(): apptainer: No such file or directory'" in message
    assert "call singularity" in message
    for batch_shell in (text.replace("srun apptainer", "apptainer"),
                        text.replace("srun apptainer exec --nv img.sif python train.py",
                                     "srun bash -c 'apptainer exec --nv img.sif python train.py'")):
        (_, message), = found(batch_shell, "HPC414", site(runtimes, binary))
        assert "'apptainer: command not found'" in message   # bash looks the program up


def test_singularity_on_a_charliecloud_site_has_no_program_to_call_instead():
    (_, message), = found(JOB + "singularity exec img.sif python train.py\n", "HPC414", site(("charliecloud",)))
    assert "'singularity: command not found'" in message and "install Apptainer yourself" in message


def test_each_missing_program_is_reported_once_also_inside_bash_c_and_under_mpirun():
    text = JOB + ("srun bash -c 'apptainer exec img.sif python a.py'\napptainer exec img.sif python b.py\n")
    assert [line for line, _ in found(text, "HPC414", site(("singularity",), "singularity"))] == [6]
    text = JOB + "mpirun -np 2 apptainer exec img.sif python c.py\n"
    assert [line for line, _ in found(text, "HPC414", site(("singularity",), "singularity"))] == [6]


def test_the_rules_own_examples_on_a_singularityce_site():
    from hpcwidgets.lint import rules
    rule = rules()["HPC414"]
    singularity_site = site(("singularity",), "singularity")
    assert found(rule.bad, "HPC414", singularity_site) and not found(rule.good, "HPC414", singularity_site)


@pytest.mark.parametrize("text,runtimes,binary", [
    (JOB + "srun singularity exec img.sif python train.py\n", ("apptainer",), "apptainer"),  # Apptainer's second name
    (JOB + "srun apptainer exec img.sif python train.py\n", ("apptainer", "singularity"), "apptainer"),
    (JOB + "srun ch-run ./img -- python train.py\n", ("apptainer",), "apptainer"),  # Charliecloud: installed by anyone
    (JOB + "srun $HOME/apptainer/bin/apptainer exec img.sif python train.py\n", ("singularity",), "singularity"),
    (JOB + "module load apptainer\nsrun apptainer exec img.sif python train.py\n", ("singularity",), "singularity"),
    (JOB + "if command -v apptainer; then apptainer exec img.sif python t.py; else singularity exec img.sif python "
     "t.py; fi\n", ("singularity",), "singularity"),
])
def test_programs_the_site_has_or_the_script_brings_are_not_reported(text, runtimes, binary):
    assert not found(text, "HPC414", site(runtimes, binary))


def test_without_a_profile_nothing_is_said():
    assert not found(JOB + "srun apptainer exec img.sif python train.py\n", "HPC414")


# --- workflow --from keeps the program the script wrote; a new workflow gets the site's -------------------------

def test_workflow_from_a_script_keeps_apptainer_and_lint_says_the_site_lacks_it(tmp_path, capsys):
    profile = tmp_path / "mysite.toml"
    profile.write_text('name = "mysite"\nruntimes = ["singularity"]\napptainer_binary = "singularity"\n')
    script = tmp_path / "job.sh"
    script.write_text(JOB.replace("#SBATCH --partition=gpu\n", "") + "srun apptainer exec --nv img.sif python train.py\n")
    out = tmp_path / "out.sh"
    main(["workflow", "--from", str(script), "--profile", str(profile), "-o", str(out)])
    err = capsys.readouterr().err
    assert "srun apptainer exec --nv img.sif python train.py" in out.read_text()
    assert "HPC414" in err and "note:" not in err


def test_a_new_workflow_gets_the_sites_program_with_a_note(tmp_path, capsys):
    profile = tmp_path / "mysite.toml"
    profile.write_text('name = "mysite"\nruntimes = ["singularity"]\napptainer_binary = "singularity"\n')
    main(["workflow", "--container", "apptainer exec img.sif", "--program", "python train.py",
          "--profile", str(profile)])
    captured = capsys.readouterr()
    assert "singularity exec img.sif python train.py" in captured.out
    assert "note: the script runs singularity, not apptainer" in captured.err
    assert "HPC414" not in captured.err


@pytest.mark.parametrize("step, error", [
    ("srun apptainer exec img.sif python train.py", "slurmstepd: error: execve(): apptainer: No such file or directory"),
    ("apptainer exec img.sif python train.py", "apptainer: command not found"),
])
def test_a_module_not_loaded_names_the_error_the_step_stops_with(step, error):
    (line, message), = found(JOB + step + "\n", "HPC409", load_profile("midway3"))
    assert line == 6 and f"'{error}'" in message


def test_a_program_in_the_script_of_srun_bash_c_needs_the_module_too():
    step = "srun bash -c 'apptainer exec img.sif python train.py'\n"
    (line, message), = found(JOB + step, "HPC409", load_profile("midway3"))
    assert line == 6 and "'apptainer: command not found'" in message   # bash in each task looks it up
    fixed, applied = fix_script(JOB + step, load_profile("midway3"), select="HPC409")
    assert [f.code for f in applied] == ["HPC409"] and fixed.endswith("module load apptainer\n" + step)
    for loaded in (JOB + "module load apptainer\n" + step,
                   JOB + "srun bash -c 'module load apptainer && apptainer exec img.sif python train.py'\n"):
        assert found(loaded, "HPC409", load_profile("midway3")) == []
    # a module loaded after the call in the script comes too late
    late = JOB + "srun bash -c 'apptainer exec img.sif python train.py; module load apptainer'\n"
    assert len(found(late, "HPC409", load_profile("midway3"))) == 1


def test_a_module_of_another_runtime_before_srun_bash_c_is_reported_at_the_srun_line():
    text = JOB + "module load singularity\nsrun bash -c 'apptainer exec img.sif python train.py'\n"
    (line, message), = found(text, "HPC409", load_profile("midway3"))
    assert line == 7 and "loads singularity (line 6) in its place" in message
    assert "'apptainer: command not found'" in message
