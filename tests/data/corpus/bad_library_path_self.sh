#!/bin/bash
#SBATCH --job-name=cuda-ext
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --time=01:00:00

module load cuda/12.4
export LD_LIBRARY_PATH=LD_LIBRARY_PATH:/opt/site/cudnn/lib
srun --cpus-per-task="$SLURM_CPUS_PER_TASK" python build_and_train.py
