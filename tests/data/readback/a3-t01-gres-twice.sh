#!/bin/bash
#SBATCH --job-name=g
#SBATCH --time=01:00:00
#SBATCH --gres=gpu:2
#SBATCH --gres=lscratch:100

srun python train.py
