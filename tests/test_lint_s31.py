"""Session 31: what the helper audit of realistic scripts found. ch-run -W makes bind destinations (HPC205), a chained
sbatch keeps the unparsed id (HPC547), a GPU wrapper in front of a container (HPC524, HPC133), an srun step that asks
for GPUs the job lacks (HPC202), one HPC309 in full per script, a umask that comes too late (HPC607); an attach
command written to a file (HPC550) and a scheduler file held in a variable (HPC549) from session 30's notes."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


# --- HPC205: ch-run -W / --write-fake ---------------------------------------------------------------------------------

@pytest.mark.parametrize("option", ["-W", "--write-fake", "--write-fake=4G", "-W4G"])
def test_hpc205_leaves_a_bind_alone_where_a_writable_overlay_lets_ch_run_make_it(option):
    text = f'#!/bin/bash\nch-run {option} -b "$SCRATCH/data:/data" img.sqfs -- python3 /opt/fit.py\n'
    assert found(text, "HPC205") == []


def test_hpc205_still_reports_the_bind_without_one():
    text = '#!/bin/bash\nch-run -b "$SCRATCH/data:/data" img.sqfs -- python3 /opt/fit.py\n'
    assert [line for line, _ in found(text, "HPC205")] == [2]


# --- HPC547: a chain of sbatch whose ids are kept with $(…) -----------------------------------------------------------

def test_hpc547_reads_a_dependency_in_an_sbatch_whose_own_id_is_kept():
    text = ("#!/bin/bash\nprep=$(sbatch preprocess.sbatch)\nx=$(sbatch --dependency=afterok:$prep sweep.sbatch)\n"
            "y=$(sbatch --parsable --dependency=afterok:$x post.sbatch)\n")
    reported = found(text, "HPC547")
    assert [line for line, _ in reported] == [2, 3]
    assert "the --dependency on line 3" in reported[0][1] and "x=$(sbatch --parsable …)" in reported[1][1]


def test_hpc547_leaves_a_parsable_chain_alone():
    text = ("#!/bin/bash\nprep=$(sbatch --parsable preprocess.sbatch)\n"
            "x=$(sbatch --parsable --dependency=afterok:$prep sweep.sbatch)\necho $x\n")
    assert found(text, "HPC547") == []


def test_hpc547_a_name_set_again_by_a_substitution_that_reads_it_first_still_counts():
    text = ("#!/bin/bash\njid=$(sbatch a.sbatch)\njid=$(sbatch --dependency=afterok:$jid b.sbatch)\n")
    assert [line for line, _ in found(text, "HPC547")] == [2]


# --- HPC524 and HPC133: a wrapper the script writes, in front of a container --------------------------------------------

LUMI = """#!/bin/bash
#SBATCH -N 1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH -t 01:00:00
cat > select_gpu <<'EOF'
#!/bin/bash
export ROCR_VISIBLE_DEVICES=$SLURM_LOCALID
export HIP_VISIBLE_DEVICES=$SLURM_LOCALID
exec "$@"
EOF
chmod +x select_gpu
"""


@pytest.mark.parametrize("step", [
    "srun ./select_gpu singularity exec img.sif python train.py\n",
    "srun ./select_gpu apptainer exec --rocm img.sif python train.py\n",
    "srun ./select_gpu bash -c 'cd /work && python train.py'\n",
    "srun ./select_gpu python train.py\n",
])
def test_hpc524_reads_the_written_wrapper_whatever_it_runs(step):
    [(line, message)] = found(LUMI + step, "HPC524")
    assert line == 6 and "in select_gpu, which srun runs on line 13" in message


def test_hpc524_leaves_a_wrapper_that_sets_one_variable_alone():
    text = LUMI.replace("export HIP_VISIBLE_DEVICES=$SLURM_LOCALID\n", "") + \
        "srun ./select_gpu singularity exec img.sif python train.py\n"
    assert found(text, "HPC524") == []


def test_hpc133_reads_a_written_wrapper_in_front_of_a_container():
    text = """#!/bin/bash
