"""What reaches the program from outside its command line (hpcwidgets/lint/environment.py): a --signal warning the
launcher does not catch (HPC123), a rendezvous host from hostname -i (HPC124), deepspeed slots beyond the job's GPUs
(HPC125), ROCR_VISIBLE_DEVICES with HIP/CUDA_VISIBLE_DEVICES (HPC524), a node-local folder the container does not
bind (HPC226), exports a clean container environment drops (HPC227), module inside a container (HPC228) and in a
#!/bin/sh script (HPC525). Each rule with the audit's case, more real mistakes, and correct scripts that stay quiet."""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


def others(text: str, code: str, profile=None) -> set[str]:
    """The other codes a script gets (warnings and errors): a new rule must not add to what another already says."""
    return {f.code for f in lint(text, profile) if f.severity != "info" and f.code != code}


TWO = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node=4\n"
       "#SBATCH --time=12:00:00\n")
HEAD = 'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
TORCHRUN = ('torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" '
            '--rdzv-id="$SLURM_JOB_ID" train.py')


# --- HPC123: --signal without B: reaches a launcher that does not catch it -----------------------------------

SWISS_AI = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --time=12:00:00
#SBATCH --signal=SIGUSR2@600
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head:29500" \\
  --rdzv-id="$SLURM_JOB_ID" pretrain_gpt.py --save ckpt
"""


def test_the_audit_case_torchrun_gets_sigusr2() -> None:
    (hit,) = found(SWISS_AI, "HPC123")
    assert hit[0] == 6
    assert "torchrun (line 8)" in hit[1] and "SIGUSR2" in hit[1] and "--signal=B:SIGUSR2@600" in hit[1]
    assert not others(SWISS_AI, "HPC123")


@pytest.mark.parametrize("signal, step, name", [
    ("USR1@300", "srun " + TORCHRUN, "torchrun"),
    ("SIGUSR1@300", "srun apptainer exec --nv img.sif " + TORCHRUN, "torchrun"),
    ("USR1@300", "export head_node\nsrun bash -c '" + TORCHRUN + "'", "torchrun"),
    ("USR1@300", "srun " + TORCHRUN.replace("torchrun", "python -m torch.distributed.run"), "torchrun"),
    ("10@300", "srun " + TORCHRUN, "torchrun"),                  # a signal number: 10 is SIGUSR1
    ("R:USR2@300", "srun " + TORCHRUN, "torchrun"),              # R: is about reservations: still the steps
    ("USR1@300", "srun deepspeed --no_ssh --node_rank=$SLURM_NODEID --master_addr=$head_node train.py", "deepspeed"),
    ("USR2@300", "srun --ntasks=2 accelerate launch --multi_gpu --num_machines 2 --num_processes 8 "
                 "--main_process_ip $head_node train.py", "accelerate launch"),
])
def test_a_warning_signal_the_launcher_does_not_catch(signal, step, name) -> None:
    text = TWO + f"#SBATCH --signal={signal}\n" + HEAD + step + "\n"
    (hit,) = found(text, "HPC123")
    assert hit[0] == 6 and f"where {name} (line" in hit[1]
    assert {"torchrun": "catches only SIGTERM, SIGINT, SIGHUP and SIGQUIT", "deepspeed": "catches at most SIGINT and "
            "SIGTERM"}.get(name, "catches at most SIGTERM, SIGINT, SIGHUP and SIGQUIT") in hit[1]


@pytest.mark.parametrize("directive, body", [
    # the fixed pattern (swiss-ai/Megatron-LM#3): to the batch shell, a trap, the step in the background
    ("B:USR1@600", "trap 'touch STOP' USR1\n" + HEAD + "srun " + TORCHRUN + " &\nwait\n"),
    # SIGTERM is caught by the agent and passed on to the workers
    ("TERM@600", HEAD + "srun " + TORCHRUN + "\n"),
    # a program srun starts itself (Lightning's SLURMEnvironment handles SIGUSR1)
    ("USR1@600", "srun python train.py\n"),
    # a recent torchrun told to catch it, on its command line or through the environment
    ("USR1@600", HEAD + "srun " + TORCHRUN.replace("train.py", "--signals-to-handle=SIGTERM,SIGUSR1 train.py") + "\n"),
    ("USR1@600", HEAD + "srun " + TORCHRUN.replace("train.py", "--signals-to-handle SIGTERM,SIGUSR1 train.py") + "\n"),
    ("USR1@600", "export TORCHELASTIC_SIGNALS_TO_HANDLE=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1\n" + HEAD + "srun "
     + TORCHRUN + "\n"),
])
def test_signals_that_reach_their_handler_are_not_reported(directive, body) -> None:
    assert not found(TWO + f"#SBATCH --signal={directive}\n" + body, "HPC123")


def test_a_trap_in_the_batch_shell_is_left_to_hpc517() -> None:
    text = TWO + "#SBATCH --signal=USR1@600\ntrap 'touch STOP' USR1\n" + HEAD + "srun " + TORCHRUN + " &\nwait\n"
    assert not found(text, "HPC123") and found(text, "HPC517")


def test_a_launcher_in_the_batch_shell_gets_no_signal_at_all_hpc517() -> None:
    text = "#!/bin/bash\n#SBATCH --gres=gpu:4\n#SBATCH --signal=USR1@300\ntorchrun --standalone --nproc-per-node=4 t\n"
    assert not found(text, "HPC123") and found(text, "HPC517")


# --- HPC124: the rendezvous host from hostname -i ------------------------------------------------------------

NEBIUS = """#!/bin/bash
#SBATCH --job-name=train-multi-node
#SBATCH --ntasks=2
#SBATCH --nodes=2
#SBATCH --gpus-per-task=8
#SBATCH --cpus-per-task=96
#SBATCH --partition=debug
nodes=( $( scontrol show hostnames $SLURM_JOB_NODELIST ) )
head_node=${nodes[0]}
head_node_ip=$(srun --nodes=1 --ntasks=1 -w "$head_node" hostname --ip-address)
srun torchrun --nnodes 2 --nproc_per_node 8 --rdzv_id 101 --rdzv_backend c10d \\
  --rdzv_endpoint "$head_node_ip:29500" ./train.py --job.config_file ./train_configs/llama3_8b.toml
