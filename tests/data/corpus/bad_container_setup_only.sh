#!/bin/bash
#SBATCH --job-name=conda-in-image
#SBATCH --gres=gpu:1
#SBATCH --time=02:00:00

module load apptainer
apptainer exec --nv "$SCRATCH/images/base_cuda12.1.sif" source /opt/conda/bin/activate ml
python train.py
