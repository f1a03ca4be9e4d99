#!/bin/bash
#SBATCH --job-name=notebook
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=02:00:00

chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"
node=$(hostname -s)
echo "tunnel: ssh -N -L 8888:${node}:8888 ${USER}@login.cluster.example"
jupyter lab --no-browser --ip="$node" --port=${8888} --ServerApp.port_retries=0
