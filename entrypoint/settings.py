"""Settings: the environment in, validated values out.

Every environment variable the launcher reads is defined once, in ``VARIABLES``, with its
type, default, accepted values and help. The README's table is rendered from the same
definitions (``env_table_markdown``), and a test fails when the two disagree.

Nothing here reads ``os.environ`` at import time: ``load_settings`` takes the environment
as a plain mapping, so it can be called with any dict in tests.

Only the standard library is imported on this path; the launcher runs on every container
start (see ``benchmarks/launcher_startup.py``).
"""

from __future__ import annotations

from .errors import ConfigError
from .platforms import PLATFORM_PREFIXES
from .values import (
    ADDRESS_ACCEPTED,
    BOOL_ACCEPTED,
    LARGEST_WHOLE,
    SECRET_ACCEPTED,
    check_secret,
    fullmatch,
    parse_address,
    parse_bool,
    parse_whole,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every container start
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

ENGINES = ("sglang", "vllm")
PRECISIONS = ("fp8", "bf16")
VARIANTS = ("chat", "thinking")

# Checkpoints per precision (docs/engines.md, "Checkpoints and minimum hardware").
CHECKPOINTS = {
    "fp8": "meituan-longcat/LongCat-Flash-Chat-FP8",
    "bf16": "meituan-longcat/LongCat-Flash-Chat",
}
# The Thinking models: the same architecture and deployment as Chat, reasoning inside
# <longcat_think>...</longcat_think> (docs/engines.md, "Checkpoints and minimum hardware").
THINKING_CHECKPOINTS = {
    "fp8": "meituan-longcat/LongCat-Flash-Thinking-FP8",
    "bf16": "meituan-longcat/LongCat-Flash-Thinking",
}
# The vendor guide's minimum hardware: FP8 fits one node of 8x141 GB, BF16 needs two.
DEFAULT_NNODES = {"fp8": 1, "bf16": 2}
# Engine defaults. SGLang: srt/server_args.py (port 30000); its dist-init port is the
# vendor guide's 5000. vLLM: 8000 (vllm/entrypoints/common/cli_args.py); RPC port is the
# vendor guide's 13345 (docs/engines.md, "Checkpoints and minimum hardware").
DEFAULT_PORT = {"sglang": 30000, "vllm": 8000}
DEFAULT_MASTER_PORT = {"sglang": 5000, "vllm": 13345}
# Graceful stop, in seconds. The engine gets SHUTDOWN_TIMEOUT_S to finish in-flight requests
# after SIGTERM (vLLM --shutdown-timeout; docs/engines.md, "Serving features"); the
# platforms give the container STOP_GRACE_PERIOD_S before SIGKILL (compose's
# stop_grace_period, Kubernetes' terminationGracePeriodSeconds): the drain plus a margin
# for the engine to free the GPUs of its workers. tests/test_grace_period.py ties the
# compose files and the manifests to these two numbers.
DEFAULT_SHUTDOWN_TIMEOUT_S = 120
STOP_GRACE_PERIOD_S = DEFAULT_SHUTDOWN_TIMEOUT_S + 60


class Variable:
    """One environment variable of the launcher's contract.

    Args:
        name: the variable's name.
        kind: how its value is parsed: ``"choice"``, ``"bool"``, ``"count"`` (1 or more),
            ``"index"`` (0 or more), ``"port"``, ``"seconds"``, ``"timeout"`` (seconds, 1 or
            more), ``"address"``, ``"model"``,
            ``"revision"``, ``"args"``, ``"name"`` (a served model name), ``"file"`` (a
            file's path, read at launch), ``"secret"`` (parsed to ``True`` when set: the
            value itself never enters the settings; see ``entrypoint.apikey``), or
            ``"library"`` for a variable the launcher passes through to a library
            (huggingface_hub, NCCL) and does not parse itself.
        default: the value used when the variable is unset or empty (already parsed),
            or ``None`` when the default depends on other values (see ``default_doc``).
        help: one sentence for the README.
        choices: the accepted words for ``"choice"``; for ``"library"``, the words the
            launcher lets through (any case, surrounding whitespace ignored), when the
            library reads only those.
        default_doc: how the default reads in the README, when it is not ``default``.
        secret: never print the value.
        accepted_doc: what is accepted, for ``"library"`` variables.
    """

    __slots__ = (
        "name",
        "kind",
        "default",
        "help",
        "choices",
        "default_doc",
        "secret",
        "accepted_doc",
    )

    def __init__(
        self,
        name: str,
        kind: str,
        default: Any,
        help: str,
        choices: Sequence[str] = (),
        default_doc: str | None = None,
        secret: bool = False,
        accepted_doc: str = "",
    ):
        self.name = name
        self.kind = kind
        self.default = default
        self.help = help
        self.choices = tuple(choices)
        self.default_doc = default_doc
        self.secret = secret
        self.accepted_doc = accepted_doc

    def accepted(self) -> str:
        """Describe the accepted values, for error messages and the README."""
        if self.kind == "choice":
            return " | ".join(self.choices)
        if self.kind == "library":
            return self.accepted_doc
        described: dict[str, str] = {
            "bool": BOOL_ACCEPTED,
            "count": f"a whole number, 1..{LARGEST_WHOLE}",
            "index": f"a whole number, 0..{LARGEST_WHOLE}",
            "port": "a TCP port, 1..65535",
            "seconds": f"a whole number of seconds, 0..{LARGEST_WHOLE}",
            "timeout": f"a whole number of seconds, 1..{LARGEST_WHOLE}",
            "address": ADDRESS_ACCEPTED,
            "model": "a Hugging Face repo id (org/name), or a local directory: absolute, "
            "or relative starting with ./ or ../",
            "revision": "a branch, tag or commit hash (letters, digits, . _ - /; as git "
            "names refs: no part empty or starting with '.')",
            "args": "engine flags, quoted the way a shell quotes them",
            "name": "a name of printable characters without spaces, not starting with -",
            "file": "the path of a readable file",
            "secret": f"a key of {SECRET_ACCEPTED}",
        }
        return described[self.kind]

    def default_text(self) -> str:
        """The default as the README shows it."""
        if self.default_doc is not None:
            return self.default_doc
        if self.kind == "bool":
            return "on" if self.default else "off"
        if self.default in (None, ""):
            return "unset"
        return str(self.default)


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "ENGINE",
        "choice",
        None,
        "Inference engine to launch.",
        choices=ENGINES,
        default_doc="the engine installed in the image",
    ),
    Variable(
        "PRECISION",
        "choice",
        "fp8",
        "Checkpoint precision: fp8 serves meituan-longcat/LongCat-Flash-Chat-FP8, "
        "bf16 serves meituan-longcat/LongCat-Flash-Chat (-Thinking- instead of -Chat- "
        "with VARIANT=thinking).",
        choices=PRECISIONS,
    ),
    Variable(
        "NNODES",
        "count",
        None,
        "Number of nodes in the deployment.",
        default_doc="1 for fp8, 2 for bf16",
    ),
    Variable("NODE_RANK", "index", 0, "This node's rank, 0..NNODES-1. Node 0 serves the API."),
    Variable(
        "MASTER_IP",
        "address",
        None,
        "Address of node 0, reachable from every node. Required when NNODES > 1.",
    ),
    Variable(
        "MASTER_PORT",
        "port",
        None,
        "Port on node 0 for SGLang's dist-init address or vLLM's data-parallel RPC.",
        default_doc="5000 (sglang), 13345 (vllm)",
    ),
    Variable(
        "MTP",
        "bool",
        False,
        "Multi-token prediction: speculative decoding with the checkpoint's own draft "
        "layer (SGLang NEXTN, vLLM mtp).",
    ),
    Variable(
        "MODEL",
        "model",
        None,
        "Checkpoint to serve instead of the one VARIANT and PRECISION select; also the "
        "MTP draft model.",
        default_doc="the checkpoint for VARIANT and PRECISION",
    ),
    Variable("GPUS_PER_NODE", "count", 8, "GPUs each node uses."),
    Variable("HOST", "address", "0.0.0.0", "Address the HTTP server binds to."),
    Variable(
        "PORT",
        "port",
        None,
        "Port of the HTTP server (OpenAI API and /health).",
        default_doc="30000 (sglang), 8000 (vllm)",
    ),
    Variable(
        "EXTRA_ARGS",
        "args",
        (),
        "Extra engine flags, appended after the launcher's own; arguments given after "
        "the image name come after these.",
        default_doc="none",
    ),
    Variable(
        "MODEL_REVISION",
        "revision",
        None,
        "Branch, tag or commit of a Hub checkpoint to fetch and serve; with DOWNLOAD=0 "
        "the engine gets it (--revision). Refused with a local MODEL other than a "
        "Hugging Face cache folder (models--org--name), whose snapshot it picks.",
        default_doc="main",
    ),
    Variable(
        "DOWNLOAD",
        "bool",
        True,
        "Fetch missing checkpoint files into HF_HOME before the engine starts; off "
        "leaves MODEL to the engine as given.",
    ),
    Variable(
        "DOWNLOAD_STALL_S",
        "timeout",
        60,
        "A download that receives no byte for this long (and any Hub request left "
        "unanswered) is aborted and retried, 3 times in a row at most; nodes sharing a "
        "cache take the download over from a node that stopped renewing its lease for "
        "this long.",
    ),
    Variable(
        "PREFLIGHT",
        "choice",
        "on",
        "Host checks before launch: on refuses a deployment that cannot work (exit 3), "
        "warn only reports, off skips them.",
        choices=("on", "warn", "off"),
    ),
    Variable(
        "MASTER_WAIT_S",
        "seconds",
        1800,
        "How long a node ranked 1 or more waits for MASTER_IP:MASTER_PORT to accept "
        "connections before giving up (node 0 may still be fetching the checkpoint).",
    ),
    Variable(
        "HF_TOKEN",
        "library",
        None,
        "Hugging Face token for gated or private checkpoints. Never printed.",
        secret=True,
        accepted_doc=f"a token of {SECRET_ACCEPTED} (read by huggingface_hub)",
    ),
    Variable(
        "HF_HOME",
        "library",
        None,
        "Hugging Face cache; the checkpoint is stored under HF_HOME/hub (or HF_HUB_CACHE, "
        "huggingface_hub's name for that folder, when set). Mount a volume here.",
        default_doc="/root/.cache/huggingface in the images",
        accepted_doc="a writable directory (read by huggingface_hub)",
    ),
    Variable(
        "HF_HUB_OFFLINE",
        "library",
        None,
        "Never contact the Hub; every checkpoint file must already be cached.",
        # huggingface_hub/constants.py: _is_true, ENV_VARS_TRUE_VALUES; anything else is off.
        choices=("1", "true", "yes", "on", "0", "false", "no", "off"),
        accepted_doc="1, true, yes or on; 0, false, no or off (read by huggingface_hub)",
    ),
    Variable(
        "HF_ENDPOINT",
        "library",
        None,
        "The Hub to fetch from: a mirror or a proxy of huggingface.co.",
        default_doc="https://huggingface.co",
        accepted_doc="an http:// or https:// URL (read by huggingface_hub)",
    ),
    Variable(
        "LONGCAT_HF_SEED",
        "library",
        None,
        "Files the image ships in Hugging Face cache layout (the SGLang base's kernels), "
        "which the HF_HOME mount would hide: before the exec, each of its "
        "hub/models--* folders that HF_HOME/hub lacks is linked there, never copied.",
        default_doc="/opt/longcat/hf-seed, set by the images",
        accepted_doc="a directory holding hub/models--* (or the hub folder itself)",
    ),
    Variable(
        "GLOO_SOCKET_IFNAME",
        "library",
        None,
        "The one network interface Gloo uses; on multi-node plans the launcher sets it "
        "to the interface that routes to MASTER_IP when unset.",
        default_doc="the interface towards MASTER_IP",
        accepted_doc="one interface name (read by Gloo)",
    ),
    Variable(
        "NCCL_SOCKET_IFNAME",
        "library",
        None,
        "NCCL's interfaces (accepts ^-exclusions and comma lists); passed through unchanged.",
        accepted_doc="interface names or prefixes (read by NCCL)",
    ),
    Variable(
        "NCCL_IB_DISABLE",
        "library",
        None,
        "1: NCCL uses TCP sockets between the nodes instead of InfiniBand or RoCE; "
        "preflight then warns instead of refusing a host whose HCAs the container "
        "cannot reach.",
        choices=("0", "1"),  # NCCL reads an integer (strtoll: "1e3" is 1)
        accepted_doc="0 or 1 (read by NCCL)",
    ),
    Variable(
        "VARIANT",
        "choice",
        "chat",
        "Model family: chat serves LongCat-Flash-Chat, thinking serves "
        "LongCat-Flash-Thinking (same architecture and deployment; it reasons inside "
        "<longcat_think> tags, separated from the answer on vLLM).",
        choices=VARIANTS,
    ),
    Variable(
        "TOOL_CALLS",
        "bool",
        None,
        "OpenAI tool calls (tool_choice auto) with the engine's LongCat tool parser. "
        "Only vLLM has one; on with ENGINE=sglang is refused.",
        default_doc="on (vllm), off (sglang)",
    ),
    Variable(
        "SERVED_MODEL_NAME",
        "name",
        None,
        "The model name clients ask for (GET /v1/models, the model field).",
        default_doc="the repo id; for a local MODEL, the repo id VARIANT and PRECISION "
        "select (a models--org--name cache folder: org/name)",
    ),
    Variable(
        "API_KEY",
        "secret",
        None,
        "Key clients must send (Authorization: Bearer KEY) on the API; /health and "
        "/metrics stay open. Never on the engine's command line, never printed.",
        secret=True,
    ),
    Variable(
        "API_KEY_FILE",
        "file",
        None,
        "A file holding the API key (a mounted Secret), read at launch instead of "
        "API_KEY; trailing newlines are ignored.",
    ),
    Variable(
        "CONTEXT_LENGTH",
        "count",
        None,
        "Longest sequence (prompt and answer, in tokens) the engine accepts: SGLang "
        "--context-length, vLLM --max-model-len.",
        default_doc="the checkpoint's own",
    ),
    Variable(
        "SHUTDOWN_TIMEOUT_S",
        "seconds",
        DEFAULT_SHUTDOWN_TIMEOUT_S,
        "After SIGTERM, how long vLLM lets in-flight requests finish "
        "(--shutdown-timeout); SGLang drains them without a limit. Keep it below the "
        f"platform's grace period ({STOP_GRACE_PERIOD_S} s in our compose files and "
        "manifests).",
    ),
    Variable(
        "DRY_RUN",
        "bool",
        False,
        "Print the plan and the command, then exit without starting anything (same as --dry-run).",
    ),
)

