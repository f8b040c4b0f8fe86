"""The demo command's argument handling (its compose path is the one test_e2e brings up)."""

from __future__ import annotations

import pytest

from . import demo


@pytest.mark.parametrize(
    "argv", [[], ["start"], ["up", "mxnet"], ["down", "sglang"], ["up", "sglang", "vllm"]]
)
def test_bad_usage_exits_2(argv, capsys):
    assert demo.main(argv) == 2
    err = capsys.readouterr().err
    assert "usage" in err or "ENGINE must be one of sglang, vllm" in err
