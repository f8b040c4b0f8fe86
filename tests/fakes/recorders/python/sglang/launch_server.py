"""A stand-in for ``python -m sglang.launch_server`` (no GPU here): records argv, pid, env,
and the ``--config`` file the real server would read.

The real server merges a YAML ``--config FILE`` into its arguments first thing, in its own
process (sglang/srt/server_args.py, ``prepare_server_args``: only for the exact token
``--config``, with srt/utils/server_args_config_parser.py wanting a .yaml/.yml name that
exists). This stand-in reads the file the same way, as text, so a test can see what the
engine got through it.
"""

import json
import os
import sys

args = sys.argv[1:]
config = None
if "--config" in args:
    path = args[args.index("--config") + 1]
    if os.path.splitext(path)[1].lower() in (".yaml", ".yml") and os.path.exists(path):
        with open(path) as f:
            config = f.read()
    else:
        config = f"unreadable: {path}"

with open(os.environ["FAKE_ENGINE_RECORD"], "w") as f:
    json.dump(
        {
            "argv": [sys.executable, "-m", "sglang.launch_server", *args],
            "pid": os.getpid(),
            "env": dict(os.environ),
            "config": config,
        },
        f,
    )