BY_NAME = {v.name: v for v in VARIABLES}

# Variables whose values are secrets: never printed (``entrypoint.output.configure`` blanks
# them in all output) and never put on an engine's command line. Beyond our own secret
# variables: huggingface_hub's older token name (huggingface_hub/constants.py) and the key
# variable vLLM reads (vllm/envs.py, VLLM_API_KEY).
SECRET_VARIABLES = (
    *(v.name for v in VARIABLES if v.secret),
    "HUGGING_FACE_HUB_TOKEN",
    "VLLM_API_KEY",
    # The identity token huggingface_hub exchanges for a Hub token when HF_OIDC_RESOURCE
    # is set (utils/_auth.py, _get_token_from_oidc).
    "HF_OIDC_ID_TOKEN",
)


# How much of the stored token's file is read (huggingface_hub reads it whole): a token
# and any blank lines around it; not a multi-GB file that HF_TOKEN_PATH names by mistake.
# Output blanks what is read in every spelling (entrypoint.output.configure), at a cost
# that grows with its length: 0.4 s for 16 KiB of control characters, 30 s for 1 MiB.
MAX_TOKEN_FILE_BYTES = 2**14


# The words huggingface_hub reads as on (constants.py, ENV_VARS_TRUE_VALUES, upper case).
HUB_TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})


