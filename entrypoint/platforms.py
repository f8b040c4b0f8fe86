"""Rank, leader and node count as the platform under the container tells them.

Kubernetes LeaderWorkerSet and Slurm each give every process of a multi-node job its own
rank, the group's size and the leader's address, in their own variables. This module
reads them so that no manifest or batch script needs a shell snippet to translate them
into ``NODE_RANK``, ``NNODES`` and ``MASTER_IP``. It only reads and checks the platform's
variables; ``entrypoint.settings.load_settings`` uses the result as fallbacks (an
explicit variable always wins, and an explicit rank or node count that contradicts the
platform's is a configuration error there).

It imports only the standard library. ``python-hostlist`` (module ``hostlist``) is
imported only when a Slurm node list has to be expanded.

LeaderWorkerSet
    kubernetes-sigs/lws, ``api/leaderworkerset/v1/leaderworkerset_types.go`` (constants
    ``LwsLeaderAddress``, ``LwsGroupSize``, ``LwsWorkerIndex``): the LWS pod webhook
    prepends these to the environment of every container of every pod in a group.

    - ``LWS_WORKER_INDEX``: the pod's index in its group; 0 is the leader, workers are
      1..size-1.  -> ``NODE_RANK``
    - ``LWS_GROUP_SIZE``: pods per group, leader included (``leaderWorkerTemplate.size``).
      -> ``NNODES``
    - ``LWS_LEADER_ADDRESS``: the leader pod's DNS name,
      ``<lws>-<group>.<lws>.<namespace>``, served by the headless Service LWS creates for
      the set (it publishes pods before they are ready).  -> ``MASTER_IP``

Slurm
    srun(1), "OUTPUT ENVIRONMENT VARIABLES"; sbatch(1), "OUTPUT ENVIRONMENT VARIABLES".

    - ``SLURM_NODEID``: the node's relative index, 0..N-1, in the job step.  -> ``NODE_RANK``
    - ``SLURM_NNODES``: the number of nodes (of the step under ``srun``).  -> ``NNODES``
    - ``SLURM_STEP_NODELIST`` (set by ``srun`` for the step), else ``SLURM_JOB_NODELIST``
      (the whole allocation): a compressed host list such as ``gpu[01-04,07]``. Node 0 is
      its first host, in Slurm's order (not sorted).  -> ``MASTER_IP``
    - ``SLURM_LOCALID``: the task's index on its node. The launcher must run once per
      node, so anything but 0 is refused (``srun --ntasks-per-node=1``).

    When ``srun`` spans the whole allocation, as ``deploy/slurm/`` does, the step's and
    the job's lists are the same; preferring the step's keeps node 0 right for a step that
    runs on part of an allocation, where ``SLURM_NODEID`` counts within the step.

When both platforms' variables are present they must agree: a disagreement raises
``ConfigError`` naming both variables. Addresses are compared as text (no DNS lookup):
lower case, without a trailing dot or IPv6 brackets.
"""

from __future__ import annotations

from .errors import ConfigError
from .values import parse_address, parse_whole

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every container start
    from collections.abc import Mapping

#: The launcher variables a platform can provide, in the order they are reported.
PROVIDED = ("NODE_RANK", "MASTER_IP", "NNODES")
#: Every platform variable starts with one of these; none set means no platform.
PLATFORM_PREFIXES = ("LWS_", "SLURM_")

LWS_VARIABLES = {
    "NODE_RANK": "LWS_WORKER_INDEX",
    "MASTER_IP": "LWS_LEADER_ADDRESS",
    "NNODES": "LWS_GROUP_SIZE",
}
SLURM_RANK = "SLURM_NODEID"
SLURM_COUNT = "SLURM_NNODES"
SLURM_NODELISTS = ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST")
SLURM_LOCALID = "SLURM_LOCALID"

# The longest Slurm host list expanded: Slurm's own lists of thousands of nodes fit.
MAX_NODELIST_CHARS = 65536
_HOSTLIST_ACCEPTED = "a Slurm host list whose first host is a host name, e.g. gpu[01-04,07]"


