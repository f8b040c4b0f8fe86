"""One graceful-stop budget, defined once (entrypoint/settings.py): the engine's drain
after SIGTERM (SHUTDOWN_TIMEOUT_S, vLLM --shutdown-timeout) is shorter than the grace the
platforms give the container before SIGKILL (STOP_GRACE_PERIOD_S): compose's
stop_grace_period and Kubernetes' terminationGracePeriodSeconds."""

from __future__ import annotations

from pathlib import Path

import yaml

from entrypoint.engines import build_argv
from entrypoint.plan import resolve_plan
from entrypoint.settings import (
    BY_NAME,
    DEFAULT_SHUTDOWN_TIMEOUT_S,
    STOP_GRACE_PERIOD_S,
    load_settings,
)
from tests.compose.composeutil import seconds

REPO = Path(__file__).resolve().parent.parent


def test_the_drain_fits_in_the_grace_period_with_room_for_the_teardown():
    assert BY_NAME["SHUTDOWN_TIMEOUT_S"].default == DEFAULT_SHUTDOWN_TIMEOUT_S
    # The engine frees the GPUs of all its workers after the drain: at least a minute.
    assert STOP_GRACE_PERIOD_S - DEFAULT_SHUTDOWN_TIMEOUT_S >= 60


def test_vllm_gets_the_drain_time():
    argv = build_argv(resolve_plan(load_settings({"ENGINE": "vllm"})))
    assert argv[argv.index("--shutdown-timeout") + 1] == str(DEFAULT_SHUTDOWN_TIMEOUT_S)


def test_compose_gives_the_grace_period():
    common = yaml.safe_load((REPO / "compose" / "common.yaml").read_text())
    assert seconds(common["services"]["longcat"]["stop_grace_period"]) == STOP_GRACE_PERIOD_S


def test_every_kubernetes_pod_gives_the_grace_period():
    templates = 0
    for path in sorted((REPO / "deploy" / "kubernetes").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document["kind"] == "LeaderWorkerSet":
                spec = document["spec"]["leaderWorkerTemplate"]
                for role in ("leaderTemplate", "workerTemplate"):
                    grace = spec[role]["spec"]["terminationGracePeriodSeconds"]
                    assert grace == STOP_GRACE_PERIOD_S, (path.name, role)
                    templates += 1
    assert templates == 12  # 4 deployments and 2 RDMA variants, leader and worker
