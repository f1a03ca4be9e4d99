#!/bin/bash
#SBATCH --job-name=quick-test
#SBATCH --gres=gpu:1
#SBATCH --time=01:00:00

module load apptainer
cd "$SCRATCH"
apptainer pull --force pytorch.sif docker://pytorch/pytorch:latest
apptainer exec --nv --no-home pytorch.sif python -c 'import torch; print(torch.cuda.is_available())'
