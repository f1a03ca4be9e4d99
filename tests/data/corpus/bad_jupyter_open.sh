#!/bin/bash
#SBATCH --job-name=notebook
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=04:00:00

module load python/3.11
export XDG_RUNTIME_DIR=/run/user/$(id -u)
echo "ssh -N -L 8888:$(hostname):8888 $USER@login.cluster.example.edu"
jupyter lab --no-browser --ip=0.0.0.0 --port=8888 --NotebookApp.token='' --NotebookApp.password=''
