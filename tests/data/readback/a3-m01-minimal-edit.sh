#!/bin/bash
#SBATCH -J demo
#SBATCH --time 01:00:00
#SBATCH -N 1

# inputs
export DATA=$HOME/data

python prep.py \
  --in "$DATA" \
  --out prep.h5
srun python train.py