def stored_hub_token_path(env: Mapping[str, str]) -> str:
    """Where huggingface_hub looks for the token ``hf auth login`` stored: exactly its
    ``HF_TOKEN_PATH`` (``huggingface_hub/constants.py``), read from ``env``.

    ``HF_TOKEN_PATH``, else ``$HF_HOME/token``, else ``$XDG_CACHE_HOME/huggingface/token``
    (``~/.cache`` without it). As there, a variable that is set but empty counts as set
    (``os.getenv(name, default)``), which makes the path relative to the working
    directory, and ``~`` and ``$VAR`` are expanded.
    """
    import os

    if (env.get("HUGGINGFACE_CO_STAGING") or "").upper() in HUB_TRUE_VALUES:
        # constants.py, _staging_mode: the staging Hub's own token, whatever else is set.
        return os.path.join(os.path.expanduser("~"), ".cache", "huggingface_staging", "token")
    return _token_path(env)


def stored_tokens_path(env: Mapping[str, str]) -> str:
    """Where huggingface_hub keeps every token ``hf auth login`` stored, by name, with the
    refresh token of an OAuth login: its ``HF_STORED_TOKENS_PATH`` (``constants.py``), the
    file ``stored_tokens`` beside the token file. As there, it is computed before the
    staging Hub's switch, so it stays beside ``HF_TOKEN_PATH`` even then."""
    import os

    return os.path.join(os.path.dirname(_token_path(env)), "stored_tokens")


