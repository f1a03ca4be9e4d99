#!/bin/bash
#SBATCH --job-name=t
#SBATCH --time=01:00:00
#SBATCH --nodes=1

export A=1 B=2
export C=3; export D=4
srun python train.py
