#!/bin/bash
#SBATCH --job-name=t
#SBATCH --nodes=2 --time=01:00:00 --ntasks-per-node=4

srun python train.py
