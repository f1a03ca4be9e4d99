#!/bin/bash
#SBATCH --job-name=ddp
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=06:00:00

export SRUN_CPUS_PER_TASK="$SLURM_CPUS_PER_TASK"
IMG="$SCRATCH/images/pytorch_24.05.sif"

# a short check of the data on the first node, then the training on both
apptainer exec --nv --no-home "$IMG" torchrun --standalone --nproc-per-node=4 check_data.py

head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun apptainer exec --nv --no-home "$IMG" \
    torchrun --nnodes="$SLURM_NNODES" --nproc-per-node=4 \
    --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" --rdzv-id="$SLURM_JOB_ID" train.py