def _token_path(env: Mapping[str, str]) -> str:
    """``HF_TOKEN_PATH`` as huggingface_hub's constants.py computes it, before staging."""
    import os

    home = env.get(
        "HF_HOME",
        os.path.join(
            env.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")),
            "huggingface",
        ),
    )
    home = os.path.expandvars(os.path.expanduser(home))
    path = env.get("HF_TOKEN_PATH", os.path.join(home, "token"))
    return os.path.expandvars(os.path.expanduser(path))


def stored_hub_token(env: Mapping[str, str]) -> str | None:
    """The token ``hf auth login`` stored, which huggingface_hub sends when ``HF_TOKEN`` is
    unset; ``None`` when there is none (or it cannot be read as a regular file).

    Read from ``stored_hub_token_path`` as huggingface_hub reads it (``utils/_auth.py``,
    ``_get_token_from_file``), up to ``MAX_TOKEN_FILE_BYTES`` (16 KiB), and cleaned as its ``_clean_token``
    does (line breaks removed, then surrounding whitespace). Bytes that are not UTF-8 are
    replaced, and a leading byte-order mark is dropped (huggingface_hub would keep it in
    the token it sends): the value returned is the text to blank wherever it appears.
    """
    import os

    path = stored_hub_token_path(env)
    try:
        if not os.path.isfile(path):  # a FIFO or a device would block, or never end
            return None
        with open(path, "rb") as f:  # a token is short; a file of GBs would not be one
            token = f.read(MAX_TOKEN_FILE_BYTES).decode("utf-8", "replace")
    except OSError:
        return None
    return token.replace("\r", "").replace("\n", "").strip().lstrip("\ufeff").strip() or None


