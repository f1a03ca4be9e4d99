"""False alarms, missed mistakes and wrong fixes found by the audit of real-world scripts (part C).

Each case is what sbatch, bash, torchrun or Apptainer actually do: the components of a heterogeneous job
(``#SBATCH hetjob``; the job model holds only the first), ``exec instance://NAME`` (the GPUs are set up at
``instance start``), torchrun launchers counted by the rendezvous (agents, not hosts), accelerate's command
line overriding its config file, ``torchrun … python train.py``, line numbers counting from 1 (sed, awk,
head), sbatch refusing a misspelled option, ``pip install --no-index`` from local wheels, and a trap that
bash runs only after the foreground step exits (HPC511).
"""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint, rules


def found(text: str, code: str | None = None, profile=None) -> list:
    return [f for f in lint(text, profile) if code is None or f.code == code]


def codes(text: str, profile=None) -> set[str]:
    return {f.code for f in lint(text, profile)}


REAL = {
    "s05_cc_lightning_venv_tmpdir": """#!/bin/bash
#SBATCH --nodes 1
#SBATCH --gres=gpu:2          # Request 2 GPU "generic resources".
#SBATCH --tasks-per-node=2    # Request 1 process per GPU.
#SBATCH --mem=8G
#SBATCH --time=0-03:00
#SBATCH --output=%N-%j.out

module load python
virtualenv --no-download $SLURM_TMPDIR/env
source $SLURM_TMPDIR/env/bin/activate
pip install torchvision pytorch-lightning --no-index

export NCCL_BLOCKING_WAIT=1

srun python pytorch-ddp-test-pl.py --batch_size 256
""",
    "s14_accelerate_machine_rank_batch": """#!/bin/bash
#SBATCH --job-name=multi-node-accelerate
#SBATCH --account=account_billing_group
#SBATCH --nodes=2
#SBATCH --gres=gpu:A40:4
#SBATCH --ntasks-per-node=1
#SBATCH --time=01:00:00

module load torchvision
source /dsk/nikos/flashattention/bin/activate

MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=42069

echo "$SLURMD_NODENAME: rank $SLURM_NODEID"

accelerate launch \\
    --num_machines $SLURM_JOB_NUM_NODES \\
    --num_processes $((4 * $SLURM_JOB_NUM_NODES)) \\
    --machine_rank $SLURM_NODEID \\
    --main_process_ip $MASTER_ADDR \\
    --main_process_port $MASTER_PORT \\
    --config_file config/accelerate/multi_node_multi_gpu.yaml \\
    train.py \\
    --model_dir checkpoints/first_run
""",
    "s15_accelerate_single_node": """#!/bin/bash
#SBATCH --job-name=acc1
#SBATCH --nodes=1
#SBATCH --gres=gpu:2
#SBATCH --cpus-per-task=16
#SBATCH --time=12:00:00

accelerate launch \\
  --main_process_port=29454 \\
  --multi_gpu \\
  --num_processes=2 \\
  --num_machines=1 \\
  --mixed_precision=bf16 \\
  --dynamo_backend=no \\
  resnet50_8192.py
""",
    "s16_deepspeed_hostfile": """#!/bin/bash
#SBATCH -N 2
#SBATCH --ntasks-per-node=4
#SBATCH -p gpu
#SBATCH --gres=gpu:4
#SBATCH --no-requeue

source ~/dat01/lpeng/env.bash
srun hostname -s > hostfile.txt
python edit_hostfile.py
deepspeed --hostfile hostfile.txt deepspeed_DP.py  --deepspeed --deepspeed_config ds_config.json
""",
    "s23_hetjob_drp": """#!/bin/bash

#SBATCH --partition=drpq
#SBATCH --job-name parallel
#SBATCH --output slurm-%j.out
#SBATCH -N1 -n3 --nodelist=drp-srcf-cmp035
#SBATCH hetjob
#SBATCH -N1 -n1 --nodelist=drp-srcf-cmp036


# Execute job steps
export BLAH="blah"
srun -n 1 --het-group=0 --exclusive bash -c "sleep 5; echo $BLAH 1" &
srun -n 1 --het-group=0 --exclusive bash -c "sleep 10; echo $BLAH 2" &
srun -n 1 --het-group=0 --exclusive bash -c "sleep 15; echo $BLAH 3" &

srun -n 1 --het-group=1 --exclusive bash -c "sleep 15; echo $BLAH 4" &
wait
""",
    "s24_hetjob_gpu_ct2rep": """#!/bin/bash
#SBATCH --job-name=CT2Rep
#SBATCH --time=3-00:00:00
#SBATCH --output=logs_multi/%j_%N.out
#SBATCH --error=logs_multi/%j_%N.err
#SBATCH --distribution=cyclic

# Heterogeneous job component 1: A cluster
#SBATCH --nodes=4
#SBATCH --partition=vgpu
#SBATCH --ntasks-per-node=1
#SBATCH --constraint=public&1v100
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=32

# Heterogeneous job component 2: BB cluster
#SBATCH hetjob
#SBATCH --partition=vgpu
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --constraint=public&1v100
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=32

head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST_HET_GROUP_0" | head -n 1)
srun --het-group=0,1 torchrun --nnodes=8 --nproc_per_node=1 --rdzv_id=$SLURM_JOB_ID \\
  --rdzv_backend=c10d --rdzv_endpoint=$head_node:29500 main.py
""",
    "s25_hetjob_qpu": """#!/bin/bash

#SBATCH --job-name=job_split_hetjob
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --partition normal

#SBATCH hetjob

#SBATCH --gres=qpu:1
#SBATCH --partition quantum

echo "Starting at `date`"
echo "Running on hosts: $SLURM_NODELIST"

source /shared/pyenv/bin/activate
srun --het-group=0 python map_optimize.py
srun --het-group=1 task_runner ibm_fez sampler_input_ibm_fez.json sampler_output_ibm_fez.json
srun --het-group=0 python result.py sampler_output_ibm_fez.json
""",
    "s26_array_sed_throttle": """#!/usr/bin/bash
#SBATCH --job-name=test_array
#SBATCH --time=00:30:00
#SBATCH --cpus-per-task=1
#SBATCH --mem=1G
#SBATCH -o test_array_log.%a.o
#SBATCH --array 1-10%5


echo "job array id" $SLURM_ARRAY_TASK_ID

# sed -n <X>p <file> : retrieve line <X> of file
ReadFileName=`sed -n ${SLURM_ARRAY_TASK_ID}p readFiles.txt`

echo $ReadFileName
""",
    "s27_array_params_throttle": """#!/bin/bash
#SBATCH --job-name=protein_array
#SBATCH --output=out/output_%A_%a.out
#SBATCH --error=err/error_%A_%a.err
#SBATCH --time=12:00:00
#SBATCH --partition=netsi_standard
#SBATCH --ntasks=1
#SBATCH --mem=50G
#SBATCH --array=1-22%100  # Number of lines in params.txt

# Read the correct line from params.txt
PARAMS=$(sed -n "${SLURM_ARRAY_TASK_ID}p" low_cyc_low_div_params_1.txt)

echo "Running job with parameters: ${PARAMS}"

python run_data_cont.py $PARAMS
""",
    "s31_signal_cleanup_uit": """#!/bin/bash -l

# job name
#SBATCH --job-name=example

# replace this by your account
#SBATCH --account=...

# one core only
#SBATCH --ntasks=1

# we give this job 4 minutes
#SBATCH --time=0-00:04:00

# asks SLURM to send the USR1 signal 120 seconds before end of the time limit
#SBATCH --signal=B:USR1@120

your_cleanup_function()
{
    echo "function your_cleanup_function called at $(date)"
}

trap 'your_cleanup_function' USR1

echo "starting calculation at $(date)"

sleep 1000 &
wait
""",
    "s32_signal_requeue_nersc_vtj": """#!/bin/bash
#SBATCH -J vtj
#SBATCH -q regular
#SBATCH -C haswell
#SBATCH -N 2
#SBATCH --time=48:00:00
#SBATCH --time-min=2:00:00 #the minimum amount of time the job should run
#SBATCH --error=vtj-%j.err
#SBATCH --output=vtj-%j.out
#SBATCH --mail-user=elvis@nersc.gov
#
#SBATCH --comment=96:00:00  #desired timelimit
#SBATCH --signal=B:USR1@60
#SBATCH --requeue
#SBATCH --open-mode=append

ckpt_command=

. /usr/common/software/variable-time-job/setup.sh
requeue_job func_trap USR1
#

srun -n64 -c2 --cpu_bind=cores ./a.out &

wait
""",
    "s33_signal_gpu_requeue_bash_source": """#!/bin/bash
#SBATCH --job-name=timeout-requeue
#SBATCH --gres=gpu:l40s:1
#SBATCH --time=10:00
#SBATCH --cpus-per-task=4
#SBATCH --mem=1G
#SBATCH --output=timeout-requeue.%j.out
# Send this batch script a SIGUSR1 60 seconds before we hit our time limit
#SBATCH --signal=B:USR1@60

handler()
{
	echo "SIGUSR1 function handler called at $(date)"
	scancel --signal=USR1 "$SLURM_JOB_ID"
	sbatch ${BASH_SOURCE[0]}
}

trap handler SIGUSR1

python train.py &
wait
""",
    "s34_signal_preempt_ntasks_per_gpu": """#!/bin/bash

#SBATCH -A m3562_g
#SBATCH --time=10:00:00
#SBATCH -C gpu
#SBATCH -N 1
#SBATCH -J sig_interrupt      # job name
#SBATCH -L SCRATCH       # job requires SCRATCH files
#SBATCH -C gpu
#SBATCH -q preempt
#SBATCH --gpus-per-node=4
#SBATCH --ntasks-per-gpu=1
#SBATCH --cpus-per-task=32
#SBATCH -o %j.out
#SBATCH -e %j.err
#SBATCH --signal=USR1@60
#SBATCH --requeue
#SBATCH --open-mode=append

echo "jobstart $(date)";pwd
srun python $SCRATCH/CT_NVAE/experimental/test_signal_interrupt.py
echo "jobend $(date)";pwd
""",
    "s41_instance_start_stop": """#!/bin/bash
#SBATCH --job-name='myjob'
#SBATCH --output='myjob.log'
#SBATCH --mem='8G'
#SBATCH --cpus-per-task='4'
#SBATCH --time='02:00:00'
#SBATCH -m block
#SBATCH --ntasks=1

echo 'Compute node:' `hostname`
echo 'Start time:' `date +'%Y-%m-%d %T'`

singularity instance.start -B /scratch image.sif myjob_image
srun singularity exec instance://myjob_image python analysis.py

singularity instance.stop myjob_image
""",
    "s42_apptainer_instance_gpu": """#!/bin/bash
#SBATCH --job-name=singularity
#SBATCH --output=singularity-out-%u-%j.txt
#SBATCH --error=singularity-err-%u-%j.txt
#SBATCH --ntasks=1
#SBATCH --qos=1gpu
#SBATCH --partition=dgx1
#SBATCH --gpus=1

INSTANCE_NAME=python
SIF_FILENAME=/srv/images/python_3.12.9.sif
VENV_DIR=venv

apptainer instance start --nv --bind $PWD:/workspace $SIF_FILENAME $INSTANCE_NAME
apptainer exec instance://$INSTANCE_NAME bash -c "source $VENV_DIR/bin/activate && python main.py"
apptainer instance stop $INSTANCE_NAME
""",
    "s47_mpcdf_constraints_typo": """#!/bin/bash -l

#SBATCH -o ./job.out.%j
#SBATCH -e ./job.err.%j
#SBATCH -D ../

#SBATCH --job-name=multinode-example
#SBATCH --nodes=1
#SBATCH --constraints=gpu
#SBATCH --ntasks-per-node=4

#SBATCH --gres=gpu:a100:4
#SBATCH --nvps

#SBATCH --mail-type=none
#SBATCH --mail-user=userid@example.mpg.de
#SBATCH --time=00:10:00

module purge
module load anaconda/3/2023.03 pytorch/gpu-cuda-12.1/2.2.0

nodes=( $( scontrol show hostnames $SLURM_JOB_NODELIST ) )
nodes_array=($nodes)
head_node=${nodes_array[0]}
head_node_ip=$(srun --nodes=1 --ntasks=1 -w "$head_node" hostname --ip-address)

echo Node IP: $head_node_ip
export LOGLEVEL=INFO

srun torchrun \\
--nnodes 4 \\
--nproc_per_node 1 \\
--rdzv_id $RANDOM \\
--rdzv_backend c10d \\
--rdzv_endpoint $head_node_ip:29500 \\
multinode.py 50 10
""",
    "s49_torchrun_bash_c_double_quotes": """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --time=01:00:00

srun --cpu-bind=none --ntasks-per-node=1 \\
    bash -c "torchrun \\
    --nnodes=2 \\
    --nproc_per_node=4 \\
    --rdzv_id=151152 \\
    --rdzv_conf=is_host=\\$(((SLURM_NODEID)) && echo 0 || echo 1) \\
    --rdzv_backend=c10d \\
    --rdzv_endpoint='$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'i:29500 \\
    python train.py"
""",
}


