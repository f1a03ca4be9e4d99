#!/bin/bash
#SBATCH --job-name=gpu-on-cpu-image
#SBATCH --gres=gpu:1
#SBATCH --time=02:00:00

module load apptainer
export PYTHONNOUSERSITE=1
apptainer exec --nv "$SCRATCH/images/pytorch_2.3.1-cpu.sif" python train.py
