#!/bin/bash
#SBATCH --job-name=detr
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=32
#SBATCH --time=12:00:00

module load apptainer
export PYTHONNOUSERSITE=1
apptainer exec --nv "$SCRATCH/images/detr_2023.09.sif" torchrun --standalone --nnodes=1 \
  --nproc-per-node=4 main.py \
  --coco_path /data/coco
  --output_dir "$SCRATCH/detr-out"