# --------------------------------------------------------------------------------------------
# bugs 3 and 4: heterogeneous jobs. The model holds the first component; steps in other components
# (or spread over several) are not judged by its counts, and no count fix is offered

HET_FIX = """#!/bin/bash
#SBATCH -N2 --ntasks-per-node=1 --gres=gpu:1 --time=10
#SBATCH hetjob
#SBATCH -N2 --ntasks-per-node=1 --gres=gpu:1 --time=10
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST_HET_GROUP_0" | head -n 1)
srun --het-group=0,1 torchrun --nnodes=4 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint=$head:29500 train.py
"""


def test_a_step_over_two_components_is_not_judged_by_the_first() -> None:
    assert not found(HET_FIX, "HPC112")
    new, fixed = fix_script(HET_FIX)
    assert new == HET_FIX and not fixed


def test_the_real_hetjob_keeps_its_nnodes() -> None:
    text = REAL["s24_hetjob_gpu_ct2rep"]
    assert not {"HPC112", "HPC310"} & codes(text)
    # both components ask for 32 CPUs per task: srun still needs them, but no fix rewrites a hetjob step
    hpc309 = found(text, "HPC309")
    assert [f.line for f in hpc309] == [26] and hpc309[0].fix is None
    new, _ = fix_script(text)
    assert "--nnodes=8" in new and "srun --het-group=0,1 torchrun" in new


