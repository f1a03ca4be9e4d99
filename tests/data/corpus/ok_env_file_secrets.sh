#!/bin/bash
#SBATCH --job-name=llm-eval
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00

module load apptainer
# the W&B and Hugging Face keys live in a file only I can read (chmod 600)
apptainer exec --nv --no-home --bind "$SCRATCH:/scratch" --env-file "$HOME/.secrets/ml.env" \
  "$SCRATCH/images/vllm_0.4.2.sif" python /scratch/eval/run_eval.py --model meta-llama/Llama-2-7b-hf