"""


def test_the_audit_case_torchtitan_head_node_ip() -> None:
    (hit,) = found(NEBIUS, "HPC124")
    assert hit[0] == 11 and hit[1].startswith("--rdzv_endpoint takes the rendezvous host from hostname --ip-address "
                                              "(line 10)")
    assert "127.0.1.1" in hit[1] and "scontrol show hostnames" in hit[1]


@pytest.mark.parametrize("body, line, what", [
    ("export MASTER_ADDR=$(hostname -i)\nexport MASTER_PORT=29500\nsrun python train.py\n", 6, "MASTER_ADDR"),
    ("MASTER_ADDR=`hostname -i`\nexport MASTER_ADDR\nsrun python train.py\n", 6, "MASTER_ADDR"),
    ("export MASTER_ADDR=$(python -c 'import socket; print(socket.gethostbyname(socket.gethostname()))')\n"
     "srun python train.py\n", 6, "MASTER_ADDR"),
    ("MASTER_ADDR=$(hostname -i) MASTER_PORT=29500 srun python train.py\n", 6, "MASTER_ADDR"),
    ("ip=$(hostname --ip-address)\nsrun " + TORCHRUN.replace("$head_node", "$ip") + "\n", 7, "--rdzv-endpoint"),
    # the batch shell expands a double-quoted bash -c script once, on the first node
    ('srun bash -c "torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=$(hostname -i):29500 '
     'train.py"\n', 6, "--rdzv-endpoint"),
    ("head_ip=$(hostname --ip-address)\nsrun --ntasks=2 accelerate launch --multi_gpu --num_machines 2 "
     "--num_processes 8 --main_process_ip $head_ip --main_process_port 29500 train.py\n", 7,
     "accelerate launch --main_process_ip"),
    ("head_ip=$(hostname -i)\nscontrol show hostnames \"$SLURM_JOB_NODELIST\" | sed 's/$/ slots=4/' > hostfile\n"
     "deepspeed --hostfile hostfile --master_addr $head_ip train.py\n", 8, "deepspeed --master_addr"),
])
def test_a_rendezvous_host_from_the_nodes_own_name(body, line, what) -> None:
    (hit,) = found(TWO + body, "HPC124")
    assert hit[0] == line and hit[1].startswith(f"{what} takes the rendezvous host from ")


@pytest.mark.parametrize("text", [
    # the interfaces' own addresses, or the node's name
    TWO + "head_ip=$(hostname -I | awk '{print $1}')\nsrun " + TORCHRUN.replace("$head_node", "$head_ip") + "\n",
    TWO + HEAD + "srun " + TORCHRUN + "\n",
    TWO + "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\nsrun python train.py\n",
    # one node: the loopback address is where every process is
    "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:4\nexport MASTER_ADDR=$(hostname -i)\nsrun python train.py\n",
    # an address printed, not handed to anything
    TWO + "ip=$(hostname -i)\necho \"running on $ip\"\n" + HEAD + "srun " + TORCHRUN + "\n",
    # a MASTER_ADDR the script does not export reaches no program
    TWO + "MASTER_ADDR=$(hostname -i)\necho $MASTER_ADDR\n" + HEAD + "srun " + TORCHRUN + "\n",
])
def test_hosts_every_node_reaches_are_not_reported(text) -> None:
    assert not found(text, "HPC124")


def test_a_host_each_task_works_out_itself_is_left_to_hpc115() -> None:
    text = TWO + "srun bash -c 'MASTER_ADDR=$(hostname -i) MASTER_PORT=29500 python train.py'\n"
    assert not found(text, "HPC124") and found(text, "HPC115")


# --- HPC125: deepspeed --include/--exclude slots beyond the job's GPUs ---------------------------------------

DEEPSPEED_1331 = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --gres=gpu:4
#SBATCH --time=04:00:00
deepspeed --include localhost:4,5,6,7 --master_port=29501 train.py --deepspeed ds.json
"""
ONE_GPU4 = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:4\n"


