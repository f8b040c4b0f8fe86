"""The fabric between the nodes: RDMA devices, the right to pin memory, advice per platform.

A multi-node plan all-reduces across the nodes for every layer of every token. NCCL does
that over InfiniBand or RoCE when it finds a verbs device, and otherwise falls back to
TCP sockets without any error: the deployment comes up and serves far slower than the
hardware allows. Over RDMA, NCCL registers its buffers with the card (``ibv_reg_mr``),
which pins them; the kernel allows that beyond ``RLIMIT_MEMLOCK`` only to a process with
``CAP_IPC_LOCK`` in the initial user namespace (docs/engines.md, "Fabric").

What this module reads, each under an injectable root (``/`` in a container, a directory
tree in the tests):

- ``sys/class/infiniband``: the host's RDMA HCAs (sysfs lists them in every network
  namespace in the kernel's default shared mode);
- ``dev/infiniband/uverbs*``: the verbs devices this container can open;
- ``proc/self/status`` (``CapEff``) and ``proc/self/uid_map``: whether this process holds
  ``CAP_IPC_LOCK`` where the kernel honours it.

``check_fabric`` and ``check_memlock`` judge a plan against that; their advice names what
fits the platform the launcher runs on (``entrypoint.platforms.platform_of``). Standard
library only; ``resource`` is imported by the check that needs it.
"""

from __future__ import annotations

import os

from .outcome import Outcome
from .output import format_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every container start
    from collections.abc import Mapping

    from .plan import Plan

SYS_CLASS_INFINIBAND = "sys/class/infiniband"
DEV_INFINIBAND = "dev/infiniband"
PROC_STATUS = "proc/self/status"
PROC_UID_MAP = "proc/self/uid_map"
# linux/capability.h: "#define CAP_IPC_LOCK 14", a bit of the CapEff mask.
CAP_IPC_LOCK = 14
# The uid_map of the initial user namespace: all 2**32 - 1 ids mapped onto themselves
# (user_namespaces(7)).
INITIAL_UID_MAP = ["0", "0", "4294967295"]


class Fabric:
    """What this container sees of the RDMA fabric and of its own privileges.

    Attributes:
        hcas (list[str]): the host's RDMA devices (``/sys/class/infiniband``), sorted.
        verbs (list[str]): the verbs devices this container has (``/dev/infiniband/uverbs*``).
        ipc_lock (bool): ``CAP_IPC_LOCK`` is in this process's effective capabilities.
        initial_user_namespace (bool): this process runs in the initial user namespace,
            where capabilities count for pinning memory (not so under enroot, rootless
            Docker or Podman, or Docker's userns-remap).
    """

    __slots__ = ("hcas", "verbs", "ipc_lock", "initial_user_namespace")

    def __init__(
        self, hcas: list[str], verbs: list[str], ipc_lock: bool, initial_user_namespace: bool
    ):
        self.hcas = hcas
        self.verbs = verbs
        self.ipc_lock = ipc_lock
        self.initial_user_namespace = initial_user_namespace


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:  # absent: no RDMA driver loaded, or no device given to the container
        return []


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def effective_capabilities(status: str) -> int:
    """The ``CapEff`` mask of a ``/proc/<pid>/status`` text (proc(5)); 0 when absent."""
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name == "CapEff":
            try:
                return int(value.strip(), 16)
            except ValueError:
                return 0
    return 0


def read_fabric(root: str = "/") -> Fabric:
    """Read the fabric and this process's privileges under ``root`` (see the module doc)."""
    verbs = [
        name for name in _listdir(os.path.join(root, DEV_INFINIBAND)) if name.startswith("uverbs")
    ]
    status = _read(os.path.join(root, PROC_STATUS))
    uid_map = _read(os.path.join(root, PROC_UID_MAP)).split()
    return Fabric(
        hcas=_listdir(os.path.join(root, SYS_CLASS_INFINIBAND)),
        verbs=verbs,
        ipc_lock=bool(effective_capabilities(status) >> CAP_IPC_LOCK & 1),
        initial_user_namespace=uid_map == INITIAL_UID_MAP,
    )


