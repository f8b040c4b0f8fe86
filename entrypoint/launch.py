"""The launch sequence: environment in, the engine exec'd (or, in a dry run, the plan printed).

The whole data flow of a launch is in ``launch``, one step after the other::

    settings = load_settings(env)                    # environment -> validated values
    plan = resolve_plan(settings, passthrough)       # values -> this node's topology
    secrets = configured_secrets(plan, env, dry_run) # HF_TOKEN, API_KEY(_FILE), checked
    refuse_secrets_on_command_line(...)              # none of them in the engine's argv
    located = weights.locate(...)                    # the checkpoint, without network
    outcomes = preflight.run_checks(...)             # the host, in one report
    located = weights.prepare(...)                   # fetch what is missing
    plan = plan.replace(model=..., engine_env=...,   # what those steps decided
                        engine_rlimits=...)
    seed.link_seed(env)                              # the image's own cache files
    preflight.wait_for_master(...)                   # nodes 1..N-1 wait for node 0
    exec_engine(build_argv(plan), ...)               # become the engine

Each step is a function of plain data; only ``launch`` strings them together, and only
``launch`` builds a new plan from what a step decided.
"""

from __future__ import annotations

import sys

from .errors import OWN_COMMAND_LINE, EngineNotInstalled, SecretOnCommandLineError
from .settings import VARIABLES, load_settings

# The name the key read from API_KEY_FILE goes by in messages.
KEY_FILE_SECRET = "the key in API_KEY_FILE"

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every container start
    from collections.abc import Mapping, Sequence

    from .plan import Plan


def describe_plan(
    plan: Plan, argv: list[str], before_launch: Sequence[tuple[str, str, str]] = ()
) -> str:
    """Render the plan for a human: each value and where it came from, then derived ones.

    Args:
        plan: this node's plan.
        argv: the engine command it gives (printed last, secrets redacted).
        before_launch: (name, what, why) rows of what the launch would check and fetch
            first (``entrypoint.preflight.describe``); the dry run itself checks none of it.
    """
    from .engines import engine_env
    from .output import command_line

    vllm = plan.engine == "vllm"
    shown = {
        "ENGINE": plan.engine,
        "PRECISION": plan.precision,
        "NNODES": plan.nnodes,
        "NODE_RANK": plan.node_rank,
        "MASTER_IP": plan.master_ip or "-",
        "MASTER_PORT": plan.master_port if plan.multi_node else "- (one node)",
        "MTP": "on" if plan.mtp else "off",
        "MODEL": plan.model,
        "GPUS_PER_NODE": plan.gpus_per_node,
        "HOST": plan.host,
        "PORT": plan.port if plan.serves_http else "- (headless node: no HTTP)",
        "EXTRA_ARGS": command_line(list(plan.extra_args)) or "-",
        "VARIANT": plan.variant,
        "TOOL_CALLS": "on" if plan.tool_calls else "off",
        "SERVED_MODEL_NAME": plan.served_model_name,
        "API_KEY": "set (not shown)" if plan.api_key_source == "API_KEY" else "-",
        "API_KEY_FILE": "set (its key not shown)" if plan.api_key_source == "API_KEY_FILE" else "-",
        "CONTEXT_LENGTH": plan.context_length or "- (the checkpoint's own)",
        "SHUTDOWN_TIMEOUT_S": (
            plan.shutdown_timeout_s if vllm else "- (SGLang drains without a limit)"
        ),
    }
    lines = ["LongCat-Flash launch plan (dry run: nothing is started)"]
    for var in VARIABLES:
        if var.name in shown:
            lines.append(
                f"  {var.name:<22} {str(shown[var.name]):<44} {plan.sources.get(var.name, '')}"
            )
    derived: list[tuple[str, object, str]] = [
        ("role", plan.role, ""),
        ("tensor parallel size", plan.tensor_parallel_size, plan.sources["tensor_parallel_size"]),
        ("expert parallel size", plan.expert_parallel_size, plan.sources["expert_parallel_size"]),
    ]
    if plan.engine == "vllm":
        derived.append(
            ("data parallel size", plan.data_parallel_size, plan.sources["data_parallel_size"])
        )
    if plan.mtp:
        derived.append(("draft model", plan.draft_model, "MODEL (the served checkpoint)"))
    if plan.revision:
        derived.append(("model revision", plan.revision, plan.sources["revision"]))
    derived += _serving_rows(plan)
    for name, value in sorted(engine_env(plan).items()):
        derived.append(("engine environment", f"{name}={value}", "unless already set"))
    for name, shown_value, source in derived:
        lines.append(f"  {name:<22} {str(shown_value):<44} {source}")
    if before_launch:
        lines.append("before launch (not done by a dry run):")
        for name, what, why in before_launch:
            lines.append(f"  {name:<22} {what:<44} {why}")
    lines.append("command:")
    lines.append(command_line(argv))
    return "\n".join(lines)


