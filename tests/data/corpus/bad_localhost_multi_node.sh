#!/bin/bash
#SBATCH --job-name=vit-2node
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=16
#SBATCH --time=08:00:00

module load pytorch/2.3
export SRUN_CPUS_PER_TASK=16
srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d \
  --rdzv-endpoint=localhost:29400 --rdzv-id="$SLURM_JOB_ID" train_vit.py
