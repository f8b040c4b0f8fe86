"""huggingface_hub's own log records pass the launcher's redaction (entrypoint.output,
``redact_logs``), on each huggingface_hub release the launcher meets (``launcher_python``).

``HF_DEBUG=1`` (huggingface_hub/constants.py; the platform files pass it through) sets the
``huggingface_hub`` logger to DEBUG, and its handler on stderr (utils/logging.py,
``_configure_library_root_logger``) then prints every request's URL and a ``curl`` line
(utils/_http.py, ``hf_request_event_hook``), and the traceback of a failed agent-registry
fetch (utils/_detect_agent.py, ``_fetch_registry``).
"""

from __future__ import annotations

import io
import logging
import re
from urllib.parse import quote

import pytest

from entrypoint import output
from tests.fakes.hub import SIGNATURE
from tests.weights.support import launch, launcher_env

PASSWORD = "Hub!Pw1234567"


def spellings(secret: str) -> set[str]:
    """``secret`` raw, Python-escaped, and percent-encoded with either case of hex digits."""
    encoded = quote(secret, safe="")
    lower = re.sub("%[0-9A-F]{2}", lambda m: m[0].lower(), encoded)
    return {secret, repr(secret)[1:-1], encoded, lower}


def leaked(text: str, secret: str) -> list[str]:
    return sorted(form for form in spellings(secret) if form in text)


def test_hf_debug_with_a_password_in_hf_endpoint_shows_no_password_and_no_traceback(
    tmp_path, unused_port, launcher_python
):
    endpoint = f"http://user:{quote(PASSWORD, safe='')}@127.0.0.1:{unused_port}"
    env = launcher_env(tmp_path, endpoint, HF_DEBUG="1")
    result = launch(env, ["prefetch"], python=launcher_python)
    shown = result.stdout + result.stderr
    assert result.returncode == 4, shown  # README, "Exit statuses": not made available
    assert not leaked(shown, PASSWORD), shown
    assert "Traceback" not in shown
    # The debug lines are still there, redacted; the failure is one message.
    assert f"GET http://user:***@127.0.0.1:{unused_port}/api/" in result.stderr
    assert "Could not fetch agent harnesses registry from the Hub.\nConnectError: " in (
        result.stderr
    )
    assert result.stderr.count("longcat-deploy: error: ") == 1, result.stderr


def test_hf_debug_never_shows_a_signed_redirect_or_the_token(hub, repo, tmp_path, launcher_python):
    hub.signed_redirects = True
    token = "hf_DebugTokenValue12345"
    env = launcher_env(tmp_path, hub.url, HF_DEBUG="1", HF_TOKEN=token)
    result = launch(env, ["prefetch"], python=launcher_python)
    shown = result.stdout + result.stderr
    assert result.returncode == 0, shown
    assert [r for r in hub.requests if r.path.startswith("/cdn/")], "no redirect was followed"
    assert SIGNATURE not in shown and not leaked(shown, token)
    assert "X-Amz-Signature=***" in result.stderr  # the redirect was logged, redacted
    assert "Traceback" not in shown


@pytest.fixture
def logger_tree():
    """A throwaway logger tree ``redact-test`` with a child, each handler writing to a
    StringIO; removed afterwards."""
    parent, child = logging.getLogger("redact-test"), logging.getLogger("redact-test.child")
    streams = {"parent": io.StringIO(), "own": io.StringIO()}
    handlers = {key: logging.StreamHandler(stream) for key, stream in streams.items()}
    handlers["own"].setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    parent.addHandler(handlers["parent"])
    child.addHandler(handlers["own"])
    child.setLevel(logging.DEBUG)
    parent.propagate = False
    yield child, streams
    parent.removeHandler(handlers["parent"])
    child.removeHandler(handlers["own"])
    parent.propagate = True


def test_redact_logs_blanks_every_record_of_the_tree_and_cuts_tracebacks(logger_tree):
    child, streams = logger_tree
    output.redact_logs("redact-test")
    output.redact_logs("redact-test")  # again: nothing changes
    try:
        raise ConnectionError(f"cannot reach http://u:{PASSWORD}@h/x")
    except ConnectionError:
        child.debug("GET %s", f"https://cdn/x?X-Amz-Signature={SIGNATURE}&a=1", exc_info=True)
    expected = "GET https://cdn/x?X-Amz-Signature=***&a=1\nConnectionError: cannot reach http://u:***@h/x\n"
    assert streams["parent"].getvalue() == expected
    assert streams["own"].getvalue() == "[DEBUG] " + expected  # its own format kept
