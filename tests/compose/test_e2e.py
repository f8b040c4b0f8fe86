"""The shipped compose files brought up for real, on the Docker engine, with our images.

The images are the ones build.py builds from the stand-in base with the fake engines
(``built_images`` in tests/conftest.py). ``tests/compose/override.yaml`` drops the GPU
reservation and shortens the health interval; everything else is the shipped files.
Each deployment is its own compose project with a unique name, and is taken down with
``down -v`` however its test ends. Everything listens on 127.0.0.1 (host networking).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shlex
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.images.dockerutil import free_port, poll_until

from .composeutil import (
    OVERRIDE,
    RDMA,
    SERVICE,
    SINGLE,
    TWO,
    UP_TIMEOUT_S,
    override_env,
    probe_memlock,
    run_compose,
)

PROJECT_LABEL = "com.docker.compose.project"
# After compose/rdma.yaml: its device dropped (no HCA here), its IPC_LOCK kept.
NO_DEVICES = Path(__file__).resolve().parent / "no-devices.yaml"
# Bounds: the fake engines answer within a second of starting.
UP_WAIT_S = 120
RECORD_WAIT_S = 30
# The fake engines exit at once on SIGTERM; stop_grace_period (2 min) is the backstop.
DOWN_WITHIN_S = 30


@pytest.fixture(scope="session")
def memlock(docker_client, standin_image, docker_token) -> int:
    """The memlock limit the override asks for (``composeutil.probe_memlock``)."""
    return probe_memlock(docker_client, standin_image, docker_token)


class Deployment:
    """One node's compose project: the shipped file plus the test override.

    Attributes:
        project: the unique compose project name.
        env: the variables compose runs with (what a user would set for this node).
        state: the fake engine's record directory on the host.
    """

    def __init__(
        self,
        client,
        file: Path,
        engine: str,
        image,
        token: str,
        memlock: int,
        tmp: Path,
        **variables: str,
    ):
        self.client = client
        self.file = file
        self.engine = engine
        self.image = image
        self.project = f"lcc-{token}-{uuid.uuid4().hex[:6]}"
        self.state = tmp / self.project / "state"
        self.cache = tmp / self.project / "hf-cache"
        self.state.mkdir(parents=True)
        self.timings: dict[str, float | None] = {}  # printed by the tests (pytest -s)
        self.env = {
            # The shipped default image, `${IMAGE_REPOSITORY}:${ENGINE}`: build.py's
            # moving tag in this session's repository.
            "IMAGE_REPOSITORY": image.repository,
            "ENGINE": engine,
            "HF_CACHE_DIR": str(self.cache),
            **override_env(self.state, token, memlock),
            **variables,
        }

    def compose(self, *args: str, check: bool = True, timeout: float = 60):
        return run_compose(
            [self.file, OVERRIDE],
            *args,
            env=self.env,
            project=self.project,
            check=check,
            timeout=timeout,
        )

    def config(self) -> dict:
        return yaml.safe_load(self.compose("config").stdout)["services"][SERVICE]

    def dry_run(self) -> list[str]:
        """The command the launcher prints for this node's environment, in the image."""
        out = self.compose("run", "--rm", "--no-deps", "-T", SERVICE, "--dry-run").stdout
        return shlex.split(out.rstrip("\n").splitlines()[-1])

    def up(self) -> None:
        """``up --detach --wait``: returns once the service is healthy (or fails)."""
        start = time.monotonic()
        result = self.compose(
            "up",
            "--detach",
            "--wait",
            "--wait-timeout",
            str(UP_WAIT_S),
            check=False,
            timeout=UP_TIMEOUT_S,
        )
        if result.returncode != 0:
            logs = self.compose("logs", "--no-color", check=False).stdout
            raise AssertionError(
                f"up --wait failed ({result.returncode}):\n{result.stderr}\nlogs:\n{logs}"
            )
        self.timings["up --wait"] = time.monotonic() - start

    def container(self):
        (cid,) = self.compose("ps", "--quiet", SERVICE).stdout.split()
        return self.client.containers.get(cid)

    def recorded(self) -> dict:
        """What the fake engine recorded when it started."""
        path = self.state / "argv.json"
        return json.loads(
            poll_until(lambda: path.exists() and path.read_text(), RECORD_WAIT_S, f"{path}")
        )

    def down(self) -> float:
        """``down -v``; return its duration in seconds."""
        start = time.monotonic()
        self.timings["down"] = None
        self.compose(
            "down", "--volumes", "--remove-orphans", "--timeout", "30", timeout=UP_TIMEOUT_S
        )
        self.timings["down"] = time.monotonic() - start
        return self.timings["down"]

    def leftovers(self) -> list[str]:
        """Containers, networks and volumes of this project that still exist."""
        label = {"label": f"{PROJECT_LABEL}={self.project}"}
        found = [
            f"container {c.name}" for c in self.client.containers.list(all=True, filters=label)
        ]
        found += [f"network {n.name}" for n in self.client.networks.list(filters=label)]
        found += [f"volume {v.name}" for v in self.client.volumes.list(filters=label)]
        return found


