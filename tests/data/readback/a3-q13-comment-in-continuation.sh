#!/bin/bash
#SBATCH --job-name=t
#SBATCH --time=01:00:00
#SBATCH --nodes=1

srun python train.py \
  --lr 0.1 \
  --epochs 3 # trailing
echo done
