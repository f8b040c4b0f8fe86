"""The README stays true: its variable table is the code's, and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

from entrypoint.settings import VARIABLES, env_table_markdown

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def test_env_table_is_generated_from_the_settings():
    found = re.search(r"<!-- env-table:start -->\n(.*?)<!-- env-table:end -->", README, re.S)
    assert found, "README lacks the env-table markers"
    assert found.group(1) == env_table_markdown(), (
        "README's table is stale: paste the output of `python -m entrypoint env-table`"
    )


def test_every_variable_is_documented_exactly_once_in_the_table():
    table = re.search(r"<!-- env-table:start -->\n(.*?)<!-- env-table:end -->", README, re.S)
    for var in VARIABLES:
        assert table.group(1).count(f"| `{var.name}` |") == 1, var.name


def fenced_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def test_readme_opens_with_the_main_job_and_the_test_command():
    first, second = fenced_blocks(README)[:2]
    # The main job for real: the launcher and the real engine on a tiny model.
    main_job = [line for line in first.splitlines() if not line.startswith("#")]
    assert len(main_job) == 1 and main_job[0].endswith("-m tests.real_engine.demo")
    test_command = [line for line in second.splitlines() if not line.startswith("#")]
    assert len(test_command) == 1
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_command[0] in ci, ".ci/run must run the README's test command"
