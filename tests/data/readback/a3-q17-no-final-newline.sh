#!/bin/bash
#SBATCH --job-name=nonl
#SBATCH --time=01:00:00

srun python train.py