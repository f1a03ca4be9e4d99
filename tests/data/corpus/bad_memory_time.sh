#!/bin/bash
#SBATCH --job-name=big-eval
#SBATCH --mem=64GB
#SBATCH --mem-per-cpu=4G
#SBATCH --time=1:00:00:00
#SBATCH --output=$HOME/logs/%j.out

python evaluate.py --checkpoint best.pt
