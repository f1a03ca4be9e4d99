#!/bin/bash
#SBATCH --job-name=lammps
#SBATCH --partition=cpu
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=64
#SBATCH --cpus-per-task=1
#SBATCH --time=12:00:00

module load apptainer openmpi/4.1
# hybrid model: host MPI starts the ranks through Slurm's PMIx; the image carries a matching Open MPI 4.1
srun --mpi=pmix apptainer exec --bind "$SCRATCH/md:/work" "$SCRATCH/images/lammps_2Aug2023.sif" \
  lmp -in /work/in.lj -log /work/log.lammps
