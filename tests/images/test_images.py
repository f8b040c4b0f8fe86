"""Our images on a real Docker engine: built by the shipped build.py from the shipped
Dockerfiles, on stand-in bases laid out like the official ones, with fake engines
(tests/conftest.py, built_images; tests/fakes/bases.py).

Every container uses host networking and talks to 127.0.0.1 only; every wait is a poll
with a deadline; every container and image made here is removed.
"""

from __future__ import annotations

import json
import shlex
import time
import urllib.error
import urllib.request
from pathlib import Path

import docker.errors
import pytest
import yaml

from images.dockerbuild import added_layers_size
from images.errors import BuildError
from images.matrix import Options, cuda_drivers, plan
from tests.conftest import build_with_buildpy
from tests.fakes.bases import build_fake_base, load_facts
from tests.images.dockerutil import (
    container,
    copy_project,
    free_port,
    poll_until,
    remove_images,
    run_to_end,
)
from tests.launcher.support import SHARED_CASES

ROOT = Path(__file__).resolve().parents[2]
STATE = "/fake-engine"  # where the fakes write, bind-mounted from tmp_path
# No weights and no host checks: there is no GPU and no Hub here (the launcher's own tests
# cover both).
QUIET = {"DOWNLOAD": "0", "PREFLIGHT": "off"}
CASES = yaml.safe_load(SHARED_CASES.read_text())["cases"]
# Docker durations are in nanoseconds.
SECOND_NS = 1_000_000_000
# The image's HEALTHCHECK command with short timings: an empty test inherits the image's.
FAST_HEALTH = {
    "test": [],
    "interval": SECOND_NS,
    "timeout": 5 * SECOND_NS,
    "retries": 2,
    "start_period": SECOND_NS,
}


def engine_of(env: dict, images: dict) -> str:
    """The image a case runs in: the one for its ENGINE, or sglang for an unknown engine."""
    return env.get("ENGINE") if env.get("ENGINE") in images else "sglang"


def state_volume(path: Path) -> dict:
    return {str(path): {"bind": STATE, "mode": "rw"}}


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def read_json(path: Path):
    """The JSON in ``path``, or None while it does not exist yet."""
    return json.loads(path.read_text()) if path.exists() else None


def received_command(record: dict) -> list[str]:
    """The command the fake engine was started with, as exec'd.

    SGLang runs as ``python -m sglang.launch_server``: ``sys.orig_argv`` is exactly the
    argv. ``vllm`` is a console script: the kernel passes its full path to the
    interpreter, so ``sys.argv`` holds ``/path/to/vllm serve ...``.
    """
    return record["orig_argv"] if record["engine"] == "sglang" else record["argv"]


@pytest.fixture(scope="module")
def which(docker_client, built_images, docker_token):
    """lookup(engine, program): the program's full path in that engine's image."""
    import functools

    @functools.cache
    def lookup(engine: str, program: str) -> str:
        status, out, err = run_to_end(
            docker_client,
            built_images[engine].ref,
            docker_token,
            entrypoint=["python3", "-c", "import shutil, sys; print(shutil.which(sys.argv[1]))"],
            command=[program],
        )
        assert status == 0, err
        return out.strip()

    return lookup


