"""Preflight: check that this host can run its part of the plan, before the engine starts.

Loading LongCat-Flash takes tens of minutes; a missing GPU, a 64 MiB ``/dev/shm`` or a
wrong ``MASTER_IP`` otherwise shows up only after that, as an obscure engine error. The
launcher knows the plan, so it checks what the plan needs first and says what to change.

Checks (``run_checks``), all reported together in one block:

- GPUs: the number NVML reports, restricted by ``CUDA_VISIBLE_DEVICES``, is at least
  ``GPUS_PER_NODE``; the memory of the GPUs the engine uses covers this node's share of the
  precision's minimum hardware (``MINIMUM_HARDWARE``); their compute capability is one the
  engine can serve the precision on, and none is in MIG mode; the driver is new enough
  for the image's CUDA variant (the rules: ``entrypoint.compat``).
- ``/dev/shm``: at least ``SHM_MIN_BYTES``.
- fabric (``entrypoint.fabric``), on multi-node plans: the container has the verbs devices
  of the host's RDMA HCAs (a warning when the host has none: NCCL then uses TCP), and NCCL
  may pin its RDMA buffers (``CAP_IPC_LOCK`` or an unlimited memlock limit; the launcher
  raises its soft limit to the hard one before the exec).
- ports: the HTTP port (where this node serves HTTP) and, on node 0 of a multi-node plan,
  ``MASTER_PORT`` can be bound on this host.
- ``MASTER_IP``: on node 0 of a multi-node plan, one of this host's own addresses.
- ``GLOO_SOCKET_IFNAME``: when set, exactly one existing interface; when unset on a
  multi-node plan, set for the engine to the interface that routes to ``MASTER_IP``.
  ``NCCL_SOCKET_IFNAME`` is passed through unchanged (it also takes ``^`` and lists).
- the Hugging Face cache is writable, when files have to be downloaded into it.

Then, after the download, nodes ranked 1 and up wait for node 0 (``wait_for_master``).

A check passes, passes with a warning (printed, never fatal: the deployment works, but
not as well as it could), or fails. ``PREFLIGHT`` decides what a failure does: ``on``
raises ``PreflightError`` (exit status 3; the message lists every failure with its fix),
``warn`` prints the failures and the launch goes on, ``off`` runs nothing here (and so
leaves ``GLOO_SOCKET_IFNAME`` unset).

Only ``os`` and ``sys`` are imported at module level: the launcher runs on every container
start.
``socket``, ``resource``, ``fcntl`` and ``pynvml`` (nvidia-ml-py) are imported by the check
that needs them.
"""

from __future__ import annotations

import os

from .errors import PreflightError
from .outcome import Outcome
from .output import format_bytes, log
from .units import GB, GiB
from .values import join_host_port

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from ipaddress import IPv4Address, IPv6Address
    from types import ModuleType
    from typing import Any

    from .plan import Plan

# The guide's minimum hardware per precision (docs/engines.md, "Checkpoints and minimum
# hardware"): FP8 (about 560 GB of weights) runs on 8 GPUs of
# 141 GB; BF16 (about 1.1 TB) on 16 GPUs of 80 GB, i.e. two nodes. (GPUs, GB per GPU), with
# GB = 10**9 bytes, the unit of those datasheet sizes. NVML reports a little more than the
# datasheet figure (an H100 "80 GB" has 81559 MiB = 85.5e9 bytes), so the reference GPUs
# pass their own row. The deployment needs GPUs x GB in total; each node needs its share,
# total / NNODES, from the GPUs it uses.
MINIMUM_HARDWARE = {"fp8": (8, 141), "bf16": (16, 80)}

# /dev/shm: Docker's default of 64 MiB breaks NCCL (docs/engines.md, "Containers"); NVIDIA's
# container guides start its containers with --shm-size=1g (and DeepSpeed's ds_report
# already warns below 512 MiB). 1 GiB is the floor; `ipc: host` (our compose files) gives
# the host's /dev/shm, half the RAM by default.
SHM_MIN_BYTES = 1 * GiB
SHM_PATH = "/dev/shm"

# How often the wait for node 0 logs, and the longest pause between two connection attempts.
WAIT_LOG_EVERY_S = 30
WAIT_RETRY_S = 2
# How long node 0 retries a MASTER_IP name that does not resolve yet (check_master_ip).
MASTER_RESOLVE_WAIT_S = 30

SYS_CLASS_NET = "/sys/class/net"
PROC_IF_INET6 = "/proc/net/if_inet6"


def chosen_engine_env(outcomes: list[Outcome]) -> dict[str, str]:
    """The variables the checks in ``outcomes`` chose for the engine, merged."""
    return {name: value for outcome in outcomes for name, value in outcome.engine_env.items()}


def chosen_rlimits(outcomes: list[Outcome]) -> dict[str, int]:
    """The soft resource limits the checks in ``outcomes`` chose for the engine, merged."""
    return {name: value for outcome in outcomes for name, value in outcome.rlimits.items()}


# --- GPUs -------------------------------------------------------------------------------