def test_the_audit_case_global_gpu_ids() -> None:
    (hit,) = found(DEEPSPEED_1331, "HPC125")
    assert hit[0] == 5 and "slots 4, 5, 6, 7" in hit[1] and "4 GPUs per node, which it sees as 0-3" in hit[1]
    assert "leave --include out" in hit[1]
    assert not others(DEEPSPEED_1331, "HPC125")


@pytest.mark.parametrize("text, slots", [
    (ONE_GPU4 + "deepspeed --exclude localhost:7 train.py\n", "slot 7"),
    (ONE_GPU4 + "deepspeed -i 'worker-0:0,1@worker-1:4' train.py\n", "slot 4"),
    (ONE_GPU4 + "SLOTS=localhost:4,5\ndeepspeed --include \"$SLOTS\" train.py\n", "slots 4, 5"),
    ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gpus=2\ndeepspeed --include=localhost:2,3 train.py\n", "slots 2, 3"),
    ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gpus-per-node=2\nsrun --ntasks=1 deepspeed --include localhost:2 "
     "train.py\n", "slot 2"),
])
def test_slots_the_job_does_not_have(text, slots) -> None:
    (hit,) = found(text, "HPC125")
    assert f"names GPU {slots}," in hit[1]


def test_an_excluded_slot_beyond_the_job_stops_deepspeed() -> None:
    (hit,) = found(ONE_GPU4 + "deepspeed --exclude localhost:7 train.py\n", "HPC125")
    assert "No slot '7' specified" in hit[1] and hit[1].endswith("name slots 0-3")


