#!/bin/bash
#SBATCH --job-name=broken
#SBATCH --time=00:10:00

echo "starting
python train.py
