#!/bin/bash
#SBATCH --job-name=dist-ml-train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4      # one task per GPU
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=2
#SBATCH --partition=gpu-multi

module load apptainer
CONTAINER_IMAGE=$SCRATCH/images/ml_container_1.2.sif
export PYTHONNOUSERSITE=1

srun apptainer run --nv \
  --bind "$SCRATCH/data:/data" \
  "$CONTAINER_IMAGE" \
  torchrun --nnodes="$SLURM_NNODES" \
           --nproc_per_node="$SLURM_NTASKS_PER_NODE" \
           --rdzv_id="$SLURM_JOB_ID" \
           --rdzv_backend=c10d \
           --rdzv_endpoint="$SLURM_STEP_NODELIST:29500" \
           distributed_train.py
