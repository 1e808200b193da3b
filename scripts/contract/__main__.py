"""Derive the Authentik contract cache: `python -m scripts.contract PATH` (authentik_api.load runs it in a child process)."""

import sys
from pathlib import Path

from scripts.contract.authentik_api import write_cache

write_cache(Path(sys.argv[1]))
