"""The real launcher process: preflight in one block, its exit status, and its place in the
launch (after the engine check, before the download, the wait, and the exec)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.hub import FakeHub, FakeRepo, longcat_like_files
from tests.fakes.nvml import A100, H100, H200, gpus
from tests.machine import require_root
from tests.preflight.support import free_port
from tests.weights.support import CHECKPOINT, REPO_ROOT, engine_record, launch, launcher_env

NVML_SITE = Path(__file__).resolve().parents[1] / "fakes" / "nvml_site"
# The recording `sglang.launch_server` (an importable sglang package for the launcher).
SGLANG_RECORDER = Path(__file__).resolve().parents[1] / "fakes" / "recorders" / "python"


def preflight_env(tmp_path, mode="on", devices=None, **extra):
    """A one-node vLLM launch on a local checkpoint, with fake GPUs behind NVML."""
    model = tmp_path / "ckpt"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    settings = {
        "PREFLIGHT": mode,
        "MODEL": model,
        "HOST": "127.0.0.1",
        "PORT": free_port(),
        **extra,
    }
    env = launcher_env(tmp_path, **settings)
    env["PYTHONPATH"] = f"{NVML_SITE}{os.pathsep}{REPO_ROOT}"
    env["FAKE_NVML_GPUS"] = json.dumps(gpus(H200, 8) if devices is None else devices)
    return env


def with_big_shm(env: dict) -> tuple[list[str], dict]:
    """Run the launcher in its own mount namespace with a 2 GiB /dev/shm (root, as CI runs),
    so the /dev/shm check passes whatever the host's size is."""
    require_root("a private /dev/shm")
    if not shutil.which("unshare"):
        pytest.fail("unshare(1) is missing: apt-get install util-linux", pytrace=False)
    script = f"mount -t tmpfs -o size=2g tmpfs /dev/shm && exec {sys.executable} -m entrypoint"
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script], env