@pytest.mark.parametrize("text", [
    ONE_GPU4 + "deepspeed --include localhost:0,1,2,3 train.py\n",
    ONE_GPU4 + "deepspeed --include localhost train.py\n",
    ONE_GPU4 + "deepspeed train.py\n",
    "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:8\ndeepspeed --include localhost:4,5,6,7 train.py\n",
    # GPUs in total over two nodes: Slurm decides how many each gets
    "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --gpus=8\n" + HEAD + "srun --ntasks=2 deepspeed --no_ssh --node_rank="
    "$SLURM_NODEID --master_addr=$head_node --include localhost:4 train.py\n",
    # slots only the job knows, and a job that asks for no GPUs
    ONE_GPU4 + 'deepspeed --include "$HOSTS" train.py\n',
    "#!/bin/bash\n#SBATCH --nodes=1\ndeepspeed --include localhost:4 train.py\n",
])
def test_slots_within_the_job_are_not_reported(text) -> None:
    assert not found(text, "HPC125")


# --- HPC524: ROCR_VISIBLE_DEVICES with HIP_VISIBLE_DEVICES or CUDA_VISIBLE_DEVICES ----------------------------

PARSL = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --time=02:00:00
srun bash -c 'export ROCR_VISIBLE_DEVICES=$SLURM_LOCALID CUDA_VISIBLE_DEVICES=$SLURM_LOCALID; python worker.py'
"""
EIGHT = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=8\n#SBATCH --gpus-per-node=8\n"


def test_the_audit_case_both_variables_per_task() -> None:
    (hit,) = found(PARSL, "HPC524")
    assert hit[0] == 6 and "leaves each task one GPU, numbered 0" in hit[1]
    assert "index 1 to 7 in every task but the first of a node" in hit[1] and "No HIP GPUs are available" in hit[1]
    assert not others(PARSL, "HPC524")


@pytest.mark.parametrize("text, line, shown", [
    (EIGHT + "export ROCR_VISIBLE_DEVICES=1\nexport HIP_VISIBLE_DEVICES=1\nsrun python w.py\n", 6, "index 1"),
    (EIGHT + "ROCR_VISIBLE_DEVICES=2 CUDA_VISIBLE_DEVICES=2 python x.py\n", 5, "index 2"),
    (EIGHT + "export ROCR_VISIBLE_DEVICES=0\nHIP_VISIBLE_DEVICES=1 srun python w.py\n", 6, "index 1"),
    (EIGHT + "export ROCR_VISIBLE_DEVICES=0,1\nexport HIP_VISIBLE_DEVICES=2,3\nsrun python w.py\n", 6, "index 2 first"),
    # the global rank: 1 on the second node, where ROCR_VISIBLE_DEVICES=1 leaves one GPU, numbered 0
    ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node=8\nsrun bash -c 'export "
     "ROCR_VISIBLE_DEVICES=$SLURM_PROCID HIP_VISIBLE_DEVICES=$SLURM_PROCID; python w.py'\n", 5,
     "index 1 to 1 in every task but the first"),
])
def test_two_filters_that_leave_no_gpu(text, line, shown) -> None:
    (hit,) = found(text, "HPC524")
    assert hit[0] == line and f"names {shown}, a GPU that is not there" in hit[1]


@pytest.mark.parametrize("text", [
    EIGHT + "srun bash -c 'export ROCR_VISIBLE_DEVICES=$SLURM_LOCALID; python w.py'\n",
    # the second indexes what the first leaves
    EIGHT + "srun bash -c 'export ROCR_VISIBLE_DEVICES=$SLURM_LOCALID HIP_VISIBLE_DEVICES=0; python w.py'\n",
    "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-node=4\n"
    "export ROCR_VISIBLE_DEVICES=0,1,2,3\nsrun bash -c 'HIP_VISIBLE_DEVICES=$SLURM_LOCALID python w.py'\n",
    # one task per node: its local rank is 0
    "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node=8\nsrun bash -c 'export "
    "ROCR_VISIBLE_DEVICES=$SLURM_LOCALID CUDA_VISIBLE_DEVICES=$SLURM_LOCALID; python w.py'\n",
])
def test_filters_that_leave_a_gpu_are_not_reported(text) -> None:
    assert not found(text, "HPC524")


def test_a_list_longer_than_what_rocr_leaves_is_reported() -> None:
    # the runtimes stop reading the list at index 1 and keep GPU 0, but PyTorch refuses the pair outright
    # (torch.cuda._parse_visible_devices: "HIP_VISIBLE_DEVICES contains more devices than ROCR_VISIBLE_DEVICES")
    text = EIGHT + "export ROCR_VISIBLE_DEVICES=0\nexport HIP_VISIBLE_DEVICES=0,1,2,3\nsrun python w.py\n"
    (hit,) = found(text, "HPC524")
    assert "lists 4 GPUs where there is 1" in hit[1] and "set only HIP_VISIBLE_DEVICES" in hit[1]


def test_nvidia_gpus_by_the_profile_ignore_rocr_visible_devices() -> None:
    text = ("#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-node=4\n"
            "srun bash -c 'export ROCR_VISIBLE_DEVICES=$SLURM_LOCALID CUDA_VISIBLE_DEVICES=$SLURM_LOCALID; "
            "python w.py'\n")
    assert found(text, "HPC524") and not found(text, "HPC524", "generic")


# --- HPC226: a node-local path the container does not see ----------------------------------------------------

ALLIANCE = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=03:00:00
tar -xf /project/data/imagenet_subset.tar -C "$SLURM_TMPDIR"
apptainer exec --nv pytorch_23.10.sif python train.py --data "$SLURM_TMPDIR/imagenet_subset"
"""
GPU1 = "#!/bin/bash\n#SBATCH --gres=gpu:1\nexport PYTHONNOUSERSITE=1\n"