#SBATCH -N 1
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-task=1
#SBATCH -t 01:00:00
cat > pick_gpu.sh <<'EOF'
#!/bin/bash
export CUDA_VISIBLE_DEVICES=$SLURM_LOCALID
exec "$@"
EOF
chmod +x pick_gpu.sh
srun ./pick_gpu.sh apptainer exec --nv img.sif python train.py
"""
    assert [line for line, _ in found(text, "HPC133")] == [12]


# --- HPC202: the step asks for GPUs, the job for none ----------------------------------------------------------------

FRONTIER = "#!/bin/bash\n#SBATCH -N 2\n#SBATCH -t 01:00:00\n"
STEP = "srun -n 16 --ntasks-per-node=8 --gpus-per-task=1 apptainer exec --rocm img.sif python train.py\n"


def test_hpc202_says_the_step_asks_for_gpus_the_job_does_not_hold():
    [(line, message)] = found(FRONTIER + STEP, "HPC202")
    assert line == 4 and "this srun step asks for GPUs, but the job requests none" in message
    assert "drop --rocm" not in message and "Invalid generic resource (gres) specification" in message


def test_hpc202_leaves_the_step_alone_in_a_job_with_whole_nodes():
    assert found(FRONTIER + "#SBATCH --exclusive\n" + STEP, "HPC202") == []


def test_hpc202_still_says_drop_the_flag_when_nothing_asks_for_gpus():
    [(_, message)] = found(FRONTIER + "srun apptainer exec --rocm img.sif python train.py\n", "HPC202")
    assert "the job requests no GPU; add --gres=gpu:N or drop --rocm" in message


# --- HPC309: said in full once --------------------------------------------------------------------------------------

def test_hpc309_says_it_in_full_once_and_points_back_from_the_other_steps():
    text = ("#!/bin/bash\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=8\nsrun python prep.py\nsrun python train.py\n"
            "srun python eval.py\n")
    reported = [f for f in lint(text) if f.code == "HPC309"]
    assert [f.line for f in reported] == [4, 5, 6]
    assert "covers all 3 steps" in reported[0].message and "without a cluster profile" in reported[0].message
    assert all(f.message.startswith("as on line 4") and "--cpus-per-task=8" in f.message for f in reported[1:])
    assert all(len(f.message) < 150 for f in reported[1:])
    assert all(f.fix is not None for f in reported)  # each step keeps its own mechanical fix


def test_hpc309_alone_keeps_its_single_message():
    text = "#!/bin/bash\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=8\nsrun python train.py\n"
    [(_, message)] = found(text, "HPC309")
    assert "covers all" not in message and "pass --cpus-per-task=8 to srun" in message


# --- HPC607: a umask in the script ----------------------------------------------------------------------------------

def test_hpc607_says_a_umask_in_the_script_comes_too_late():
    text = "#!/bin/bash\n#SBATCH --time=02:00:00\numask 077\njupyter lab --no-browser --ip=0.0.0.0 --port=8888\n"
    [(_, message)] = found(text, "HPC607")
    assert "the umask in the script comes too late" in message
    without = text.replace("umask 077\n", "")
    [(_, message)] = found(without, "HPC607")
    assert "too late" not in message


# --- HPC552: nodes the job never reaches ----------------------------------------------------------------------------

IDLE = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --gres=gpu:4\n#SBATCH --time=04:00:00\n"


@pytest.mark.parametrize("body", [
    "apptainer exec --nv pytorch_2.3.sif python train.py\n",
    "module load python\nfor lr in 0.1 0.01; do\n  python train.py --lr $lr\ndone\n",
    "python - <<'EOF'\nimport sklearn\nEOF\n",
])
def test_hpc552_reports_a_job_whose_work_stays_on_the_first_node(body):
    [(line, message)] = found(IDLE + body, "HPC552")
    assert line == 2 and "2 nodes" in message and "--nodes=1" in message


def test_hpc552_reads_a_node_range():
    [(line, message)] = found(IDLE.replace("--nodes=2", "--nodes=2-4") + "python train.py\n", "HPC552")
    assert "2-4 nodes" in message


@pytest.mark.parametrize("body", [
    "srun apptainer exec --nv pytorch_2.3.sif python train.py\n",
    "mpirun -n 8 apptainer exec mpi.sif /opt/solver\n",
    "deepspeed --hostfile hf train.py\n",
    "bash run_all.sh\n",                                   # it may start srun itself
    "./launch.sh\n",
    "torchrun --nnodes=2 --nproc-per-node=4 train.py\n",    # HPC110's
    "snakemake --executor slurm-jobstep -j 8\n",
    "for h in $(scontrol show hostnames); do ssh $h hostname; done\n",
])
def test_hpc552_leaves_alone_what_reaches_the_other_nodes_or_may(body):
    assert found(IDLE + body, "HPC552") == []


def test_hpc552_leaves_one_node_and_heterogeneous_jobs_alone():
    assert found(IDLE.replace("--nodes=2", "--nodes=1") + "python train.py\n", "HPC552") == []
    het = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH hetjob\n#SBATCH --nodes=1\npython train.py\n")
    assert found(het, "HPC552") == []


# --- from the audit of MPI, Horovod, JAX, TensorFlow and Accelerate scripts ----------------------------------------------

ACCEL = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node=4\n"
         "#SBATCH --time=12:00:00\n"
         'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n')


def test_hpc116_reports_one_accelerate_config_file_for_every_node_without_a_rank():
    text = ACCEL + ("srun accelerate launch --config_file fsdp_config.yaml --num_machines 2 --num_processes 8 "
                    "--main_process_ip $MASTER_ADDR --main_process_port 29500 train.py\n")
    [(line, message)] = found(text, "HPC116")
    assert line == 7 and "--config_file fsdp_config.yaml" in message and '--machine_rank "$SLURM_NODEID"' in message


@pytest.mark.parametrize("change", [
    ("--config_file fsdp_config.yaml", "--config_file fsdp_config.yaml --rdzv_backend c10d"),
    ("srun accelerate launch --config_file fsdp_config.yaml",
     "srun bash -c 'accelerate launch --config_file fsdp_config.yaml --machine_rank $SLURM_NODEID"),
    ("--config_file fsdp_config.yaml", "--config_file node$SLURM_NODEID.yaml"),
])
def test_hpc116_leaves_a_config_file_alone_where_each_node_gets_its_rank(change):
    line = ("srun accelerate launch --config_file fsdp_config.yaml --num_machines 2 --num_processes 8 "
            "--main_process_ip $MASTER_ADDR --main_process_port 29500 train.py")
    line = line.replace(*change)
    if line.startswith("srun bash -c"):
        line += "'"
    assert found(ACCEL + line + "\n", "HPC116") == []


def test_hpc115_reads_a_jax_coordinator_each_task_names_itself():
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --time=06:00:00\n"
            "srun bash -c 'python train.py --coordinator_address=$(hostname):12345 --num_processes=$SLURM_NTASKS "
            "--process_id=$SLURM_PROCID'\n")
    [(line, message)] = found(text, "HPC115")
    assert line == 5 and "--coordinator_address" in message and "head_node" in message


@pytest.mark.parametrize(("image", "plugin"), [("impi_app.sif", "pmi2"), ("mpich-4.1.sif", "pmi2"),
                                               ("mpi_app_1.0.sif", "pmix"), ("openmpi5-app.sif", "pmix")])
def test_hpc215_advises_the_plugin_the_image_mpi_speaks(image, plugin):
    [(_, message)] = found(f"#!/bin/bash\n#SBATCH --ntasks=8\nmpirun -n 8 apptainer exec {image} /opt/app/solver\n",
                           "HPC215")
    assert f"srun --mpi={plugin}" in message


LIGHTNING = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-task=1\n"
             "#SBATCH --cpus-per-task=8\n#SBATCH --time=20:00:00\n"
             "srun --cpus-per-task=8 python train.py --trainer.devices=4 --trainer.num_nodes=2\n")


def test_hpc121_reports_lightning_devices_where_each_task_sees_one_gpu():
    [(line, message)] = found(LIGHTNING, "HPC121")
    assert line == 7 and "--gpus-per-task=1 on line 4" in message and "--gpus-per-node=4" in message


def test_hpc121_leaves_lightning_alone_where_every_task_sees_the_nodes_gpus():
    assert found(LIGHTNING.replace("--gpus-per-task=1", "--gpus-per-node=4"), "HPC121") == []