@pytest.mark.root
def test_passing_checks_reach_the_exec_with_the_local_snapshot(tmp_path):
    with FakeHub() as hub:
        repo = hub.add(FakeRepo(CHECKPOINT, longcat_like_files()))
        env = preflight_env(tmp_path, HF_ENDPOINT=hub.url)
        del env["MODEL"]  # the checkpoint PRECISION=fp8 selects, from the (fake) Hub
        argv, env = with_big_shm(env)
        result = subprocess.run(
            argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 0, result.stderr
    assert "preflight (8 of 8 checks passed):" in result.stderr
    for line in (
        "ok   gpus: 8 visible",
        "ok   gpu memory: 1206 GB on 8 GPUs",
        "ok   compute capability: compute capability 9.0 (NVIDIA H200) >= 8.9",
        "ok   driver: driver 580.95.05; not compared",
        "ok   /dev/shm",
        "ok   memlock",
        f"ok   HTTP port: 127.0.0.1:{env['PORT']} (PORT) is free",
        "ok   HF cache: ",
    ):
        assert line in result.stderr
    seen = engine_record(env)["argv"]
    assert seen[2].endswith(f"/snapshots/{repo.refs['main']}")
    assert seen[seen.index("--served-model-name") + 1] == CHECKPOINT
    # The order of the launch: checks, then the download, then the exec.
    err = result.stderr
    assert err.index("preflight (8 of 8") < err.index("weights: fetching") < err.index("download: ")


def test_dry_run_shows_what_the_checks_would_look_at_and_checks_nothing(tmp_path):
    with FakeHub() as hub:
        hub.add(FakeRepo(CHECKPOINT, longcat_like_files()))
        env = preflight_env(
            tmp_path,
            HF_ENDPOINT=hub.url,
            PRECISION="bf16",
            NODE_RANK=1,
            MASTER_IP="192.0.2.10",
            NCCL_SOCKET_IFNAME="^docker,lo",
            CUDA_VISIBLE_DEVICES="0,1,2,3,4,5,6,7",
        )
        del env["MODEL"]
        env["FAKE_NVML_GPUS"] = "no-driver"
        result = launch(env, ["--dry-run"])
        assert hub.requests == []
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("vllm serve meituan-longcat/LongCat-Flash-Chat ")
    assert lines[-2] == "command:"
    text = result.stdout
    assert "before launch (not done by a dry run):" in text
    assert "meituan-longcat/LongCat-Flash-Chat@main" in text
    assert f"{tmp_path}/hf/hub" in text
    assert ">= 8 visible, >= 640 GB" in text and "CUDA_VISIBLE_DEVICES '0,1,2,3,4,5,6,7'" in text
    assert "the interface towards 192.0.2.10" in text
    assert "^docker,lo" in text and "passed through unchanged" in text
    assert "192.0.2.10:13345" in text and "MASTER_WAIT_S=1800 s" in text
    # The hardware rows: this engine and precision's capability rule, MIG, the driver (no
    # image variables here), and the fabric of a multi-node plan.
    (row,) = [line.split() for line in lines if line.strip().startswith("compute capability")]
    assert row[2:] == [">=", "8.0", "vLLM", "bf16"]
    assert "verbs devices (/dev/infiniband)" in text
    assert "unlimited or CAP_IPC_LOCK" in text
    assert "LONGCAT_CUDA_VARIANT unset: not our image" in text
    assert not Path(env["FAKE_ENGINE_RECORD"]).exists()


def test_failing_checks_stop_the_launch_with_exit_3_and_every_fix(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = preflight_env(tmp_path, devices=gpus(H100, 4), PORT=busy.getsockname()[1])
        result = launch(env)
    assert result.returncode == 3
    err = result.stderr
    assert "longcat-deploy: error: preflight failed, the engine was not started:" in err
    assert "  - GPUs: 4 visible" in err and "but GPUS_PER_NODE=8" in err
    assert f"  - 127.0.0.1:{env['PORT']} (PORT) is already in use on this host" in err
    assert "Fix the above, or set PREFLIGHT=warn to start anyway." in err
    assert "Traceback" not in err
    assert not Path(env["FAKE_ENGINE_RECORD"]).exists()


def test_no_gpu_driver_is_reported_in_the_block(tmp_path):
    env = preflight_env(tmp_path)
    env["FAKE_NVML_GPUS"] = "no-driver"
    result = launch(env)
    assert result.returncode == 3
    assert "  - NVML cannot read the GPUs (NVML Shared Library Not Found)" in result.stderr


def test_warn_mode_prints_the_failures_and_starts_anyway(tmp_path):
    env = preflight_env(tmp_path, mode="warn", devices=gpus(H100, 8))
    result = launch(env)
    assert result.returncode == 0, result.stderr
    assert "FAIL gpu memory: GPU memory: the 8 GPUs this node uses have 684 GB" in result.stderr
    assert "PREFLIGHT=warn: starting anyway." in result.stderr
    assert engine_record(env)["argv"][2] == env["MODEL"]


def test_off_runs_no_check(tmp_path):
    env = preflight_env(tmp_path, mode="off")
    env["FAKE_NVML_GPUS"] = "no-driver"
    result = launch(env)
    assert result.returncode == 0, result.stderr
    assert "preflight" not in result.stderr


def test_node_1_waits_for_node_0_and_gets_the_gloo_interface(tmp_path):
    with socket.socket() as node0:
        node0.bind(("127.0.0.1", 0))
        node0.listen()
        env = preflight_env(
            tmp_path,
            mode="warn",
            PRECISION="bf16",
            NODE_RANK=1,
            MASTER_IP="127.0.0.1",
            MASTER_PORT=node0.getsockname()[1],
            NCCL_SOCKET_IFNAME="^docker,lo",
        )
        result = launch(env)
    assert result.returncode == 0, result.stderr
    seen = engine_record(env)["env"]
    assert seen["GLOO_SOCKET_IFNAME"] == "lo"
    assert seen["NCCL_SOCKET_IFNAME"] == "^docker,lo", "passed through unchanged"
    assert "ok   GLOO_SOCKET_IFNAME: GLOO_SOCKET_IFNAME unset: set to lo" in result.stderr
    assert "did not accept" not in result.stderr


def test_users_gloo_interface_is_kept(tmp_path):
    with socket.socket() as node0:
        node0.bind(("127.0.0.1", 0))
        node0.listen()
        env = preflight_env(
            tmp_path,
            mode="warn",
            PRECISION="bf16",
            NODE_RANK=1,
            MASTER_IP="127.0.0.1",
            MASTER_PORT=node0.getsockname()[1],
            GLOO_SOCKET_IFNAME="lo",
        )
        assert launch(env).returncode == 0
    assert engine_record(env)["env"]["GLOO_SOCKET_IFNAME"] == "lo"


def test_node_1_gives_up_on_a_silent_node_0(tmp_path):
    env = preflight_env(
        tmp_path,
        mode="warn",
        PRECISION="bf16",
        NODE_RANK=1,
        MASTER_IP="127.0.0.1",
        MASTER_PORT=free_port(),
        MASTER_WAIT_S=0,
    )
    result = launch(env)
    assert result.returncode == 0  # warn: the engine is started anyway
    assert "warning: node 0 at 127.0.0.1:" in result.stderr
    assert "did not accept a connection within MASTER_WAIT_S=0 s" in result.stderr


def test_checks_run_before_any_download(tmp_path):
    with FakeHub() as hub:
        hub.add(FakeRepo(CHECKPOINT, longcat_like_files()))
        env = preflight_env(tmp_path, HF_ENDPOINT=hub.url)
        del env["MODEL"]
        env["FAKE_NVML_GPUS"] = "no-driver"
        result = launch(env)
        assert result.returncode == 3
        assert hub.requests == [], "a doomed deployment fetches nothing"


def test_unwritable_cache_is_a_preflight_failure_when_files_are_missing(tmp_path):
    (tmp_path / "a-file").write_text("")
    env = preflight_env(tmp_path, HF_HOME=tmp_path / "a-file" / "hf")
    del env["MODEL"]
    result = launch(env)
    assert result.returncode == 3
    assert (
        f"  - the Hugging Face cache {tmp_path}/a-file/hf/hub is not writable "
        "(Not a directory), and checkpoint files are missing from it." in result.stderr
    )


def test_a_complete_cache_is_not_probed_for_writing(tmp_path):
    # A read-only volume holding the whole checkpoint is a valid deployment.
    with FakeHub() as hub:
        repo = hub.add(FakeRepo(CHECKPOINT, longcat_like_files()))
        env = preflight_env(tmp_path, mode="warn", HF_ENDPOINT=hub.url)
        del env["MODEL"]
        first = launch(env)
        assert first.returncode == 0, first.stderr
        assert "ok   HF cache: " in first.stderr
        second = launch(env)
    assert second.returncode == 0, second.stderr
    assert "HF cache" not in second.stderr
    assert repo.refs["main"] in engine_record(env)["argv"][2]


def test_sglang_fp8_on_ampere_exits_3_before_any_download_naming_the_fix(tmp_path):
    with FakeHub() as hub:
        hub.add(FakeRepo(CHECKPOINT, longcat_like_files()))
        env = preflight_env(tmp_path, HF_ENDPOINT=hub.url, ENGINE="sglang", devices=gpus(A100, 8))
        env["PYTHONPATH"] += f"{os.pathsep}{SGLANG_RECORDER}"
        del env["MODEL"]
        result = launch(env)
        assert hub.requests == [], "a doomed deployment fetches nothing"
    assert result.returncode == 3
    err = result.stderr
    assert (
        "  - compute capability 8.0 (NVIDIA A100-SXM4-80GB): SGLang runs the FP8 MoE "
        "experts with Triton FP8 kernels" in err
    )
    assert "serve with ENGINE=vllm" in err and "or set PRECISION=bf16" in err
    assert "Traceback" not in err
    assert not Path(env["FAKE_ENGINE_RECORD"]).exists()


def test_a_driver_older_than_the_images_cuda_exits_3_naming_the_driver(tmp_path):
    env = preflight_env(
        tmp_path,
        LONGCAT_CUDA_VARIANT="cu130",
        LONGCAT_CUDA_DRIVERS="cu130:13.0:580.65.06 cu129:12.9:575.51.03:525.60.13",
    )
    env["FAKE_NVML_GPUS"] = json.dumps({"driver": "570.86.15", "gpus": gpus(H200, 8)})
    result = launch(env)
    assert result.returncode == 3
    assert (
        "  - the NVIDIA driver 570.86.15 is older than this image's CUDA 13.0 (cu130) "
        "needs (driver >= 580.65.06)" in result.stderr
    )
    assert (
        "Install driver >= 580.65.06 on the host; or run the image's cu129 variant" in result.stderr
    )
    assert not Path(env["FAKE_ENGINE_RECORD"]).exists()


def test_mig_exits_3(tmp_path):
    env = preflight_env(tmp_path, devices=gpus(H200, 8, mig_instances=1))
    result = launch(env)
    assert result.returncode == 3
    assert (
        "  - MIG mode is on for GPU 0, 1, 2, 3, 4, 5, 6, 7 (8 of the 8 visible, with 8 "
        "MIG instances in all)" in result.stderr
    )


def test_warnings_print_under_preflight_on_and_the_launch_goes_on(tmp_path):
    env = preflight_env(
        tmp_path,
        LONGCAT_CUDA_VARIANT="cu129",
        LONGCAT_CUDA_DRIVERS="cu130:13.0:580.65.06 cu129:12.9:575.51.03:525.60.13",
    )
    env["FAKE_NVML_GPUS"] = json.dumps({"driver": "550.163.01", "gpus": gpus(H200, 8)})
    result = launch(env)
    assert result.returncode == 0, result.stderr
    assert "  WARN driver: driver 550.163.01 is older than the 575.51.03" in result.stderr
    assert "PREFLIGHT=warn: starting anyway." not in result.stderr
    assert engine_record(env)["argv"][2] == env["MODEL"]


def test_a_multi_node_launch_raises_the_soft_memlock_limit_before_the_exec(tmp_path):
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    if hard != resource.RLIM_INFINITY and hard <= 64 * 1024:
        pytest.fail(f"this host's hard memlock limit ({hard}) leaves no room to test")
    with socket.socket() as node0:
        node0.bind(("127.0.0.1", 0))
        node0.listen()
        env = preflight_env(
            tmp_path,
            mode="warn",
            PRECISION="bf16",
            NODE_RANK=1,
            MASTER_IP="127.0.0.1",
            MASTER_PORT=node0.getsockname()[1],
        )
        result = subprocess.run(
            [sys.executable, "-m", "entrypoint"],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_MEMLOCK, (64 * 1024, hard)),
        )
    assert result.returncode == 0, result.stderr
    assert engine_record(env)["memlock"] == [hard, hard]
    assert "memlock: memlock limit 64 KiB (hard " in result.stderr
    # This host has no HCA: a warning, printed, and the launch goes on.
    assert "  WARN RDMA: no RDMA HCA on this host" in result.stderr


def test_hcas_on_the_host_but_no_verbs_device_exit_3_before_any_download(tmp_path):
    """The host's sysfs lists an HCA (a tmpfs over /sys/class in a private mount namespace,
    as root) and the container has no /dev/infiniband: refused, naming the override."""
    require_root("a private /sys/class")
    with FakeHub() as hub:
        hub.add(FakeRepo("meituan-longcat/LongCat-Flash-Chat", longcat_like_files()))
        env = preflight_env(
            tmp_path,
            HF_ENDPOINT=hub.url,
            PRECISION="bf16",
            MASTER_IP="127.0.0.1",
            MASTER_PORT=free_port(),
            devices=gpus(H100, 8),
        )
        del env["MODEL"]
        script = (
            "mount -t tmpfs tmpfs /sys/class && mkdir -p /sys/class/infiniband/mlx5_0 "
            f"&& exec {sys.executable} -m entrypoint"
        )
        result = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert hub.requests == [], "a doomed deployment fetches nothing"
    assert result.returncode == 3, result.stderr
    assert (
        "  - the host has RDMA HCAs (mlx5_0, /sys/class/infiniband) but this container "
        "has no verbs device (/dev/infiniband/uverbs*)" in result.stderr
    )
    assert "docker compose -f compose/two-node.yaml -f compose/rdma.yaml up -d" in result.stderr
    assert not Path(env["FAKE_ENGINE_RECORD"]).exists()