def _nccl_ib_disabled(env: Mapping[str, str]) -> bool:
    """``NCCL_IB_DISABLE`` set to a non-zero number (NCCL reads it as an integer)."""
    try:
        return int((env.get("NCCL_IB_DISABLE") or "0").strip()) != 0
    except ValueError:
        return False


def rdma_fix(platform: str, engine: str) -> str:
    """How to give the engine's container the verbs devices, on ``platform``."""
    return {
        "docker": "Add the RDMA override: docker compose -f compose/two-node.yaml -f "
        "compose/rdma.yaml up -d (docker run: --device /dev/infiniband "
        "--cap-add IPC_LOCK).",
        "kubernetes": f"Deploy the RDMA variant, kubectl apply -k deploy/kubernetes/"
        f"{engine}-2node-rdma: it requests the RDMA device resource (python "
        "deploy/kubernetes/generate.py --rdma-resource NAME writes it for your "
        "device plugin's resource name) and adds IPC_LOCK.",
        "slurm": "Under pyxis/enroot the HCAs come from enroot's 99-mellanox hook: set "
        "MELLANOX_VISIBLE_DEVICES=all before sbatch (deploy/slurm/"
        "longcat-2node.sbatch sets it when the node has Mellanox HCAs), or ask the "
        "administrators why enroot hides /dev/infiniband (ENROOT_RESTRICT_DEV).",
    }[platform]


def memlock_fix(platform: str, engine: str, hard: str) -> str:
    """How to let NCCL pin its buffers, on ``platform``; ``hard`` is the hard limit shown."""
    return {
        "docker": "Run the container with --cap-add IPC_LOCK or --ulimit memlock=-1 "
        "(compose: compose/rdma.yaml adds IPC_LOCK; common.yaml asks for "
        "ulimits: memlock: -1, which a Docker daemon whose own limit is lower "
        "cannot grant).",
        "kubernetes": "Kubernetes has no ulimit setting: add the IPC_LOCK capability "
        "(securityContext.capabilities.add: [IPC_LOCK]), as deploy/kubernetes/"
        f"{engine}-2node-rdma does.",
        "slurm": f"Slurm gives each task the submitting shell's soft limit under slurmd's "
        f"hard limit, here {hard}; the launcher already raises the soft limit to "
        "the hard one. Ask the administrators to run slurmd with "
        "LimitMEMLOCK=infinity and to set PropagateResourceLimitsExcept=MEMLOCK "
        "(enroot runs in a user namespace, so CAP_IPC_LOCK does not help there).",
    }[platform]


def check_fabric(
    plan: Plan, env: Mapping[str, str], fabric: Fabric, platform: str
) -> Outcome | None:
    """On a multi-node plan, NCCL can reach the other nodes over RDMA.

    - verbs devices in the container: passes.
    - HCAs on the host, none in the container: fails (NCCL would fall back to TCP sockets
      silently), naming ``rdma_fix`` for ``platform``; a warning instead when
      ``NCCL_IB_DISABLE`` says TCP on purpose.
    - no HCA at all: a warning (TCP sockets, slow) saying how to confirm the transport.

    Returns None on one node (NVLink/PCIe within the node; no fabric involved).
    """
    if not plan.multi_node:
        return None
    hcas = ", ".join(fabric.hcas)
    confirm = (
        "Start with NCCL_DEBUG=INFO to see the transport: the engine's log says "
        "'NCCL INFO Using network IB' over RDMA, 'Using network Socket' over TCP."
    )
    if fabric.verbs:
        return Outcome(
            "RDMA",
            True,
            f"verbs devices {', '.join(fabric.verbs)} (HCAs: {hcas or 'not listed'}):"
            " NCCL can use InfiniBand or RoCE between the nodes",
        )
    if fabric.hcas and _nccl_ib_disabled(env):
        return Outcome(
            "RDMA",
            True,
            f"the host has RDMA HCAs ({hcas}), but NCCL_IB_DISABLE="
            f"{env.get('NCCL_IB_DISABLE', '').strip()}: NCCL uses TCP sockets between "
            "the nodes, much slower than RDMA.",
            warning=True,
        )
    if fabric.hcas:
        return Outcome(
            "RDMA",
            False,
            f"the host has RDMA HCAs ({hcas}, /sys/class/infiniband) but this "
            "container has no verbs device (/dev/infiniband/uverbs*): NCCL would "
            "fall back to TCP sockets without an error and serve many times "
            f"slower. {rdma_fix(platform, plan.engine)} To run over TCP on purpose, "
            "set NCCL_IB_DISABLE=1.",
        )
    return Outcome(
        "RDMA",
        True,
        "no RDMA HCA on this host (/sys/class/infiniband is empty or absent): NCCL "
        "will use TCP sockets between the nodes, much slower than InfiniBand or "
        f"RoCE. If the nodes have HCAs, load their drivers (ib_uverbs). {confirm}",
        warning=True,
    )


