#!/bin/bash
#SBATCH --job-name=ddp-2x4
#SBATCH --partition=gpu
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=32
#SBATCH --mem=256G
#SBATCH --time=1-00:00:00
#SBATCH --output=%x-%j.out

set -eo pipefail
module load apptainer
export PYTHONNOUSERSITE=1

IMAGE="$SCRATCH/images/pytorch_24.05-py3.sif"
# the first node of the allocation, resolved here on the host (the image has no scontrol)
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)

srun --ntasks-per-node=1 --cpus-per-task="$SLURM_CPUS_PER_TASK" \
  apptainer exec --nv --bind "$SCRATCH/data:/data:ro" "$IMAGE" \
  torchrun --nnodes="$SLURM_NNODES" --nproc-per-node=4 \
    --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" --rdzv-id="$SLURM_JOB_ID" \
    train_ddp.py --data /data