# The proxies httpx reads for the launcher's Hub traffic: HTTP_PROXY, HTTPS_PROXY and
# ALL_PROXY in any case (httpx/_utils.py, get_environment_proxies, through
# urllib.request.getproxies, which lower-cases every variable's name).
PROXY_NAMES = ("http_proxy", "https_proxy", "all_proxy")


def proxy_variables(env: Mapping[str, str]) -> list[str]:
    """The names in ``env`` that set a proxy (``PROXY_NAMES``, any case), sorted."""
    return sorted(name for name in env if name.lower() in PROXY_NAMES)


def url_passwords(env: Mapping[str, str]) -> dict[str, str]:
    """The credentials of each URL the launcher's Hub traffic uses (``HF_ENDPOINT`` and the
    ``proxy_variables``): ``"the password in NAME"``, decoded (``%40`` is ``@``) as the
    server receives it, with ``"the credentials in NAME"``, the Basic authorization an
    HTTP client makes of them (base64 of ``user:password``); or ``"the token in NAME"``
    for a user name without a password (``https://TOKEN@host``). A URL that does not parse
    gives none (``entrypoint.weights`` refuses it before any request)."""
    passwords: dict[str, str] = {}
    for name in ["HF_ENDPOINT", *proxy_variables(env)]:
        raw = (env.get(name) or "").strip()
        if "@" not in raw:  # no user info: no password (and no urllib import at start)
            continue
        from urllib.parse import unquote, urlsplit

        try:
            parts = urlsplit(raw if "://" in raw else f"http://{raw}")
            user, password = parts.username, parts.password
        except ValueError:
            continue
        import base64

        if password:
            passwords[f"the password in {name}"] = unquote(password)
            # As an HTTP client sends them: Basic base64(user:password) (RFC 7617), which
            # a server may echo back.
            credentials = f"{unquote(user or '')}:{unquote(password)}".encode(
                "utf-8", "surrogateescape"
            )
            passwords[f"the credentials in {name}"] = base64.b64encode(credentials).decode()
        elif user:  # scheme://TOKEN@host: the user name is the credential
            passwords[f"the token in {name}"] = unquote(user)
            basic = base64.b64encode(f"{unquote(user)}:".encode("utf-8", "surrogateescape"))
            passwords[f"the credentials in {name}"] = basic.decode()
    return passwords


