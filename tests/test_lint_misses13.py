"""Session 13's fixes to misses found by the audits: the GPU type a --constraint names (HPC132), default and
job-id port idioms (HPC130), Open MPI 5 loaded by spack (HPC127), Poetry's and other tools' folders dropped by a
clean environment (HPC227), and one count of what a job holds shared by HPC128 and HPC518."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint

TWO_NODES = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node=4\n"


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


# --- HPC132: the GPU type from --constraint ---------------------------------------------------------------------

def p2p(constraint: str) -> str:
    return ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:4\n"
            f"#SBATCH {constraint}\nexport NCCL_P2P_DISABLE=1\nsrun python train.py\n")


@pytest.mark.parametrize("constraint, named", [
    ("--constraint=a100", "4 a100 GPUs"), ("-C H100", "4 H100 GPUs"), ("--constraint='a100|h100'", "a100 or h100"),
    ("--constraint=a100_80gb&ib", "a100_80gb"), ('-C "v100|v100s"', "v100 or v100s")])
def test_a_constraint_naming_data_centre_gpus_gives_the_type(constraint, named):
    hits = found(p2p(constraint), "HPC132")
    assert len(hits) == 1 and named in hits[0][1]


@pytest.mark.parametrize("constraint", [
    "--constraint=gpu", "--constraint=ampere", "--constraint=rtx4090", "--constraint='a100|gpu'",
    "--constraint='a100|rtx3090'", "--constraint=a100&h100", "--constraint='[a100|h100]'", "-C 4a100"])
def test_a_constraint_that_names_no_single_data_centre_model_stays_quiet(constraint):
    assert not found(p2p(constraint), "HPC132")


def test_the_gres_type_wins_over_the_constraint():
    text = p2p("--constraint=a100").replace("--gres=gpu:4", "--gres=gpu:rtx4090:4")
    assert not found(text, "HPC132")


# --- HPC130: defaults and job-id idioms --------------------------------------------------------------------------

def torchrun(setup: str, port_option: str = "") -> str:
    return TWO_NODES + setup + ('head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
                                f"srun torchrun --nnodes=2 --nproc-per-node=4 {port_option} train.py\n")


@pytest.mark.parametrize("setup, option, line, ports", [
    ("export MASTER_PORT=${MASTER_PORT:-45678}\n", "", 5, "port 45678"),
    ("", "--master_port=${PORT:-45678}", 6, "port 45678"),
    ("", "--master_port=${PORT-45678}", 6, "port 45678"),
    ("export MASTER_PORT=$(expr 45000 + $(echo -n $SLURM_JOBID | tail -c 4))\n", "", 5, "ports 45000–54999, all"),
    ("export MASTER_PORT=$(expr $SLURM_JOB_ID % 20000 + 40000)\n", "", 5, "ports 40000–59999, all"),
    ("export MASTER_PORT=$(( ((RANDOM<<15)|RANDOM) % 49152 + 10000 ))\n", "", 5, "ports 10000–59151, 54%"),
])
def test_ephemeral_ports_written_as_defaults_or_job_id_sums(setup, option, line, ports):
    hits = found(torchrun(setup, option), "HPC130")
    assert len(hits) == 1 and hits[0][0] == line and ports in hits[0][1]


@pytest.mark.parametrize("setup, option", [
    ("PORT=29500\n", "--master_port=${PORT:-45678}"),  # the script sets the variable: its value counts
    ("export MASTER_PORT=${MASTER_PORT:-29500}\n", ""),
    ("export MASTER_PORT=$(expr 10000 + $(echo -n $SLURM_JOBID | tail -c 4))\n", ""),
    ("export MASTER_PORT=$(( SLURM_JOB_ID % 10000 + 20000 ))\n", ""),
])
def test_ports_below_the_ephemeral_range_stay_quiet(setup, option):
    assert not found(torchrun(setup, option), "HPC130")


# --- HPC127: Open MPI 5 loaded by spack ---------------------------------------------------------------------------

def pmi2(setup: str) -> str:
    return "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=32\n" + setup + "srun --mpi=pmi2 ./solver\n"


@pytest.mark.parametrize("setup", ["spack load openmpi@5.0.3\n", "spack load openmpi@5.0.3 %gcc\n",
                                   "spack load --first openmpi@=5.0.3 %gcc@12 fabrics=ucx\n"])
def test_spack_loading_open_mpi_5_under_pmi2(setup):
    hits = found(pmi2(setup), "HPC127")
    assert len(hits) == 1 and "(spack load openmpi@" in hits[0][1]


@pytest.mark.parametrize("setup", [
    "spack load openmpi@4.1.6\n", "spack load hdf5 ^openmpi@5\n",
    "spack load openmpi@5.0.3\nmodule purge\nmodule load intel-mpi\n",
    "spack load openmpi@5.0.3\nspack unload --all\nspack load mpich\n"])
def test_spack_loads_that_show_no_open_mpi_5_for_the_ranks_stay_quiet(setup):
    assert not found(pmi2(setup), "HPC127")


# --- HPC227: Poetry's settings and other tools' folders ----------------------------------------------------------

@pytest.mark.parametrize("name", ["POETRY_VIRTUALENVS_PATH", "POETRY_CACHE_DIR", "XDG_DATA_HOME",
                                  "TORCHINDUCTOR_CACHE_DIR"])
def test_a_clean_environment_drops_tool_folders(name):
    text = (f"#!/bin/bash\n#SBATCH --time=01:00:00\nexport {name}=/workspace/cache\n"
            'apptainer exec --cleanenv --bind "$PWD":/workspace img_1.0.sif poetry install\n')
    hits = found(text, "HPC227")
    assert len(hits) == 1 and f"{name} (line 3)" in hits[0][1]
    passed = text.replace("--cleanenv", f'--cleanenv --env {name}="${name}"')
    assert not found(passed, "HPC227")


@pytest.mark.parametrize("name", ["PIP_CACHE_DIR", "UV_CACHE_DIR"])
def test_caches_of_host_side_installers_are_not_taken_for_the_programs(name):
    text = (f"#!/bin/bash\nexport {name}=$SCRATCH/cache\npip install --user tqdm\n"
            "apptainer exec --cleanenv img_1.0.sif python run.py\n")
    assert not found(text, "HPC227")  # pip on the host reads it; the program in the container never did


# --- HPC128 and HPC518 count the job's tasks and CPUs the same way -----------------------------------------------

@pytest.mark.parametrize("directives, ranks, counted", [
    ("#SBATCH --nodes=1\n#SBATCH --cpus-per-task=8\n", 8, "no --ntasks: one task per node"),
    ("#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=2\n", 8, "--ntasks-per-node=2 × 2 nodes"),
    ("#SBATCH --ntasks=4\n", 8, "--ntasks=4"),
])
def test_mpirun_ranks_beyond_the_tasks_say_how_they_were_counted(directives, ranks, counted):
    hits = found(f"#!/bin/bash\n{directives}module load openmpi/4.1.5\nmpirun -np {ranks} ./solver\n", "HPC128")
    assert len(hits) == 1 and f"({counted})" in hits[0][1]


@pytest.mark.parametrize("directives", ["#SBATCH --ntasks=8\n", "#SBATCH --exclusive\n",
                                        "#SBATCH --ntasks-per-core=2\n"])
def test_mpirun_within_the_tasks_or_on_whole_nodes_stays_quiet(directives):
    assert not found(f"#!/bin/bash\n#SBATCH --nodes=1\n{directives}mpirun -np 8 ./solver\n", "HPC128")


def test_background_steps_beyond_the_cpus_of_a_job_without_a_task_count():
    loop = "for i in 1 2 3 4; do\n  srun --exact -n 1 -c 1 ./task \"$i\" &\ndone\nwait\n"
    hits = found("#!/bin/bash\n#SBATCH --nodes=1\n" + loop, "HPC518")
    assert len(hits) == 1 and "the job holds 1 CPU and each step needs 1" in hits[0][1]
    assert not found("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=4\n" + loop, "HPC518")


# HPC134 (lead's, from audit13 A1 F2): mpirun ranks per node beyond the GPUs per node

def _hpc134(text: str) -> list[str]:
    return [f.message for f in lint(text) if f.code == "HPC134"]


@pytest.mark.parametrize("mpirun", ['mpirun -n "$SLURM_NTASKS" apptainer exec --nv tf.sif python3 hvd_train.py',
                                    "time -p mpirun singularity exec --nv tf.sif python3 -u train.py",
                                    "mpiexec -npernode 4 python train.py"])
def test_mpirun_with_more_python_ranks_per_node_than_gpus_is_found(mpirun):
    text = f"#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-node=2\n{mpirun}\n"
    messages = _hpc134(text)
    assert len(messages) == 1 and "4 ranks per node" in messages[0] and "on 2 GPUs per node" in messages[0]


@pytest.mark.parametrize("head,mpirun", [
    ("#SBATCH --ntasks-per-node=2\n#SBATCH --gpus-per-node=2", "mpirun python train.py"),  # one rank per GPU
    ("#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-node=2", "mpirun -npernode 2 python train.py"),
    ("#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-node=2", "mpirun -np 2 python train.py"),  # fills one node
    ("#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-node=2", "mpirun --map-by ppr:2:node python train.py"),
    ("#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-task=1", "mpirun python train.py"),  # a GPU per task
    ("#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-node=2", "mpirun ./lammps -in in.lj"),  # not Python
])
def test_mpirun_placements_that_fit_the_gpus_are_left_alone(head, mpirun):
    assert _hpc134(f"#!/bin/bash\n#SBATCH --nodes=2\n{head}\n{mpirun}\n") == []


def test_a_sourced_file_may_set_conda_up():
    base = "#!/bin/bash\n#SBATCH --time=01:00:00\n{}conda activate myenv\npython train.py\n"
    assert [f.code for f in lint(base.format("source /scratch/$USER/overlay/env.sh\n")) if f.code == "HPC512"] == []
    assert [f.code for f in lint(base.format("")) if f.code == "HPC512"] == ["HPC512"]