class Gpu:
    """One GPU as NVML reports it.

    Attributes:
        index (int): NVML's index (PCI bus order).
        name (str): the product name, e.g. ``"NVIDIA H200"``.
        uuid (str): ``GPU-...``.
        memory (int): total memory in bytes.
        capability (tuple[int, int] | None): CUDA compute capability (major, minor).
        mig_instances (int | None): the MIG devices on it when MIG mode is on; None when
            MIG is off or not supported.
    """

    __slots__ = ("index", "name", "uuid", "memory", "capability", "mig_instances")

    def __init__(
        self,
        index: int,
        name: str,
        uuid: str,
        memory: int,
        capability: tuple[int, int] | None = None,
        mig_instances: int | None = None,
    ):
        self.index, self.name, self.uuid, self.memory = index, name, uuid, memory
        self.capability = capability
        self.mig_instances = mig_instances


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _mig_instances(nvml: ModuleType, handle: Any) -> int | None:
    """The MIG devices of one GPU when MIG mode is on, else None.

    ``nvmlDeviceGetMigMode`` returns ``[current, pending]``; GPUs without MIG answer
    NVML_ERROR_NOT_SUPPORTED (and drivers without the call, FUNCTION_NOT_FOUND): no MIG.
    The MIG devices are the indices below ``nvmlDeviceGetMaxMigDeviceCount`` for which
    ``nvmlDeviceGetMigDeviceHandleByIndex`` finds one (NVML_ERROR_NOT_FOUND where a slot
    is empty). nvidia-ml-py's pynvml.py, those functions; docs/engines.md, "GPUs and
    drivers".
    """
    try:
        current = nvml.nvmlDeviceGetMigMode(handle)[0]
    except nvml.NVMLError:
        return None
    if current != nvml.NVML_DEVICE_MIG_ENABLE:
        return None
    found = 0
    for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except nvml.NVMLError as error:
            if error.value != nvml.NVML_ERROR_NOT_FOUND:
                raise
            continue
        found += 1
    return found


def read_nvml(nvml: ModuleType) -> tuple[str | None, list[Gpu]]:
    """The driver version and every GPU NVML reports, through the ``pynvml`` module ``nvml``.

    Returns:
        ``(driver, gpus)``: the driver version (``nvmlSystemGetDriverVersion``, e.g.
        ``"580.65.06"``; None if NVML does not tell), and the GPUs in NVML's order.

    Raises:
        nvml.NVMLError: when NVML cannot be initialised or the GPUs cannot be counted.
    """
    nvml.nvmlInit()
    try:
        try:
            driver: str | None = _text(nvml.nvmlSystemGetDriverVersion())
        except nvml.NVMLError:
            driver = None
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
            gpus.append(
                Gpu(
                    index,
                    _text(nvml.nvmlDeviceGetName(handle)),
                    _text(nvml.nvmlDeviceGetUUID(handle)),
                    int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
                    (int(major), int(minor)),
                    _mig_instances(nvml, handle),
                )
            )
        return driver, gpus
    finally:
        nvml.nvmlShutdown()


def visible_gpus(gpus: list[Gpu], cuda_visible_devices: str | None) -> list[Gpu]:
    """The GPUs CUDA shows the engine, in its order, given ``CUDA_VISIBLE_DEVICES``.

    NVML ignores ``CUDA_VISIBLE_DEVICES``; CUDA reads it as a comma list of indices or GPU
    UUIDs (``GPU-...``, a unique prefix is enough) and, like CUDA, this stops at the first
    entry it cannot use (``-1``, an index out of range, an unknown or repeated device, a
    MIG instance). Unset means every GPU; empty means none. Indices are taken in NVML's
    (PCI bus) order, which is CUDA's order on the identical GPUs of a serving node.
    """
    if cuda_visible_devices is None:
        return list(gpus)
    chosen: list[Gpu] = []
    for token in cuda_visible_devices.split(","):
        token = token.strip()
        if token.isascii() and token.isdigit() and int(token) < len(gpus):
            gpu = gpus[int(token)]
        elif token.startswith("GPU-"):
            matches = [g for g in gpus if g.uuid.startswith(token)]
            if len(matches) != 1:
                break
            gpu = matches[0]
        else:
            break
        if gpu in chosen:
            break
        chosen.append(gpu)
    return chosen


