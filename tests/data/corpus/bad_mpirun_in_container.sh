#!/bin/bash
#SBATCH --job-name=gromacs
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=32
#SBATCH --time=08:00:00

module load apptainer
apptainer exec --bind "$PWD:/work" "$SCRATCH/images/gromacs_2023.3.sif" \
  mpirun -np 64 gmx_mpi mdrun -deffnm /work/md
