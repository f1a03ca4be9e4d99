#!/bin/bash
#SBATCH --job-name=home-bind
#SBATCH --gres=gpu:1
#SBATCH --time=02:00:00

module load apptainer
export PYTHONNOUSERSITE=1
apptainer exec --nv --bind "$HOME:$HOME" "$HOME/containers/pytorch_2.2.0.sif" python train.py
