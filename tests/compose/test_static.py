"""`docker compose config` of the shipped files, for every engine x precision x rank (x MTP),
with assertions on the parsed result (PyYAML), and on the launcher plan it leads to.

Needs the docker CLI with its compose plugin, but no daemon.
"""

from __future__ import annotations

import itertools
import os
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from entrypoint.health import HTTP_TIMEOUT_S
from entrypoint.plan import resolve_plan
from entrypoint.settings import load_settings

from .composeutil import (
    COMMON,
    COMPOSE_DIR,
    RDMA,
    ROOT,
    SERVICE,
    SINGLE,
    TWO,
    clean_env,
    config,
    run_compose,
    seconds,
    ulimit,
)

# `docker compose config` needs the compose plugin that .ci/setup-docker installs.
pytestmark = pytest.mark.docker

ENGINES = ("sglang", "vllm")
PRECISIONS = ("fp8", "bf16")
MTP = ("off", "on")
HF_HOME = "/root/.cache/huggingface"
CACHE = "/srv/hf-cache"

CASES = [
    pytest.param(SINGLE, e, p, 0, m, id=f"single-{e}-{p}-rank0-mtp{m}")
    for e, p, m in itertools.product(ENGINES, PRECISIONS, MTP)
] + [
    pytest.param(TWO, e, p, r, m, id=f"two-{e}-{p}-rank{r}-mtp{m}")
    for e, p, r, m in itertools.product(ENGINES, PRECISIONS, (0, 1), MTP)
]


def build_tag(engine: str) -> str:
    """build.py's moving tag for ``engine``, from the tag scheme in images/matrix.toml."""
    with open(ROOT / "images" / "matrix.toml", "rb") as f:
        tags = tomllib.load(f)["tags"]
    return f"{tags['repository']}:{tags['moving'].format(engine=engine)}"


def case_env(path: Path, engine: str, precision: str, rank: int, mtp: str) -> dict:
    """What a user sets for one case (the two-node file also needs rank and master)."""
    env = {"ENGINE": engine, "PRECISION": precision, "MTP": mtp, "HF_CACHE_DIR": CACHE}
    if path == TWO:
        env.update(NODE_RANK=str(rank), MASTER_IP="10.1.2.3")
    return env


def service(cfg: dict) -> dict:
    assert list(cfg["services"]) == [SERVICE]
    return cfg["services"][SERVICE]


def container_env(svc: dict) -> dict[str, str]:
    """The variables the container gets: pass-through entries left unset are absent."""
    return {k: v for k, v in svc["environment"].items() if v is not None}


