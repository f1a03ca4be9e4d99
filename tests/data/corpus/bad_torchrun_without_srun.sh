#!/bin/bash
#SBATCH --job-name=llama-ft
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=96
#SBATCH --time=2-00:00:00

source "$SCRATCH/miniconda3/etc/profile.d/conda.sh"
conda activate llm
export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK

head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
# runs only in the batch shell on the first node
torchrun --nnodes=2 --nproc-per-node=8 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" \
  finetune.py --model llama-2-7b --deepspeed ds_config.json
