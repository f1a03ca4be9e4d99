#!/bin/bash
#SBATCH --job-name=tf-train
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=03:00:00

module load apptainer
export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"
export APPTAINER_TMPDIR="$SCRATCH/.apptainer/tmp"
export PYTHONNOUSERSITE=1
mkdir -p "$SCRATCH/images" "$APPTAINER_TMPDIR"

IMG=$SCRATCH/images/tensorflow_2.15.0-gpu.sif
[ -f "$IMG" ] || apptainer pull "$IMG" docker://tensorflow/tensorflow:2.15.0-gpu

apptainer exec --nv "$IMG" python train_tf.py --epochs 20