@pytest.mark.parametrize("name", ["s23_hetjob_drp", "s24_hetjob_gpu_ct2rep", "s25_hetjob_qpu"])
def test_hetjob_separators_are_not_unreadable_directives(name: str) -> None:
    assert "HPC310" not in codes(REAL[name])


def test_standalone_is_judged_by_the_component_the_step_runs_in() -> None:
    text = """#!/bin/bash
#SBATCH -N1 --ntasks-per-node=1 --gres=gpu:4 --time=10
#SBATCH hetjob
#SBATCH -N2 --ntasks-per-node=1 --time=10
srun --het-group=0 torchrun --standalone --nnodes=1 --nproc-per-node=4 train.py
"""
    assert not found(text, "HPC113")
    # component 1 has two nodes: a --standalone there starts two separate one-node jobs
    assert [f.line for f in found(text.replace("--het-group=0", "--het-group=1"), "HPC113")] == [5]


@pytest.mark.parametrize("group", ["--het-group=0,1", "--het-group=0-1", "--het-group=$G"])
def test_steps_over_several_components_are_left_alone(group: str) -> None:
    text = f"""#!/bin/bash
#SBATCH -N1 --ntasks-per-node=4 --gres=gpu:4 --time=10
#SBATCH hetjob
#SBATCH -N2 --ntasks-per-node=1 --time=10
G=1
srun {group} torchrun --nnodes=3 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=$h:29500 train.py
"""
    assert not {"HPC101", "HPC108", "HPC109", "HPC112", "HPC113"} & codes(text)


