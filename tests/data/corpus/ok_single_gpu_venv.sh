#!/bin/bash
#SBATCH --job-name=bert-finetune
#SBATCH --partition=gpu
#SBATCH --gres=gpu:a100:1
#SBATCH --cpus-per-task=6
#SBATCH --mem=48G
#SBATCH --time=08:00:00
#SBATCH --output=%x-%j.log
#SBATCH --mail-type=END,FAIL

module purge
module load python/3.11 cuda/12.1
source "$SCRATCH/venvs/nlp/bin/activate"

export HF_HOME="$SCRATCH/hf-cache"
export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK

cd "$SLURM_SUBMIT_DIR"
python finetune.py --model bert-base-uncased --task mrpc --epochs 3 --output-dir "$SCRATCH/runs/$SLURM_JOB_ID"