def check_memlock(
    plan: Plan,
    limits: tuple[int, int] | None = None,
    *,
    fabric: Fabric | None = None,
    platform: str = "docker",
) -> Outcome:
    """NCCL can pin its RDMA buffers: what a multi-node plan with a verbs device needs.

    Pinning beyond ``RLIMIT_MEMLOCK`` needs ``CAP_IPC_LOCK`` in the initial user namespace
    (Linux ``drivers/infiniband/core/umem.c``, ``ib_umem_get``; docs/engines.md, "Fabric").
    So it passes with an unlimited limit, or with that capability, or without a verbs
    device (TCP sockets lock no memory), or on one node (NVLink/PCIe). Where the soft limit
    is below the hard one, the launcher raises it just before the exec: the outcome's
    ``rlimits`` carries ``RLIMIT_MEMLOCK`` and the check judges the raised limit.

    Args:
        plan: this node's plan.
        limits: (soft, hard) to judge instead of this process's ``resource.getrlimit``.
        fabric: what ``read_fabric`` found (read under ``/`` when None).
        platform: ``"docker"``, ``"kubernetes"`` or ``"slurm"``, for the advice.
    """
    import resource

    soft, hard = limits or resource.getrlimit(resource.RLIMIT_MEMLOCK)
    infinity = resource.RLIM_INFINITY

    def shown(limit: int) -> str:
        return "unlimited" if limit == infinity else format_bytes(limit)

    found = f"memlock limit {shown(soft)} (hard {shown(hard)})"
    if not plan.multi_node:
        return Outcome("memlock", True, f"{found}; one node needs no locked memory")
    rlimits: dict[str, int] = {}
    if soft != hard and soft != infinity and (hard == infinity or soft < hard):
        rlimits = {"RLIMIT_MEMLOCK": hard}
        found += f", raised to {shown(hard)} for the engine"
        soft = hard
    fabric = fabric or read_fabric()
    if not fabric.verbs:
        return Outcome(
            "memlock",
            True,
            f"{found}; no RDMA device in this container, and NCCL over TCP sockets locks no memory",
            rlimits=rlimits,
        )
    if soft == infinity:
        return Outcome("memlock", True, found, rlimits=rlimits)
    if fabric.ipc_lock and fabric.initial_user_namespace:
        return Outcome(
            "memlock",
            True,
            f"{found}; CAP_IPC_LOCK lets NCCL pin its RDMA buffers whatever the limit",
            rlimits=rlimits,
        )
    userns = (
        " This container has CAP_IPC_LOCK, but in a user namespace (enroot, rootless "
        "Docker or Podman, userns-remap), where it does not count."
        if fabric.ipc_lock
        else ""
    )
    return Outcome(
        "memlock",
        False,
        f"{found}; across {plan.nnodes} nodes NCCL pins its buffers for the RDMA "
        "card, which fails beyond the memlock limit without CAP_IPC_LOCK."
        f"{userns} {memlock_fix(platform, plan.engine, shown(hard))}",
        rlimits=rlimits,
    )