@pytest.mark.parametrize("group", ["--het-group=1", "--het-group 1"])
def test_a_step_in_a_later_component_is_judged_by_its_nodes(group: str) -> None:
    text = f"""#!/bin/bash
#SBATCH -N1 --ntasks-per-node=4 --gres=gpu:4 --time=10
#SBATCH hetjob
#SBATCH -N2 --ntasks-per-node=1 --time=10
srun {group} torchrun --nnodes=3 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=$h:29500 train.py
"""
    assert {"HPC112"} == {"HPC101", "HPC108", "HPC109", "HPC112", "HPC113"} & codes(text)  # component 1: 2 nodes


def test_srun_colon_syntax_spans_components() -> None:
    text = """#!/bin/bash
#SBATCH -N1 -n1 --gres=gpu:1 --time=10
#SBATCH hetjob
#SBATCH -N1 -n4 --time=10
srun -n1 apptainer exec img_1.0.sif python a.py : -n4 python b.py
"""
    assert "HPC201" not in codes(text)


@pytest.mark.parametrize("group", ["", "--het-group=0 "])
def test_steps_in_the_first_component_are_judged_without_a_fix(group: str) -> None:
    text = f"""#!/bin/bash
#SBATCH -N2 --ntasks-per-node=4 --gres=gpu:4 --time=10
#SBATCH hetjob
#SBATCH -N1 -n1 --time=10
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST_HET_GROUP_0" | head -n 1)
srun {group}torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=$head:29500 train.py
"""
    out = found(text, "HPC101")
    assert len(out) == 1 and out[0].fix is None
    new, fixed = fix_script(text)
    assert "HPC101" not in {f.code for f in fixed}


