#!/bin/bash
#SBATCH --job-name=rocm-train
#SBATCH --partition=mi250
#SBATCH --gpus-per-node=8
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=64
#SBATCH --time=04:00:00

module load apptainer
export PYTHONNOUSERSITE=1
srun --cpus-per-task=64 apptainer exec --rocm "$SCRATCH/images/pytorch_rocm6.0_2.1.2.sif" \
  torchrun --standalone --nnodes=1 --nproc-per-node=8 train.py