# --------------------------------------------------------------------------------------
# what the images are
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_image_config_labels_and_tags(docker_client, built_images, matrix, engine):
    image = built_images[engine]
    attrs = docker_client.images.get(image.id).attrs
    config = attrs["Config"]
    assert f"ENGINE={engine}" in config["Env"]
    assert "HF_HOME=/root/.cache/huggingface" in config["Env"]
    assert "LONGCAT_HF_SEED=/opt/longcat/hf-seed" in config["Env"]
    assert "LONGCAT_CUDA_VARIANT=cu130" in config["Env"]
    assert f"LONGCAT_CUDA_DRIVERS={cuda_drivers(matrix, engine)}" in config["Env"]
    assert config["Entrypoint"] == ["/usr/local/bin/dumb-init", "--", "python3", "-m", "entrypoint"]
    assert config["Healthcheck"]["Test"] == ["CMD", "python3", "-m", "entrypoint", "health"]
    assert config["Healthcheck"]["StartPeriod"] >= 30 * 60 * SECOND_NS
    assert config["StopSignal"] == "SIGTERM"
    assert config["WorkingDir"] == load_facts()[engine]["workdir"]  # the base's, kept
    labels = config["Labels"]
    version = matrix["engines"][engine]["version"]
    assert labels["dev.longcat-deploy.engine"] == engine
    assert labels["dev.longcat-deploy.engine.version"] == version
    assert labels["dev.longcat-deploy.cuda"] == "cu130"
    assert labels["org.opencontainers.image.revision"] == "test"
    assert labels["org.opencontainers.image.base.name"] == image.base
    # A base built here came from no registry: it has no digest to record.
    assert labels["org.opencontainers.image.base.digest"] == image.base_digest == ""
    assert labels["org.opencontainers.image.created"].endswith("Z")
    for key in ("source", "version"):
        assert labels[f"org.opencontainers.image.{key}"]
    # Ours replace the base's url and source (the vLLM image's name vLLM's).
    base_labels = docker_client.images.get(image.base).attrs["Config"]["Labels"] or {}
    for key in ("url", "source"):
        ours = labels[f"org.opencontainers.image.{key}"]
        assert ours == labels["org.opencontainers.image.source"]
        assert ours != base_labels.get(f"org.opencontainers.image.{key}")
    repository = image.repository
    assert set(attrs["RepoTags"]) == {
        f"{repository}:{engine}-{version}-cu130",
        f"{repository}:{engine}-cu130",
        f"{repository}:{engine}",
        f"{repository}:{engine}-{version}-cu130-test",
    }


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_our_layers_on_top_of_the_base_stay_under_20_mb(docker_client, built_images, engine):
    image = built_images[engine]
    added = added_layers_size(docker_client, image.id, image.base)
    assert 0 < added <= 20 * 10**6, f"{engine}: {added} bytes added"


def test_build_output_was_streamed_and_the_check_ran_before_tagging(built_images):
    output = built_images["sglang"].output
    assert "Step 1/" in output
    assert output.index("accepted, 0 rejected") < output.index("=== tagged")


# --------------------------------------------------------------------------------------
# every launch case: the engine receives exactly the dry run's argv
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_each_case_starts_the_engine_with_exactly_the_dry_run_argv(
    docker_client, built_images, docker_token, which, tmp_path, case
):
    env = {k: str(v) for k, v in case["env"].items()}
    engine = engine_of(env, built_images)
    image = built_images[engine].ref
    status, out, err = run_to_end(
        docker_client,
        image,
        docker_token,
        volumes=state_volume(tmp_path),
        environment={**env, **QUIET, "FAKE_ENGINE_DIR": STATE, "FAKE_ENGINE_EXIT": "1"},
    )
    record = read_json(tmp_path / "argv.json")
    expect = case["expect"]
    if "error" in expect:
        assert status == expect["error"]["status"], (out, err)
        for word in expect["error"]["words"]:
            assert word in err
        assert "Traceback" not in out + err
        assert record is None, "an engine was started for an invalid configuration"
        return
    assert status == 0, err
    assert record is not None, f"the engine did not start:\n{out}\n{err}"

    dry_status, dry_out, dry_err = run_to_end(
        docker_client, image, docker_token, environment={**env, **QUIET}, command=["--dry-run"]
    )
    assert dry_status == 0, dry_err
    dry = shlex.split(dry_out.strip().splitlines()[-1])
    received = received_command(record)
    program = dry[0] if dry[0].startswith("/") else which(engine, dry[0])
    assert received[0] == program
    assert received[1:] == dry[1:]
    # And it is the case's command: its program words, model and flags.
    words = expect["program"][1:]
    assert received[1 : 1 + len(words)] == words
    if "model" in expect:
        assert received[2] == expect["model"]
    for flag, value in expect.get("flags", {}).items():
        assert flag in received
        if value is not True:
            assert received[received.index(flag) + 1] == str(value)


def test_arguments_after_the_image_name_reach_the_engine_last(
    docker_client, built_images, docker_token, tmp_path
):
    status, out, err = run_to_end(
        docker_client,
        built_images["sglang"].ref,
        docker_token,
        volumes=state_volume(tmp_path),
        command=["--mem-fraction-static", "0.8"],
        environment={
            **QUIET,
            "EXTRA_ARGS": "--context-length 32k",
            "FAKE_ENGINE_DIR": STATE,
            "FAKE_ENGINE_EXIT": "1",
        },
    )
    assert status == 0, err
    record = read_json(tmp_path / "argv.json")
    assert record["orig_argv"][-4:] == ["--context-length", "32k", "--mem-fraction-static", "0.8"]
    assert record["parsed"]["mem_fraction_static"] == 0.8