def _serving_rows(plan: Plan) -> list[tuple[str, object, str]]:
    """The dry run's rows on what clients get: reasoning, API key, metrics, stop.

    Facts from docs/engines.md, "Serving features".
    """
    vllm = plan.engine == "vllm"
    rows: list[tuple[str, object, str]] = []
    if plan.variant == "thinking":
        rows.append(
            (
                "reasoning",
                "apart from the content (--reasoning-parser longcat_think)"
                if vllm
                else "stays in the content",
                "VARIANT=thinking" if vllm else "SGLang has no parser for <longcat_think>",
            )
        )
    if plan.api_key_source is None:
        rows.append(("API key", "none: the API is open", "set API_KEY or API_KEY_FILE"))
    else:
        rows.append(
            (
                "API key",
                "in VLLM_API_KEY (engine environment)"
                if vllm
                else "in a private --config file (not argv)",
                f"{plan.api_key_source}; /health and /metrics stay open",
            )
        )
    if plan.serves_api:
        rows.append(
            (
                "metrics",
                f"GET /metrics on port {plan.port} (Prometheus)",
                "always on in vLLM" if vllm else "--enable-metrics",
            )
        )
    rows.append(
        (
            "graceful stop",
            f"in-flight requests get {plan.shutdown_timeout_s} s"
            if vllm
            else "in-flight requests finish first",
            "SHUTDOWN_TIMEOUT_S (--shutdown-timeout)" if vllm else "SGLang's own drain on SIGTERM",
        )
    )
    return rows


def refuse_secrets_on_command_line(
    argv: Sequence[str], secrets: Mapping[str, str], sources: Mapping[str, str]
) -> None:
    """Refuse an engine command that holds a secret's value anywhere in its words.

    Every process on the host can read an engine's command line (``/proc/PID/cmdline``,
    ``ps``), so a secret the user reused in another place (``SERVED_MODEL_NAME``,
    ``EXTRA_ARGS="--lora-modules x=$HF_TOKEN"``, an argument after the image name) must
    not reach it, even though the output would print it as ``***``. Secrets reach the
    engine only through its environment or a private file (``entrypoint.apikey``).

    Args:
        argv: the engine's command (``list[str]``), as ``entrypoint.engines.build_argv``
            makes it.
        secrets: name -> value of each configured secret, as
            ``entrypoint.settings.named_secrets`` gives them (the API key read from
            ``API_KEY_FILE`` added under that name). Values shorter than
            ``entrypoint.output.MIN_SECRET_CHARS`` are not looked for: settings refuses
            such secrets, and a stored token that short would match ordinary words.
        sources: where the command's text comes from, to name in the message: a name
            (a variable, or "the arguments after the image name") -> its text.

    Raises:
        SecretOnCommandLineError: (exit 2) naming the first source that holds a secret
            (or that only the launcher's own words do) and the secret's name; no value
            shown.
    """
    from .output import MIN_SECRET_CHARS

    for name, secret in secrets.items():
        value = secret.strip()
        if len(value) < MIN_SECRET_CHARS or not any(_holds(word, value) for word in argv):
            continue
        where = next(
            (source for source, text in sources.items() if _holds(text, value)),
            OWN_COMMAND_LINE,  # the launcher's own words: a key like "flashinfer"
        )
        raise SecretOnCommandLineError(where, name)


