import os
import sys
from pathlib import Path

# tests import helpers.py from this folder
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HPCW_PROFILE_PATH", "")
