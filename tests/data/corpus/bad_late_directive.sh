#!/bin/bash
#SBATCH --job-name=segment
#SBATCH --partition=gpu
module load cuda/12.1
#SBATCH --gres=gpu:1
#SBATCH --time=04:00:00
source "$SCRATCH/venvs/seg/bin/activate"
python segment.py --input "$SCRATCH/slides" --output "$SCRATCH/masks"
