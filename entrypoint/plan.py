"""The plan: validated settings in, the deployment's topology out.

A ``Plan`` holds everything an engine module needs to write its argv: the checkpoint, the
parallel sizes, this node's rank and role, the addresses and ports. Defaults that depend
on other values (node count per precision, ports per engine) are filled in here, and
combinations that cannot work are refused here, before any engine is involved.
"""

from __future__ import annotations

from .errors import ConfigError
from .settings import (CHECKPOINTS, DEFAULT_MASTER_PORT, DEFAULT_NNODES, DEFAULT_PORT,
                       Settings)


class Plan:
    """One node's part in a LongCat-Flash deployment.

    Attributes:
        engine (str): ``"sglang"`` or ``"vllm"``.
        precision (str): ``"fp8"`` or ``"bf16"``.
        model (str): the checkpoint the engine loads: a Hugging Face repo id or a local
            directory. ``entrypoint.weights`` may replace a repo id by its local snapshot.
        served_model_name (str | None): the name clients see, when it differs from
            ``model`` (set when ``model`` was replaced by a local snapshot).
        nnodes (int): number of nodes.
        node_rank (int): this node's rank, ``0 <= node_rank < nnodes``.
        gpus_per_node (int): GPUs each node uses.
        tensor_parallel_size (int): SGLang: GPUS_PER_NODE x NNODES across all nodes;
            vLLM: GPUS_PER_NODE, within each data-parallel rank.
        expert_parallel_size (int): SGLang's ``--ep-size``, equal to the tensor-parallel
            size (engine-notes.md: ``--enable-ep-moe`` was replaced by ``--ep-size``).
        data_parallel_size (int): vLLM's data-parallel size, NNODES; 1 for SGLang.
        master_ip (str | None): node 0's address without IPv6 brackets; ``None`` on one node.
        master_port (int): SGLang dist-init port or vLLM data-parallel RPC port.
        host (str): address the HTTP server binds.
        port (int): HTTP port.
        mtp (bool): multi-token prediction on.
        serves_http (bool): this node answers HTTP on ``port`` (``/health`` at least).
            False only on vLLM headless nodes, which serve no HTTP (engine-notes.md).
        serves_api (bool): this node serves the OpenAI API: node 0 only.
        extra_args (list[str]): EXTRA_ARGS, then the arguments given after the image name.
        engine_env (dict[str, str]): variables preflight chose for the engine (e.g.
            ``GLOO_SOCKET_IFNAME``), set unless the environment already has them; see
            ``entrypoint.engines.engine_env``.
        sources (dict[str, str]): where each displayed value came from.
    """

    def __init__(self, **fields):
        self.served_model_name = None
        self.engine_env = {}
        for name, value in fields.items():
            setattr(self, name, value)

    @property
    def draft_model(self) -> str | None:
        """The MTP draft model: the served checkpoint itself, or ``None`` without MTP.

        LongCat-Flash's MTP layer ships in the served checkpoint; the guide's FP8 example
        points at the BF16 repository, which would pull a second 1.1 TB checkpoint
        (engine-notes.md, "Both engines").
        """
        return self.model if self.mtp else None

    @property
    def multi_node(self) -> bool:
        """True when the deployment spans more than one node."""
        return self.nnodes > 1

    @property
    def headless(self) -> bool:
        """True for a vLLM node ranked 1 or more: it runs engine workers and no API server."""
        return self.engine == "vllm" and self.node_rank > 0

    @property
    def role(self) -> str:
        """This node's role in words, for the dry run and logs."""
        if not self.multi_node:
            return "single node (serves the API)"
        if self.node_rank == 0:
            return f"node 0 of {self.nnodes} (serves the API)"
        if self.headless:
            return f"node {self.node_rank} of {self.nnodes}, headless (no HTTP)"
        return f"node {self.node_rank} of {self.nnodes}, worker (answers /health only)"


def resolve_plan(settings: Settings, extra_args: list[str] | tuple = ()) -> Plan:
    """Turn validated settings into this node's plan.

    Args:
        settings: from ``entrypoint.settings.load_settings``.
        extra_args: arguments given after the image name; appended after EXTRA_ARGS.

    Returns:
        The plan for this node.

    Raises:
        ConfigError: NODE_RANK outside 0..NNODES-1; MASTER_IP missing while NNODES > 1;
            PORT equal to MASTER_PORT on a multi-node plan (both bind on node 0).
    """
    v = settings.values
    sources = dict(settings.sources)
    engine, precision = v["ENGINE"], v["PRECISION"]

    nnodes = v["NNODES"]
    if nnodes is None:
        nnodes = DEFAULT_NNODES[precision]
        sources["NNODES"] = f"default for {precision}"
    node_rank = v["NODE_RANK"]
    if node_rank >= nnodes:
        raise ConfigError("NODE_RANK", str(node_rank), f"0..{nnodes - 1} (NNODES={nnodes})",
                          "Number the nodes from 0; node 0 serves the API.")

    master_ip = v["MASTER_IP"] if nnodes > 1 else None
    if nnodes > 1 and master_ip is None:
        raise ConfigError("MASTER_IP", None,
                          "node 0's IPv4 address, IPv6 address or DNS name",
                          f"It is required with NNODES={nnodes} ({precision} spans "
                          f"{nnodes} nodes); set the same value on every node.")

    port = v["PORT"]
    if port is None:
        port = DEFAULT_PORT[engine]
        sources["PORT"] = f"default for {engine}"
    master_port = v["MASTER_PORT"]
    if master_port is None:
        master_port = DEFAULT_MASTER_PORT[engine]
        sources["MASTER_PORT"] = f"default for {engine}"
    if nnodes > 1 and port == master_port and not (engine == "vllm" and node_rank > 0):
        raise ConfigError("PORT", str(port), f"any free port but MASTER_PORT ({master_port})",
                          "Node 0 binds both the HTTP port and MASTER_PORT.")

    model = v["MODEL"]
    if model is None:
        model = CHECKPOINTS[precision]
        sources["MODEL"] = f"checkpoint for {precision}"

    gpus = v["GPUS_PER_NODE"]
    if engine == "sglang":
        tensor_parallel, data_parallel = gpus * nnodes, 1
        sources["tensor_parallel_size"] = "GPUS_PER_NODE x NNODES"
    else:
        tensor_parallel, data_parallel = gpus, nnodes
        sources["tensor_parallel_size"] = "GPUS_PER_NODE"
        sources["data_parallel_size"] = "NNODES"
    sources["expert_parallel_size"] = "tensor parallel size"

    plan = Plan(
        engine=engine,
        precision=precision,
        model=model,
        nnodes=nnodes,
        node_rank=node_rank,
        gpus_per_node=gpus,
        tensor_parallel_size=tensor_parallel,
        expert_parallel_size=tensor_parallel,
        data_parallel_size=data_parallel,
        master_ip=master_ip,
        master_port=master_port,
        host=v["HOST"],
        port=port,
        mtp=v["MTP"],
        extra_args=list(v["EXTRA_ARGS"]) + list(extra_args),
        sources=sources,
    )
    plan.serves_http = not plan.headless
    plan.serves_api = node_rank == 0
    return plan
