#!/bin/bash
#SBATCH --job-name=copy-data
#SBATCH --cpus-per-task=2
#SBATCH --time=00:30:00

mkdir -p $$TMPDIR/data
rsync -a "$SCRATCH/dataset/" "$TMPDIR/data/"
python train.py --data "$TMPDIR/data"
