#!/bin/bash
#SBATCH --job-name=x
# --- where the logs go ---
#SBATCH --output=logs/%x-%j.out
# --- resources ---
#SBATCH --nodes=2
#SBATCH --gres=gpu:4
##SBATCH --gres=gpu:8
# --- time ---
#SBATCH --time=01:00:00

srun python train.py