@pytest.fixture
def deploy(docker_client, built_images, docker_token, memlock, tmp_path):
    """Factory of ``Deployment``s; takes every one down (``down -v``) at the end."""
    made: list[Deployment] = []

    def make(file: Path, engine: str, **variables: str) -> Deployment:
        d = Deployment(
            docker_client,
            file,
            engine,
            built_images[engine],
            docker_token,
            memlock,
            tmp_path,
            **variables,
        )
        made.append(d)
        return d

    yield make
    for d in reversed(made):
        with contextlib.suppress(Exception):
            d.down()


def received_command(record: dict) -> list[str]:
    """The command the fake engine was exec'd with, its program as PATH resolves it.

    SGLang runs as ``python3 -m sglang.launch_server``: ``sys.orig_argv`` is the argv
    exactly. ``vllm`` is a console script: the kernel hands its full path to the
    interpreter, so ``sys.argv`` holds ``/path/to/vllm serve ...``; the dry run prints
    ``vllm``, which the exec looks up on PATH, so compare with that lookup.
    """
    if record["engine"] == "sglang":
        return record["orig_argv"]
    return record["argv"]


def resolve_program(d: Deployment, argv: list[str]) -> list[str]:
    """``argv`` with its program replaced by its full path on the container's PATH."""
    code, out = d.container().exec_run(
        ["python3", "-c", "import shutil, sys; print(shutil.which(sys.argv[1]))", argv[0]]
    )
    assert code == 0, out
    return [out.decode().strip(), *argv[1:]]


def distinct_free_ports(n: int) -> list[int]:
    """``n`` different ports that are free now (two calls may return the same one)."""
    ports: set[int] = set()
    poll_until(lambda: ports.add(free_port()) or len(ports) >= n, 10, f"{n} free ports")
    return sorted(ports)[:n]


def http_get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def container_env(container) -> dict[str, str]:
    """The container's variables. Compose lists an unset pass-through variable bare (no
    ``=``); Docker then leaves it out of the process environment, and so does this."""
    return dict(e.split("=", 1) for e in container.attrs["Config"]["Env"] if "=" in e)


def process_limits(container, pid: int) -> dict[str, tuple[str, str]]:
    """``/proc/PID/limits`` inside the container: name -> (soft, hard)."""
    code, out = container.exec_run(["cat", f"/proc/{pid}/limits"])
    assert code == 0, out
    limits = {}
    for line in out.decode().splitlines()[1:]:
        name, soft, hard = line[:26].strip(), *line[26:].split()[:2]
        limits[name] = (soft, hard)
    return limits


