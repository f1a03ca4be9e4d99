#!/bin/bash
#SBATCH --job-name=ngc-pull
#SBATCH --time=00:30:00

module load apptainer
export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"
export APPTAINER_DOCKER_USERNAME='$oauthtoken'
export APPTAINER_DOCKER_PASSWORD=nvapi-Zx81mQ0p9Lk2Jh3Gf4Ds5Aa6
[ -f "$SCRATCH/images/pytorch_24.05-py3.sif" ] ||
  apptainer pull "$SCRATCH/images/pytorch_24.05-py3.sif" docker://nvcr.io/nvidia/pytorch:24.05-py3
