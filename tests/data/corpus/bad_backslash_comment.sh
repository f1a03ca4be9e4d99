#!/bin/bash
#SBATCH --job-name=finetune
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00

export APPTAINERENV_PYTHONNOUSERSITE=1
IMG="$SCRATCH/images/pytorch_24.05.sif"

# the comment after the backslash ends the command: python then runs on the host
apptainer exec --nv --no-home "$IMG" \    # pinned image
    python finetune.py --epochs 3