def assert_container_settings(d: Deployment, memlock: int) -> dict:
    """The running container has the shipped settings (less what the override drops)."""
    c = d.container()
    host = c.attrs["HostConfig"]
    assert host["NetworkMode"] == "host" and host["IpcMode"] == "host"
    assert host["Init"] is True
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert not host.get("DeviceRequests")  # dropped by the override, on this GPU-less host
    image_env = dict(
        e.split("=", 1) for e in d.client.images.get(c.image.id).attrs["Config"]["Env"]
    )
    mounts = {m["Destination"]: m for m in c.attrs["Mounts"]}
    assert image_env["HF_HOME"] in mounts, "the cache is not mounted at the image's HF_HOME"
    assert mounts[image_env["HF_HOME"]]["Source"] == str(d.cache)
    assert d.cache.is_dir()
    env = container_env(c)
    assert env["HF_HOME"] == image_env["HF_HOME"]
    record = d.recorded()
    limits = process_limits(c, record["pid"])
    stack = str(64 * 2**20)
    assert limits["Max stack size"] == (stack, stack)
    want = "unlimited" if memlock == -1 else str(memlock)
    assert limits["Max locked memory"] == (want, want)
    assert c.attrs["State"]["Health"]["Status"] == "healthy"
    return record


def assert_down_leaves_nothing(d: Deployment) -> float:
    seconds = d.down()
    assert d.leftovers() == []
    assert seconds < DOWN_WITHIN_S
    # The engine (and its worker) got SIGTERM through the inits, and exited on it.
    signals = [json.loads(p.read_text()) for p in d.state.glob("sigterm-*.json")]
    assert sorted(s["role"] for s in signals) == ["main", "worker"]
    return seconds


SINGLE_CASES = [
    ("sglang", "fp8", "off"),
    ("vllm", "fp8", "off"),
    ("sglang", "bf16", "on"),
    ("vllm", "bf16", "on"),
]


@pytest.mark.parametrize(
    "engine,precision,mtp", SINGLE_CASES, ids=[f"{e}-{p}-mtp{m}" for e, p, m in SINGLE_CASES]
)
def test_single_node(deploy, built_images, memlock, engine, precision, mtp):
    port = free_port()
    token = "hf_fake_" + uuid.uuid4().hex
    d = deploy(SINGLE, engine, PRECISION=precision, MTP=mtp, PORT=str(port), HF_TOKEN=token)
    assert d.config()["image"] in built_images[engine].tags
    expected = d.dry_run()

    d.up()
    record = assert_container_settings(d, memlock)
    assert received_command(record) == resolve_program(d, expected)
    status, body = http_get(port, "/v1/models")
    assert status == 200 and json.loads(body)["data"][0]["id"]
    env = container_env(d.container())
    assert env["HF_TOKEN"] == token  # passed through from the environment compose ran in

    assert_down_leaves_nothing(d)
    print(f"\n{engine} {precision} mtp={mtp} one node: {report(d)}")


def report(d: Deployment) -> str:
    return ", ".join(f"{k} {v:.2f} s" for k, v in d.timings.items() if v is not None)


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_two_nodes(deploy, memlock, engine):
    master_port, port0, port1 = distinct_free_ports(3)
    common = {"MASTER_IP": "127.0.0.1", "MASTER_PORT": str(master_port)}
    node0 = deploy(TWO, engine, NODE_RANK="0", PORT=str(port0), **common)
    node1 = deploy(TWO, engine, NODE_RANK="1", PORT=str(port1), **common)
    expected0, expected1 = node0.dry_run(), node1.dry_run()
    assert expected0 != expected1

    node0.up()
    node1.up()
    record0 = assert_container_settings(node0, memlock)
    record1 = assert_container_settings(node1, memlock)
    assert received_command(record0) == resolve_program(node0, expected0)
    assert received_command(record1) == resolve_program(node1, expected1)
    # Each fake engine parsed its own rank's command.
    if engine == "sglang":
        assert (record0["parsed"]["node_rank"], record1["parsed"]["node_rank"]) == (0, 1)
        assert record0["parsed"]["nnodes"] == record1["parsed"]["nnodes"] == 2
    else:
        assert (record0["parsed"]["headless"], record1["parsed"]["headless"]) == (False, True)
        assert record1["parsed"]["data_parallel_start_rank"] == 1

    # Node 0 serves the API.
    status, body = http_get(port0, "/v1/models")
    assert status == 200 and json.loads(body)["data"]
    health1 = node1.container().attrs["State"]["Health"]["Log"][-1]
    if engine == "sglang":
        # An SGLang worker answers /health on its port, and serves no API.
        assert http_get(port1, "/health")[0] == 200
        assert http_get(port1, "/v1/models")[0] == 404
        assert "GET http://127.0.0.1" in health1["Output"]
    else:
        # A vLLM headless node serves no HTTP at all; its health is its process.
        with pytest.raises(ConnectionRefusedError):
            http_get(port1, "/health")
        assert "headless vLLM node" in health1["Output"]
        assert "--headless" in expected1
    assert health1["ExitCode"] == 0

    assert_down_leaves_nothing(node1)
    assert_down_leaves_nothing(node0)
    print(f"\n{engine} two nodes: node 0: {report(node0)}; node 1: {report(node1)}")


