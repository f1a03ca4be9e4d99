#!/bin/bash
#SBATCH --job-name=shards
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=8
#SBATCH --time=00:30:00

# each task expands SLURM_PROCID itself (single quotes keep the batch shell away from it)
srun bash -c 'python preprocess.py --shard "$SLURM_PROCID" --num-shards "$SLURM_NTASKS"'
echo "preprocessing done on $SLURM_JOB_NUM_NODES nodes"
