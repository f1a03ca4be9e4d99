#!/bin/bash
#SBATCH --job-name=xgb-cv
#SBATCH --partition=cpu
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=32
#SBATCH --mem-per-cpu=4G
#SBATCH --time=02:00:00

module load python/3.11
source "$HOME/envs/tabular/bin/activate"
export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK
python cross_validate.py --n-jobs "$SLURM_CPUS_PER_TASK" --folds 10
