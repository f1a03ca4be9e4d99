#!/bin/bash
#SBATCH --job-name=mixed-rdzv
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:2
#SBATCH --time=03:00:00

module load pytorch/2.3
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=2 --nproc-per-node=2 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" \
  --master-addr="$head_node" --master-port=29500 train.py
