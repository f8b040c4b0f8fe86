"""A stand-in for ``python -m sglang.launch_server`` (no GPU here): records argv, pid, env."""
import json
import os
import sys

with open(os.environ["FAKE_ENGINE_RECORD"], "w") as f:
    json.dump({"argv": [sys.executable, "-m", "sglang.launch_server", *sys.argv[1:]],
               "pid": os.getpid(), "env": dict(os.environ)}, f)
