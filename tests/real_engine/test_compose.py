"""The shipped compose files on the real engine: one node, and two nodes as two compose
projects on this host (ranks 0 and 1, MASTER_IP=127.0.0.1), with our image built on the
CPU stand-in base and the test-only override tests/real_engine/compose-cpu.yaml. Each
project has a unique name and is taken down (``down -v``) however its test ends.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.compose.composeutil import SINGLE, TWO, probe_memlock, run_compose
from tests.images.dockerutil import free_port
from tests.real_engine import server

pytestmark = pytest.mark.real_engine
OVERRIDE = Path(__file__).with_name("compose-cpu.yaml")
MODEL = "/models/tiny-longcat-flash"
PROJECT_LABEL = "com.docker.compose.project"
UP_WAIT_S = 900


@pytest.fixture(scope="module")
def memlock(docker_client, standin_image, docker_token) -> int:
    return probe_memlock(docker_client, standin_image, docker_token)


class Project:
    """One node's compose project: a shipped file plus the CPU override."""

    def __init__(
        self,
        client,
        file: Path,
        image: str,
        model: Path,
        token: str,
        memlock: int,
        cache: Path,
        **variables: str,
    ):
        self.client, self.file = client, file
        self.name = f"lcr-{token}-{uuid.uuid4().hex[:6]}"
        self.env = {
            "IMAGE": image,
            "ENGINE": "vllm",
            "MODEL": MODEL,
            "GPUS_PER_NODE": "1",
            "HOST": "127.0.0.1",
            "PREFLIGHT": "warn",
            "EXTRA_ARGS": server.ENGINE_FLAGS,
            "HF_CACHE_DIR": str(cache),
            "HEALTH_START_PERIOD": "15m",
            "LONGCAT_TEST_MODEL": str(model),
            "LONGCAT_TEST_TOKEN": token,
            "LONGCAT_TEST_MEMLOCK": str(memlock),
            **variables,
        }

    def compose(self, *args: str, check: bool = True, timeout: float = 60):
        return run_compose(
            [self.file, OVERRIDE],
            *args,
            env=self.env,
            project=self.name,
            check=check,
            timeout=timeout,
        )

    def up(self, wait: bool) -> float:
        start = time.monotonic()
        args = ["up", "--detach"] + (["--wait", "--wait-timeout", str(UP_WAIT_S)] if wait else [])
        result = self.compose(*args, check=False, timeout=UP_WAIT_S + 60)
        if result.returncode != 0:
            logs = self.compose("logs", "--no-color", check=False).stdout[-6000:]
            raise AssertionError(f"{' '.join(args)} failed:\n{result.stderr}\nlogs:\n{logs}")
        return time.monotonic() - start

    def container(self):
        (cid,) = self.compose("ps", "--quiet", "longcat").stdout.split()
        return self.client.containers.get(cid)

    def down(self) -> float:
        start = time.monotonic()
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "30", timeout=300)
        return time.monotonic() - start

    def leftovers(self) -> list[str]:
        label = {"label": f"{PROJECT_LABEL}={self.name}"}
        return (
            [f"container {c.name}" for c in self.client.containers.list(all=True, filters=label)]
            + [f"network {n.name}" for n in self.client.networks.list(filters=label)]
            + [f"volume {v.name}" for v in self.client.volumes.list(filters=label)]
        )


@pytest.fixture
def project(docker_client, real_image, real_engine, docker_token, memlock, tmp_path):
    """Factory of ``Project``s; every one is taken down at the end."""
    made: list[Project] = []

    def make(file: Path, **variables: str) -> Project:
        p = Project(
            docker_client,
            file,
            real_image.ref,
            real_engine.model,
            docker_token,
            memlock,
            tmp_path / f"cache{len(made)}",
            **variables,
        )
        made.append(p)
        return p

    yield make
    for p in reversed(made):
        with contextlib.suppress(Exception):
            p.down()


class _TagLoader(yaml.SafeLoader):
    """PyYAML's safe loader that reads compose's own tags (``!reset``) as null."""


_TagLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def test_the_override_sets_what_the_host_runs_set():
    override = yaml.load(OVERRIDE.read_text(), Loader=_TagLoader)  # noqa: S506 - safe loader
    environment = override["services"]["longcat"]["environment"]
    assert {k: environment[k] for k in server.ENGINE_ENV} == server.ENGINE_ENV


def test_single_node_comes_up_healthy_and_answers_with_the_reference(project, real_engine):
    port = free_port()
    node = project(SINGLE, PORT=str(port))
    up_s = node.up(wait=True)
    assert node.container().attrs["State"]["Health"]["Status"] == "healthy"
    status, response = server.ask(port, real_engine.reference)
    assert status == 200, response
    assert server.answer_problems(response, real_engine.reference) == []
    down_s = node.down()
    assert node.leftovers() == []
    assert down_s < 30
    print(f"\ncompose one node: up --wait {up_s:.0f} s, down {down_s:.1f} s")


def test_two_nodes_as_two_projects_answer_with_the_reference(project, real_engine):
    master_port, port0, port1 = sorted({free_port() for _ in range(6)})[:3]
    common = {"MASTER_IP": "127.0.0.1", "MASTER_PORT": str(master_port)}
    node0 = project(TWO, NODE_RANK="0", PORT=str(port0), VLLM_CPU_OMP_THREADS_BIND="0", **common)
    node1 = project(TWO, NODE_RANK="1", PORT=str(port1), VLLM_CPU_OMP_THREADS_BIND="1", **common)
    start = time.monotonic()
    # Node 0's API answers only once node 1 has joined: start it, then node 1, then wait.
    node0.up(wait=False)
    node1.up(wait=True)
    node0.up(wait=True)
    up_s = time.monotonic() - start
    health1 = node1.container().attrs["State"]["Health"]
    assert health1["Status"] == "healthy"
    assert "headless vLLM node" in health1["Log"][-1]["Output"]
    assert server.health_status(port1) is None  # a headless node serves no HTTP
    status, response = server.ask(port0, real_engine.reference)
    assert status == 200, response
    assert server.answer_problems(response, real_engine.reference) == []
    down1, down0 = node1.down(), node0.down()
    assert node0.leftovers() == [] and node1.leftovers() == []
    assert max(down0, down1) < 30
    print(
        f"\ncompose two nodes: healthy after {up_s:.0f} s, down {down0:.1f} s (node 0), "
        f"{down1:.1f} s (node 1)"
    )
