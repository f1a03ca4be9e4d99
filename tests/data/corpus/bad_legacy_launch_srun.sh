#!/bin/bash
#SBATCH --job-name=old-ddp
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --time=05:00:00

module load pytorch/1.13
srun python -m torch.distributed.launch --nproc_per_node=4 --use_env train.py
