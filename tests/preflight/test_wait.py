"""Nodes ranked 1 and up wait for node 0, bounded by MASTER_WAIT_S; real sockets, fake time."""

from __future__ import annotations

import socket

import pytest

from entrypoint.errors import PreflightError
from entrypoint.preflight import wait_for_master
from tests.preflight.support import free_port, plan_for


def node1(port: int, engine: str = "sglang"):
    return plan_for(
        ENGINE=engine, PRECISION="bf16", NODE_RANK=1, MASTER_IP="127.0.0.1", MASTER_PORT=port
    )


class Clock:
    """Fake time: ``sleep`` advances ``now``; optionally runs ``on_sleep`` first."""

    def __init__(self, on_sleep=None):
        self.now = 1000.0
        self.slept: list[float] = []
        self.on_sleep = on_sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.on_sleep:
            self.on_sleep(len(self.slept))
        self.now += seconds


def never_sleep(seconds):
    raise AssertionError("must not wait when node 0 already answers")


def test_node_0_listening_ends_the_wait_at_once():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert wait_for_master(node1(server.getsockname()[1]), 1800, "on", sleep=never_sleep)


def test_node_1_waits_until_node_0_listens(capsys):
    port = free_port()
    server = socket.socket()

    def node0_starts(attempt):
        if attempt == 3:
            server.bind(("127.0.0.1", port))
            server.listen()

    clock = Clock(node0_starts)
    try:
        assert wait_for_master(node1(port, "vllm"), 1800, "on", sleep=clock.sleep, clock=clock)
    finally:
        server.close()
    assert clock.slept == [2, 2, 2]
    err = capsys.readouterr().err
    assert (
        f"waiting for node 0 at 127.0.0.1:{port} (MASTER_IP:MASTER_PORT) to accept "
        "connections: Connection refused; 0 s of MASTER_WAIT_S=1800 s" in err
    )
    assert f"node 0 at 127.0.0.1:{port} accepts connections after 6 s" in err


def test_node_0_that_never_listens_fails_after_master_wait_s(capsys):
    port = free_port()
    clock = Clock()
    with pytest.raises(PreflightError) as error:
        wait_for_master(node1(port), 65, "on", sleep=clock.sleep, clock=clock)
    assert sum(clock.slept) == 65, "bounded by MASTER_WAIT_S, never more"
    message = error.value.message()
    assert (
        f"node 0 at 127.0.0.1:{port} (MASTER_IP:MASTER_PORT) did not accept a connection "
        "within MASTER_WAIT_S=65 s (34 attempts; last: Connection refused)" in message
    )
    assert "or raise MASTER_WAIT_S" in message
    assert error.value.exit_status == 3
    logged = capsys.readouterr().err.count("waiting for node 0")
    assert logged == 3, "progress every 30 s: at 0, 30 and 60 s"


def test_master_wait_s_0_gives_up_after_one_attempt():
    with pytest.raises(PreflightError, match=r"within MASTER_WAIT_S=0 s \(1 attempts"):
        wait_for_master(node1(free_port()), 0, "on", sleep=never_sleep)


def test_warn_mode_goes_on_after_the_wait(capsys):
    assert not wait_for_master(node1(free_port()), 0, "warn", sleep=never_sleep)
    assert "warning: node 0 at 127.0.0.1:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "env",
    [
        {"PRECISION": "bf16", "NODE_RANK": "0", "MASTER_IP": "127.0.0.1"},
        {"PRECISION": "fp8"},
    ],
)
def test_node_0_and_single_nodes_do_not_wait(env):
    assert wait_for_master(plan_for(**env), 1800, "on", sleep=never_sleep)


def test_preflight_off_does_not_wait():
    assert wait_for_master(node1(free_port()), 1800, "off", sleep=never_sleep)
