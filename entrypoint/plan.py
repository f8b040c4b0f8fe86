"""The plan: validated settings in, the deployment's topology out.

A ``Plan`` holds everything an engine module needs to write its argv: the checkpoint, the
parallel sizes, this node's rank and role, the addresses and ports. Defaults that depend
on other values (node count per precision, ports per engine) are filled in here, and
combinations that cannot work are refused here, before any engine is involved.
"""

from __future__ import annotations

from .errors import ConfigError
from .settings import (
    CHECKPOINTS,
    DEFAULT_MASTER_PORT,
    DEFAULT_NNODES,
    DEFAULT_PORT,
    THINKING_CHECKPOINTS,
    Settings,
)
from .values import is_local_model, repo_id_of_cache_folder

# types.MappingProxyType, without importing types (Lib/types.py defines it the same way).
MappingProxyType = type(type.__dict__)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every container start
    from collections.abc import Mapping, Sequence
    from typing import Any


# What the dry run shows for SGLang's key file, which the launch makes just before the exec
# (``entrypoint.apikey.sglang_key_config``).
API_KEY_CONFIG_PENDING = "<private file, made at launch>/api-key.yaml"


class Plan:
    """One node's part in a LongCat-Flash deployment. Immutable: ``replace`` makes a changed copy.

    Every field is declared once, in the annotations below (``__slots__`` is made from
    them). ``resolve_plan`` builds the first plan from the settings; the launch sequence
    (``entrypoint.launch``) builds the next ones from what the later steps decide (the
    local snapshot and the served name from ``entrypoint.weights``, the engine environment
    from ``entrypoint.preflight``).

    Attributes:
        engine: ``"sglang"`` or ``"vllm"``.
        precision: ``"fp8"`` or ``"bf16"``.
        model: the checkpoint the engine loads: a Hugging Face repo id or a local
            directory (the local snapshot once ``entrypoint.weights`` fetched it).
        served_model_name: the name clients see (``--served-model-name``): SERVED_MODEL_NAME,
            else the repo id (``default_served_model_name``).
        revision: the Hub revision the engine fetches ``model`` at (its ``--revision``):
            ``MODEL_REVISION`` with ``DOWNLOAD=0`` and a repo id; ``None`` otherwise (the
            weights step then picks the revision's snapshot itself).
        nnodes: number of nodes.
        node_rank: this node's rank, ``0 <= node_rank < nnodes``.
        gpus_per_node: GPUs each node uses.
        tensor_parallel_size: SGLang: GPUS_PER_NODE x NNODES across all nodes; vLLM:
            GPUS_PER_NODE, within each data-parallel rank.
        expert_parallel_size: SGLang's ``--ep-size``, equal to its tensor-parallel size;
            vLLM's, tensor x data parallel size (``--enable-expert-parallel``;
            docs/engines.md, "Parallelism").
        data_parallel_size: vLLM's data-parallel size, NNODES; 1 for SGLang.
        master_ip: node 0's address without IPv6 brackets; ``None`` on one node.
        master_port: SGLang dist-init port or vLLM data-parallel RPC port.
        host: address the HTTP server binds.
        port: HTTP port.
        mtp: multi-token prediction on.
        extra_args: EXTRA_ARGS, then the arguments given after the image name.
        variant: ``"chat"`` or ``"thinking"`` (VARIANT).
        tool_calls: the engine parses LongCat tool calls (TOOL_CALLS; vLLM only).
        context_length: the longest sequence in tokens (CONTEXT_LENGTH); ``None``: the
            checkpoint's own.
        shutdown_timeout_s: seconds vLLM lets in-flight requests finish after SIGTERM.
        api_key_source: the variable the API key comes from (``"API_KEY"`` or
            ``"API_KEY_FILE"``), ``None`` without a key. The key itself is never in a plan
            (``entrypoint.apikey`` reads it at the exec).
        api_key_config: SGLang with a key: the path of the private config file the engine
            reads the key from (``--config``); ``API_KEY_CONFIG_PENDING`` until the launch
            makes it. ``None`` otherwise.
        engine_env: variables the launcher sets for the engine unless the environment
            already has them (``entrypoint.engines.engine_env`` adds the engine's own).
        engine_rlimits: soft resource limits the launcher sets just before the exec, by
            ``resource`` name (``{"RLIMIT_MEMLOCK": hard limit}``, from
            ``entrypoint.fabric.check_memlock``); empty: the limits are left as they are.
        sources: where each displayed value came from, by variable or field name.
    """

    engine: str
    precision: str
    model: str
    served_model_name: str | None
    revision: str | None
    nnodes: int
    node_rank: int
    gpus_per_node: int
    tensor_parallel_size: int
    expert_parallel_size: int
    data_parallel_size: int
    master_ip: str | None
    master_port: int
    host: str
    port: int
    mtp: bool
    extra_args: tuple[str, ...]
    variant: str
    tool_calls: bool
    context_length: int | None
    shutdown_timeout_s: int
    api_key_source: str | None
    api_key_config: str | None
    engine_env: Mapping[str, str]
    engine_rlimits: Mapping[str, int]
    sources: Mapping[str, str]

    __slots__ = tuple(__annotations__)

    def __init__(self, **fields: Any) -> None:
        """Set every field, by keyword; a missing or unknown one is a ``TypeError``."""
        missing = [name for name in self.__slots__ if name not in fields]
        unknown = [name for name in fields if name not in self.__slots__]
        if missing or unknown:
            raise TypeError(f"Plan: missing {missing}, unknown {unknown}")
        for name in self.__slots__:
            value = fields[name]
            if isinstance(value, dict):  # mappings are stored read-only
                value = MappingProxyType(dict(value))
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Plan is immutable; use plan.replace({name}=...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Plan is immutable")

    def replace(self, **changes: Any) -> Plan:
        """Return a copy of this plan with ``changes`` applied (field name -> new value)."""
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields = {
            name: dict(value) if isinstance(value, MappingProxyType) else value
            for name, value in fields.items()
        }
        fields.update(changes)
        return Plan(**fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Plan):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mappings inside: not hashable

    def __repr__(self) -> str:
        return "Plan(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"

    @property
    def draft_model(self) -> str | None:
        """The MTP draft model: the served checkpoint itself, or ``None`` without MTP.

        LongCat-Flash's MTP layer ships in the served checkpoint; the vendor guide's FP8
        example points at the BF16 repository, which would pull a second 1.1 TB checkpoint
        (docs/engines.md, "MTP").
        """
        return self.model if self.mtp else None

    @property
    def multi_node(self) -> bool:
        """True when the deployment spans more than one node."""
        return self.nnodes > 1

    @property
    def master_host(self) -> str:
        """Node 0's address on a multi-node plan (``master_ip``, which is set exactly then).

        Raises:
            ValueError: on a one-node plan, which has no node 0 to reach.
        """
        if self.master_ip is None:
            raise ValueError("a one-node plan has no MASTER_IP")
        return self.master_ip

    @property
    def headless(self) -> bool:
        """True for a vLLM node ranked 1 or more: it runs engine workers and no API server."""
        return self.engine == "vllm" and self.node_rank > 0

    @property
    def serves_http(self) -> bool:
        """This node answers HTTP on ``port`` (``/health`` at least): all but headless nodes."""
        return not self.headless

    @property
    def serves_api(self) -> bool:
        """This node serves the OpenAI API: node 0 only (docs/engines.md, "Node roles")."""
        return self.node_rank == 0

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


def model_revision(model: str, revision: str | None, download: bool) -> str | None:
    """The revision the engine must be given, or ``None``; refuse one nothing would apply.

    ``MODEL_REVISION`` takes effect in one of three ways, or is refused:

    - a repo id with ``DOWNLOAD`` on: the weights step fetches that revision and gives the
      engine its snapshot (``None`` here);
    - a Hugging Face cache folder (``.../models--org--name``) with ``DOWNLOAD`` on: the
      weights step picks that snapshot (``None`` here);
    - a repo id with ``DOWNLOAD=0``: the engine fetches it, with ``--revision`` (both
      engines have it: SGLang ``srt/server_args.py``, vLLM ``vllm/engine/arg_utils.py``);
    - a local directory otherwise has no revisions: refused.

    Raises:
        ConfigError: ``MODEL_REVISION`` with a local ``MODEL`` it cannot apply to.
    """
    if revision is None:
        return None
    if not is_local_model(model):
        return None if download else revision
    cache_folder = repo_id_of_cache_folder(model) is not None
    if download and cache_folder:
        return None
    if cache_folder:
        detail = (
            f"With DOWNLOAD=0 the engine gets MODEL={model} as given, and nothing "
            "picks a snapshot of it: set DOWNLOAD=1 (the launcher then picks the "
            "revision's snapshot), or MODEL to the snapshot folder itself."
        )
    else:
        detail = (
            f"MODEL={model} is a local directory, which has no revisions: unset "
            "MODEL_REVISION, or set MODEL to a Hugging Face repo id, or to a cache "
            "folder (.../hub/models--org--name) whose snapshot it then picks."
        )
    raise ConfigError(
        "MODEL_REVISION",
        revision,
        "unset when MODEL is a local directory other than a Hugging Face cache folder",
        detail,
    )


def resolve_plan(settings: Settings, extra_args: Sequence[str] = ()) -> Plan:
    """Turn validated settings into this node's plan.

    Args:
        settings: from ``entrypoint.settings.load_settings``.
        extra_args: arguments given after the image name; appended after EXTRA_ARGS.

    Returns:
        The plan for this node.

    Raises:
        ConfigError: NODE_RANK outside 0..NNODES-1; MASTER_IP missing while NNODES > 1;
            PORT equal to MASTER_PORT on a multi-node plan (both bind on node 0);
            TOOL_CALLS on with SGLang; both API_KEY and API_KEY_FILE set;
            MODEL_REVISION that nothing would apply (``model_revision``);
            ``OwnedFlagError`` for an engine flag the launcher sets from a variable, and
            ``SecretFlagError`` for one that takes a secret, given in EXTRA_ARGS or after
            the image name.
    """
    v = settings.values
    sources = dict(settings.sources)
    engine, precision = v["ENGINE"], v["PRECISION"]
    if extra_args:  # the dry run's EXTRA_ARGS row shows both, in the engine's order
        sources["EXTRA_ARGS"] = (
            "environment, then the arguments after the image name"
            if v["EXTRA_ARGS"]
            else "the arguments after the image name"
        )

    nnodes = v["NNODES"]
    if nnodes is None:
        nnodes = DEFAULT_NNODES[precision]
        sources["NNODES"] = f"default for {precision}"
    node_rank = v["NODE_RANK"]
    if node_rank >= nnodes:
        raise ConfigError(
            "NODE_RANK",
            str(node_rank),
            f"0..{nnodes - 1} (NNODES={nnodes})",
            "Number the nodes from 0; node 0 serves the API.",
        )

    master_ip = v["MASTER_IP"] if nnodes > 1 else None
    if nnodes > 1 and master_ip is None:
        raise ConfigError(
            "MASTER_IP",
            None,
            "node 0's IPv4 address, IPv6 address or DNS name",
            f"It is required with NNODES={nnodes} ({precision} spans "
            f"{nnodes} nodes); set the same value on every node.",
        )

    port = v["PORT"]
    if port is None:
        port = DEFAULT_PORT[engine]
        sources["PORT"] = f"default for {engine}"
    master_port = v["MASTER_PORT"]
    if master_port is None:
        master_port = DEFAULT_MASTER_PORT[engine]
        sources["MASTER_PORT"] = f"default for {engine}"
    if nnodes > 1 and port == master_port and not (engine == "vllm" and node_rank > 0):
        raise ConfigError(
            "PORT",
            str(port),
            f"any free port but MASTER_PORT ({master_port})",
            "Node 0 binds both the HTTP port and MASTER_PORT.",
        )

    variant = v["VARIANT"]
    checkpoint = (THINKING_CHECKPOINTS if variant == "thinking" else CHECKPOINTS)[precision]
    model = v["MODEL"]
    if model is None:
        model = checkpoint
        sources["MODEL"] = f"checkpoint for {variant} {precision}"
    served_model_name = v["SERVED_MODEL_NAME"]
    if served_model_name is None:
        served_model_name, sources["SERVED_MODEL_NAME"] = default_served_model_name(
            model, checkpoint
        )

    tool_calls = v["TOOL_CALLS"]
    if tool_calls is None:
        tool_calls = engine == "vllm"
        sources["TOOL_CALLS"] = (
            "default for vllm (its longcat tool parser)"
            if tool_calls
            else "default for sglang (it has no LongCat tool parser)"
        )
    elif tool_calls and engine == "sglang":
        # SGLang 0.5.23 registers no LongCat tool parser (docs/engines.md, "Serving
        # features").
        raise ConfigError(
            "TOOL_CALLS",
            "on",
            "off with ENGINE=sglang",
            "SGLang has no LongCat tool parser; use ENGINE=vllm for tool calls.",
        )

    api_key_source = None
    if v["API_KEY"] and v["API_KEY_FILE"] is not None:
        raise ConfigError(
            "API_KEY_FILE",
            v["API_KEY_FILE"],
            "unset while API_KEY is set",
            "Give the key one way: API_KEY, or API_KEY_FILE.",
        )
    if v["API_KEY"]:
        api_key_source = "API_KEY"
    elif v["API_KEY_FILE"] is not None:
        api_key_source = "API_KEY_FILE"

    revision = model_revision(model, v["MODEL_REVISION"], v["DOWNLOAD"])
    if revision is not None:
        sources["revision"] = "MODEL_REVISION (DOWNLOAD=0: the engine fetches it)"

    gpus = v["GPUS_PER_NODE"]
    if engine == "sglang":
        tensor_parallel, data_parallel = gpus * nnodes, 1
        expert_parallel = tensor_parallel
        sources["tensor_parallel_size"] = "GPUS_PER_NODE x NNODES"
        sources["expert_parallel_size"] = "tensor parallel size (--ep-size)"
    else:
        tensor_parallel, data_parallel = gpus, nnodes
        expert_parallel = tensor_parallel * data_parallel
        sources["tensor_parallel_size"] = "GPUS_PER_NODE"
        sources["data_parallel_size"] = "NNODES"
        sources["expert_parallel_size"] = "tensor x data parallel size (vLLM)"

    return Plan(
        engine=engine,
        precision=precision,
        model=model,
        nnodes=nnodes,
        node_rank=node_rank,
        gpus_per_node=gpus,
        tensor_parallel_size=tensor_parallel,
        expert_parallel_size=expert_parallel,
        data_parallel_size=data_parallel,
        master_ip=master_ip,
        master_port=master_port,
        host=v["HOST"],
        port=port,
        mtp=v["MTP"],
        served_model_name=served_model_name,
        revision=revision,
        extra_args=_without_owned_flags(
            engine, v, extra_args, owning_variables_on(v, tool_calls=tool_calls)
        ),
        variant=variant,
        tool_calls=tool_calls,
        context_length=v["CONTEXT_LENGTH"],
        shutdown_timeout_s=v["SHUTDOWN_TIMEOUT_S"],
        api_key_source=api_key_source,
        api_key_config=(API_KEY_CONFIG_PENDING if api_key_source and engine == "sglang" else None),
        engine_env={},
        engine_rlimits={},
        sources=sources,
    )


def default_served_model_name(model: str, checkpoint: str) -> tuple[str, str]:
    """The name clients ask for when SERVED_MODEL_NAME is unset, and where it came from.

    Never a path: a repo id ``MODEL`` is served under itself; a Hugging Face cache folder
    (``.../models--org--name``) under ``org/name``; any other local directory under
    ``checkpoint``, the repo id VARIANT and PRECISION select, so a copy of the checkpoint
    is asked for by the same name as the Hub's.

    Args:
        model: ``MODEL`` as given (or the default checkpoint).
        checkpoint: the repo id VARIANT and PRECISION select.

    Returns:
        (name, source for the dry run).
    """
    if not is_local_model(model):
        return model, "MODEL (its repo id)"
    cached = repo_id_of_cache_folder(model)
    if cached is not None:
        return cached, "MODEL (the cache folder's repo id)"
    return checkpoint, "repo id for VARIANT and PRECISION (MODEL is a local directory)"


# For each variable that turns owned options on: (what it is while on, how to turn it off;
# "" where only dropping the flag helps). Used in OwnedFlagError's message.
_TURNED_ON = {
    "CONTEXT_LENGTH": ("CONTEXT_LENGTH is set", "unset CONTEXT_LENGTH"),
    "MODEL_REVISION": ("MODEL_REVISION is set", "unset MODEL_REVISION"),
    "API_KEY": ("API_KEY is set", ""),
    "API_KEY_FILE": ("API_KEY_FILE is set", ""),
    "MTP": ("MTP is on", "unset MTP"),
    "TOOL_CALLS": ("TOOL_CALLS is on", "set TOOL_CALLS=off"),
    "VARIANT": ("VARIANT=thinking", ""),
}


def owning_variables_on(values: Mapping[str, Any], tool_calls: bool) -> frozenset[str]:
    """The variables whose ``OWNED_WHEN_SET`` options the launcher emits for ``values``.

    Args:
        values: the settings' values.
        tool_calls: TOOL_CALLS as resolved (unset means on for vLLM).

    Returns:
        Names among ``_TURNED_ON``: CONTEXT_LENGTH, MODEL_REVISION, API_KEY, API_KEY_FILE
        when set; MTP and TOOL_CALLS when on; VARIANT when ``thinking``.
    """
    on = {
        "CONTEXT_LENGTH": values.get("CONTEXT_LENGTH") is not None,
        "MODEL_REVISION": values.get("MODEL_REVISION") is not None,
        "API_KEY": bool(values.get("API_KEY")),
        "API_KEY_FILE": values.get("API_KEY_FILE") is not None,
        "MTP": bool(values.get("MTP")),
        "TOOL_CALLS": tool_calls,
        "VARIANT": values.get("VARIANT") == "thinking",
    }
    return frozenset(name for name, is_on in on.items() if is_on)


# The safe way to give the value of each secret flag (entrypoint.output.SECRET_FLAGS), or
# why there is none; refused in EXTRA_ARGS and after the image name (_without_owned_flags).
# --hf-token: huggingface_hub reads HF_TOKEN from the environment
# (huggingface_hub/utils/_auth.py, get_token), and vLLM leaves the token to it while
# --hf-token is unset (vllm/config/model.py, ModelConfig.hf_token). --admin-api-key and
# --ssl-keyfile-password: SGLang 0.5.23 reads them from its command line only
# (sglang/srt/arg_groups/fields/serving.py, Serving), and vLLM 0.33.0 has neither.
SECRET_FLAG_ALTERNATIVES = {
    "--api-key": "Set API_KEY, or API_KEY_FILE to a file holding the key: the launcher "
    "gives it to the engine outside its command line.",
    "--hf-token": "Set HF_TOKEN instead: the launcher's download and the engine read it "
    "from the environment.",
    "--admin-api-key": "SGLang reads it from no environment variable, so it cannot be "
    "passed safely on the command line (vLLM has no such option).",
    "--ssl-keyfile-password": "SGLang reads it from no environment variable, so it cannot "
    "be passed safely on the command line: use a key file without a password, readable "
    "only inside the container (vLLM has no such option).",
}


def _without_owned_flags(
    engine: str,
    values: Mapping[str, Any],
    passthrough: Sequence[str],
    turned_on: frozenset[str] = frozenset(),
) -> tuple[str, ...]:
    """EXTRA_ARGS then ``passthrough``, after refusing every flag the launcher sets itself
    and every flag that takes a secret.

    The engine's parser keeps the last of two values (argparse's "store" action; SGLang's
    ``ServerArgs.add_cli_args`` and vLLM's ``FlexibleArgumentParser`` both use it), while
    health and preflight use the variable's: ``EXTRA_ARGS="--port 9000"`` would serve on
    one port and probe another. Each engine module lists its owned options
    (``OWNED_OPTIONS``, always; ``OWNED_WHEN_SET``, while one of their variables is in
    ``turned_on``, from ``owning_variables_on``), with the abbreviations its parser
    accepts; ``entrypoint.engines.owned_option`` matches every spelling. A secret flag
    (``entrypoint.output.secret_flag``: ``--hf-token``, ``--hf_tok=``, ``--admin-api-key``,
    ...) would put its value where every process on the host can read it; only the engine's
    own options that merely begin like one (``--ssl-keyfile``, the module's
    ``NOT_SECRET_OPTIONS``) pass, as its parser takes an exact name first.

    Raises:
        OwnedFlagError: naming the flag, where it was given and the variable to set (or,
            for an option owned while a variable turns it on, to turn off).
        SecretFlagError: naming the flag, where it was given and the safe way to give
            its value (``SECRET_FLAG_ALTERNATIVES``); never the value.
    """
    from .engines import engine_module, owned_option
    from .errors import OwnedFlagError, SecretFlagError
    from .output import secret_flag

    module = engine_module(engine)
    always = [(*row, "") for row in module.OWNED_OPTIONS]
    while_on = [
        (option, shortest, " ".join(on), note, on[0])
        for option, shortest, variables, note in module.OWNED_WHEN_SET
        for on in [[name for name in variables.split() if name in turned_on]]
        if on
    ]
    table = [row[:4] for row in (*always, *while_on)]
    conditions = {row[0]: row[4] for row in (*always, *while_on)}
    for where, args in (
        ("EXTRA_ARGS", values["EXTRA_ARGS"]),
        ("the arguments after the image name", passthrough),
    ):
        for token in args:
            given = token.split("=", 1)[0]
            owned = owned_option(token, table)
            if owned is not None:
                option, variables, note = owned
                condition, remedy = _TURNED_ON.get(conditions[option], ("", ""))
                raise OwnedFlagError(given, option, where, variables, note, condition, remedy)
            secret = secret_flag(token)
            if secret is not None and _dashes(given) not in module.NOT_SECRET_OPTIONS:
                raise SecretFlagError(given, secret, where, SECRET_FLAG_ALTERNATIVES[secret])
    return (*values["EXTRA_ARGS"], *passthrough)


def _dashes(name: str) -> str:
    """``--a_b`` as ``--a-b``: vLLM's parser reads underscores after ``--`` as dashes."""
    return "--" + name[2:].replace("_", "-") if name.startswith("--") else name