def test_the_audit_case_slurm_tmpdir_not_bound() -> None:
    (hit,) = found(ALLIANCE, "HPC226")
    assert hit[0] == 7 and hit[1].startswith("$SLURM_TMPDIR/imagenet_subset is in the job's node-local folder")
    assert 'apptainer exec -B "$SLURM_TMPDIR"' in hit[1]


def test_the_fix_binds_the_folder() -> None:
    new, fixed = fix_script(ALLIANCE)
    assert "HPC226" in [f.code for f in fixed]
    assert 'apptainer exec --nv --bind "$SLURM_TMPDIR" pytorch_23.10.sif python train.py' in new
    assert not found(new, "HPC226")


@pytest.mark.parametrize("body", [
    "apptainer exec --nv img.sif python train.py --data /localscratch/$USER/data\n",
    "export DATA=$SLURM_TMPDIR/data\napptainer exec --nv img.sif python train.py --data $DATA\n",
    "apptainer exec --nv --env DATA_DIR=$SLURM_TMPDIR/data img.sif python train.py\n",
    "apptainer exec --nv --pwd \"$SLURM_TMPDIR\" img.sif python train.py\n",
    "apptainer exec --nv img.sif bash -c 'python train.py --data $SLURM_TMPDIR/x'\n",
    "srun apptainer exec --nv img.sif torchrun --standalone --nproc-per-node=1 train.py --data \"$SLURM_TMPDIR/x\"\n",
    "singularity exec --nv img.sif python train.py --out=${SLURM_TMPDIR}/out\n",
])
def test_node_local_paths_handed_to_the_container(body) -> None:
    assert len(found(GPU1 + body, "HPC226")) == 1


