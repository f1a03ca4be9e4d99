#!/bin/bash
#SBATCH --job-name=ddp-module
#SBATCH --gres=gpu:2
#SBATCH --cpus-per-task=12
#SBATCH --time=05:00:00

module load pytorch/2.3
# torchrun as a module, for sites where the console script is not on PATH
python -m torch.distributed.run --standalone --nnodes=1 --nproc-per-node=2 train.py --amp