def test_gpus_of_another_component() -> None:
    # the GPUs belong to component 1, which the step runs in: no "--nv without GPUs"
    gpu_in_1 = """#!/bin/bash
#SBATCH -n4 --time=10
#SBATCH hetjob
#SBATCH -n1 --gres=gpu:1 --time=10
srun --het-group=1 apptainer exec --nv img_1.0.sif python train.py &
srun --het-group=0 python loader.py &
wait
"""
    assert "HPC202" not in codes(gpu_in_1)
    # the GPUs belong to component 0; a container step of component 1 needs no --nv
    gpu_in_0 = """#!/bin/bash
#SBATCH -n1 --gres=gpu:1 --time=10
#SBATCH hetjob
#SBATCH -n4 --time=10
srun --het-group=0 apptainer exec --nv img_1.0.sif python train.py &
srun --het-group=1 apptainer exec img_1.0.sif python loader.py &
wait
"""
    assert not {"HPC201", "HPC220"} & codes(gpu_in_0)
    # nor is its CPU image a CPU image "for GPU work"
    assert "HPC213" not in codes(gpu_in_0.replace("exec img_1.0.sif python loader", "exec tools_1.0-cpu.sif python loader"))


def test_a_launcher_in_the_batch_shell_of_a_hetjob_gets_no_fix() -> None:
    text = """#!/bin/bash
#SBATCH -N2 --ntasks-per-node=1 --time=10
#SBATCH hetjob
#SBATCH -N1 -n1 --time=10
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST_HET_GROUP_0" | head -n 1)
torchrun --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint=$head:29500 train.py
"""
    out = found(text, "HPC110")
    assert len(out) == 1 and out[0].fix is None


def test_packjob_is_the_old_name_of_hetjob() -> None:
    text = "#!/bin/bash\n#SBATCH -n1 --time=5\n#SBATCH packjob\n#SBATCH -n1 --time=5\nsrun --het-group=0,1 hostname\n"
    out = found(text)
    assert [(f.code, f.severity, f.line) for f in out] == [("HPC317", "info", 3)]
    new, fixed = fix_script(text)
    assert "#SBATCH hetjob\n" in new and "packjob" not in new and [f.code for f in fixed] == ["HPC317"]
    assert not found(new)


def test_a_misspelled_separator_is_still_unreadable() -> None:
    assert "HPC310" in codes("#!/bin/bash\n#SBATCH -N1 -n1 --time=5\n#SBATCH hetjobx\nsrun hostname\n")


# --------------------------------------------------------------------------------------------
# bug 5: exec/run instance://NAME joins an instance whose GPUs were set up at instance start

INSTANCE = """#!/bin/bash
#SBATCH --gres=gpu:1 --time=10
apptainer instance start{flag} img_1.0.sif web
apptainer exec instance://web python train.py
apptainer instance stop web
"""


@pytest.mark.parametrize("flag", [" --nv", " --nvccli --writable-tmpfs", " --rocm"])
def test_exec_into_a_gpu_instance_is_fine(flag: str) -> None:
    assert "HPC201" not in codes(INSTANCE.format(flag=flag))


def test_an_instance_started_without_gpus_is_reported_at_its_start() -> None:
    out = found(INSTANCE.format(flag=""), "HPC201")
    assert [f.line for f in out] == [3] and out[0].fix is not None
    assert "instance web" in out[0].message and "add --nv" in out[0].message
    assert "apptainer instance start --nv img_1.0.sif web" in fix_script(INSTANCE.format(flag=""))[0]


def test_an_instance_started_elsewhere_is_not_judged() -> None:
    text = "#!/bin/bash\n#SBATCH --gres=gpu:1\napptainer exec instance://web python train.py\n"
    assert "HPC201" not in codes(text)


def test_the_real_instance_scripts() -> None:
    text = REAL["s42_apptainer_instance_gpu"]
    assert "HPC201" not in codes(text)
    new, fixed = fix_script(text)
    assert "HPC201" not in {f.code for f in fixed}
    assert 'apptainer exec instance://$INSTANCE_NAME bash -c "source' in new
    # singularity instance.start (the old spelling) without --nv, and no GPUs: nothing to say
    assert "HPC201" not in codes(REAL["s41_instance_start_stop"])
    old = "#!/bin/bash\n#SBATCH --gres=gpu:1\nsingularity instance.start img.sif w\nsingularity exec instance://w python t.py\n"
    assert [f.line for f in found(old, "HPC201")] == [3]


# --------------------------------------------------------------------------------------------
# bug 7: the rendezvous counts launchers (agents), not hosts; HPC101 names the effect

MULTI_LAUNCH = """#!/bin/bash
#SBATCH --nodes=1 --ntasks-per-node=4 --gres=gpu:4 --time=10
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=4 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint=$head:29500 train.py
"""


def test_four_launchers_on_one_node_meet_at_nnodes_4() -> None:
    assert not found(MULTI_LAUNCH, "HPC112")
    out = found(MULTI_LAUNCH, "HPC101")
    assert len(out) == 1
    message = out[0].message
    assert "LOCAL_RANK 0" in message and "share the same GPU" in message and "other 3 stay idle" in message
    assert "one torchrun per node" in message and "--nproc-per-node=4" in message
    assert "HPC112" not in codes(REAL["s47_mpcdf_constraints_typo"])
    assert "HPC101" in codes(REAL["s47_mpcdf_constraints_typo"])