@pytest.mark.parametrize("body", [
    'apptainer exec --nv -B "$SLURM_TMPDIR" img.sif python train.py --data "$SLURM_TMPDIR/x"\n',
    'apptainer exec --nv --bind "$SLURM_TMPDIR:/data" img.sif python train.py --data /data\n',
    'apptainer exec --nv -B /localscratch img.sif python train.py --data "$SLURM_TMPDIR/x"\n',
    'apptainer exec --nv --mount type=bind,src=$SLURM_TMPDIR,dst=$SLURM_TMPDIR img.sif python t.py --data '
    '"$SLURM_TMPDIR/x"\n',
    'export APPTAINER_BIND="$SLURM_TMPDIR,/project"\napptainer exec --nv img.sif python t.py --data '
    '"$SLURM_TMPDIR/x"\n',
    # the current folder is bound
    'cd "$SLURM_TMPDIR"\napptainer exec --nv img.sif python train.py --data "$SLURM_TMPDIR/x"\n',
    # host paths apptainer itself reads: the image, an overlay, its work folder
    'apptainer exec --nv "$SLURM_TMPDIR/img.sif" python train.py\n',
    'apptainer exec --nv --overlay "$SLURM_TMPDIR/o.img" -W "$SLURM_TMPDIR" img.sif python train.py\n',
    # $TMPDIR is /tmp on many sites, which apptainer binds
    'apptainer exec --nv img.sif python train.py --data "$TMPDIR/x"\n',
    # an instance got its binds when it started; options in a variable may bind it
    'apptainer instance start --nv -B "$SLURM_TMPDIR" img.sif app\napptainer exec instance://app python t.py --data '
    '"$SLURM_TMPDIR/x"\n',
    'OPTS="-B $SLURM_TMPDIR"\napptainer exec --nv $OPTS img.sif python train.py --data "$SLURM_TMPDIR/x"\n',
])
def test_node_local_paths_the_container_sees(body) -> None:
    assert not found(GPU1 + body, "HPC226")


def test_charliecloud_host_paths_stay_with_hpc224() -> None:
    text = '#!/bin/bash\nch-run img -- python train.py --data "$SLURM_TMPDIR/x"\n'
    assert not found(text, "HPC226") and found(text, "HPC224")


# --- HPC227: --containall/--cleanenv drops what the script exports for the program ---------------------------

PVACTOOLS = """#!/bin/bash
#SBATCH --cpus-per-task=24
#SBATCH --mem=64G
#SBATCH --time=24:00:00
export TMPDIR=/my/tmp/dir/
apptainer exec -C -B /my/pvac/outdir:/pvac.dir -B /my/tmp/dir/ pvactools_4.0.sif pvacseq run \\
  /pvac.dir/my.vcf sample_id HLA-A*02:01 MHCflurry /pvac.dir -e1 9 -t 24
"""
CPU = "#!/bin/bash\n#SBATCH --cpus-per-task=8\n"


def test_the_audit_case_containall_drops_tmpdir() -> None:
    (hit,) = found(PVACTOOLS, "HPC227")
    assert hit[0] == 6 and "TMPDIR (line 5) never reaches it" in hit[1]
    assert "small in-memory folder under --containall" in hit[1] and '--env TMPDIR="$TMPDIR"' in hit[1]
    assert not others(PVACTOOLS, "HPC227")


@pytest.mark.parametrize("body, names", [
    ('export HF_HOME="$SCRATCH/hf"\napptainer exec --cleanenv img.sif python train.py\n', "HF_HOME (line 3)"),
    ('export APPTAINER_CONTAINALL=1\nexport TMPDIR="$SCRATCH/tmp"\napptainer exec img.sif python train.py\n',
     "TMPDIR (line 4)"),
    ('export TMPDIR="$SCRATCH/tmp"\nexport OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK\nexport NCCL_DEBUG=INFO\n'
     'apptainer exec -C -B "$SCRATCH" img.sif python train.py\n',
     "TMPDIR (line 3), OMP_NUM_THREADS (line 4), NCCL_DEBUG (line 5) never reach it"),
    ('TMPDIR="$SCRATCH/tmp"\nexport TMPDIR\nsingularity exec -e img.sif python train.py\n', "TMPDIR (line 3)"),
    # --workdir puts the container's /tmp on disk, but the caches still do not reach the program
    ('export TMPDIR="$SCRATCH/tmp"\nexport WANDB_DIR="$SCRATCH/wandb"\napptainer exec -C -W "$SCRATCH/w" img.sif '
     'python train.py\n', "WANDB_DIR (line 4) never reaches it"),
])
def test_exports_a_clean_environment_drops(body, names) -> None:
    (hit,) = found(CPU + body, "HPC227")
    assert names in hit[1]