def test_the_other_engine_is_not_installed_exit_127(docker_client, built_images, docker_token):
    status, out, err = run_to_end(
        docker_client,
        built_images["sglang"].ref,
        docker_token,
        environment={**QUIET, "ENGINE": "vllm"},
    )
    assert status == 127
    assert "vllm" in err and "Traceback" not in err


def test_check_inside_the_image_names_a_flag_the_engine_rejects(
    docker_client, built_images, docker_token
):
    status, out, err = run_to_end(
        docker_client,
        built_images["sglang"].ref,
        docker_token,
        environment={"EXTRA_ARGS": "--enable-ep-moe"},
        command=["check", "--all"],
    )
    assert status == 1, out + err
    assert "--enable-ep-moe" in out


# --------------------------------------------------------------------------------------
# stop, health
# --------------------------------------------------------------------------------------


def host_pids(running) -> list[int]:
    """The host PIDs of every process in the container (``docker top``)."""
    top = running.top()
    column = top["Titles"].index("PID")
    return [int(row[column]) for row in top["Processes"]]


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer exists on this host (or is a zombie awaiting reaping)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


@pytest.mark.parametrize(
    "engine, env",
    [
        ("sglang", {}),
        ("vllm", {}),
        ("vllm", {"PRECISION": "bf16", "NODE_RANK": "1", "MASTER_IP": "127.0.0.1"}),
    ],
    ids=["sglang", "vllm", "vllm-headless"],
)
def test_docker_stop_ends_everything_within_5_s_and_the_engine_saw_sigterm(
    docker_client, built_images, docker_token, tmp_path, engine, env
):
    port = free_port()
    environment = {
        **env,
        **QUIET,
        "PORT": str(port),
        "FAKE_ENGINE_DIR": STATE,
        "MASTER_PORT": str(free_port()),
    }
    with container(
        docker_client,
        built_images[engine].ref,
        docker_token,
        environment=environment,
        volumes=state_volume(tmp_path),
    ) as running:
        ready = poll_until(
            lambda: read_json(tmp_path / "ready.json"), 60, f"the fake {engine} to start"
        )
        if ready["port"] is not None:
            assert poll_until(
                lambda: http_status(port, "/v1/models") == 200, 30, "the API to answer"
            )
        pids = host_pids(running)
        assert len(pids) >= 3, running.top()  # dumb-init, the engine, its worker
        started = time.monotonic()
        running.stop(timeout=10)
        elapsed = time.monotonic() - started
        running.reload()
        assert running.attrs["State"]["Status"] == "exited"
        assert running.attrs["State"]["ExitCode"] == 0, running.logs().decode()
        assert elapsed < 5, f"docker stop took {elapsed:.1f} s: SIGTERM did not end it"
        for pid in (ready["pid"], ready["worker_pid"]):
            seen = read_json(tmp_path / f"sigterm-{pid}.json")
            assert seen and seen["signal"] == 15, f"process {pid} did not see SIGTERM"
        poll_until(
            lambda: all(process_gone(p) for p in pids),
            5,
            f"every process of the container ({pids}) to be gone",
        )


# Prints {pid: state} of every process in the container but itself, as JSON.
PROC_STATES = """
import json, os
states = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/stat") as f:
            states[pid] = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        pass
states.pop(str(os.getpid()), None)
print(json.dumps(states))
"""


def test_the_init_reaps_orphaned_processes(docker_client, built_images, docker_token, tmp_path):
    environment = {
        **QUIET,
        "PORT": str(free_port()),
        "FAKE_ENGINE_DIR": STATE,
        "FAKE_ENGINE_ORPHANS": "3",
    }
    with container(
        docker_client,
        built_images["sglang"].ref,
        docker_token,
        environment=environment,
        volumes=state_volume(tmp_path),
    ) as running:
        poll_until(lambda: read_json(tmp_path / "ready.json"), 60, "the fake engine to start")
        poll_until(
            lambda: len(list(tmp_path.glob("orphan-*.json"))) == 3,
            30,
            "three orphans re-parented to PID 1",
        )

        def settled():
            # Inside the container: `docker top` cannot show zombies (an exited process
            # leaves its cgroup before it is reaped), the container's /proc does.
            states = json.loads(running.exec_run(["python3", "-c", PROC_STATES]).output)
            return len(states) == 3 and "Z" not in states.values() and states

        poll_until(settled, 30, "only dumb-init, the engine and its worker, no zombie")


