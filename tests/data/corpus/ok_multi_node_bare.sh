#!/bin/bash
#SBATCH --job-name=gpt-small
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=06:00:00

module load pytorch/2.3
export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK

head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export LOGLEVEL=INFO

srun torchrun \
  --nnodes=4 \
  --nproc-per-node=4 \
  --rdzv-backend=c10d \
  --rdzv-endpoint="$head_node:29500" \
  --rdzv-id="$SLURM_JOB_ID" \
  pretrain.py --config configs/gpt_small.yaml