def platform_values(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Return what LeaderWorkerSet and/or Slurm say about this node.

    Args:
        env: the environment (e.g. ``os.environ``). An empty value counts as unset.

    Returns:
        For each of ``"NODE_RANK"``, ``"MASTER_IP"`` and ``"NNODES"`` that a platform
        provides: ``(raw value, source)``. The raw value is a string as the launcher's own
        variable would hold it (``"1"``, ``"gpu01"``); the source names the platform
        variable, e.g. ``"LWS_WORKER_INDEX"`` or ``"SLURM_JOB_NODELIST (first host)"``.
        When both platforms give the same value, the source names both
        (``"LWS_GROUP_SIZE and SLURM_NNODES"``). Empty when neither platform is present.

    Raises:
        ConfigError: a platform variable is malformed (not a whole number, a bad host
            list, a rank not below the node count, a second task on a node), naming that
            variable; or LeaderWorkerSet and Slurm disagree on a value.
    """
    lws = lws_values(env)
    slurm = slurm_values(env)
    merged: dict[str, tuple[str, str]] = {}
    for name in PROVIDED:
        if name in lws and name in slurm:
            (ours, our_source), (theirs, their_source) = lws[name], slurm[name]
            if _comparable(name, ours) != _comparable(name, theirs):
                raise ConfigError(
                    our_source,
                    ours,
                    f"{theirs!r}, the value of {their_source}",
                    f"LeaderWorkerSet and Slurm disagree on {name}. The launcher runs under "
                    f"one of them: unset the other's variables.",
                )
            merged[name] = (ours, f"{our_source} and {their_source}")
        elif name in lws:
            merged[name] = lws[name]
        elif name in slurm:
            merged[name] = slurm[name]
    return merged


def lws_values(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Return the values LeaderWorkerSet gives (see the module docstring for the rules).

    Args:
        env: the environment; ``LWS_WORKER_INDEX``, ``LWS_GROUP_SIZE`` and
            ``LWS_LEADER_ADDRESS`` are read, each optional.

    Returns:
        ``{launcher variable: (raw value, LWS variable)}`` for each one that is set.

    Raises:
        ConfigError: naming the LWS variable that is malformed, or ``LWS_WORKER_INDEX``
            when it is not below ``LWS_GROUP_SIZE``.
    """
    found: dict[str, tuple[str, str]] = {}
    for name, variable in LWS_VARIABLES.items():
        raw = env.get(variable, "").strip()
        if not raw:
            continue
        if name == "NODE_RANK":
            raw = _whole_number(variable, raw, minimum=0)
        elif name == "NNODES":
            raw = _whole_number(variable, raw, minimum=1)
        else:
            raw = _host(variable, raw, "the leader pod's DNS name or IP address")
        found[name] = (raw, variable)
    _rank_below_count(found)
    return found


def slurm_values(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Return the values Slurm gives (see the module docstring for the rules).

    Args:
        env: the environment; ``SLURM_NODEID``, ``SLURM_NNODES``, ``SLURM_STEP_NODELIST``,
            ``SLURM_JOB_NODELIST`` and ``SLURM_LOCALID`` are read, each optional.

    Returns:
        ``{launcher variable: (raw value, source)}``; the leader's source reads
        ``"SLURM_STEP_NODELIST (first host)"`` or ``"SLURM_JOB_NODELIST (first host)"``.

    Raises:
        ConfigError: naming the Slurm variable that is malformed: a rank or count that is
            not a whole number, a rank not below the count, a host list that does not
            expand (or ``python-hostlist`` missing), or a second task on one node.
    """
    found: dict[str, tuple[str, str]] = {}
    local_id = env.get(SLURM_LOCALID, "").strip()
    if local_id not in ("", "0"):
        raise ConfigError(
            SLURM_LOCALID,
            local_id,
            "0 (one task per node)",
            "The launcher starts one engine per node, using all its GPUs; run it with "
            "srun --ntasks-per-node=1.",
        )
    rank = env.get(SLURM_RANK, "").strip()
    if rank:
        found["NODE_RANK"] = (_whole_number(SLURM_RANK, rank, minimum=0), SLURM_RANK)
    count = env.get(SLURM_COUNT, "").strip()
    if count:
        found["NNODES"] = (_whole_number(SLURM_COUNT, count, minimum=1), SLURM_COUNT)
    for variable in SLURM_NODELISTS:
        raw = env.get(variable, "").strip()
        if raw:
            found["MASTER_IP"] = (first_host(variable, raw), f"{variable} (first host)")
            break
    _rank_below_count(found)
    return found


def first_host(variable: str, nodelist: str) -> str:
    """Return the first host of a Slurm host list, expanded with ``python-hostlist``.

    Args:
        variable: the variable the list came from, for error messages.
        nodelist: a compressed list as Slurm writes it, e.g. ``"gpu[01-04,07],cpu3"``.

    Returns:
        The first host in Slurm's order, e.g. ``"gpu01"``.

    Raises:
        ConfigError: naming ``variable`` when the list does not expand, is empty, or its
            first entry is not a host name; or when ``python-hostlist`` is not installed.
    """
    try:
        import hostlist
    except ImportError:
        raise ConfigError(
            variable,
            nodelist,
            _HOSTLIST_ACCEPTED,
            "Expanding it needs the python-hostlist package, which is not installed here: "
            "pip install python-hostlist, or set MASTER_IP to node 0's address.",
        ) from None
    if len(nodelist) > MAX_NODELIST_CHARS:
        raise ConfigError(
            variable, nodelist, f"{_HOSTLIST_ACCEPTED}, of at most {MAX_NODELIST_CHARS} characters"
        )
    try:
        # Only the first part: its first host is the list's (expand_hostlist keeps the
        # order), and the rest may stand for millions of hosts.
        hosts = hostlist.expand_hostlist(_first_part(nodelist))
    except (hostlist.BadHostlist, ValueError) as exc:  # ValueError: int() of 4300+ digits
        raise ConfigError(
            variable, nodelist, _HOSTLIST_ACCEPTED, f"It does not expand: {exc}."
        ) from None
    if not hosts:
        raise ConfigError(variable, nodelist, _HOSTLIST_ACCEPTED, "It names no host.")
    return _host(variable, hosts[0], _HOSTLIST_ACCEPTED)


def _first_part(nodelist: str) -> str:
    """The text of a Slurm host list before its first comma outside brackets
    (``"gpu[01-04,07],cpu3"`` gives ``"gpu[01-04,07]"``)."""
    depth = 0
    for index, char in enumerate(nodelist):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            return nodelist[:index]
    return nodelist


def _whole_number(variable: str, raw: str, minimum: int) -> str:
    """Return ``raw`` as canonical decimal digits, or raise naming ``variable``."""
    return str(parse_whole(variable, raw, minimum))


def _host(variable: str, raw: str, accepted: str) -> str:
    """Return ``raw`` unchanged when it is an IP address (IPv6 brackets allowed) or a host
    name: the rules of ``MASTER_IP`` (``values.parse_address``)."""
    parse_address(variable, raw, accepted)
    return raw


def _rank_below_count(found: dict[str, tuple[str, str]]) -> None:
    """Refuse a platform rank that is not below the same platform's node count."""
    if "NODE_RANK" in found and "NNODES" in found:
        (rank, rank_source), (count, count_source) = found["NODE_RANK"], found["NNODES"]
        if int(rank) >= int(count):
            raise ConfigError(rank_source, rank, f"0..{int(count) - 1} ({count_source}={count})")


def _comparable(name: str, raw: str) -> str | int:
    """A key under which two platforms' values for ``name`` are equal when they agree."""
    if name == "MASTER_IP":
        return parse_address(name, raw).lower()
    return int(raw)


def platform_of(env: Mapping[str, str]) -> str:
    """The platform the launcher runs on, for advice that fits it.

    Returns:
        ``"kubernetes"`` when the kubelet's ``KUBERNETES_SERVICE_HOST`` (set in every pod,
        with or without service links) or a LeaderWorkerSet variable is set;
        ``"slurm"`` when ``SLURM_JOB_ID`` or ``SLURM_NODEID`` is; ``"docker"`` otherwise
        (docker run and compose).
    """
    if env.get("KUBERNETES_SERVICE_HOST") or any(env.get(v) for v in LWS_VARIABLES.values()):
        return "kubernetes"
    if env.get("SLURM_JOB_ID") or env.get(SLURM_RANK):
        return "slurm"
    return "docker"