def health(running) -> str:
    running.reload()
    return running.attrs["State"].get("Health", {}).get("Status", "")


@pytest.mark.parametrize(
    "engine, env",
    [
        ("sglang", {}),
        ("vllm", {}),
    ],
    ids=["sglang", "vllm"],
)
def test_healthcheck_turns_healthy_then_unhealthy_when_the_engine_stops_answering(
    docker_client, built_images, docker_token, tmp_path, engine, env
):
    port = free_port()
    with container(
        docker_client,
        built_images[engine].ref,
        docker_token,
        environment={**env, **QUIET, "PORT": str(port), "FAKE_ENGINE_DIR": STATE},
        volumes=state_volume(tmp_path),
        healthcheck=FAST_HEALTH,
    ) as running:
        config = running.attrs["Config"]["Healthcheck"]
        assert config["Test"] == ["CMD", "python3", "-m", "entrypoint", "health"]
        poll_until(lambda: health(running) == "healthy", 60, "healthy")
        (tmp_path / "unhealthy").touch()  # the fake's /health answers 503 now
        poll_until(lambda: health(running) == "unhealthy", 60, "unhealthy")
        log = running.attrs["State"]["Health"]["Log"][-1]
        assert log["ExitCode"] == 1 and f"{port}/health answered 503" in log["Output"]
        (tmp_path / "unhealthy").unlink()
        poll_until(lambda: health(running) == "healthy", 60, "healthy again")


def test_healthcheck_of_a_headless_vllm_node_follows_its_process(
    docker_client, built_images, docker_token, tmp_path
):
    env = {
        "PRECISION": "bf16",
        "NODE_RANK": "1",
        "MASTER_IP": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }
    with container(
        docker_client,
        built_images["vllm"].ref,
        docker_token,
        environment={**env, **QUIET, "FAKE_ENGINE_DIR": STATE},
        volumes=state_volume(tmp_path),
        healthcheck=FAST_HEALTH,
    ) as running:
        poll_until(lambda: health(running) == "healthy", 60, "healthy")
        assert "headless" in running.attrs["State"]["Health"]["Log"][-1]["Output"]
        assert read_json(tmp_path / "ready.json")["port"] is None  # it serves no HTTP


# --------------------------------------------------------------------------------------
# registry, rebuild, in-image check
# --------------------------------------------------------------------------------------


