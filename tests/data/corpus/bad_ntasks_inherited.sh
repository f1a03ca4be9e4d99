#!/bin/bash
# The allocation keeps 4 tasks per node (other steps of this job use them);
# the author meant one torchrun per node, but srun inherits the job's 8 tasks.
#SBATCH --job-name=ddp-mixed
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=8
#SBATCH --time=10:00:00

module load apptainer
export PYTHONNOUSERSITE=1
IMAGE=$SCRATCH/images/pytorch_24.05-py3.sif
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)

srun --ntasks-per-node=1 --cpus-per-task=32 apptainer exec --nv "$IMAGE" \
  torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d \
  --rdzv-endpoint="$head_node:29500" --rdzv-id="$SLURM_JOB_ID" train.py

# a per-task check afterwards uses all 4 tasks per node
srun --cpus-per-task=8 nvidia-smi --query-gpu=name,utilization.gpu --format=csv