def test_hpc101_fix_still_gives_one_launcher_per_node() -> None:
    new, fixed = fix_script(MULTI_LAUNCH)
    # one launcher per node, then --nnodes=1 (and then, on one node, --standalone instead of the fixed port)
    assert [f.code for f in fixed][:2] == ["HPC101", "HPC112"]
    assert "--ntasks=1" in new and "--nnodes=1" in new and "--nproc-per-node=4" in new


def test_launchers_that_match_neither_count() -> None:
    text = MULTI_LAUNCH.replace("--nnodes=4", "--nnodes=2")
    out = found(text, "HPC112")
    assert len(out) == 1 and out[0].fix is None and "4 torchrun launchers" in out[0].message


def test_one_launcher_per_node_is_still_compared_with_the_nodes() -> None:
    text = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=4 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" train.py
"""
    out = found(text, "HPC112")
    assert len(out) == 1 and out[0].fix is not None and "use --nnodes=2" in out[0].message


# --------------------------------------------------------------------------------------------
# bug 8: accelerate's command line overrides its config file

ACCEL = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
{launch}
"""


@pytest.mark.parametrize("launch", [
    "accelerate launch --num_machines 2 --num_processes 8 --config_file c.yaml train.py",
    "accelerate launch --config_file config/multi_node.yaml --machine_rank $SLURM_NODEID train.py",
])
def test_config_file_does_not_hide_several_machines(launch: str) -> None:
    assert found(ACCEL.format(launch=launch), "HPC110")


def test_the_real_accelerate_script() -> None:
    assert {"HPC110", "HPC502"} <= codes(REAL["s14_accelerate_machine_rank_batch"])


@pytest.mark.parametrize("launch", [
    "accelerate launch --config_file multi_node.yaml --main_process_ip $MASTER_ADDR train.py",  # the file decides
    "accelerate launch --config_file ds_zero3.yaml --num_machines 2 train.py",                  # DeepSpeed's pdsh
    "accelerate launch --use_deepspeed --num_machines 2 --config_file c.yaml train.py",
])
def test_deepspeed_or_the_file_alone_may_start_the_other_nodes(launch: str) -> None:
    assert not found(ACCEL.format(launch=launch), "HPC110")


@pytest.mark.parametrize("name", ["s15_accelerate_single_node", "s16_deepspeed_hostfile"])
def test_real_launchers_that_are_right(name: str) -> None:
    assert "HPC110" not in codes(REAL[name])


# --------------------------------------------------------------------------------------------
# bug 9: torchrun starts Python itself

@pytest.mark.parametrize("python", ["python", "python3", "/usr/bin/python", "python3.11"])
def test_python_as_the_training_script(python: str) -> None:
    text = f"#!/bin/bash\n#SBATCH --gres=gpu:4 --time=10\ntorchrun --standalone --nnodes=1 --nproc-per-node=4 {python} train.py\n"
    out = found(text, "HPC114")
    assert len(out) == 1 and out[0].severity == "error"
    assert f"drop {python}" in out[0].message and f"python -u {python} train.py" in out[0].message


@pytest.mark.parametrize("launch", ["torchrun --standalone --nproc-per-node=4 --no-python python train.py",
                                    "torchrun --standalone --nproc-per-node=4 train.py",
                                    "torchrun --standalone --nproc-per-node=4 python_tools/train.py"])
def test_python_given_on_purpose_or_not_at_all(launch: str) -> None:
    assert "HPC114" not in codes(f"#!/bin/bash\n#SBATCH --gres=gpu:4\n{launch}\n")


def test_python_inside_srun_bash_c_double_quotes() -> None:
    out = found(REAL["s49_torchrun_bash_c_double_quotes"], "HPC114")
    assert [f.line for f in out] == [7]


# --------------------------------------------------------------------------------------------
# bug 10: line numbers count from 1

LOOKUP = """#!/bin/bash
#SBATCH --time=10
#SBATCH --array={array}
{lookup}
python run.py $LINE
"""
LOOKUPS = [
    'LINE=$(sed -n "${SLURM_ARRAY_TASK_ID}p" params.txt)',
    "LINE=$(sed -n ${SLURM_ARRAY_TASK_ID}p params.txt)",
    'LINE=$(sed "${SLURM_ARRAY_TASK_ID}q;d" params.txt)',
    'LINE=$(awk "NR==$SLURM_ARRAY_TASK_ID" params.txt)',
    "LINE=$(awk -v i=$SLURM_ARRAY_TASK_ID 'NR==i' params.txt)",
    "LINE=$(head -n $SLURM_ARRAY_TASK_ID params.txt | tail -1)",
    'ID=$SLURM_ARRAY_TASK_ID\nLINE=$(sed -n "${ID}p" params.txt)',
]


