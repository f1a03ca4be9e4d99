#!/bin/bash
#SBATCH --job-name=sft
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=08:00:00

export WANDB_API_KEY=3f9a0c1d2e4b5a69788c7d6e5f4a3b2c1d0e9f8a
export HF_TOKEN=hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345
export WANDB_PROJECT=sft-runs
python sft.py --model mistralai/Mistral-7B-v0.1 --push-to-hub
