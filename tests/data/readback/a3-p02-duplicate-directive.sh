#!/bin/bash
#SBATCH --job-name=dup
#SBATCH --time=01:00:00
#SBATCH --nodes=1
#SBATCH --nodes=2
#SBATCH --partition=cpu
#SBATCH -p gpu

srun python train.py