def registry_get(url: str, accept: str | None = None, method: str = "GET") -> int:
    request = urllib.request.Request(
        url, method=method, headers={"Accept": accept} if accept else {}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return reply.status


def test_push_to_a_local_registry_remove_pull_by_digest_and_run(
    docker_client, matrix, fake_base_images, local_registry, docker_token, tmp_path
):
    repository = f"longcat-test-{docker_token}-pushed"
    pushed = build_with_buildpy(
        docker_client,
        matrix,
        "sglang",
        fake_base_images["sglang"],
        repository,
        registry=local_registry,
        push=True,
    )
    pulled_ref = None
    try:
        digest = pushed.digests[pushed.ref]
        name = f"{local_registry}/{repository}"
        # The registry holds the manifest and every blob it names.
        manifest_url = f"http://{local_registry}/v2/{repository}/manifests/{digest}"
        media = "application/vnd.docker.distribution.manifest.v2+json"
        with urllib.request.urlopen(
            urllib.request.Request(manifest_url, headers={"Accept": media}), timeout=10
        ) as reply:
            manifest = json.loads(reply.read())
        for blob in [manifest["config"], *manifest["layers"]]:
            assert (
                registry_get(
                    f"http://{local_registry}/v2/{repository}/blobs/{blob['digest']}", method="HEAD"
                )
                == 200
            )

        remove_images(docker_client, [*pushed.tags, pushed.id])
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(pushed.id)

        pulled_ref = f"{name}@{digest}"
        docker_client.api.pull(pulled_ref)
        pulled = docker_client.images.get(pulled_ref)
        assert pulled.id == pushed.id
        assert pulled_ref in pulled.attrs["RepoDigests"]

        status, out, err = run_to_end(
            docker_client,
            pulled_ref,
            docker_token,
            volumes=state_volume(tmp_path),
            environment={**QUIET, "FAKE_ENGINE_DIR": STATE, "FAKE_ENGINE_EXIT": "1"},
        )
        assert status == 0, err
        assert read_json(tmp_path / "argv.json")["orig_argv"][1:3] == ["-m", "sglang.launch_server"]
    finally:
        remove_images(
            docker_client, [*pushed.tags, pushed.id] + ([pulled_ref] if pulled_ref else [])
        )


def test_a_launcher_only_change_rebuilds_only_the_launcher_layers(
    docker_client, matrix, fake_base_images, docker_token, tmp_path
):
    project = copy_project(ROOT, tmp_path / "project")
    base = fake_base_images["sglang"]
    first = build_with_buildpy(
        docker_client, matrix, "sglang", base, f"longcat-test-{docker_token}-before", root=project
    )
    second = None
    try:
        init = project / "entrypoint" / "__init__.py"
        init.write_text(init.read_text() + "\n# a launcher-only change\n")
        second = build_with_buildpy(
            docker_client,
            matrix,
            "sglang",
            base,
            f"longcat-test-{docker_token}-after",
            root=project,
        )
        layers = {
            image.id: docker_client.images.get(image.id).attrs["RootFS"]["Layers"]
            for image in (first, second)
        }
        base_layers = docker_client.images.get(base).attrs["RootFS"]["Layers"]
        before, after = layers[first.id], layers[second.id]
        assert before[: len(base_layers)] == after[: len(base_layers)] == base_layers
        ours_before, ours_after = before[len(base_layers) :], after[len(base_layers) :]
        # The seed of the base's cache, dumb-init, the dependency wheels and their install
        # are the very same layers; only the launcher's COPY and its pip install differ.
        assert len(ours_before) == len(ours_after) == 6
        assert ours_before[:4] == ours_after[:4]
        assert ours_before[4] != ours_after[4] and ours_before[5] != ours_after[5]
        # The history agrees: every step before the launcher's COPY is the same cached
        # image, not a rebuilt one.
        history = {
            image.id: list(reversed(docker_client.api.history(image.id)))
            for image in (first, second)
        }
        copy_step = next(
            i for i, h in enumerate(history[second.id]) if "longcat-launcher" in h["CreatedBy"]
        )  # COPY launcher/ ...
        for old, new in zip(history[first.id][:copy_step], history[second.id][:copy_step]):
            assert old["Id"] == new["Id"], (old["CreatedBy"], new["CreatedBy"])
    finally:
        for image in (first, second):
            if image is not None:
                remove_images(docker_client, [*image.tags, image.id])


def test_a_missing_base_fails_at_once_naming_the_tag_and_how_to_list_tags(
    docker_client, matrix, local_registry, docker_token
):
    # On the local registry, so the daemon's pull attempt stays on 127.0.0.1.
    repository = f"{local_registry}/longcat-test-{docker_token}-absent"
    with pytest.raises(BuildError) as caught:
        build_with_buildpy(
            docker_client,
            matrix,
            "vllm",
            f"{repository}:none",
            f"longcat-test-{docker_token}-unbuilt",
        )
    message = str(caught.value)
    assert f"the base image {repository}:none does not exist" in message
    assert f"skopeo list-tags docker://{repository}" in message
    assert "Step 1/" not in caught.value.output  # nothing was built


def test_the_in_image_check_fails_the_build_when_the_engine_rejects_a_flag(
    docker_client, matrix, standin_image, docker_token
):
    base = build_fake_base(
        docker_client,
        matrix,
        "sglang",
        f"longcat-test-{docker_token}-base:sglang-without-ep-size",
        reject="--ep-size",
    )
    repository = f"longcat-test-{docker_token}-rejected"
    try:
        with pytest.raises(BuildError) as caught:
            build_with_buildpy(docker_client, matrix, "sglang", base, repository)
        message = str(caught.value)
        assert "--ep-size" in message and "not tagged" in message
        (target,) = plan(
            matrix, ["sglang"], Options(base_image=base, repository=repository, revision="test")
        )
        for tag in target.tags:
            with pytest.raises(docker.errors.ImageNotFound):
                docker_client.images.get(tag)
    finally:
        remove_images(docker_client, [base])
