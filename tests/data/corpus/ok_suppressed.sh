#!/bin/bash
#SBATCH --job-name=debug-cuda
#SBATCH --gres=gpu:1
#SBATCH --time=00:20:00

# a short debugging run: the slowdown is wanted here
export CUDA_LAUNCH_BLOCKING=1  # hpcw: disable=HPC506
python reproduce_nan.py --steps 50
