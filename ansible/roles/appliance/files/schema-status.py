"""Print the database's schema revision and the installed code's head as JSON (Ansible probe)."""

import json
import sys
from pathlib import Path

from appliance.config import load_config
from appliance.db import create_db_engine, current_revision, head_revision

cfg = load_config(Path(sys.argv[1]))
engine = create_db_engine(cfg.database, cfg.secrets)
try:
    print(json.dumps({"current": current_revision(engine), "head": head_revision()}))
finally:
    engine.dispose()
