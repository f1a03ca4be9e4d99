#!/bin/bash
#SBATCH --job-name=resnet50
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=04:00:00
#SBATCH --output=logs/%x-%j.out

set -euo pipefail
module load apptainer

IMAGE="$SCRATCH/images/pytorch_24.05-py3.sif"
DATA="$SCRATCH/datasets/imagenette"
OUT="$SCRATCH/runs/$SLURM_JOB_ID"
mkdir -p "$OUT"

# keep host ~/.local packages out of the container
export PYTHONNOUSERSITE=1

apptainer exec --nv \
  --bind "$DATA:/data:ro" \
  --bind "$OUT:/output" \
  "$IMAGE" \
  python train.py --data /data --epochs 30 --output /output