def required_gpu_memory(precision: str, nnodes: int) -> int:
    """Bytes of GPU memory one node needs: its share of ``MINIMUM_HARDWARE[precision]``."""
    count, gb = MINIMUM_HARDWARE[precision]
    return -(-count * gb * GB // nnodes)  # ceiling division


def _gpu_summary(gpus: list[Gpu]) -> str:
    counts: dict[tuple[str, int], int] = {}
    for gpu in gpus:
        counts[(gpu.name, gpu.memory)] = counts.get((gpu.name, gpu.memory), 0) + 1
    return (
        ", ".join(f"{n} x {name} ({memory / GB:.1f} GB)" for (name, memory), n in counts.items())
        or "none"
    )


def _engine_name(engine: str) -> str:
    return {"sglang": "SGLang", "vllm": "vLLM"}.get(engine, engine)


def check_capability(plan: Plan, used: list[Gpu]) -> Outcome | None:
    """The compute capability of the GPUs used against ``compat.CAPABILITY_RULES``.

    Returns None when NVML gave no capability. A GPU below a refusing rule's minimum is
    a failure naming the fix (the other engine, or the other precision); below a warning
    rule's, a warning.
    """
    from .compat import CAPABILITY_RULES, capability_text, failed_rule

    known = [g for g in used if g.capability is not None]
    if not known:
        return None
    lowest = min(known, key=lambda g: g.capability or (0, 0))
    capability = lowest.capability or (0, 0)
    shown = f"compute capability {capability_text(capability)} ({lowest.name})"
    who = f"{_engine_name(plan.engine)} with PRECISION={plan.precision}"
    rule = failed_rule(plan.engine, plan.precision, capability)
    if rule is not None and rule.refuse:
        return Outcome("compute capability", False, f"{shown}: {rule.why}. For {who}, {rule.fix}.")
    if rule is not None:
        return Outcome(
            "compute capability", True, f"{shown}: {rule.why}. {rule.fix}.", warning=True
        )
    minimums = [
        r.minimum
        for r in CAPABILITY_RULES
        if r.engine == plan.engine and plan.precision in r.precisions
    ]
    if not minimums:
        return Outcome("compute capability", True, f"{shown}; {who} sets no minimum of its own")
    return Outcome(
        "compute capability", True, f"{shown} >= {capability_text(max(minimums))}, what {who} needs"
    )


def check_mig(visible: list[Gpu], cuda_visible_devices: str | None) -> Outcome | None:
    """Refuse MIG: a GPU in MIG mode, or MIG devices named in ``CUDA_VISIBLE_DEVICES``.

    A CUDA process enumerates at most one MIG device (NVIDIA's MIG user guide, "Running
    CUDA Applications on Bare-Metal"), and LongCat-Flash spreads one model over whole
    GPUs with tensor parallelism (docs/engines.md, "GPUs and drivers"). Returns None when
    no MIG is involved.
    """
    in_mig = [g for g in visible if g.mig_instances is not None]
    named = [
        t.strip() for t in (cuda_visible_devices or "").split(",") if t.strip().startswith("MIG-")
    ]
    if not in_mig and not named:
        return None
    if in_mig:
        indices = ", ".join(str(g.index) for g in in_mig)
        instances = sum(g.mig_instances or 0 for g in in_mig)
        found = (
            f"MIG mode is on for GPU {indices} ({len(in_mig)} of the {len(visible)} "
            f"visible, with {instances} MIG instance{'s' if instances != 1 else ''} "
            "in all)"
        )
        fix = (
            f"Turn MIG off on this node (as root, with the GPUs idle: nvidia-smi -i "
            f"{in_mig[0].index} -mig 0, for each GPU, then reset them) or give the "
            "container GPUs without MIG"
        )
    else:
        found = f"CUDA_VISIBLE_DEVICES names MIG devices ({', '.join(named)})"
        fix = "Set CUDA_VISIBLE_DEVICES to whole GPUs (indices or GPU- UUIDs), or unset it"
    return Outcome(
        "MIG",
        False,
        f"{found}: a CUDA process uses at most one MIG instance, and LongCat-Flash "
        "needs whole GPUs (tensor parallelism over the full memory of each). "
        f"{fix}.",
    )


def check_driver(plan: Plan, driver: str | None, env: Mapping[str, str]) -> Outcome:
    """The NVIDIA driver against the CUDA variant this image records (``compat``)."""
    from .compat import driver_verdict

    if driver is None:
        return Outcome("driver", True, "NVML reports no driver version; not checked")
    verdict, text = driver_verdict(driver, plan.engine, env)
    return Outcome("driver", verdict != "fail", text, warning=verdict == "warn")


def check_gpus(plan: Plan, env: Mapping[str, str]) -> list[Outcome]:
    """The GPUs and the driver, read from NVML (``import pynvml``, nvidia-ml-py).

    Outcomes, in this order: ``gpus`` (count, honouring ``CUDA_VISIBLE_DEVICES``),
    ``MIG`` (only when MIG is involved: refused), then, when there are enough GPUs,
    ``gpu memory`` and ``compute capability`` of the ``GPUS_PER_NODE`` GPUs used, and
    ``driver`` (against the image's CUDA variant).
    """
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    shown_cvd = "unset" if cvd is None else repr(cvd)
    try:
        import pynvml
    except ImportError:
        return [
            Outcome(
                "gpus",
                False,
                "cannot count GPUs: the nvidia-ml-py package (module pynvml) is not "
                "installed; the longcat-deploy images ship it. Install nvidia-ml-py, or "
                "set PREFLIGHT=warn to start without this check.",
            )
        ]
    try:
        driver, every = read_nvml(pynvml)
    except pynvml.NVMLError as error:
        return [
            Outcome(
                "gpus",
                False,
                f"NVML cannot read the GPUs ({error}): this container sees no NVIDIA "
                "driver or GPU. Start it with the NVIDIA runtime and the GPUs (docker "
                "run --gpus all; compose: deploy.resources.reservations.devices with "
                "driver: nvidia).",
            )
        ]
    visible = visible_gpus(every, cvd)
    need = plan.gpus_per_node
    found = (
        f"{len(visible)} visible ({_gpu_summary(visible)}; NVML reports {len(every)}, "
        f"CUDA_VISIBLE_DEVICES {shown_cvd})"
    )
    mig = check_mig(visible, cvd)
    if len(visible) < need:
        outcomes = [
            Outcome(
                "gpus",
                False,
                f"GPUs: {found}, but GPUS_PER_NODE={need}. Give the container "
                "all the node's GPUs (docker run --gpus all), correct "
                "CUDA_VISIBLE_DEVICES, or set GPUS_PER_NODE to the number this "
                "node has.",
            )
        ]
        return outcomes + ([mig] if mig else []) + [check_driver(plan, driver, env)]
    used = visible[:need]
    have = sum(g.memory for g in used)
    want = required_gpu_memory(plan.precision, plan.nnodes)
    count, gb = MINIMUM_HARDWARE[plan.precision]
    basis = (
        f"PRECISION={plan.precision} needs {count} x {gb} GB = {count * gb} GB of GPU "
        f"memory (the guide's minimum hardware), {want / GB:.0f} GB on each of "
        f"NNODES={plan.nnodes}"
    )
    outcomes = [Outcome("gpus", True, found)] + ([mig] if mig else [])
    if have < want:
        outcomes.append(
            Outcome(
                "gpu memory",
                False,
                f"GPU memory: the {need} GPUs this node uses have {have / GB:.0f} GB in total; "
                f"{basis}. Use GPUs with more memory, or spread the deployment over more nodes "
                "(NNODES)" + (", or serve PRECISION=fp8" if plan.precision == "bf16" else "") + ".",
            )
        )
    else:
        outcomes.append(
            Outcome(
                "gpu memory",
                True,
                f"{have / GB:.0f} GB on {need} GPUs >= {want / GB:.0f} GB ({basis})",
            )
        )
    capability = check_capability(plan, used)
    if capability is not None:
        outcomes.append(capability)
    outcomes.append(check_driver(plan, driver, env))
    return outcomes


# --- host limits ------------------------------------------------------------------------


def check_shm(path: str = SHM_PATH) -> Outcome:
    """``/dev/shm`` (``path``) holds at least ``SHM_MIN_BYTES``."""
    try:
        stat = os.statvfs(path)
    except OSError as error:
        return Outcome(
            "/dev/shm",
            False,
            f"{path} cannot be read ({error.strerror}); NCCL needs shared memory "
            "there. Run the container with --ipc=host (compose: ipc: host).",
        )
    size = stat.f_blocks * stat.f_frsize
    if size < SHM_MIN_BYTES:
        return Outcome(
            "/dev/shm",
            False,
            f"{path} is {format_bytes(size)}; NCCL and the engine's worker processes "
            f"need at least {format_bytes(SHM_MIN_BYTES)} (Docker's default 64 MiB "
            "breaks NCCL). Run the container with --ipc=host (compose: ipc: host) "
            "or --shm-size=16g.",
        )
    return Outcome(
        "/dev/shm", True, f"{path} is {format_bytes(size)} >= {format_bytes(SHM_MIN_BYTES)}"
    )


# --- network ----------------------------------------------------------------------------


def _ip(text: str) -> IPv4Address | IPv6Address:
    import ipaddress

    return ipaddress.ip_address(text.split("%", 1)[0])


def interface_addresses() -> dict[str, str]:
    """This host's addresses, each mapped to its interface name.

    IPv4 from the SIOCGIFCONF ioctl (every address, aliases included), IPv6 from
    ``/proc/net/if_inet6``. Addresses are in their compressed text form.
    """
    import array
    import fcntl
    import socket
    import struct

    found: dict[str, str] = {}
    siocgifconf, ifreq_size = 0x8912, 40  # linux/sockios.h; sizeof(struct ifreq) on 64-bit
    slots = 64
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        while True:
            buffer = array.array("B", bytes(ifreq_size * slots))
            request = struct.pack("iL", len(buffer), buffer.buffer_info()[0])
            length = struct.unpack("iL", fcntl.ioctl(sock.fileno(), siocgifconf, request))[0]
            if length < len(buffer):
                break
            slots *= 4
    data = buffer.tobytes()[:length]
    for offset in range(0, length, ifreq_size):
        name = data[offset : offset + 16].split(b"\0", 1)[0].decode()
        address = socket.inet_ntoa(data[offset + 20 : offset + 24])
        found[address] = name.split(":", 1)[0]  # "eth0:1" is an alias label of eth0
    try:
        with open(PROC_IF_INET6) as f:
            for line in f:
                fields = line.split()
                if len(fields) == 6:
                    hexa = fields[0]
                    text = ":".join(hexa[i : i + 4] for i in range(0, 32, 4))
                    found[str(_ip(text))] = fields[5]
    except OSError:  # no IPv6 in this kernel or namespace
        pass
    return found


def network_interfaces() -> list[str]:
    """The names of this host's network interfaces (``/sys/class/net``)."""
    try:
        return sorted(os.listdir(SYS_CLASS_NET))
    except OSError:
        import socket

        return sorted(name for _, name in socket.if_nameindex())


def _resolve(host: str) -> list[str]:
    """The addresses ``host`` (an address or a DNS name) resolves to here.

    Raises:
        OSError: (socket.gaierror) when it does not resolve.
    """
    import socket

    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(_ip(str(info[4][0]))) for info in infos))


