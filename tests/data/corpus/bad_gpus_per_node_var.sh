#!/bin/bash
#SBATCH --job-name=typed-gpus
#SBATCH --nodes=1
#SBATCH --gpus-per-node=a100:4
#SBATCH --time=04:00:00

module load pytorch/2.3
torchrun --standalone --nnodes=1 --nproc-per-node="$SLURM_GPUS_PER_NODE" train.py