@pytest.mark.parametrize("lookup", LOOKUPS)
def test_task_zero_asks_for_line_zero(lookup: str) -> None:
    out = found(LOOKUP.format(array="0-9%4", lookup=lookup), "HPC508")
    assert len(out) == 1 and "task 0" in out[0].message and "use --array=1-10%4" in out[0].message
    assert found(LOOKUP.format(array="0,4,8", lookup=lookup), "HPC508")


@pytest.mark.parametrize("lookup", LOOKUPS + ['LINE=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" params.txt)'])
def test_one_based_arrays_read_lines_fine(lookup: str) -> None:
    assert not found(LOOKUP.format(array="1-10%4", lookup=lookup), "HPC508")


def test_shifted_lookup_of_a_zero_based_array_is_fine() -> None:
    lookup = 'LINE=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" params.txt)'
    assert not found(LOOKUP.format(array="0-9", lookup=lookup), "HPC508")


@pytest.mark.parametrize("name", ["s26_array_sed_throttle", "s27_array_params_throttle"])
def test_real_one_based_arrays(name: str) -> None:
    assert "HPC508" not in codes(REAL[name])


def test_bash_arrays_still_count_from_zero() -> None:
    text = "#!/bin/bash\n#SBATCH --array=1-12%4\nparams=(a b c d e f g h i j)\npython run.py ${params[$SLURM_ARRAY_TASK_ID]}\n"
    out = found(text, "HPC508")
    assert len(out) == 1 and "use --array=0-9%4" in out[0].message
    assert not found(text.replace("1-12%4", "0-9%4"), "HPC508")


# --------------------------------------------------------------------------------------------
# bugs 11 and 12

def test_a_misspelled_option_is_an_error() -> None:
    assert rules()["HPC312"].severity == "error"
    out = found("#!/bin/bash\n#SBATCH --time=10\n#SBATCH --constraints=gpu\nhostname\n", "HPC312")
    assert [(f.severity, f.line) for f in out] == [("error", 3)]


def test_pip_from_local_wheels_downloads_nothing() -> None:
    assert "HPC507" not in codes(REAL["s05_cc_lightning_venv_tmpdir"])
    text = "#!/bin/bash\n#SBATCH --gres=gpu:1\n{}\npython train.py\n"
    assert "HPC507" not in codes(text.format("pip install --no-index --find-links $HOME/wheels torch"))
    assert "HPC507" not in codes(text.format("python -m pip install --no-index torch"))
    assert "HPC507" in codes(text.format("pip install torch"))
    assert "HPC507" in codes(text.format("pip install --no-index torch && pip install wandb"))


# --------------------------------------------------------------------------------------------
# the notes: a trap bash runs only after the foreground step exits (HPC511)

SIGNAL = """#!/bin/bash
#SBATCH --time=10
#SBATCH --signal={signal}
#SBATCH --requeue
trap 'scontrol requeue $SLURM_JOB_ID' {trapped}
{step}
"""


@pytest.mark.parametrize("signal,trapped", [("B:USR1@60", "USR1"), ("B:USR1@60", "SIGUSR1"), ("B:10@60", "USR1"),
                                            ("B:USR2", "USR2 TERM")])
@pytest.mark.parametrize("step", ["srun python train.py", "srun python train.py | tee log.txt",
                                  "apptainer exec --nv img_1.0.sif python train.py", "python train.py"])
def test_a_foreground_step_holds_the_trap_back(signal: str, trapped: str, step: str) -> None:
    out = found(SIGNAL.format(signal=signal, trapped=trapped, step=step), "HPC511")
    assert len(out) == 1 and out[0].line == 6 and out[0].severity == "warning"
    assert "foreground" in out[0].message and "& then wait" in out[0].message


@pytest.mark.parametrize("signal,trapped,step", [
    ("B:USR1@60", "USR1", "srun python train.py &\nwait"),                 # the fix: wait returns on the signal
    ("B:USR1@60", "USR1", "srun python train.py | tee log.txt &\nwait"),
    ("USR1@60", "USR1", "srun python train.py"),                           # sent to the steps, not the batch shell
    ("B:USR1@60", "TERM", "srun python train.py"),                         # another signal
    ("B:USR1@60", "USR1", "echo done"),
])
def test_no_foreground_step_or_another_signal(signal: str, trapped: str, step: str) -> None:
    assert not found(SIGNAL.format(signal=signal, trapped=trapped, step=step), "HPC511")