def _holds(text: str, secret: str) -> bool:
    """Whether ``text`` holds ``secret`` as it is, or in a spelling the engine or a server
    decodes back to it: percent-encoded (a URL's escapes reach its server decoded, RFC 3986
    section 2.1), with string escapes (``_ESCAPE``: ``\\u0068`` in vLLM's JSON-valued flags,
    ``\\150`` in a chat template's Jinja string), or both."""
    if secret in text:
        return True
    if "%" not in text and "\\" not in text:
        return False
    from urllib.parse import unquote

    decoded = {unquote(text), _unescape(text)}
    decoded |= {unquote(_unescape(text)), _unescape(unquote(text))}
    return any(secret in form for form in decoded)


# The string escapes an engine may decode in a flag's value: JSON's (RFC 8259, section 7;
# vLLM's JSON-valued flags) and Python's and Jinja's (``\\xHH``, ``\\UXXXXXXXX``, octal
# ``\\ooo``, ``\\N{NAME}``: a --chat-template's string literals).
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_ESCAPE = (
    r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})|\\U([0-9a-fA-F]{8})|\\([0-7]{1,3})"
    r"|\\N\{([^}]*)\}|\\(.)"
)


def _unescape(text: str) -> str:
    """``text`` with the string escapes of ``_ESCAPE`` decoded, leaving everything else
    as it is; surrogate pairs decode to their character."""
    if "\\" not in text:
        return text
    import re

    def one(match: re.Match[str]) -> str:
        hex4, hex2, hex8, octal, name, char = match.groups()
        code = hex4 or hex2 or hex8
        if code is not None:
            return chr(min(int(code, 16), 0x10FFFF))
        if octal is not None:
            return chr(int(octal, 8))
        if name is not None:
            import unicodedata

            try:
                return unicodedata.lookup(name)
            except KeyError:
                return match.group(0)
        return _SIMPLE_ESCAPES.get(char, char)

    # A backslash before a line break continues the line: Jinja's string literals drop both
    # (jinja2 lexer: the "unicode-escape" codec, after newlines are normalised to \n).
    decoded = re.sub(_ESCAPE, one, text.replace("\\\r\n", "").replace("\\\n", ""))
    return decoded.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def configured_secrets(plan: Plan, env: Mapping[str, str], dry_run: bool) -> dict[str, str]:
    """Every secret of this launch, by name, and output told to blank each of them.

    ``entrypoint.settings.named_secrets``, plus the API key read from ``API_KEY_FILE``
    (``entrypoint.apikey.read_api_key``) under ``"the key in API_KEY_FILE"``. A dry run
    (or ``check``) reads the file only where it exists: it may run where the Secret is
    not mounted.

    Raises:
        ConfigError: the key file cannot be used (``read_api_key``).
    """
    import os

    from .settings import named_secrets

    secrets = named_secrets(env)
    if plan.api_key_source == "API_KEY_FILE" and (
        not dry_run or os.path.lexists(env["API_KEY_FILE"].strip())
    ):
        from .apikey import read_api_key
        from .output import configure

        key = read_api_key(plan, env)
        if key is not None:
            secrets[KEY_FILE_SECRET] = key
            configure(secrets.values())
    return secrets


def command_sources(env: Mapping[str, str], passthrough: Sequence[str]) -> dict[str, str]:
    """The texts the engine's argv is made from, by where the user gave them: each
    launcher variable that is not a secret, then the arguments after the image name."""
    sources = {v.name: env[v.name] for v in VARIABLES if not v.secret and env.get(v.name)}
    for v in VARIABLES:
        if v.kind == "args" and v.name in sources:  # the words the engine gets, quotes gone
            import shlex

            try:
                sources[v.name] += "\0" + "\0".join(shlex.split(sources[v.name]))
            except ValueError:  # settings refuses these
                pass
    if passthrough:
        sources["the arguments after the image name"] = "\0".join(passthrough)
    return sources


