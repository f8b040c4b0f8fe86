"""The fabric on multi-node plans (entrypoint/fabric.py): RDMA devices, CAP_IPC_LOCK and the
memlock limit, judged on real directory trees made here (``sys/class/infiniband``,
``dev/infiniband``, ``proc/self/status``, ``proc/self/uid_map``) and on this host's own."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from entrypoint.execute import set_soft_limits
from entrypoint.fabric import check_fabric, check_memlock, read_fabric
from entrypoint.platforms import platform_of
from tests.preflight.support import plan_for

KiB = 1024
INF = resource.RLIM_INFINITY
# CapEff of a root process in a Docker/containerd container with the default capabilities
# (CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW
# SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP), without and with IPC_LOCK (bit 14) added.
DOCKER_DEFAULT = 0x00000000A80425FB
WITH_IPC_LOCK = DOCKER_DEFAULT | 1 << 14
INITIAL_NS = "         0          0 4294967295\n"
USER_NS = "         0       1000          1\n         1     100000      65536\n"  # enroot-like


def make_tree(
    root: Path, hcas=(), verbs=(), capeff: int = DOCKER_DEFAULT, uid_map: str = INITIAL_NS
) -> str:
    """A directory tree as a container sees it: the host's HCAs in sysfs, the verbs devices
    it was given in /dev, and this process's status and uid map."""
    for hca in hcas:
        (root / "sys/class/infiniband" / hca / "ports/1").mkdir(parents=True)
    if verbs:
        (root / "dev/infiniband").mkdir(parents=True)
        (root / "dev/infiniband/rdma_cm").write_text("")
        for name in verbs:
            (root / "dev/infiniband" / name).write_text("")
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/status").write_text(
        f"Name:\tpython3\nCapInh:\t0000000000000000\nCapPrm:\t{capeff:016x}\n"
        f"CapEff:\t{capeff:016x}\nCapBnd:\t{capeff:016x}\n"
    )
    (root / "proc/self/uid_map").write_text(uid_map)
    return str(root)


def two_nodes(**env):
    return plan_for(PRECISION="bf16", MASTER_IP="127.0.0.1", **env)


# --- reading ----------------------------------------------------------------------------


def test_a_tree_with_hcas_verbs_and_ipc_lock_is_read(tmp_path):
    fabric = read_fabric(
        make_tree(
            tmp_path, hcas=["mlx5_1", "mlx5_0"], verbs=["uverbs1", "uverbs0"], capeff=WITH_IPC_LOCK
        )
    )
    assert fabric.hcas == ["mlx5_0", "mlx5_1"]
    assert fabric.verbs == ["uverbs0", "uverbs1"]  # rdma_cm is not a verbs device
    assert fabric.ipc_lock and fabric.initial_user_namespace


def test_default_capabilities_in_a_user_namespace_are_read(tmp_path):
    fabric = read_fabric(make_tree(tmp_path, uid_map=USER_NS))
    assert fabric.hcas == [] and fabric.verbs == []
    assert not fabric.ipc_lock and not fabric.initial_user_namespace


def test_this_hosts_own_tree_is_read():
    fabric = read_fabric("/")
    assert (
        fabric.hcas == sorted(os.listdir("/sys/class/infiniband"))
        if os.path.isdir("/sys/class/infiniband")
        else fabric.hcas == []
    )
    status = Path("/proc/self/status").read_text()
    cap_eff = int(
        next(line for line in status.splitlines() if line.startswith("CapEff:")).split()[1], 16
    )
    assert fabric.ipc_lock == bool(cap_eff & 1 << 14)


# --- the fabric check -----------------------------------------------------------------


def test_verbs_devices_pass(tmp_path):
    fabric = read_fabric(make_tree(tmp_path, hcas=["mlx5_0"], verbs=["uverbs0"]))
    outcome = check_fabric(two_nodes(), {}, fabric, "docker")
    assert outcome.ok and not outcome.warning
    assert outcome.text == (
        "verbs devices uverbs0 (HCAs: mlx5_0): NCCL can use InfiniBand or RoCE between the nodes"
    )


