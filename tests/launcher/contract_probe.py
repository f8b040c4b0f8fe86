"""Run inside an engine's virtual environment: check many configurations in one process.

Importing an engine takes up to a minute, so the contract tests send every case here at
once instead of starting ``python -m entrypoint check`` per case. Reads a JSON list of
environments on stdin; prints a JSON list of {"status", "report"} on stdout's last line.
"""

import io
import json
import sys

from entrypoint.check import run_check
from entrypoint.errors import LaunchError

results = []
for env in json.load(sys.stdin):
    out = io.StringIO()
    try:
        status = run_check(env, False, out)
    except LaunchError as error:
        status, out = error.exit_status, io.StringIO(error.message())
    results.append({"status": status, "report": out.getvalue()})
print(json.dumps(results))
