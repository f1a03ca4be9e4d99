#!/bin/bash
#SBATCH --job-name=ddp-4gpu
#SBATCH --partition=gpu
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=32
#SBATCH --mem=128G
#SBATCH --time=12:00:00

module load apptainer
export PYTHONNOUSERSITE=1

# one node: --standalone picks a free rendezvous port, so two such jobs on a node never clash
apptainer exec --nv --bind "$SCRATCH/data:/data:ro" "$SCRATCH/images/pytorch_2.3.1-cuda12.1.sif" \
  torchrun --standalone --nnodes=1 --nproc-per-node=4 train_ddp.py --data /data --batch-size 256
