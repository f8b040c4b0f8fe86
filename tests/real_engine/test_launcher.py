"""Our launcher starts the real ``vllm serve`` (CPU build) on the tiny LongCat-Flash.

One node, and the two-node plan on one host (data parallel 2, node 1 headless). Each
deployment is started once per module and always stopped; the tests run in file order
and the last one of each stops it with SIGTERM. The served answer must be transformers'
reference: the same token ids, and log-probabilities equal to float32 rounding.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

import pytest

from tests.images.dockerutil import free_port, poll_until
from tests.real_engine import server

pytestmark = pytest.mark.real_engine


@pytest.fixture(scope="module")
def one_node(real_engine, tmp_path_factory):
    """A one-node deployment through the launcher, healthy; stopped at the end."""
    port = free_port()
    env = server.engine_environment(real_engine.bin)
    env.update(server.launcher_variables(real_engine.model, port))
    node = server.start_node("node 0", env, port, tmp_path_factory.mktemp("one") / "node0.log")
    try:
        server.wait_healthy(node)
        yield node
    finally:
        server.kill(node)


def test_the_launcher_execs_the_real_vllm_serve(one_node, real_engine):
    log = one_node.log.read_text()
    exec_line = next(line for line in log.splitlines() if line.startswith(server.EXEC_LINE))
    assert exec_line.startswith(f"{server.EXEC_LINE}vllm serve {real_engine.model} ")
    # exec, no wrapper: the process the test started is now the engine itself.
    cmdline = open(f"/proc/{one_node.process.pid}/cmdline", "rb").read().split(b"\0")
    assert cmdline[1:3] == [str(real_engine.bin / "vllm").encode(), b"serve"]
    assert "longcat-deploy CPU plugin" in log  # the test-only plugin was loaded


def test_health_is_200_and_the_chat_answer_is_the_reference(one_node, real_engine):
    assert server.health_status(one_node.port) == 200
    status, response = server.ask(one_node.port, real_engine.reference)
    assert status == 200, response
    assert server.answer_problems(response, real_engine.reference) == []


def test_our_health_command_agrees(one_node, real_engine):
    env = server.engine_environment(real_engine.bin)
    env.update(server.launcher_variables(real_engine.model, one_node.port))
    done = subprocess.run(
        [sys.executable, "-m", "entrypoint", "health"],
        cwd=server.REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "answered 200" in done.stdout


def test_sigterm_stops_the_idle_node_within_the_drain_bound(one_node):
    # The shipped SHUTDOWN_TIMEOUT_S: vLLM drains (nothing here), then tears down.
    seconds = server.stop(one_node, server.DRAIN_STOP_WITHIN_S)
    assert seconds is not None, f"still running {server.DRAIN_STOP_WITHIN_S} s after SIGTERM"
    print(f"\none node stopped {seconds:.1f} s after SIGTERM")


@pytest.fixture(scope="module")
def two_nodes(real_engine, tmp_path_factory):
    """The two-node plan on this host: NNODES=2, ranks 0 and 1, MASTER_IP=127.0.0.1.

    Yields (node 0, node 1, node 1's environment); node 0 is healthy. Both are stopped at
    the end.
    """
    folder = tmp_path_factory.mktemp("two")
    master_port, port0, port1 = distinct_ports(3)
    nodes, envs = [], []
    try:
        for rank, port in ((0, port0), (1, port1)):
            env = server.engine_environment(real_engine.bin)
            # No drain: these nodes show the prompt stop, SIGTERM to exit within 10 s.
            env.update(
                server.launcher_variables(
                    real_engine.model,
                    port,
                    nnodes=2,
                    node_rank=rank,
                    master_port=master_port,
                    shutdown_timeout_s=0,
                )
            )
            envs.append(env)
            nodes.append(server.start_node(f"node {rank}", env, port, folder / f"node{rank}.log"))
        server.wait_healthy(nodes[0])
        yield nodes[0], nodes[1], envs[1]
    finally:
        for node in reversed(nodes):
            with contextlib.suppress(Exception):
                server.kill(node)


def distinct_ports(n: int) -> list[int]:
    ports: set[int] = set()
    poll_until(lambda: ports.add(free_port()) or len(ports) >= n, 10, f"{n} free ports")
    return sorted(ports)[:n]


def test_two_nodes_node_1_is_a_headless_data_parallel_rank(two_nodes, real_engine):
    node0, node1, env1 = two_nodes
    exec1 = next(
        line for line in node1.log.read_text().splitlines() if line.startswith(server.EXEC_LINE)
    )
    assert "--headless --data-parallel-start-rank 1" in exec1
    assert "--data-parallel-address 127.0.0.1" in exec1
    assert node1.process.poll() is None, node1.log_tail()
    # A headless node serves no HTTP at all; our health command looks at its process.
    assert server.health_status(node1.port) is None
    done = subprocess.run(
        [sys.executable, "-m", "entrypoint", "health"],
        cwd=server.REPO,
        env=env1,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "headless vLLM node" in done.stdout


def test_two_nodes_answer_with_the_reference(two_nodes, real_engine):
    node0 = two_nodes[0]
    status, response = server.ask(node0.port, real_engine.reference)
    assert status == 200, response
    assert server.answer_problems(response, real_engine.reference) == []


def test_two_nodes_stop_on_sigterm_within_10_s(two_nodes):
    node0, node1, _ = two_nodes
    seconds = [server.stop(node1), server.stop(node0)]
    assert None not in seconds, f"a node still ran {server.STOP_WITHIN_S} s after SIGTERM"
    print(
        f"\ntwo nodes stopped {seconds[1]:.1f} s (node 0), {seconds[0]:.1f} s (node 1) "
        "after SIGTERM"
    )