def named_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """The secrets ``env`` configures, each under the name a message gives it: the
    ``SECRET_VARIABLES`` that are set, the stored Hub token (``stored_hub_token``) under
    ``"the stored Hub token"``, the tokens of huggingface_hub's stored-tokens file
    (``stored_tokens``), and the passwords of ``url_passwords``. Values as given
    (``str``), not stripped."""
    secrets = {name: env[name] for name in SECRET_VARIABLES if env.get(name)}
    stored = stored_hub_token(env)
    if stored:
        secrets["the stored Hub token"] = stored
    for number, token in enumerate(stored_tokens(env), 1):
        secrets[f"token {number} in {stored_tokens_path(env)}"] = token
    secrets.update(url_passwords(env))
    return secrets


def stored_tokens(env: Mapping[str, str]) -> list[str]:
    """The tokens of huggingface_hub's stored-tokens file (``stored_tokens_path``): every
    account's token and OAuth refresh token, as ``hf auth login`` writes them (``[name]``
    sections of ``hf_token = ...``, ``refresh_token = ...``; huggingface_hub
    ``utils/_auth.py``, ``_save_token``); ``[]`` when there is no such regular file.

    Read as ``stored_hub_token`` reads the token file (a regular file, its first
    ``MAX_TOKEN_FILE_BYTES``), line by line without ``configparser``: the value of each
    ``key = value`` or ``key: value`` line whose key holds ``token``. A file that
    huggingface_hub cannot parse is refused before it reads it
    (``entrypoint.weights.check_stored_tokens``).
    """
    import os

    path = stored_tokens_path(env)
    try:
        if not os.path.isfile(path):  # a FIFO or a device would block, or never end
            return []
        with open(path, "rb") as f:
            text = f.read(MAX_TOKEN_FILE_BYTES).decode("utf-8", "replace")
    except OSError:
        return []
    tokens = []
    for line in text.splitlines():
        key, delimiter, value = line.partition("=")
        if not delimiter or ":" in key:  # configparser's delimiters: "=" and ":"
            key, delimiter, value = line.partition(":")
        if delimiter and "token" in key.lower() and value.strip():
            tokens.append(value.strip())
    return tokens


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Every secret ``entrypoint.output.configure`` must blank for ``env``: the values of
    ``named_secrets``."""
    return list(named_secrets(env).values())


# Families of variables that the engines and their libraries read (NCCL, UCX, Gloo,
# huggingface_hub, vLLM, SGLang). The platform files pass every one that is set into the
# container unchanged: compose from compose/.env (common.yaml's env_file), the sbatch
# script from the submitting shell (docs/engines.md, "Fabric").
ENGINE_VARIABLE_PREFIXES = ("NCCL_", "UCX_", "GLOO_", "HF_", "VLLM_", "SGLANG_")
# The longest value any variable takes, checked before parsing: enough for any address,
# path or token; engine flags get more room.
MAX_VALUE_CHARS = 4096
MAX_ARGS_CHARS = 65536

# Hugging Face repo ids, as huggingface_hub.utils._validators.validate_repo_id accepts
# them: REPO_ID_REGEX (ASCII word characters only: re.ASCII), and no "--", "..", or ".git"
# ending.
_REPO_ID = r"(?a)(?:\b[\w\-.]{1,96}\b/)?\b[\w\-.]{1,96}\b"


class Settings:
    """Validated values of every variable, and where each came from.

    Attributes:
        values (dict[str, Any]): parsed value per variable name, of the type its kind gives
            (``str``, ``bool``, ``int``, ``tuple[str, ...]`` for ``"args"``); ``None`` where
            unset and the default depends on other values (``NNODES``, ``PORT``, ...; see
            ``plan``).
        sources (dict[str, str]): per name, where the value came from: ``"environment"``,
            ``"default"``, ``"installed engine"``, or a platform variable such as
            ``"LWS_WORKER_INDEX"``.
    """

    __slots__ = ("values", "sources")

    def __init__(self, values: dict[str, Any], sources: dict[str, str]):
        self.values = values
        self.sources = sources

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


# Inclusive bounds of the numeric kinds.
_RANGES = {
    "count": (1, LARGEST_WHOLE),
    "index": (0, LARGEST_WHOLE),
    "port": (1, 65535),
    "seconds": (0, LARGEST_WHOLE),
    "timeout": (1, LARGEST_WHOLE),
}


def _parse(var: Variable, raw: str) -> Any:
    """Parse one non-empty raw value according to its variable's kind."""
    text = raw.strip()
    if var.kind == "choice":
        word = text.lower()
        if word not in var.choices:
            raise ConfigError(var.name, raw, var.accepted())
        return word
    if var.kind == "bool":
        return parse_bool(var.name, raw)
    if var.kind in _RANGES:
        low, high = _RANGES[var.kind]
        return parse_whole(var.name, raw, low, high, var.accepted())
    if var.kind == "address":
        return parse_address(var.name, raw, var.accepted())
    if var.kind == "model":
        if text.startswith(("/", "./", "../")):
            return text
        if (
            fullmatch(_REPO_ID, text)
            and ".." not in text
            and "--" not in text
            and not text.endswith(".git")
        ):
            return text
        raise ConfigError(var.name, raw, var.accepted())
    if var.kind == "revision":
        # Git ref names and commit hashes, as Hub revisions are (e.g. refs/pr/1), by git's
        # rules (git-check-ref-format(1); refs.c, check_refname_component): no part empty
        # (no leading, trailing or double "/"), none starting with "." (".", "..") or
        # ending with ".lock", and no "." at the end. The revision also names a file under
        # the cache's refs/ folder, so these keep it inside.
        if (
            fullmatch(r"[\w.\-/]{1,200}", text)
            and not text.startswith("-")
            and not text.endswith(".")
            and all(
                part and not part.startswith(".") and not part.endswith(".lock")
                for part in text.split("/")
            )
        ):
            return text
        raise ConfigError(var.name, raw, var.accepted())
    if var.kind == "args":
        import shlex

        try:
            return tuple(shlex.split(raw))
        except ValueError as exc:  # unbalanced quotes; the flags may carry a secret
            raise ConfigError(
                var.name, raw, var.accepted(), f"It does not split: {exc}.", hide_value=True
            ) from None
    if var.kind == "name":
        # One argv word for --served-model-name: no spaces, and no leading "-", which the
        # engines' parsers would read as an option.
        if text.isprintable() and " " not in text and not text.startswith("-"):
            return text
        raise ConfigError(var.name, raw, var.accepted())
    if var.kind == "file":
        return text
    if var.kind == "secret":  # checked by values.check_secret; the value stays in the environment
        return True
    raise TypeError(f"{var.name}: no parser for kind {var.kind!r}")  # a bug in VARIABLES