@pytest.mark.parametrize("missing", ["MASTER_IP", "NODE_RANK"])
def test_two_node_refuses_to_start_without(deploy, missing):
    variables = {"MASTER_IP": "127.0.0.1", "NODE_RANK": "1", "PORT": str(free_port())}
    del variables[missing]
    d = deploy(TWO, "sglang", **variables)
    result = d.compose("up", "--detach", check=False)
    assert result.returncode != 0
    assert f"required variable {missing} is missing a value" in result.stderr
    assert d.leftovers() == []
    assert not any(d.state.iterdir())  # no engine ever started


# What the launcher's fabric check reads inside the container (entrypoint/fabric.py).
FABRIC_PROBE = (
    "from entrypoint.fabric import read_fabric; f = read_fabric(); "
    "print(f.ipc_lock, f.initial_user_namespace, f.verbs)"
)


def test_the_rdma_override_gives_the_container_ipc_lock(deploy):
    """compose/rdma.yaml's capability reaches a real container, where the launcher sees it
    (the memlock check then passes whatever the limit); without the override it does not."""
    d = deploy(TWO, "vllm", NODE_RANK="1", MASTER_IP="127.0.0.1", PORT=str(free_port()))

    def probe(files) -> list[str]:
        return run_compose(
            [*files, OVERRIDE],
            "run",
            "--rm",
            "--no-deps",
            "-T",
            "--entrypoint",
            "python3",
            SERVICE,
            "-c",
            FABRIC_PROBE,
            env=d.env,
            project=d.project,
            timeout=UP_TIMEOUT_S,
        ).stdout.split()

    assert probe([TWO, RDMA, NO_DEVICES]) == ["True", "True", "[]"]
    assert probe([TWO]) == ["False", "True", "[]"]


def test_prefetch_then_serve_without_the_hub(deploy, docker_client):
    """`run --rm prefetch` fills HF_CACHE_DIR from a Hub (the fake one, on 127.0.0.1: host
    networking), verified; then `up`, offline, serves that snapshot and asks the Hub nothing."""
    from tests.fakes.hub import FakeHub, FakeRepo, longcat_like_files

    with FakeHub() as hub:
        repo = hub.add(FakeRepo("meituan-longcat/LongCat-Flash-Chat-FP8", longcat_like_files()))
        # DOWNLOAD on (the other tests turn it off): the launch looks in the cache first.
        d = deploy(SINGLE, "sglang", PORT=str(free_port()), HF_ENDPOINT=hub.url, DOWNLOAD="1")
        fetched = d.compose("run", "--rm", "-T", "prefetch", check=False, timeout=300)
        assert fetched.returncode == 0, fetched.stdout + fetched.stderr
        assert "verify: all 10 files match" in fetched.stderr
        assert "and verified; start the deployment" in fetched.stdout
        requests = len(hub.requests)
        d.env["HF_HUB_OFFLINE"] = "1"
        d.up()
        assert len(hub.requests) == requests, "the deployment asked the Hub nothing"
    inside = (
        "/root/.cache/huggingface/hub/models--meituan-longcat--LongCat-Flash-Chat-FP8/"
        f"snapshots/{repo.refs['main']}"
    )
    argv = received_command(d.recorded())
    assert argv[argv.index("--model-path") + 1] == inside
    assert (d.cache / inside.removeprefix("/root/.cache/huggingface/") / "config.json").is_file()
    assert_down_leaves_nothing(d)