def launch(env: Mapping[str, str], passthrough: Sequence[str], dry_run: bool) -> int:
    """Resolve the plan; print it (dry run) or check the host, fetch weights, exec the engine.

    Before the exec, in this order: the checkpoint is located without network access
    (``DOWNLOAD``, ``entrypoint.weights.locate``); the host checks run and report in one
    block (``PREFLIGHT``, ``entrypoint.preflight.run_checks``); missing checkpoint files
    are downloaded (``entrypoint.weights.prepare``); the files the image ships in its seed
    are linked into the cache (``LONGCAT_HF_SEED``, ``entrypoint.seed``); nodes ranked 1
    and up wait for node 0 (``MASTER_WAIT_S``). ``DOWNLOAD=0`` and ``PREFLIGHT=off`` skip
    their steps and their imports. The API key (``entrypoint.apikey``) is read first, and
    reaches the engine through its environment (vLLM) or a private config file (SGLang),
    never its argv.

    Args:
        env: the environment (``os.environ`` in a container).
        passthrough: arguments for the engine, after ``EXTRA_ARGS``.
        dry_run: print the plan and the command instead of launching.

    Returns:
        0 after a dry run. Otherwise it does not return (exec) or raises.

    Raises:
        LaunchError: any refusal, carrying its exit status: ``ConfigError`` (2),
            ``PreflightError`` (3) for a failed host check or node 0 not answering with
            ``PREFLIGHT=on``, ``WeightsError`` (4) when the checkpoint cannot be made
            available locally, ``EngineNotInstalled`` (127).
    """
    from .engines import build_argv, engine_env, engine_module
    from .plan import resolve_plan

    settings = load_settings(env)
    values, mode = settings.values, settings["PREFLIGHT"]
    plan = resolve_plan(settings, passthrough)
    # The key first: a missing, unreadable or unusable key file is refused before
    # anything else (and hours of download); then no secret may reach the argv.
    secrets = configured_secrets(plan, env, dry_run)
    sources = command_sources(env, passthrough)
    refuse_secrets_on_command_line(build_argv(plan), secrets, sources)
    if dry_run:
        from .output import say
        from .preflight import describe

        before = describe(plan, values, env)
        if plan.api_key_source == "API_KEY_FILE":
            state = "read and checked" if KEY_FILE_SECRET in secrets else "not here: read at start"
            before = [*before, ("API key", env["API_KEY_FILE"].strip(), state)]
        say(describe_plan(plan, build_argv(plan), before))
        return 0
    key = env["API_KEY"] if plan.api_key_source == "API_KEY" else secrets.get(KEY_FILE_SECRET)
    if engine_module(plan.engine).find_engine(env) is None:
        raise EngineNotInstalled(
            plan.engine,
            {
                "sglang": f"the sglang package in {sys.executable}",
                "vllm": "the 'vllm' command on PATH",
            }[plan.engine],
        )
    located = None
    if values["DOWNLOAD"]:
        from .weights import locate

        located = locate(plan, values, env)
    chosen_env: dict[str, str] = {}
    chosen_rlimits: dict[str, int] = {}
    if mode != "off":
        from .preflight import chosen_engine_env, run_checks
        from .preflight import chosen_rlimits as rlimits_of

        outcomes = run_checks(
            plan,
            env,
            mode,
            download_to=located.cache if located is not None and located.needs_download else None,
        )
        chosen_env = chosen_engine_env(outcomes)
        chosen_rlimits = rlimits_of(outcomes)
    if located is not None:
        from .weights import prepare

        located = prepare(plan, values, env, located)
        plan = plan.replace(**located.plan_changes())
    plan = plan.replace(
        engine_env={**plan.engine_env, **chosen_env},
        engine_rlimits={**plan.engine_rlimits, **chosen_rlimits},
    )
    if env.get("LONGCAT_HF_SEED"):  # files the image ships, hidden by the HF_HOME mount
        from .seed import link_seed

        link_seed(env)
    if mode != "off":
        from .preflight import wait_for_master

        wait_for_master(plan, values["MASTER_WAIT_S"], mode)
    environ: Mapping[str, str] = env
    if key is not None:
        from .apikey import engine_key_environment, sglang_key_config

        if plan.api_key_config is not None:
            plan = plan.replace(api_key_config=sglang_key_config(key))
        environ = engine_key_environment(plan, env, key)
    from .execute import engine_environment, exec_engine

    pid_record = None
    if plan.headless:  # the health check finds the engine by this record
        from .health import pid_file

        pid_record = pid_file(env)
    library_variables = [var.name for var in VARIABLES if var.kind == "library"]
    argv = build_argv(plan)
    refuse_secrets_on_command_line(argv, secrets, sources)  # steps since may have added text
    exec_engine(
        argv,
        engine_environment(environ, engine_env(plan), library_variables),
        plan.engine,
        pid_record=pid_record,
        rlimits=plan.engine_rlimits,
    )
