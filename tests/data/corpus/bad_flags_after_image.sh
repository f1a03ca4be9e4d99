#!/bin/bash
#SBATCH --job-name=unet
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=06:00:00

module load apptainer
export PYTHONNOUSERSITE=1
apptainer exec "$SCRATCH/images/monai_1.3.0.sif" --nv --bind "$SCRATCH/brats:/data" \
  python train_unet.py --data /data
