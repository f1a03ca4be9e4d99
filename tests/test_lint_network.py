"""How the ranks of a job find each other (hpcwidgets/lint/network.py): Open MPI 5 under srun --mpi=pmi2 (HPC127),
mpirun -np above the job's tasks (HPC128), an ipyparallel controller on loopback (HPC129), a rendezvous port in the
ephemeral range (HPC130), NCCL_SOCKET_IFNAME=lo on several nodes (HPC131) and NCCL's debugging switches left on
(HPC132). Each rule with the audit's cases (/tmp/audit12/a2), near misses, and correct scripts that stay quiet."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


def lines(text: str, code: str, profile=None) -> list[int]:
    return [line for line, _ in found(text, code, profile)]


TWO_NODES = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=32\n"


# --- HPC127: Open MPI 5 under srun --mpi=pmi2 ---------------------------------------------------------------

def test_the_audit_cases_open_mpi_5_under_pmi2() -> None:
    text = TWO_NODES + "module load openmpi/5.0.3\nsrun --mpi=pmi2 apptainer exec mpi_app_openmpi5.0.3.sif /opt/app/solver\n"
    ((line, message),) = found(text, "HPC127")
    assert line == 5 and "image mpi_app_openmpi5.0.3.sif" in message and "--mpi=pmix" in message
    env = TWO_NODES + "module load openmpi/5.0.3\nexport SLURM_MPI_TYPE=pmi2\nsrun apptainer exec mpi_app_openmpi5.0.3.sif /opt/app/solver\n"
    assert lines(env, "HPC127") == [5]  # the line to change: the export


@pytest.mark.parametrize("body", [
    "module load openmpi/5.0.3\nsrun --mpi pmi2 ./solver\n",                       # the option's space form
    "module load OpenMPI/5.0.3-GCC-13.2.0\nsrun --mpi=pmi2 ./solver\n",            # EasyBuild's module name
    "ml openmpi5\nsrun --mpi=pmi2 ./solver\n",
    "SLURM_MPI_TYPE=pmi2 srun apptainer exec app_ompi-5.0.sif ./solver\n",        # before the command, image named for it
    'IMG=mpi_app_openmpi5.0.3.sif\nsrun --mpi=pmi2 apptainer exec "$IMG" ./solver\n',  # the image through a variable
])
def test_open_mpi_5_shown_and_pmi2(body: str) -> None:
    assert len(found(TWO_NODES + body, "HPC127")) == 1


@pytest.mark.parametrize("body", [
    "module load openmpi/5.0.3\nsrun --mpi=pmix ./solver\n",                       # the audit's good case
    "module load openmpi/4.1.5\nsrun --mpi=pmi2 ./solver\n",                       # Open MPI 4 works with PMI-2
    "module load mpich/4.1\nsrun --mpi=pmi2 ./solver\n",                           # MPICH too
    "srun --mpi=pmi2 ./solver\n",                                                  # no Open MPI shown
    "module load openmpi/5.0.3\nsrun ./solver\n",                                  # no --mpi: the site's default
    "module load openmpi/5.0.3\nsrun --mpi=pmi2 apptainer exec app_mpich4.sif ./solver\n",  # the image's MPI rules
    "module load openmpi/5.0.3\nexport SLURM_MPI_TYPE=pmi2\nsrun --mpi=pmix ./solver\n",     # the option wins
    "# srun --mpi=pmi2 with openmpi/5 fails\nmodule load openmpi/5.0.3\nsrun --mpi=pmix ./solver\n",
])
def test_pmi2_quiet(body: str) -> None:
    assert not found(TWO_NODES + body, "HPC127")


# --- HPC128: mpirun -np above the job's tasks -----------------------------------------------------------------

ONE_TASK = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --cpus-per-task=8\n#SBATCH --time=01:00:00\n"


def test_the_audit_cases_mpirun_beyond_the_job() -> None:
    ((line, message),) = found(ONE_TASK + "module load openmpi/4.1.5\nmpirun -np 8 ./solver\n", "HPC128")
    assert line == 6 and "1 task (no --ntasks: one task per node)" in message
    assert "not enough slots available in the system to satisfy the 8 slots" in message
    container = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --time=01:00:00\napptainer exec mpi_app_1.0.sif mpirun -np 16 /opt/app/solver\n"
    ((line, message),) = found(container, "HPC128")
    assert line == 4 and "MPICH and Intel MPI crowd the 16 ranks" in message


@pytest.mark.parametrize("launch", [
    "mpirun -n 8 ./solver", "mpirun -n8 ./solver", "mpirun --np 8 ./solver", "mpirun -np=8 ./solver",
    "mpiexec -n 8 ./solver", "/opt/openmpi-4.1/bin/mpirun -np 8 ./solver",
    "mpirun --bind-to core --mca btl self,vader -np 8 ./solver",        # options with values before -np
    "time mpirun -np 8 ./solver",
    "NP=8\nmpirun -np $NP ./solver",                                   # a script variable with a number
    "bash -c 'mpirun -np 8 ./solver'",
    "for input in a b; do\n  mpirun -np 8 ./solver $input\ndone",
])
def test_more_ranks_than_tasks(launch: str) -> None:
    assert len(found(ONE_TASK + launch + "\n", "HPC128")) == 1


@pytest.mark.parametrize("directives, launch", [
    ("#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n", "mpirun -np 8 ./solver"),       # 2 × 4 = 8
    ("#SBATCH --nodes=1-2\n#SBATCH --ntasks-per-node=4\n", "mpirun -np 8 ./solver"),     # up to 2 nodes
    ("#SBATCH --ntasks=8\n", "mpirun -np 8 ./solver"),
    ("#SBATCH -n 8\n", "mpirun -n 8 ./solver"),
    ("#SBATCH --nodes=4\n", "mpirun -np 4 ./solver"),                                    # one task per node
    ("#SBATCH --cpus-per-task=8\n", "mpirun --oversubscribe -np 8 ./solver"),
    ("#SBATCH --cpus-per-task=8\n", "mpirun --map-by slot:OVERSUBSCRIBE -np 8 ./solver"),
    ("#SBATCH --cpus-per-task=8\n", "export OMPI_MCA_rmaps_base_oversubscribe=1\nmpirun -np 8 ./solver"),
    ("#SBATCH --cpus-per-task=8\n", "mpirun --hostfile hosts -np 8 ./solver"),
    ("#SBATCH --cpus-per-task=8\n", "mpirun -H localhost:8 -np 8 ./solver"),
    ("#SBATCH --cpus-per-task=8\n", "mpirun -np $SLURM_CPUS_PER_TASK ./solver"),          # not a literal
    ("#SBATCH --cpus-per-task=8\n", "mpirun ./solver -n 64"),                            # the program's -n
    ("#SBATCH --cpus-per-task=8\n", "srun mpirun -np 8 ./solver"),                      # HPC119's case
    ("#SBATCH --cpus-per-task=8\n", "srun bash -c 'mpirun -np 8 ./solver'"),
    ("#SBATCH --cpus-per-task=8\n", "module load intel-mpi/2021.9\nmpirun -np 8 ./solver"),  # Hydra: no slots
    ("#SBATCH --cpus-per-task=8\n", "apptainer exec --cleanenv mpi_app_1.0.sif mpirun -np 8 ./solver"),
    ("#SBATCH --ntasks-per-core=2\n", "mpirun -np 8 ./solver"),                          # counted otherwise
    ("#SBATCH --ntasks=2\n#SBATCH hetjob\n#SBATCH --ntasks=8\n", "mpirun -np 8 ./solver"),
    ("#SBATCH --cpus-per-task=8\n", "# mpirun -np 8 ./solver"),
])
def test_ranks_within_the_job(directives: str, launch: str) -> None:
    assert not found("#!/bin/bash\n" + directives + launch + "\n", "HPC128")


# --- HPC129: an ipyparallel controller on loopback ---------------------------------------------------------

IPP = """#!/bin/bash
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=16
profile=job_${SLURM_JOB_ID}
ipython profile create --parallel --profile="$profile"
CONTROLLER &
sleep 10
ENGINES &
python analysis.py --profile "$profile"
"""


def test_the_audit_case_controller_on_loopback() -> None:
    text = IPP.replace("CONTROLLER", 'ipcontroller --profile="$profile"').replace("ENGINES", 'srun ipengine --profile="$profile"')
    ((line, message),) = found(text, "HPC129")
    assert line == 6 and "srun on line 8" in message and "--ip='*'" in message


@pytest.mark.parametrize("controller, engines", [
    ("ipcontroller", "srun ipengine"),
    ("ipcontroller", "mpiexec -n 64 ipengine"),
    ("ipcontroller", "srun apptainer exec ipp.sif ipengine"),
    ("ipcontroller --location=$(hostname)", "srun ipengine"),            # where engines look, not where it listens
    ("ipcluster start -n 64 --engines=MPI", "true"),
    ("ipcluster start -n 64 --engines=Slurm", "true"),
])
def test_engines_elsewhere_and_no_address(controller: str, engines: str) -> None:
    assert len(found(IPP.replace("CONTROLLER", controller).replace("ENGINES", engines), "HPC129")) == 1


@pytest.mark.parametrize("controller, engines, nodes", [
    ("ipcontroller --ip='*'", "srun ipengine", 4),                      # the audit's good case
    ("ipcontroller --ip '*'", "srun ipengine", 4),
    ("ipcontroller --engine-ip=$(hostname -i)", "srun ipengine", 4),
    ("ipcontroller --IPController.ip=0.0.0.0", "srun ipengine", 4),
    ("ipcluster start -n 64 --engines=MPI --ip='*'", "true", 4),
    ("ipcluster start -n 16", "true", 4),                                # local engines
    ("ipcontroller", "srun -N1 ipengine", 4),
    ("ipcontroller", "srun ipengine", 1),                                # one node: loopback reaches them all
    ("ipcontroller --profile=mycluster", "srun ipengine --profile=mycluster", 4),  # config made before the job
    ("echo \"c.IPController.ip = '*'\" >> cfg.py; ipcontroller", "srun ipengine", 4),
])
def test_controller_reachable(controller: str, engines: str, nodes: int) -> None:
    text = IPP.replace("--nodes=4", f"--nodes={nodes}").replace("CONTROLLER", controller).replace("ENGINES", engines)
    if "--profile=mycluster" in controller:
        text = text.replace('ipython profile create --parallel --profile="$profile"\n', "")
    assert not found(text, "HPC129")


# --- HPC130: a rendezvous port in the ephemeral range -----------------------------------------------------

GPU2 = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gres=gpu:4\n"
HEAD = 'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'


def test_the_audit_cases_ephemeral_port() -> None:
    ((line, message),) = found(GPU2 + "export MASTER_PORT=$((SLURM_JOB_ID % 16384 + 49152))\nsrun python train.py\n",
                               "HPC130")
    assert line == 5 and "ports 49152–65535, 72% of them inside" in message
    literal = GPU2 + HEAD + 'srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-endpoint="$head_node:54321" train.py\n'
    ((line, message),) = found(literal, "HPC130")
    assert line == 6 and "port 54321" in message


@pytest.mark.parametrize("body, line", [
    ("export MASTER_PORT=54321\nsrun python train.py\n", 5),
    ("MASTER_PORT=$(( 40000 + RANDOM % 2000 ))\nexport MASTER_PORT\nsrun python train.py\n", 5),
    ("export MASTER_PORT=$((RANDOM % (50000 - 30000 + 1) + 30000))\nsrun python train.py\n", 5),
    ("PORT=$(shuf -i 40000-50000 -n 1)\nsrun torchrun --nnodes=2 --rdzv-endpoint=$head_node:$PORT train.py\n", 5),
    ("srun deepspeed --master_port 45000 train.py\n", 5),
    ("srun accelerate launch --main_process_port=45000 train.py\n", 5),
    ("srun apptainer exec --env MASTER_PORT=45000 img.sif python train.py\n", 5),
    ("export MASTER_PORT=45000\nsrun torchrun --master_port=$MASTER_PORT train.py\n", 5),   # reported once
])
def test_ports_in_the_range(body: str, line: int) -> None:
    assert lines(GPU2 + body, "HPC130") == [line]


@pytest.mark.parametrize("body", [
    "export MASTER_PORT=29500\nsrun python train.py\n",
    "export MASTER_PORT=$((10000 + SLURM_JOB_ID % 10000))\nsrun python train.py\n",   # the audit's good case
    "export MASTER_PORT=$((RANDOM % 101 + 20000))\nsrun python train.py\n",
    "export MASTER_PORT=$(shuf -i 20000-40000 -n 1)\nsrun python train.py\n",          # mostly below the range
    "export MASTER_PORT=61000\nsrun python train.py\n",
    "export MASTER_PORT=$FREE_PORT\nsrun python train.py\n",                            # not known
    "srun torchrun --nnodes=2 --rdzv-endpoint=$head_node train.py\n",                  # torchrun's 29400
    "# MASTER_PORT=54321 clashed once\nexport MASTER_PORT=29500\nsrun python train.py\n",
])
def test_ports_outside_the_range(body: str) -> None:
    assert not found(GPU2 + HEAD + body, "HPC130")


# --- HPC131: NCCL over loopback on several nodes --------------------------------------------------------------

TORCHRUN = ('srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" '
            '--rdzv-id="$SLURM_JOB_ID" train.py\n')


@pytest.mark.parametrize("setting, line", [
    ("export NCCL_SOCKET_IFNAME=lo\n", 5),                                              # the audit's case
    ("export NCCL_SOCKET_IFNAME='=lo'\n", 5),
    ("NCCL_SOCKET_IFNAME=lo\nexport NCCL_SOCKET_IFNAME\n", 5),
    ("export APPTAINERENV_NCCL_SOCKET_IFNAME=lo\n", 5),
])
def test_loopback_on_two_nodes(setting: str, line: int) -> None:
    text = GPU2.replace("--ntasks-per-node=4", "--ntasks-per-node=1") + setting + HEAD + TORCHRUN
    assert lines(text, "HPC131") == [line]


def test_loopback_given_to_the_step_itself() -> None:
    text = GPU2 + HEAD + "srun apptainer exec --nv --env NCCL_SOCKET_IFNAME=lo img.sif python train.py\n"
    assert lines(text, "HPC131") == [6]


@pytest.mark.parametrize("text", [
    "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:4\nexport NCCL_SOCKET_IFNAME=lo\ntorchrun --standalone --nproc-per-node=4 train.py\n",
    GPU2 + "export NCCL_SOCKET_IFNAME=^lo,docker\n" + HEAD + TORCHRUN,
    GPU2 + "export NCCL_SOCKET_IFNAME=ib0\n" + HEAD + TORCHRUN,
    GPU2 + "# export NCCL_SOCKET_IFNAME=lo\n" + HEAD + TORCHRUN,
    GPU2 + 'if [ "$SLURM_NNODES" -eq 1 ]; then export NCCL_SOCKET_IFNAME=lo; fi\n' + HEAD + TORCHRUN,
])
def test_loopback_quiet(text: str) -> None:
    assert not found(text, "HPC131")


# --- HPC132: NCCL's debugging switches left on -------------------------------------------------------------

FOUR = "#!/bin/bash\n#SBATCH --nodes=4\n#SBATCH --ntasks-per-node=1\n#SBATCH --gres=gpu:4\n"


def test_the_audit_case_ib_disabled() -> None:
    text = FOUR + "export NCCL_IB_DISABLE=1\nexport NCCL_P2P_DISABLE=1\n" + HEAD + TORCHRUN.replace("=2", "=4")
    ((line, message),) = found(text, "HPC132")  # the GPU type is not known: P2P is left alone
    assert line == 5 and "TCP sockets" in message


@pytest.mark.parametrize("gres, profile, reported", [
    ("--gres=gpu:a100:4", None, True),
    ("--gpus-per-node=h100:4", None, True),
    ("--gres=gpu:4", "generic", True),          # the profile's GPU partition has A100s
    ("--gres=gpu:rtx4090:4", None, False),      # no peer-to-peer path: NCCL_P2P_DISABLE=1 is needed there
    ("--gres=gpu:a1000:4", None, False),        # RTX A1000, not an A100
    ("--gres=gpu:4", None, False),              # type unknown
    ("--gres=gpu:a100:1", None, False),         # one GPU: nothing to exchange
])
def test_p2p_disabled(gres: str, profile, reported: bool) -> None:
    text = (f"#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --partition=gpu\n#SBATCH {gres}\n#SBATCH --time=01:00:00\n"
            "export NCCL_P2P_DISABLE=1\ntorchrun --standalone --nproc-per-node=4 train.py\n")
    assert bool(found(text, "HPC132", profile)) is reported


@pytest.mark.parametrize("text", [
    "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:4\nexport NCCL_IB_DISABLE=1\ntorchrun --standalone --nproc-per-node=4 train.py\n",
    FOUR + "export NCCL_IB_DISABLE=0\n" + HEAD + TORCHRUN,
    FOUR + "export NCCL_DEBUG=INFO\n" + HEAD + TORCHRUN,
])
def test_debugging_switches_quiet(text: str) -> None:
    assert not found(text, "HPC132")
