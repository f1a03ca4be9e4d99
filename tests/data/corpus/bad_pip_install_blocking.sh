#!/bin/bash
#SBATCH --job-name=nanogpt
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=06:00:00

module load python/3.11 cuda/12.1
pip install --user torch==2.3.1 numpy transformers datasets tiktoken wandb
export CUDA_LAUNCH_BLOCKING=1
python train.py config/train_shakespeare_char.py
