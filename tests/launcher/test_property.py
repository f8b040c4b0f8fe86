"""Property: any environment gives either a valid plan and argv or exit status 2 with one
message naming a variable, never a traceback."""

from __future__ import annotations

import contextlib
import io
import shlex

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from entrypoint.cli import main
from entrypoint.settings import SECRET_VARIABLES, VARIABLES

NAMES = [v.name for v in VARIABLES] + [
    "LWS_WORKER_INDEX",
    "LWS_GROUP_SIZE",
    "LWS_LEADER_ADDRESS",
    "SLURM_NODEID",
    "SLURM_NNODES",
    "SLURM_JOB_NODELIST",
]
# Values that hit the interesting parsers, mixed with arbitrary text.
INTERESTING = st.sampled_from(
    [
        "",
        "0",
        "1",
        "2",
        "16",
        "-1",
        "65536",
        "sglang",
        "vllm",
        "fp8",
        "BF16",
        "true",
        "maybe",
        "192.0.2.10",
        "[2001:db8::1]",
        "2001:db8::1",
        "node0.example",
        "a:b",
        "'",
        '"',
        "--x y",
        "meituan-longcat/LongCat-Flash-Chat",
        "/models/x",
        "on",
        "warn",
        "off",
        "gpu[01-02]",
        "\x00",
        "é",
        " ",
    ]
)
VALUES = st.one_of(INTERESTING, st.text(max_size=20))
ENVS = st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=10)


def secret_hides_a_name(env: dict[str, str]) -> bool:
    """A secret that is part of a variable's name (HF_TOKEN=SLURM_JO) is blanked there too:
    output.redact blanks every occurrence, so no message could name that variable."""
    values = [env.get(name, "") for name in SECRET_VARIABLES]
    return any(value and value in name for value in values for name in NAMES)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(env=ENVS, args=st.lists(st.text(max_size=8), max_size=3))
def test_any_environment_gives_a_plan_or_a_clear_refusal(env, args):
    assume(not secret_hides_a_name(env))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["--dry-run", "--", *args], env)
    if status == 0:
        argv = shlex.split(out.getvalue().splitlines()[-1])
        assert argv[0] == "vllm" or argv[1:3] == ["-m", "sglang.launch_server"]
        assert argv[len(argv) - len(args) :] == args
        assert err.getvalue() == ""
    else:
        assert status == 2, err.getvalue()
        message = err.getvalue()
        assert message.startswith("longcat-deploy: error: ") and message.count("\n") == 1
        assert any(name in message for name in NAMES), message