def test_cleanenv_alone_keeps_the_hosts_tmp() -> None:
    (hit,) = found(CPU + 'export TMPDIR="$SCRATCH/tmp"\napptainer exec --cleanenv img.sif python t.py\n', "HPC227")
    assert "writes its temporary files to /tmp instead" in hit[1] and "in-memory" not in hit[1]


@pytest.mark.parametrize("body", [
    'export TMPDIR="$SCRATCH/tmp"\napptainer exec -C --env TMPDIR=$TMPDIR img.sif python train.py\n',
    'export TMPDIR="$SCRATCH/tmp"\nexport APPTAINERENV_TMPDIR="$TMPDIR"\napptainer exec -C img.sif python train.py\n',
    'export HF_HOME="$SCRATCH/hf"\nexport SINGULARITYENV_HF_HOME="$HF_HOME"\nsingularity exec -e img.sif python t.py\n',
    'export TMPDIR="$SCRATCH/tmp"\napptainer exec -C --env-file job.env img.sif python train.py\n',
    'export TMPDIR="$SCRATCH/tmp"\napptainer exec img.sif python train.py\n',
    'TMPDIR="$SCRATCH/tmp"\napptainer exec -C img.sif python train.py\n',
    'apptainer exec -C img.sif python train.py\nexport TMPDIR="$SCRATCH/tmp"\n',
    'export TMPDIR="$SCRATCH/tmp"\napptainer exec -C -W "$SCRATCH/work" img.sif python train.py\n',
    # scratch bound onto the container's /tmp (IDEALLab/EngiBench#180's way round it)
    'export TMPDIR="$SCRATCH/tmp"\napptainer exec -C -B "$SCRATCH/tmp:/tmp" img.sif python train.py\n',
    'export TMPDIR="$SCRATCH/tmp"\napptainer exec -C img.sif bash -c "export TMPDIR=/scratch/tmp; python train.py"\n',
    # variables for apptainer itself, or for the host
    'export APPTAINER_CACHEDIR="$SCRATCH/cache"\nexport PATH="$HOME/bin:$PATH"\napptainer exec -C img.sif '
    'python t.py\n',
])
def test_exports_that_reach_the_program_or_are_not_its_own(body) -> None:
    assert not found(CPU + body, "HPC227")


def test_the_per_task_variables_stay_with_hpc223() -> None:
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\nexport MASTER_ADDR=$(scontrol show hostnames "
            "\"$SLURM_JOB_NODELIST\" | head -n 1)\nsrun apptainer exec --cleanenv img.sif python train.py\n")
    assert not found(text, "HPC227") and found(text, "HPC223")


# --- HPC228: module inside the container ---------------------------------------------------------------------

SINGULARITY_729 = """#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --time=01:00:00
singularity exec -s /bin/bash rhel7_1.0.img bash -c "module load gcc/9.3 && ./run_model"
"""


def test_the_audit_case_module_load_in_the_container() -> None:
    (hit,) = found(SINGULARITY_729, "HPC228")
    assert hit[0] == 4 and hit[1].startswith("module load gcc/9.3 runs inside the container (singularity … bash -c)")
    assert not others(SINGULARITY_729, "HPC228")


@pytest.mark.parametrize("text", [
    "#!/bin/bash\nch-run img -- bash -c 'module load gcc && ./run'\n",
    "#!/bin/bash\n#SBATCH --ntasks=2\nsrun apptainer exec img.sif bash -c 'ml gcc; ./run'\n",
    "#!/bin/bash\nsingularity exec img.sif sh -c 'module load gcc && ./run'\n",
    "#!/bin/bash\napptainer exec img.sif bash -c 'cd /work && if true; then module load gcc; fi; ./run'\n",
])
def test_module_in_a_container_script(text) -> None:
    assert len(found(text, "HPC228")) == 1


