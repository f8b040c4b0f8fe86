"""Our vLLM image on the real engine: built and verified by the shipped build.py on the CPU
stand-in base that carries vLLM's CPU build, then run with ``docker run`` on the tiny
checkpoint (mounted read-only). Host networking, 127.0.0.1 only; everything made here is
removed.
"""

from __future__ import annotations

import time

import pytest

from images.errors import BuildError
from tests.conftest import build_with_buildpy
from tests.images.dockerutil import container, free_port, poll_until
from tests.real_engine import server
from tests.real_engine.env import real_engine_pin

pytestmark = pytest.mark.real_engine
SECOND_NS = 1_000_000_000
MODEL = "/models/tiny-longcat-flash"


def test_build_py_verifies_the_image_with_the_real_parser(real_image):
    from entrypoint.check import standard_environments

    plans = len(standard_environments({"ENGINE": "vllm"}))
    out = real_image.output
    assert f"checking {plans} plan(s) against vllm {real_engine_pin()[1]}+cpu" in out, out
    assert f"{plans} accepted, 0 rejected" in out, out
    assert "Failed to import" not in out, out  # the engine's own kernels load


def test_build_py_refuses_a_base_without_the_pinned_release(
    docker_client, matrix, real_base, docker_token
):
    with pytest.raises(BuildError) as refused:
        build_with_buildpy(
            docker_client, matrix, "vllm", real_base, f"longcat-test-{docker_token}-wrong"
        )
    pinned, cpu = matrix["engines"]["vllm"]["version"], real_engine_pin()[1]
    assert (
        f"holds vllm {cpu}+cpu (public version {cpu}), but images/matrix.toml pins {pinned}"
    ) in str(refused.value)
    assert not docker_client.images.list(name=f"longcat-test-{docker_token}-wrong")


def test_docker_run_serves_the_reference_and_stops_on_sigterm(
    docker_client, real_image, real_engine, docker_token
):
    port = free_port()
    environment = {
        "MODEL": MODEL,
        "GPUS_PER_NODE": "1",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PREFLIGHT": "warn",
        "EXTRA_ARGS": server.ENGINE_FLAGS,
        # No drain: the stop below shows SIGTERM reaching the engine at once.
        "SHUTDOWN_TIMEOUT_S": "0",
        **server.ENGINE_ENV,
    }
    # The image's own HEALTHCHECK command, probed every second instead of every 30 s.
    health = {
        "test": [],
        "interval": SECOND_NS,
        "timeout": 15 * SECOND_NS,
        "retries": 3,
        "start_period": 600 * SECOND_NS,
    }
    start = time.monotonic()
    with container(
        docker_client,
        real_image.ref,
        docker_token,
        environment=environment,
        volumes={str(real_engine.model): {"bind": MODEL, "mode": "ro"}},
        shm_size="1g",
        healthcheck=health,
    ) as c:

        def healthy():
            c.reload()
            assert c.status == "running", c.logs()[-3000:].decode(errors="replace")
            return c.attrs["State"]["Health"]["Status"] == "healthy"

        poll_until(healthy, server.HEALTHY_WITHIN_S, "the container's HEALTHCHECK", 0.5)
        healthy_s = time.monotonic() - start
        status, response = server.ask(port, real_engine.reference)
        assert status == 200, response
        assert server.answer_problems(response, real_engine.reference) == []
        logs = c.logs().decode(errors="replace")
        assert f"longcat-deploy: exec vllm serve {MODEL} " in logs
        stop_start = time.monotonic()
        c.stop(timeout=30)  # SIGTERM (the image's STOPSIGNAL), SIGKILL after 30 s
        stopped_s = time.monotonic() - stop_start
        c.reload()
        assert c.attrs["State"]["ExitCode"] != 137, "SIGKILL was needed"
        assert stopped_s < server.STOP_WITHIN_S
    print(f"\ndocker run: healthy after {healthy_s:.0f} s, stopped {stopped_s:.1f} s after SIGTERM")
