#!/bin/bash
#SBATCH --job-name=cc
#SBATCH --time=01:00:00

ch-run -w ~/images/app -b ~/data/ -- sh /app/run.sh