@pytest.mark.parametrize("text", [
    # a login shell, or the image's init file sourced first
    "#!/bin/bash\napptainer exec img.sif bash -lc 'module load gcc && ./run'\n",
    "#!/bin/bash\napptainer exec img.sif bash -l -c 'module load gcc && ./run'\n",
    "#!/bin/bash\napptainer exec img.sif bash -c '. /usr/share/lmod/lmod/init/bash; module load gcc && ./run'\n",
    "#!/bin/bash\napptainer exec img.sif bash -c 'source /etc/profile && module load gcc && ./run'\n",
    # module on the host
    "#!/bin/bash\nmodule load apptainer\napptainer exec img.sif bash -c './run'\n",
    "#!/bin/bash\nsrun bash -c 'module load apptainer; apptainer exec img.sif python x.py'\n",
])
def test_module_set_up_or_on_the_host(text) -> None:
    assert not found(text, "HPC228")


def test_a_container_that_only_loads_modules_is_hpc217() -> None:
    text = "#!/bin/bash\napptainer exec img.sif bash -c 'module load gcc'\n./run\n"
    assert not found(text, "HPC228") and found(text, "HPC217")


# --- HPC525: module in a script sh runs ----------------------------------------------------------------------

MODULES_339 = """#!/bin/sh
#SBATCH -J test
ml load python/3.8.2
python -V
"""


def test_the_audit_case_ml_under_bin_sh() -> None:
    (hit,) = found(MODULES_339, "HPC525")
    assert hit[0] == 3 and hit[1].startswith("this script runs with sh (#!/bin/sh): the module system exports")
    assert "unless /bin/sh is bash (the RHEL family)" in hit[1]  # where bash runs as sh, it works
    assert not others(MODULES_339, "HPC525")


@pytest.mark.parametrize("text, first", [
    (MODULES_339, "#!/bin/bash"),
    ("#!/usr/bin/env sh\n#SBATCH --time=10\nmodule load gcc\n./run\n", "#!/usr/bin/env bash"),
    ("#!/bin/dash\n#SBATCH --time=10\nif true; then\n  module load gcc\nfi\n./run\n", "#!/bin/bash"),
])
def test_the_fix_runs_the_script_with_bash(text, first) -> None:
    new, fixed = fix_script(text)
    assert "HPC525" in [f.code for f in fixed] and new.split("\n", 1) == [first, text.split("\n", 1)[1]]
    assert not found(new, "HPC525")


def test_a_ksh_script_is_reported_without_a_fix() -> None:
    hits = [f for f in lint("#!/bin/ksh\n#SBATCH --time=10\nmodule load gcc\n./run\n") if f.code == "HPC525"]
    assert len(hits) == 1 and hits[0].fix is None


@pytest.mark.parametrize("text", [
    "#!/bin/bash\n#SBATCH --time=10\nmodule load gcc\n./run\n",
    "#!/bin/sh -l\n#SBATCH --time=10\nmodule load gcc\n./run\n",
    "#!/bin/sh\n#SBATCH --time=10\n. /etc/profile\nmodule load gcc\n./run\n",
    "#!/bin/sh\n#SBATCH --time=10\n. /usr/share/Modules/init/sh\nmodule load gcc\n./run\n",
    '#!/bin/sh\n#SBATCH --time=10\neval "$(/usr/share/Modules/libexec/modulecmd.tcl sh autoinit)"\nmodule load gcc\n',
    "#!/bin/sh\n#SBATCH --time=10\n./run\n",
    "#!/bin/zsh\n#SBATCH --time=10\nmodule load gcc\n./run\n",
    "#!/bin/csh\n#SBATCH --time=10\nmodule load gcc\n./run\n",
])
def test_scripts_where_module_is_defined_or_unused(text) -> None:
    assert not found(text, "HPC525")