@pytest.mark.parametrize(
    "platform, fix",
    [
        (
            "docker",
            "Add the RDMA override: docker compose -f compose/two-node.yaml -f "
            "compose/rdma.yaml up -d (docker run: --device /dev/infiniband --cap-add "
            "IPC_LOCK).",
        ),
        (
            "kubernetes",
            "Deploy the RDMA variant, kubectl apply -k deploy/kubernetes/vllm-2node-rdma:",
        ),
        ("slurm", "set MELLANOX_VISIBLE_DEVICES=all before sbatch"),
    ],
)
def test_hcas_on_the_host_without_verbs_in_the_container_fail_naming_the_fix(
    tmp_path, platform, fix
):
    fabric = read_fabric(make_tree(tmp_path, hcas=["mlx5_0", "mlx5_1"]))
    outcome = check_fabric(two_nodes(ENGINE="vllm"), {}, fabric, platform)
    assert not outcome.ok
    assert outcome.text.startswith(
        "the host has RDMA HCAs (mlx5_0, mlx5_1, /sys/class/infiniband) but this container "
        "has no verbs device (/dev/infiniband/uverbs*): NCCL would fall back to TCP sockets "
        "without an error"
    )
    assert fix in outcome.text
    assert outcome.text.endswith("To run over TCP on purpose, set NCCL_IB_DISABLE=1.")


def test_tcp_on_purpose_is_a_warning(tmp_path):
    fabric = read_fabric(make_tree(tmp_path, hcas=["mlx5_0"]))
    outcome = check_fabric(two_nodes(), {"NCCL_IB_DISABLE": "1"}, fabric, "docker")
    assert outcome.ok and outcome.warning
    assert "NCCL_IB_DISABLE=1: NCCL uses TCP sockets between the nodes" in outcome.text


def test_no_hca_at_all_is_a_warning_saying_how_to_confirm(tmp_path):
    fabric = read_fabric(make_tree(tmp_path))
    outcome = check_fabric(two_nodes(), {}, fabric, "docker")
    assert outcome.ok and outcome.warning
    assert outcome.text.startswith(
        "no RDMA HCA on this host (/sys/class/infiniband is empty "
        "or absent): NCCL will use TCP sockets between the nodes"
    )
    assert "NCCL_DEBUG=INFO" in outcome.text and "'Using network Socket'" in outcome.text


def test_one_node_has_no_fabric_check(tmp_path):
    fabric = read_fabric(make_tree(tmp_path, hcas=["mlx5_0"]))
    assert check_fabric(plan_for(), {}, fabric, "docker") is None


# --- memlock ----------------------------------------------------------------------------


def test_one_node_needs_no_locked_memory(tmp_path):
    fabric = read_fabric(make_tree(tmp_path, verbs=["uverbs0"]))
    outcome = check_memlock(plan_for(), (64 * KiB, 64 * KiB), fabric=fabric)
    assert outcome.ok and outcome.text == (
        "memlock limit 64 KiB (hard 64 KiB); one node needs no locked memory"
    )
    assert outcome.rlimits == {}


def test_no_rdma_device_needs_no_locked_memory(tmp_path):
    fabric = read_fabric(make_tree(tmp_path, hcas=["mlx5_0"]))
    outcome = check_memlock(two_nodes(), (64 * KiB, 64 * KiB), fabric=fabric)
    assert outcome.ok
    assert outcome.text == (
        "memlock limit 64 KiB (hard 64 KiB); no RDMA device in this "
        "container, and NCCL over TCP sockets locks no memory"
    )


def test_cap_ipc_lock_passes_whatever_the_limit(tmp_path):
    # What a Kubernetes pod gets from the RDMA variant: the runtime's 64 KiB, plus IPC_LOCK.
    fabric = read_fabric(make_tree(tmp_path, verbs=["uverbs0"], capeff=WITH_IPC_LOCK))
    outcome = check_memlock(two_nodes(), (64 * KiB, 64 * KiB), fabric=fabric, platform="kubernetes")
    assert outcome.ok
    assert outcome.text == (
        "memlock limit 64 KiB (hard 64 KiB); CAP_IPC_LOCK lets NCCL pin "
        "its RDMA buffers whatever the limit"
    )


