#!/bin/bash
#SBATCH --job-name=pipeline
#SBATCH --cpus-per-task=4
#SBATCH --time=01:00:00

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$SCRIPT_DIR/env.sh"
python "$SCRIPT_DIR/run_pipeline.py" --config "$SCRIPT_DIR/config.yaml"
