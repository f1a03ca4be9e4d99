#!/bin/bash
#SBATCH --job-name=yolo
#SBATCH --partition=gpu
#SBATCH --gres=gpu:2
#SBATCH --cpus-per-task=12
#SBATCH --time=10:00:00

module load apptainer
export PYTHONNOUSERSITE=1
apptainer exec --bind "$SCRATCH/coco:/data" "$SCRATCH/images/ultralytics_8.2.0.sif" \
  yolo train data=/data/coco.yaml model=yolov8m.pt epochs=100 device=0,1