def test_an_unlimited_limit_passes_without_the_capability(tmp_path):
    fabric = read_fabric(make_tree(tmp_path, verbs=["uverbs0"]))
    outcome = check_memlock(two_nodes(), (INF, INF), fabric=fabric)
    assert outcome.ok and outcome.text == "memlock limit unlimited (hard unlimited)"


def test_a_soft_limit_below_an_unlimited_hard_one_is_raised(tmp_path):
    # Slurm's default: the submitting shell's soft limit under slurmd's unlimited hard one.
    fabric = read_fabric(make_tree(tmp_path, verbs=["uverbs0"], uid_map=USER_NS))
    outcome = check_memlock(two_nodes(), (64 * KiB, INF), fabric=fabric, platform="slurm")
    assert outcome.ok
    assert outcome.text == (
        "memlock limit 64 KiB (hard unlimited), raised to unlimited for the engine"
    )
    assert outcome.rlimits == {"RLIMIT_MEMLOCK": INF}


@pytest.mark.parametrize(
    "platform, fix",
    [
        (
            "docker",
            "Run the container with --cap-add IPC_LOCK or --ulimit memlock=-1 (compose: "
            "compose/rdma.yaml adds IPC_LOCK",
        ),
        (
            "kubernetes",
            "Kubernetes has no ulimit setting: add the IPC_LOCK capability "
            "(securityContext.capabilities.add: [IPC_LOCK]), as deploy/kubernetes/"
            "sglang-2node-rdma does.",
        ),
        (
            "slurm",
            "Slurm gives each task the submitting shell's soft limit under slurmd's hard "
            "limit, here 8 MiB",
        ),
    ],
)
def test_a_limit_without_the_capability_fails_with_advice_for_the_platform(tmp_path, platform, fix):
    fabric = read_fabric(make_tree(tmp_path, hcas=["mlx5_0"], verbs=["uverbs0"]))
    outcome = check_memlock(two_nodes(), (64 * KiB, 8192 * KiB), fabric=fabric, platform=platform)
    assert not outcome.ok
    assert outcome.text.startswith(
        "memlock limit 64 KiB (hard 8 MiB), raised to 8 MiB for the "
        "engine; across 2 nodes NCCL pins its buffers for the RDMA "
        "card, which fails beyond the memlock limit without "
        "CAP_IPC_LOCK."
    )
    assert fix in outcome.text


def test_the_capability_in_a_user_namespace_does_not_count(tmp_path):
    fabric = read_fabric(
        make_tree(tmp_path, verbs=["uverbs0"], capeff=WITH_IPC_LOCK, uid_map=USER_NS)
    )
    outcome = check_memlock(two_nodes(), (64 * KiB, 64 * KiB), fabric=fabric, platform="slurm")
    assert not outcome.ok
    assert "This container has CAP_IPC_LOCK, but in a user namespace" in outcome.text


# --- the platform, and the raise before the exec ----------------------------------------


@pytest.mark.parametrize(
    "env, platform",
    [
        ({}, "docker"),
        ({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, "kubernetes"),
        ({"LWS_WORKER_INDEX": "1"}, "kubernetes"),
        ({"SLURM_JOB_ID": "4242"}, "slurm"),
        ({"SLURM_NODEID": "0"}, "slurm"),
    ],
)
def test_the_platform_is_read_from_its_variables(env, platform):
    assert platform_of(env) == platform


@pytest.fixture
def saved_memlock():
    """Restore this process's RLIMIT_MEMLOCK after the test."""
    saved = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    yield saved
    resource.setrlimit(resource.RLIMIT_MEMLOCK, saved)


def test_set_soft_limits_raises_the_soft_limit_to_the_hard_one(saved_memlock):
    hard = saved_memlock[1]
    if hard != INF and hard < 128 * KiB:
        pytest.fail(f"this host's hard memlock limit ({hard}) leaves no room to test")
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (64 * KiB, hard))
    set_soft_limits({"RLIMIT_MEMLOCK": hard})
    assert resource.getrlimit(resource.RLIMIT_MEMLOCK) == (hard, hard)
    set_soft_limits({})  # nothing to do
    assert resource.getrlimit(resource.RLIMIT_MEMLOCK) == (hard, hard)
