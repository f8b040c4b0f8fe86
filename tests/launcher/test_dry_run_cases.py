"""Every case in tests/data/launch-commands.yaml, tests/data/serving-commands.yaml and
cases.yaml, through the real launcher process (``python -m entrypoint --dry-run``)."""

from __future__ import annotations

import pytest

from tests.launcher.support import (
    OUR_CASES,
    SERVING_CASES,
    SHARED_CASES,
    check_expect,
    clean_env,
    command_of,
    load_cases,
    run_launcher,
)

CASES = (
    [pytest.param(c, id=f"shared:{c['name']}") for c in load_cases(SHARED_CASES)]
    + [pytest.param(c, id=f"serving:{c['name']}") for c in load_cases(SERVING_CASES)]
    + [pytest.param(c, id=f"ours:{c['name']}") for c in load_cases(OUR_CASES)]
)


def test_the_shared_case_files_are_present_and_nonempty():
    assert len(load_cases(SHARED_CASES)) >= 14
    assert len(load_cases(SERVING_CASES)) >= 13


@pytest.mark.parametrize("case", CASES)
def test_dry_run(case, tmp_path):
    # An empty PATH directory first keeps any engine installed on this machine out of
    # ENGINE's default, so the cases do not depend on the machine.
    env = clean_env(case["env"])
    env["PATH"] = f"{tmp_path}:/usr/bin:/bin"
    result = run_launcher(["--dry-run", *case.get("args", [])], env)
    expect = case["expect"]
    assert "Traceback" not in result.stderr + result.stdout
    for secret in expect.get("output_lacks", []):
        assert secret not in result.stdout + result.stderr
    if "error" in expect:
        assert result.returncode == expect["error"]["status"], result.stderr
        assert result.stdout == "", "a refused configuration prints no plan"
        message = result.stderr.strip()
        assert len(message.splitlines()) == 1, message
        for word in expect["error"]["words"]:
            assert word in message, f"{word!r} not in {message!r}"
        return
    assert result.returncode == 0, result.stderr
    argv = command_of(result.stdout)
    check_expect(argv, expect)
    if "tail" in expect:
        assert argv[-len(expect["tail"]) :] == expect["tail"], argv