def detect_engine(env: Mapping[str, str]) -> list[str]:
    """Return the engines installed where the launcher runs, in ``ENGINES`` order.

    SGLang counts when its package is importable by this interpreter (it is launched as
    ``python -m sglang.launch_server``); vLLM when the ``vllm`` command is on ``env``'s ``PATH``.
    Neither is imported.
    """
    from .engines import engine_module

    return [name for name in ENGINES if engine_module(name).find_engine(env) is not None]


def _platform_values(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Values that LeaderWorkerSet or Slurm give, only imported when their variables exist."""
    if not any(key.startswith(PLATFORM_PREFIXES) for key in env):
        return {}
    from .platforms import platform_values

    return platform_values(env)


def load_settings(
    env: Mapping[str, str], installed: Callable[[], list[str]] | None = None
) -> Settings:
    """Read and validate every variable in ``VARIABLES`` from ``env``.

    An empty value counts as unset. ``NODE_RANK``, ``MASTER_IP`` and ``NNODES`` fall back
    to the values a platform gives (LeaderWorkerSet ``LWS_*``, Slurm ``SLURM_*``; see
    ``entrypoint.platforms``); an explicit value always wins, but an explicit rank or node
    count that contradicts the platform's is an error.

    Args:
        env: the environment, e.g. ``os.environ``.
        installed: returns the installed engines; called only when ENGINE is unset.
            Default: ``detect_engine(env)``.

    Returns:
        Settings with every variable parsed, defaults that depend on other variables
        left as ``None`` for ``entrypoint.plan.resolve_plan``.

    Raises:
        ConfigError: naming the first variable whose value is invalid; ``API_KEY`` also
            when the engine cannot take it (``entrypoint.apikey.check_engine_key``);
            ``VLLM_API_KEY`` when it is set (the launcher sets it from ``API_KEY``).
    """
    for name in SECRET_VARIABLES:
        check_secret(name, env.get(name, ""))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    platform = _platform_values(env)
    for var in VARIABLES:
        raw = env.get(var.name, "")
        limit = MAX_ARGS_CHARS if var.kind == "args" else MAX_VALUE_CHARS
        if len(raw) > limit:
            raise ConfigError(
                var.name,
                raw,
                f"at most {limit} characters",
                hide_value=var.secret or var.kind == "args",
            )
        if var.kind == "library":  # read by its library, from the environment
            if var.choices and raw.strip() and raw.strip().lower() not in var.choices:
                # The library would read it some way the user may not mean (HF_HUB_OFFLINE=
                # enabled is "online"; NCCL reads NCCL_IB_DISABLE=1e3 as 1).
                raise ConfigError(var.name, raw, var.accepted())
            continue
        if raw.strip() == "":
            if var.name in platform:
                raw, source = platform[var.name]
                values[var.name] = _parse(var, raw)
                sources[var.name] = source
                continue
            values[var.name] = var.default
            sources[var.name] = "default"
            continue
        values[var.name] = _parse(var, raw)
        sources[var.name] = "environment"
        if var.name in platform and var.name != "MASTER_IP":
            theirs, source = platform[var.name]
            if _parse(var, theirs) != values[var.name]:
                raise ConfigError(
                    var.name,
                    raw,
                    f"{theirs} (from {source}), or unset",
                    f"{var.name} contradicts the platform's {source}.",
                )
    if values["ENGINE"] is None:
        found = installed() if installed is not None else detect_engine(env)
        if len(found) != 1:
            where = "neither engine is installed here" if not found else "both are installed"
            raise ConfigError("ENGINE", None, " | ".join(ENGINES), f"ENGINE must be set: {where}.")
        values["ENGINE"] = found[0]
        sources["ENGINE"] = "installed engine"
    if values["API_KEY"]:  # the key from API_KEY_FILE is checked when read (apikey)
        from .apikey import check_engine_key

        check_engine_key(values["ENGINE"], "API_KEY", None, env["API_KEY"])
    if env.get("VLLM_API_KEY", "").strip():
        # Set by hand it would bypass the launcher: SGLang ignores it (the API stays open),
        # and the plan would say the API is open while vLLM enforces it.
        raise ConfigError(
            "VLLM_API_KEY",
            env["VLLM_API_KEY"],
            "unset",
            "Give the key as API_KEY, or API_KEY_FILE: the launcher hands it to either "
            "engine outside its command line (vLLM: in VLLM_API_KEY), and the plan shows it.",
            hide_value=True,
        )
    return Settings(values, sources)


def env_table_markdown() -> str:
    """Render ``VARIABLES`` as the README's Markdown table (one row per variable)."""
    rows = ["| Variable | Default | Accepted | Meaning |", "|---|---|---|---|"]
    for var in VARIABLES:
        cells = (f"`{var.name}`", var.default_text(), var.accepted(), var.help)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"
