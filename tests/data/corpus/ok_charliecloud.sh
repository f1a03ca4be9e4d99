#!/bin/bash
#SBATCH --job-name=ch-train
#SBATCH --partition=gpu
#SBATCH --ntasks=1
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=02:00:00

# image built once with: ch-image build -t trainer . && ch-convert trainer $SCRATCH/images/trainer.sqfs
# and the driver injected with ch-fromhost --nvidia
IMG="$SCRATCH/images/trainer.sqfs"
srun --cpus-per-task=8 ch-run -b "$SCRATCH/data:/mnt/0" -b "$SCRATCH/out:/mnt/1" "$IMG" -- \
  python /opt/app/train.py --data /mnt/0 --output /mnt/1