def _is_local(address: str, local: dict[str, str]) -> str | None:
    """The interface holding ``address`` on this host, or ``None``."""
    if address in local:
        return local[address]
    if _ip(address).is_loopback:  # all of 127.0.0.0/8 and ::1 are this host's, on lo
        return next((name for a, name in local.items() if _ip(a).is_loopback), "lo")
    return None


def _local_list(local: dict[str, str]) -> str:
    return ", ".join(f"{address} on {name}" for address, name in local.items()) or "none"


def check_master_ip(
    plan: Plan,
    resolve_wait_s: float = MASTER_RESOLVE_WAIT_S,
    *,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> Outcome:
    """On node 0, ``MASTER_IP`` is one of this host's addresses.

    A name that does not resolve yet is retried for ``resolve_wait_s`` seconds: the DNS
    record of a LeaderWorkerSet leader (``LWS_LEADER_ADDRESS``, served by the set's headless
    Service) can appear a few seconds after the pod starts.
    """
    import time

    sleep, clock = sleep or time.sleep, clock or time.monotonic
    deadline = clock() + resolve_wait_s
    while True:
        try:
            addresses = _resolve(plan.master_host)
            break
        except OSError as error:
            if clock() >= deadline:
                return Outcome(
                    "MASTER_IP",
                    False,
                    f"MASTER_IP={plan.master_ip} does not resolve on this host "
                    f"({error}; tried for {resolve_wait_s:g} s). Set MASTER_IP to "
                    "this node's address (node 0), the same on every node.",
                )
            sleep(min(WAIT_RETRY_S, max(deadline - clock(), 0)))
    local = interface_addresses()
    for address in addresses:
        interface = _is_local(address, local)
        if interface:
            via = "" if address == plan.master_ip else f" ({address})"
            return Outcome(
                "MASTER_IP", True, f"MASTER_IP={plan.master_ip}{via} is this host's, on {interface}"
            )
    resolved = "" if addresses == [plan.master_ip] else f" ({', '.join(addresses)})"
    return Outcome(
        "MASTER_IP",
        False,
        f"MASTER_IP={plan.master_ip}{resolved} is not an address of "
        f"this host, which has {_local_list(local)}. Node 0 must be the host at "
        "MASTER_IP: set MASTER_IP to this node's address, reachable from the other "
        "nodes. If that is already so, this container is not on the host's network: "
        "run it with --network host (compose: network_mode: host).",
    )


def route_interface(host: str, port: int) -> tuple[str, str]:
    """The interface (and its address) this host would use to reach ``host``.

    Connects a UDP socket (no packet is sent) and looks up the local address the kernel
    chose.

    Raises:
        OSError: when ``host`` does not resolve or no route leads there.
        LookupError: when the chosen address belongs to no interface.
    """
    import socket

    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, _, _, _, sockaddr = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect(sockaddr)
        address = str(_ip(sock.getsockname()[0]))
    interface = _is_local(address, interface_addresses())
    if interface is None:
        raise LookupError(f"the local address {address} belongs to no interface")
    return interface, address


def check_gloo(plan: Plan, env: Mapping[str, str]) -> Outcome | None:
    """``GLOO_SOCKET_IFNAME``: one existing interface; chosen for multi-node plans if unset.

    When it chooses, the outcome's ``engine_env`` holds ``GLOO_SOCKET_IFNAME``. Returns
    ``None`` when there is nothing to check (one node, variable unset).
    """
    value = (env.get("GLOO_SOCKET_IFNAME") or "").strip()
    interfaces = network_interfaces()
    if value:
        if "," in value or value.startswith("^"):
            return Outcome(
                "GLOO_SOCKET_IFNAME",
                False,
                f"GLOO_SOCKET_IFNAME={value!r} is a list; Gloo takes one interface "
                "name (lists and ^exclusions are NCCL_SOCKET_IFNAME syntax). Set it "
                f"to one of: {', '.join(interfaces)}.",
            )
        if value not in interfaces:
            return Outcome(
                "GLOO_SOCKET_IFNAME",
                False,
                f"GLOO_SOCKET_IFNAME={value!r} is not an interface of this host "
                f"(interfaces: {', '.join(interfaces)}). Set it to the interface "
                "the other nodes reach this one on, or unset it to let the launcher "
                "choose the one that routes to MASTER_IP.",
            )
        return Outcome("GLOO_SOCKET_IFNAME", True, f"GLOO_SOCKET_IFNAME={value} exists")
    if not plan.multi_node:
        return None
    try:
        interface, address = route_interface(plan.master_host, plan.master_port)
    except (OSError, LookupError) as error:
        return Outcome(
            "GLOO_SOCKET_IFNAME",
            False,
            f"GLOO_SOCKET_IFNAME is unset and no interface routes to MASTER_IP="
            f"{plan.master_ip} ({error}). Set GLOO_SOCKET_IFNAME to the interface "
            f"the other nodes reach this one on (interfaces: {', '.join(interfaces)}).",
        )
    return Outcome(
        "GLOO_SOCKET_IFNAME",
        True,
        f"GLOO_SOCKET_IFNAME unset: set to {interface} (this host's {address}), "
        f"the interface that routes to MASTER_IP={plan.master_ip}",
        engine_env={"GLOO_SOCKET_IFNAME": interface},
    )


def _wildcard(host: str | None) -> str:
    return "::" if host and ":" in host else "0.0.0.0"


def port_in_use(host: str, port: int) -> OSError | None:
    """Bind a TCP socket to ``host:port`` and release it; the error when that fails.

    ``SO_REUSEADDR`` is set, as servers set it, so connections lingering in TIME_WAIT do
    not count; a socket listening there does.
    """
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as error:
        return error
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(sockaddr)
        except OSError as error:
            return error
    return None


def _ip_or_none(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return _ip(text)
    except ValueError:
        return None


def _port_outcome(name: str, host: str, port: int, variable: str, fix: str) -> Outcome:
    import errno
    import socket

    error = port_in_use(host, port)
    where = join_host_port(host, port)
    if error is None:
        return Outcome(name, True, f"{where} ({variable}) is free")
    if error.errno == errno.EADDRINUSE:
        return Outcome(
            name,
            False,
            f"{where} ({variable}) is already in use on this host: another server, "
            f"or an earlier container still running. Stop it, or {fix}.",
        )
    address_fix = "Set HOST to 0.0.0.0 or to one of this host's addresses."
    if isinstance(error, socket.gaierror):
        return Outcome(
            name,
            False,
            f"{where} ({variable}) cannot be bound: HOST={host} does not "
            f"resolve on this host ({error.strerror}). {address_fix}",
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return Outcome(
            name,
            False,
            f"{where} ({variable}) cannot be bound: {host} is not an address of "
            f"this host. {address_fix}",
        )
    if (
        error.errno == errno.EINVAL
        and "%" not in host
        and _ip_or_none(host) is not None
        and _ip(host).is_link_local
    ):
        return Outcome(
            name,
            False,
            f"{where} ({variable}) cannot be bound: HOST={host} is a link-local "
            f"address, which needs its interface as a scope (HOST={host}%eth0). "
            f"{address_fix}",
        )
    return Outcome(name, False, f"{where} ({variable}) cannot be bound ({error}); {fix}.")


def check_ports(plan: Plan) -> list[Outcome]:
    """The HTTP port where this node serves HTTP; on node 0 of several, MASTER_PORT too."""
    outcomes = []
    if plan.serves_http:
        outcomes.append(
            _port_outcome("HTTP port", plan.host, plan.port, "PORT", "set PORT to a free port")
        )
    if plan.multi_node and plan.node_rank == 0:
        role = "SGLang dist-init" if plan.engine == "sglang" else "vLLM data-parallel RPC"
        outcomes.append(
            _port_outcome(
                f"{role} port",
                _wildcard(plan.master_ip),
                plan.master_port,
                "MASTER_PORT",
                "set MASTER_PORT to a free port, the same on every node",
            )
        )
    return outcomes


# --- the Hugging Face cache ----------------------------------------------------------------


def check_writable(directory: str) -> Outcome:
    """``directory`` exists or can be created, and a file can be written in it.

    Leaves the file system as it found it: the probe file is removed, and so are the
    directories the probe had to create (deepest first, each only while empty), whether the
    check passes or not; the download makes them when it runs (``entrypoint.transfer``,
    ``entrypoint.lease``), so a launch that preflight then refuses leaves nothing behind.
    """
    import tempfile

    missing = []  # the directories makedirs will create, deepest first
    path = os.path.abspath(directory)
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        missing.append(path)
        path = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".longcat-deploy-probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        return Outcome(
            "HF cache",
            False,
            f"the Hugging Face cache {directory} is not writable ({error.strerror}), "
            "and checkpoint files are missing from it. Mount a writable volume at "
            "HF_HOME, or fill the cache elsewhere and mount it with HF_HUB_OFFLINE=1.",
        )
    finally:
        for made in missing:
            try:
                os.rmdir(made)
            except OSError:  # never made, or no longer empty (another node's download)
                break
    return Outcome("HF cache", True, f"{directory} is writable")


# --- running them -----------------------------------------------------------------------


def collect(
    plan: Plan, env: Mapping[str, str], download_to: str | None = None, root: str = "/"
) -> list[Outcome]:
    """Run every check that applies to ``plan`` on this host; return their outcomes.

    Args:
        plan: this node's plan.
        env: the environment (``CUDA_VISIBLE_DEVICES``, ``GLOO_SOCKET_IFNAME``, the
            platform's variables, ``NCCL_IB_DISABLE``).
        download_to: the cache files will be downloaded into, when some are missing.
        root: where ``/sys``, ``/dev`` and ``/proc`` are read for the fabric (tests).
    """
    from .fabric import check_fabric, check_memlock, read_fabric
    from .platforms import platform_of

    outcomes = check_gpus(plan, env)
    outcomes.append(check_shm())
    fabric = read_fabric(root)
    platform = platform_of(env)
    outcomes.append(check_memlock(plan, fabric=fabric, platform=platform))
    rdma = check_fabric(plan, env, fabric, platform)
    if rdma is not None:
        outcomes.append(rdma)
    outcomes.extend(check_ports(plan))
    if plan.multi_node and plan.node_rank == 0:
        outcomes.append(check_master_ip(plan))
    gloo = check_gloo(plan, env)
    if gloo is not None:
        outcomes.append(gloo)
    if download_to is not None:
        outcomes.append(check_writable(download_to))
    return outcomes


def report(outcomes: list[Outcome], mode: str) -> None:
    """Print the outcomes as one block; act on failures as ``mode`` says.

    Each line is marked ``ok``, ``WARN`` (passed with a warning) or ``FAIL``. Under
    ``mode == "on"`` a failure stops the launch: the block then lists what passed and the
    warnings, and the error lists the failures with their fixes.

    Raises:
        PreflightError: ``mode == "on"`` and a check failed (exit status 3).
    """
    failures = [o for o in outcomes if not o.ok]
    stop = bool(failures) and mode == "on"
    lines = [f"preflight ({len(outcomes) - len(failures)} of {len(outcomes)} checks passed):"]
    for outcome in outcomes:
        if stop and not outcome.ok:
            continue  # in the error below
        mark = "FAIL" if not outcome.ok else "WARN" if outcome.warning else "ok  "
        lines.append(f"  {mark} {outcome.name}: {outcome.text}")
    if failures and not stop:
        lines.append("  PREFLIGHT=warn: starting anyway.")
    log("\n".join(lines))
    if stop:
        raise PreflightError([o.text for o in failures])


def run_checks(
    plan: Plan, env: Mapping[str, str], mode: str, download_to: str | None = None, root: str = "/"
) -> list[Outcome]:
    """``collect`` then ``report``; nothing at all when ``mode == "off"``.

    Raises:
        PreflightError: ``mode == "on"`` and a check failed (exit status 3).
    """
    if mode == "off":
        return []
    outcomes = collect(plan, env, download_to, root)
    report(outcomes, mode)
    return outcomes


def wait_for_master(
    plan: Plan,
    wait_s: int,
    mode: str,
    *,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> bool:
    """On nodes ranked 1 and up, wait until ``MASTER_IP:MASTER_PORT`` accepts TCP connections.

    Node 0 opens that port only once its engine starts, after its own download, so this
    waits up to ``wait_s`` seconds (``MASTER_WAIT_S``), logging every ``WAIT_LOG_EVERY_S``.
    A probe connects and closes at once. Does nothing on node 0, on one node, or when
    ``mode == "off"``.

    Args:
        sleep, clock: ``time.sleep`` and ``time.monotonic`` unless given (tests).

    Returns:
        True when node 0 answered (or there was nothing to wait for), False when it did not
        and ``mode == "warn"``.

    Raises:
        PreflightError: node 0 did not answer within ``wait_s`` and ``mode == "on"``.
    """
    if mode == "off" or not plan.multi_node or plan.node_rank == 0:
        return True
    import socket
    import time

    sleep = sleep or time.sleep
    clock = clock or time.monotonic
    target = join_host_port(plan.master_host, plan.master_port)
    start = clock()
    deadline = start + wait_s
    next_log = start
    attempts = 0
    while True:
        attempts += 1
        now = clock()
        try:
            timeout = max(0.1, min(5.0, deadline - now))
            with socket.create_connection((plan.master_host, plan.master_port), timeout=timeout):
                pass
            if attempts > 1:
                log(f"node 0 at {target} accepts connections after {clock() - start:.0f} s")
            return True
        except OSError as error:
            last = error.strerror or str(error)
        now = clock()
        if now >= deadline:
            break
        if now >= next_log:
            log(
                f"waiting for node 0 at {target} (MASTER_IP:MASTER_PORT) to accept "
                f"connections: {last}; {now - start:.0f} s of MASTER_WAIT_S={wait_s} s"
            )
            next_log = now + WAIT_LOG_EVERY_S
        sleep(min(WAIT_RETRY_S, deadline - now))
    message = (
        f"node 0 at {target} (MASTER_IP:MASTER_PORT) did not accept a connection within "
        f"MASTER_WAIT_S={wait_s} s ({attempts} attempts; last: {last}). Start node 0 "
        "(it downloads the checkpoint before it listens), check that MASTER_IP is node "
        "0's address as this node reaches it and that MASTER_PORT matches node 0's, "
        "check firewalls between the nodes, or raise MASTER_WAIT_S."
    )
    if mode == "on":
        raise PreflightError([message])
    log(f"warning: {message} PREFLIGHT=warn: starting anyway.")
    return False


# --- the dry run ------------------------------------------------------------------------


def _describe_gpu_rules(plan: Plan, env: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """Dry-run rows for the compute capability, MIG and the driver (``compat``)."""
    from .compat import (
        CAPABILITY_RULES,
        CUDA_DRIVERS_ENV,
        CUDA_VARIANT_ENV,
        capability_text,
        parse_cuda_drivers,
    )

    who = f"{_engine_name(plan.engine)} {plan.precision}"
    rules = [
        r for r in CAPABILITY_RULES if r.engine == plan.engine and plan.precision in r.precisions
    ]
    rows = [
        (
            "  compute capability",
            "; ".join(
                f">= {capability_text(r.minimum)}"
                if r.refuse
                else f"< {capability_text(r.minimum)} warns"
                for r in rules
            )
            or "no minimum",
            who,
        ),
        ("  MIG", "off", "whole GPUs (tensor parallel)"),
    ]
    variant = env.get(CUDA_VARIANT_ENV) or ""
    listed = {v.name: v for v in parse_cuda_drivers(env.get(CUDA_DRIVERS_ENV) or "") or []}
    if variant in listed:
        rows.append(
            (
                "  driver",
                listed[variant].needs(),
                f"this image's CUDA {listed[variant].toolkit} ({variant})",
            )
        )
    else:
        rows.append(("  driver", "not compared", f"{CUDA_VARIANT_ENV} unset: not our image"))
    return rows


def describe(
    plan: Plan, values: Mapping[str, Any], env: Mapping[str, str]
) -> list[tuple[str, str, str]]:
    """What the launch would check, for the dry run: (name, what, why) rows. Checks nothing.

    Args:
        plan: this node's plan.
        values: the settings' values (``PREFLIGHT``, ``DOWNLOAD``, ``MASTER_WAIT_S``, ...).
        env: the environment.
    """
    from .weights import describe as describe_weights

    rows = describe_weights(plan, values, env)
    mode = values["PREFLIGHT"]
    effect = {
        "on": "a failure stops the launch (exit 3)",
        "warn": "failures are printed as warnings",
        "off": "skipped",
    }[mode]
    rows.append(("preflight", mode, f"PREFLIGHT: {effect}"))
    if mode == "off":
        return rows
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    want = required_gpu_memory(plan.precision, plan.nnodes)
    count, gb = MINIMUM_HARDWARE[plan.precision]
    rows.append(
        (
            "  gpus",
            f">= {plan.gpus_per_node} visible, >= {want / GB:.0f} GB",
            f"NVML; CUDA_VISIBLE_DEVICES {'unset' if cvd is None else repr(cvd)}; "
            f"{plan.precision}: {count} x {gb} GB over {plan.nnodes} node(s)",
        )
    )
    rows.extend(_describe_gpu_rules(plan, env))
    rows.append(("  /dev/shm", f">= {format_bytes(SHM_MIN_BYTES)}", "NCCL shared memory"))
    if plan.multi_node:
        rows.append(
            (
                "  RDMA",
                "verbs devices (/dev/infiniband)",
                "NCCL between nodes; without an HCA: a warning (TCP)",
            )
        )
        rows.append(
            (
                "  memlock",
                "unlimited or CAP_IPC_LOCK",
                "with an RDMA device; soft limit raised to the hard one",
            )
        )
    else:
        rows.append(("  memlock", "no minimum (one node)", "NCCL over RDMA between nodes"))
    if plan.serves_http:
        rows.append(("  free port", join_host_port(plan.host, plan.port), "PORT"))
    if plan.multi_node and plan.node_rank == 0:
        rows.append(
            (
                "  free port",
                join_host_port(_wildcard(plan.master_ip), plan.master_port),
                "MASTER_PORT",
            )
        )
        rows.append(("  MASTER_IP", f"{plan.master_ip} is this host's", "node 0"))
    gloo = (env.get("GLOO_SOCKET_IFNAME") or "").strip()
    if gloo:
        rows.append(("  GLOO_SOCKET_IFNAME", f"{gloo} exists", "one interface"))
    elif plan.multi_node:
        rows.append(
            ("  GLOO_SOCKET_IFNAME", f"the interface towards {plan.master_ip}", "chosen at launch")
        )
    nccl = env.get("NCCL_SOCKET_IFNAME")
    if nccl:
        rows.append(("  NCCL_SOCKET_IFNAME", nccl, "passed through unchanged"))
    if plan.multi_node and plan.node_rank > 0:
        rows.append(
            (
                "  wait for node 0",
                join_host_port(plan.master_host, plan.master_port),
                f"up to MASTER_WAIT_S={values['MASTER_WAIT_S']} s, after the download",
            )
        )
    return rows
