#!/bin/bash
#SBATCH --job-name=lr-sweep
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=01:00:00
#SBATCH --array=0-9%4
#SBATCH --output=sweep-%A_%a.out

module load apptainer
export PYTHONNOUSERSITE=1
lrs=(0.3 0.1 0.03 0.01 0.003 0.001 0.0003 0.0001 0.00003 0.00001)
lr=${lrs[$SLURM_ARRAY_TASK_ID]}
echo "task $SLURM_ARRAY_TASK_ID uses lr=$lr"

apptainer exec --nv "$SCRATCH/images/pytorch_2.3.1-cuda12.1.sif" \
  python train.py --lr "$lr" --output "$SCRATCH/sweep/$SLURM_ARRAY_JOB_ID/$SLURM_ARRAY_TASK_ID"