def test_the_step_before_the_trap_is_not_held() -> None:
    text = "#!/bin/bash\n#SBATCH --signal=B:USR1@60\nsrun python prep.py\ntrap 'echo bye' USR1\nsrun python train.py &\nwait\n"
    assert not found(text, "HPC511")


@pytest.mark.parametrize("name", ["s31_signal_cleanup_uit", "s32_signal_requeue_nersc_vtj",
                                  "s33_signal_gpu_requeue_bash_source", "s34_signal_preempt_ntasks_per_gpu"])
def test_real_signal_scripts_are_right(name: str) -> None:
    assert "HPC511" not in codes(REAL[name])


def test_the_new_rule_is_documented() -> None:
    r = rules()["HPC511"]
    assert r.severity == "warning" and "& wait" in r.fix
    assert found(r.bad, "HPC511") and not found(r.good, "HPC511")


# --------------------------------------------------------------------------------------------
# the audit's scripts: what was right stays right, what was found stays found

EXPECTED = {
    "s05_cc_lightning_venv_tmpdir": set(),
    "s14_accelerate_machine_rank_batch": {"HPC110", "HPC502", "HPC130"},  # HPC130: MASTER_PORT=42069, an ephemeral port
    "s15_accelerate_single_node": set(),
    "s16_deepspeed_hostfile": set(),
    "s23_hetjob_drp": set(),
    "s24_hetjob_gpu_ct2rep": {"HPC309"},
    "s25_hetjob_qpu": set(),
    "s26_array_sed_throttle": set(),
    "s27_array_params_throttle": set(),
    "s31_signal_cleanup_uit": set(),
    "s32_signal_requeue_nersc_vtj": set(),
    "s33_signal_gpu_requeue_bash_source": set(),
    "s34_signal_preempt_ntasks_per_gpu": {"HPC309", "HPC527"},  # echo after the step: its state is the job's
    "s41_instance_start_stop": {"HPC309", "HPC209"},
    "s42_apptainer_instance_gpu": set(),
    "s47_mpcdf_constraints_typo": {"HPC312", "HPC313", "HPC101"},
    "s49_torchrun_bash_c_double_quotes": {"HPC114"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_audit_scripts(name: str) -> None:
    assert codes(REAL[name]) == EXPECTED[name]


def test_the_one_launcher_per_node_gets_the_cpus_the_launchers_shared():
    # the deck's pattern: 4 launchers × --cpus-per-task=8 per node; after the fix the single launcher's
    # 4 workers must not be squeezed onto 8 CPUs
    script = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --cpus-per-task=8\n"
              "#SBATCH --gres=gpu:4\n#SBATCH --time=10\n"
              'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)\n'
              'srun --cpus-per-task=8 torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d '
              '--rdzv-endpoint="$head_node:29500" train.py\n')
    fixed, done = fix_script(script)
    assert "HPC101" in {f.code for f in done}
    step = fixed[fixed.index("srun"):].replace("\\\n", " ")
    assert "--ntasks-per-node=1" in step and "--cpus-per-task=32" in step, fixed


def test_the_launcher_gets_the_jobs_cpus_when_srun_names_none():
    script = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --cpus-per-task=16\n"
              "#SBATCH --gres=gpu:4\n#SBATCH --time=10\n"
              'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)\n'
              'srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" '
              'train.py\n')
    fixed, _ = fix_script(script)
    step = fixed[fixed.index("srun"):].replace("\\\n", " ")
    assert "--cpus-per-task=64" in step and "--cpus-per-task=16" not in step, fixed


@pytest.mark.parametrize("ntasks,hangs", [("2", True), ("3", False), ('"$SLURM_NNODES"', False)])
def test_hpc112_a_capped_srun_starts_fewer_launchers_than_nnodes_waits_for(ntasks, hangs):
    # seen for real on the practice cluster: a job grown from 2 to 3 nodes with srun --ntasks=2 left in hangs
    script = ("#!/bin/bash\n#SBATCH --nodes=3\n#SBATCH --gres=gpu:4\n#SBATCH --time=10\n"
              'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)\n'
              f"srun --ntasks={ntasks} --ntasks-per-node=1 torchrun --nnodes=3 --nproc-per-node=4 --rdzv-backend=c10d "
              '--rdzv-endpoint="$head_node:29500" train.py\n')
    found = [f for f in lint(script) if f.code == "HPC112"]
    assert bool(found) is hangs, found
    if hangs:
        assert "--ntasks=2 starts only 2" in found[0].message
