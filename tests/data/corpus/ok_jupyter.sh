#!/bin/bash
#SBATCH --job-name=jupyter
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=32G
#SBATCH --time=03:00:00
#SBATCH --output=jupyter-%j.log

module load python/3.11
source "$SCRATCH/venvs/lab/bin/activate"

node=$(hostname -s)
port=$(shuf -i 20000-29999 -n 1)
XDG_RUNTIME_DIR=$(mktemp -d)
export XDG_RUNTIME_DIR

echo "On your computer: ssh -N -L 8888:$node:$port $USER@login.cluster.example.edu"
echo "Then open the URL with the token printed below, replacing the port by 8888"
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # only you may read the token in this log

jupyter lab --no-browser --ip="$node" --port="$port" --ServerApp.port_retries=0