@pytest.mark.parametrize("path,engine,precision,rank,mtp", CASES)
def test_config_every_case(path, engine, precision, rank, mtp):
    svc = service(config([path], case_env(path, engine, precision, rank, mtp)))

    assert svc["image"] == build_tag(engine)
    assert svc["network_mode"] == "host"
    assert svc["ipc"] == "host"
    assert ulimit(svc["ulimits"]["memlock"]) == (-1, -1)
    assert ulimit(svc["ulimits"]["stack"]) == (64 * 2**20, 64 * 2**20)
    assert svc["init"] is True
    assert svc["restart"] in ("always", "unless-stopped") or svc["restart"].startswith("on-failure")
    assert seconds(svc["stop_grace_period"]) >= 60
    assert "networks" not in svc or not svc["networks"]

    devices = svc["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    assert devices[0]["driver"] == "nvidia"
    assert devices[0]["count"] in (-1, "all")
    assert devices[0]["capabilities"] == ["gpu"]
    assert "device_ids" not in devices[0]

    env = svc["environment"]
    assert env["HF_HOME"] == HF_HOME
    binds = [v for v in svc["volumes"] if v["target"] == env["HF_HOME"]]
    assert len(binds) == 1 and binds[0]["type"] == "bind" and binds[0]["source"] == CACHE
    assert "HF_TOKEN" in env and env["HF_TOKEN"] is None  # pass-through, unset here

    health = svc["healthcheck"]
    assert not health.get("disable", False)
    assert health["test"] == ["CMD", "python3", "-m", "entrypoint", "health"]
    assert seconds(health["start_period"]) >= 30 * 60
    assert seconds(health["timeout"]) > HTTP_TIMEOUT_S  # the probe's own timeout fires first
    assert health["retries"] >= 1
    assert seconds(health["start_interval"]) <= seconds(health["interval"])

    # The container's environment is a valid launcher configuration for this node.
    plan = resolve_plan(load_settings(container_env(svc), installed=lambda: [engine]))
    assert (plan.engine, plan.precision, plan.node_rank, plan.mtp) == (
        engine,
        precision,
        rank,
        mtp == "on",
    )
    if path == SINGLE:
        assert plan.nnodes == 1 and plan.master_ip is None
    else:
        assert plan.nnodes == 2 and plan.master_ip == "10.1.2.3"
    # vLLM headless nodes serve no HTTP; the same health command checks their process.
    assert plan.serves_http == (engine == "sglang" or rank == 0)


@pytest.mark.parametrize("path", [SINGLE, TWO], ids=["single", "two"])
def test_defaults(path):
    """With nothing set (but what two-node requires): SGLang, fp8 on one node, bf16 on two,
    the cache under $HOME, and the launcher's own defaults for everything passed through."""
    env = {"NODE_RANK": "0", "MASTER_IP": "node0.example"} if path == TWO else {}
    svc = service(config([path], env))  # HOME: the real one, where the docker CLI looks
    assert svc["image"] == build_tag("sglang")
    assert svc["volumes"][0]["source"] == os.path.join(clean_env()["HOME"], ".cache/huggingface")
    assert seconds(svc["healthcheck"]["start_period"]) == 3600
    plan = resolve_plan(load_settings(container_env(svc), installed=lambda: ["sglang"]))
    assert plan.precision == ("fp8" if path == SINGLE else "bf16")
    assert plan.nnodes == (1 if path == SINGLE else 2)
    assert plan.port == 30000 and plan.mtp is False


@pytest.mark.parametrize("path", [SINGLE, TWO], ids=["single", "two"])
def test_image_overrides(path):
    env = {"NODE_RANK": "0", "MASTER_IP": "10.0.0.1"} if path == TWO else {}
    svc = service(
        config(
            [path],
            {**env, "ENGINE": "vllm", "IMAGE_REPOSITORY": "registry.example.com/team/longcat"},
        )
    )
    assert svc["image"] == "registry.example.com/team/longcat:vllm"
    pinned = "registry.example.com/longcat@sha256:" + "ab" * 32
    svc = service(config([path], {**env, "ENGINE": "vllm", "IMAGE": pinned}))
    assert svc["image"] == pinned


@pytest.mark.parametrize("name", ["HF_TOKEN", "API_KEY"])
@pytest.mark.parametrize("path", [SINGLE, TWO], ids=["single", "two"])
def test_secrets_pass_through_and_are_in_no_file(path, name):
    token = "hf_test_token_that_is_not_real_0123456789"
    env = {name: token}
    if path == TWO:
        env.update(NODE_RANK="1", MASTER_IP="10.0.0.1")
    assert service(config([path], env))["environment"][name] == token
    # No shipped compose file carries a value for it: pass-through only.
    for shipped in COMPOSE_DIR.iterdir():
        if shipped.suffix == ".yaml":
            raw = yaml.safe_load(shipped.read_text())
            for svc in raw.get("services", {}).values():
                environment = svc.get("environment", {})
                assert isinstance(environment, dict)
                assert environment.get(name) is None, shipped
    tracked = [p for p in COMPOSE_DIR.iterdir() if p.is_file()]
    assert not any(p.name == ".env" for p in tracked if _is_tracked(p))


def _is_tracked(path: Path) -> bool:
    import subprocess

    return (
        subprocess.run(
            ["git", "ls-files", "--error-unmatch", str(path)], cwd=ROOT, capture_output=True
        ).returncode
        == 0
    )


@pytest.mark.parametrize("missing", ["MASTER_IP", "NODE_RANK"])
@pytest.mark.parametrize("empty", [False, True], ids=["unset", "empty"])
def test_two_node_refuses_without_required_variable(missing, empty):
    env = {"NODE_RANK": "1", "MASTER_IP": "10.0.0.1"}
    if empty:
        env[missing] = ""
    else:
        del env[missing]
    for command in (["config"], ["up", "--no-start"], ["down"]):
        result = run_compose([TWO], *command, env=env, project="longcat-refuse", check=False)
        assert result.returncode != 0, command
        assert f"required variable {missing} is missing a value" in result.stderr, command
        assert "Traceback" not in result.stderr


def test_two_node_names_both_missing_variables():
    result = run_compose([TWO], "config", check=False)
    assert result.returncode != 0
    assert "MASTER_IP" in result.stderr and "NODE_RANK" in result.stderr


def test_single_node_ignores_multi_node_variables():
    """single-node.yaml is one node whatever the environment says."""
    svc = service(
        config(
            [SINGLE],
            {"NNODES": "2", "NODE_RANK": "1", "MASTER_IP": "10.0.0.9", "PRECISION": "bf16"},
        )
    )
    env = container_env(svc)
    assert env["NNODES"] == "1" and env["NODE_RANK"] == "0" and env.get("MASTER_IP", "") == ""
    plan = resolve_plan(load_settings(env, installed=lambda: ["sglang"]))
    assert plan.nnodes == 1


def test_launcher_variables_pass_through():
    """Each launcher variable a user sets reaches the container unchanged, quotes included."""
    extra = "--max-running-requests 64 --chat-template '/templates/a b.jinja'"
    values = {
        "MASTER_PORT": "5100",
        "MODEL": "org/longcat",
        "MODEL_REVISION": "abc123",
        "GPUS_PER_NODE": "4",
        "HOST": "::",
        "PORT": "31000",
        "EXTRA_ARGS": extra,
        "DOWNLOAD": "0",
        "PREFLIGHT": "warn",
        "MASTER_WAIT_S": "60",
        "HF_HUB_OFFLINE": "1",
        "NCCL_SOCKET_IFNAME": "^lo,docker0",
        "GLOO_SOCKET_IFNAME": "eth0",
        "MTP": "yes",
        "ENGINE": "sglang",
        "VARIANT": "thinking",
        "TOOL_CALLS": "off",
        "SERVED_MODEL_NAME": "longcat",
        "CONTEXT_LENGTH": "65536",
        "SHUTDOWN_TIMEOUT_S": "90",
        "API_KEY_FILE": "/run/secrets/api-key",
    }
    env = container_env(
        service(config([TWO], {**values, "NODE_RANK": "1", "MASTER_IP": "fd00::1"}))
    )
    for name, value in values.items():
        assert env[name] == value, name
    plan = resolve_plan(load_settings(env, installed=lambda: ["sglang"]))
    assert list(plan.extra_args[-2:]) == shlex.split(extra)[-2:]
    assert plan.master_ip == "fd00::1" and plan.port == 31000
    assert (plan.variant, plan.served_model_name, plan.context_length) == (
        "thinking",
        "longcat",
        65536,
    )
    assert plan.revision == "abc123"  # DOWNLOAD=0: the engine fetches that revision


def test_env_file_is_read(tmp_path):
    """compose/.env (here: --env-file) feeds interpolation and pass-through alike."""
    env_file = tmp_path / ".env"
    env_file.write_text("ENGINE=vllm\nNODE_RANK=1\nMASTER_IP=10.0.0.1\nPORT=8100\n")
    result = run_compose([TWO], "config", env_file=env_file)
    svc = service(yaml.safe_load(result.stdout))
    assert svc["image"] == "longcat-deploy:vllm"
    assert svc["environment"]["PORT"] == "8100"
    assert svc["environment"]["NODE_RANK"] == "1"


def test_shared_service_is_not_repeated():
    """Both files take the service from common.yaml and only add their environment."""
    common = yaml.safe_load(COMMON.read_text())["services"][SERVICE]
    for path in (SINGLE, TWO):
        raw = yaml.safe_load(path.read_text())
        svc = raw["services"][SERVICE]
        assert svc["extends"] == {"file": "common.yaml", "service": SERVICE}, path
        assert set(svc) == {"extends", "environment"}, path
        assert not set(svc["environment"]) & set(common["environment"]), path


def _dockerfile_env(path: Path) -> dict[str, str]:
    """``ENV`` values of a Dockerfile (``KEY=VALUE`` pairs and the legacy ``KEY VALUE``)."""
    text = path.read_text().replace("\\\n", " ")
    found = {}
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if len(words) == 2 and words[0].upper() == "ENV":
            parts = shlex.split(words[1])
            if parts and "=" not in parts[0]:
                found[parts[0]] = " ".join(parts[1:])
            else:
                found.update(p.split("=", 1) for p in parts)
    return found


@pytest.mark.parametrize("engine", ENGINES)
def test_cache_mount_matches_the_image_hf_home(engine):
    """The mount target (and HF_HOME the files set) is where the image's HF_HOME points."""
    dockerfile = ROOT / "images" / engine / "Dockerfile"
    image_env = _dockerfile_env(dockerfile)
    assert image_env.get("ENGINE") == engine
    assert image_env.get("HF_HOME") == HF_HOME


# Launcher variables a compose file deliberately does not hand to the container, even from
# compose/.env: fixed blank (DRY_RUN: a dry run would make the service restart after
# every run; MASTER_IP: one node).
NOT_PASSED = {
    SINGLE: {"DRY_RUN", "MASTER_IP"},
    TWO: {"DRY_RUN"},
}


@pytest.mark.parametrize("path", [SINGLE, TWO], ids=["single", "two"])
def test_every_launcher_variable_reaches_the_container(path):
    """A variable added to the launcher must be passed (or excluded here, on purpose)."""
    from entrypoint.settings import VARIABLES

    env = {"NODE_RANK": "0", "MASTER_IP": "10.0.0.1"} if path == TWO else {}
    set_everywhere = {name: "1" for name in NOT_PASSED[path]}
    dotenv = "".join(f"{name}=1\n" for name in NOT_PASSED[path])
    environment = service(config([path], {**env, **set_everywhere}, dotenv=dotenv))["environment"]
    launcher = {v.name for v in VARIABLES}
    assert launcher - NOT_PASSED[path] <= set(environment), (
        launcher - NOT_PASSED[path] - set(environment)
    )
    for name in NOT_PASSED[path]:
        assert environment.get(name) == "", name


@pytest.mark.parametrize("path", [SINGLE, TWO], ids=["single", "two"])
@pytest.mark.parametrize("engine,precision", [("sglang", None), ("vllm", "fp8")])
def test_prefetch_service_fills_the_cache_the_deployment_mounts(path, engine, precision):
    """`run --rm prefetch` (profile prefetch): the launcher's prefetch --verify, in the same
    image, on the same cache, for the checkpoint the `longcat` service serves; no GPU."""
    from entrypoint.prefetch import checkpoint_of

    env = {
        "ENGINE": engine,
        "HF_CACHE_DIR": CACHE,
        "HF_TOKEN": "hf_notARealToken123",
        "MODEL_REVISION": "v1",
    }
    if precision:
        env["PRECISION"] = precision
    if path == TWO:
        env.update(NODE_RANK="0", MASTER_IP="10.0.0.1")
    cfg = yaml.safe_load(run_compose([path], "--profile", "prefetch", "config", env=env).stdout)
    prefetch, longcat = cfg["services"]["prefetch"], cfg["services"][SERVICE]
    assert prefetch["profiles"] == ["prefetch"]
    assert prefetch["command"] == ["prefetch", "--verify"]
    assert "deploy" not in prefetch, "no GPU reservation to prefetch"
    assert prefetch["image"] == longcat["image"]
    assert prefetch["network_mode"] == "host" and prefetch["restart"] == "no"
    assert prefetch["volumes"] == longcat["volumes"]
    ours, theirs = container_env(prefetch), container_env(longcat)
    assert ours["HF_HOME"] == theirs["HF_HOME"] and ours["HF_TOKEN"] == theirs["HF_TOKEN"]
    served = resolve_plan(load_settings(theirs, installed=lambda: [engine]))
    fetched = load_settings(ours, installed=lambda: [engine]).values
    assert checkpoint_of(fetched) == served.model
    assert fetched["MODEL_REVISION"] == "v1"


# --- engine and library settings: compose/.env and the shell ---------------------------

# Variables of every family the engines and their libraries read, none of which the
# compose files name: they reach the container through compose/.env (env_file).
FROM_DOTENV = {
    "NCCL_IB_GID_INDEX": "3",
    "NCCL_IB_TC": "106",
    "UCX_TLS": "rc,cuda_copy",
    "GLOO_DEVICE_TRANSPORT": "TCP",
    "HF_HUB_ENABLE_HF_TRANSFER": "1",
    "VLLM_LOGGING_LEVEL": "DEBUG",
    "SGLANG_ENABLE_TORCH_COMPILE": "1",
}


@pytest.mark.parametrize("path", [SINGLE, TWO], ids=["single", "two"])
def test_every_engine_variable_in_dotenv_reaches_the_container(path):
    from entrypoint.settings import ENGINE_VARIABLE_PREFIXES

    assert {name.split("_", 1)[0] + "_" for name in FROM_DOTENV} == set(ENGINE_VARIABLE_PREFIXES)
    env = {"NODE_RANK": "1", "MASTER_IP": "10.0.0.1"} if path == TWO else {}
    dotenv = "".join(f"{name}={value}\n" for name, value in FROM_DOTENV.items())
    environment = container_env(service(config([path], env, dotenv=dotenv)))
    for name, value in FROM_DOTENV.items():
        assert environment.get(name) == value, name


def test_named_settings_come_from_the_shell_and_the_shell_wins_over_dotenv():
    from . import env_example

    shell = {name: f"from-shell-{i}" for i, (name, _, _) in enumerate(env_example.FROM_THE_SHELL)}
    dotenv = "".join(f"{name}=from-dotenv\n" for name in shell)
    environment = container_env(
        service(config([TWO], {**shell, "NODE_RANK": "0", "MASTER_IP": "10.0.0.1"}, dotenv=dotenv))
    )
    for name, value in shell.items():
        assert environment[name] == value, name
    # Without the shell's values, compose/.env's reach the container.
    environment = container_env(
        service(config([TWO], {"NODE_RANK": "0", "MASTER_IP": "10.0.0.1"}, dotenv=dotenv))
    )
    for name in shell:
        assert environment[name] == "from-dotenv", name


def test_the_names_passed_from_the_shell_are_the_documented_ones():
    """common.yaml's pass-through entries are the launcher's variables plus exactly the
    engine and library variables .env.example describes, each of a known family."""
    from entrypoint.settings import ENGINE_VARIABLE_PREFIXES, VARIABLES

    from . import env_example

    common = yaml.safe_load(COMMON.read_text())["services"][SERVICE]["environment"]
    extra = {name for name, value in common.items() if value is None} - {v.name for v in VARIABLES}
    assert extra == {name for name, _, _ in env_example.FROM_THE_SHELL}
    assert all(name.startswith(ENGINE_VARIABLE_PREFIXES) for name in extra)
    assert common["DRY_RUN"] == ""


def test_an_unset_named_setting_does_not_reach_the_container_at_all():
    environment = service(config([TWO], {"NODE_RANK": "0", "MASTER_IP": "10.0.0.1"}))["environment"]
    assert environment["NCCL_IB_HCA"] is None  # pass-through, absent from the container


# --- RDMA (compose/rdma.yaml) ---------------------------------------------------------


def test_rdma_override_adds_the_verbs_devices_and_ipc_lock():
    env = {"NODE_RANK": "0", "MASTER_IP": "10.0.0.1"}
    svc = service(config([TWO, RDMA], env))
    (device,) = svc["devices"]
    assert (device["source"], device["target"]) == ("/dev/infiniband", "/dev/infiniband")
    assert svc["cap_add"] == ["IPC_LOCK"]
    # Everything else is the two-node deployment's, unchanged.
    plain = service(config([TWO], env))
    assert "devices" not in plain and "cap_add" not in plain
    assert {k: v for k, v in svc.items() if k not in ("devices", "cap_add")} == plain


def test_rdma_is_opt_in():
    """A device whose host path is missing makes `up` fail: no shipped deployment file may
    carry /dev/infiniband, only the override."""
    for shipped in (COMMON, SINGLE, TWO):
        assert "/dev/infiniband" not in yaml.safe_dump(yaml.safe_load(shipped.read_text()))
    assert set(yaml.safe_load(RDMA.read_text())["services"][SERVICE]) == {"devices", "cap_add"}
