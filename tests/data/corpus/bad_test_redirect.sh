#!/bin/bash
#SBATCH --job-name=threads
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=16
#SBATCH --time=01:00:00

if [ "$SLURM_CPUS_PER_TASK" > 1 ]; then
    export OMP_NUM_THREADS="$SLURM_CPUS_PER_TASK"
fi
srun --cpus-per-task="$SLURM_CPUS_PER_TASK" python preprocess.py
