#!/bin/bash
#SBATCH --job-name=ensemble
#SBATCH --nodes=1
#SBATCH --ntasks=4
#SBATCH --gres=gpu:4
#SBATCH --time=03:00:00

module load python/3.11
source "$SCRATCH/venvs/ml/bin/activate"
# intended: one ensemble member per task, each on its own GPU
srun bash -c "CUDA_VISIBLE_DEVICES=$SLURM_LOCALID python train_member.py --seed $SLURM_PROCID"
