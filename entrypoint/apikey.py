"""The API key: read at the exec, handed to the engine without a command line or a log.

``API_KEY`` (the key) or ``API_KEY_FILE`` (a file holding it, such as a mounted Kubernetes
Secret) turns on the engine's key check on the OpenAI API; ``/health`` and ``/metrics``
stay open on both engines (vLLM: ``vllm/entrypoints/serve/middleware/authenticate.py``
guards ``/v1`` and a few other prefixes only; SGLang: ``srt/utils/auth.py``,
``decide_request_auth``, always allows ``/health``, ``/ready`` and ``/metrics``).

How each engine gets the key (docs/engines.md, "Serving features"):

- vLLM reads ``VLLM_API_KEY`` from its environment (``vllm/envs.py``;
  ``vllm/entrypoints/serve/middleware/register.py``): the engine's environment gets it.
- SGLang 0.5.23 reads the key only from ``--api-key`` or from a YAML ``--config`` file,
  which ``prepare_server_args`` merges into its arguments inside the process
  (``srt/server_args.py``; ``srt/utils/server_args_config_parser.py``, which wants a
  ``.yaml`` name and an existing path). The file is an anonymous memory file
  (``memfd_create``) inherited across the exec, behind a symbolic link named
  ``api-key.yaml`` that points at ``/proc/self/fd/N``: the key is never on a disk or a
  command line, only the engine process itself can read it through the link (for any
  other process, ``/proc/self`` is that process), and it is gone when the engine exits.
  The link and its private folder (``KEY_FOLDER_PREFIX``) hold no key; as the launcher
  execs the engine, nothing is left to remove them then, and the next start does.
  SGLang itself still writes the key into its start-up log line ``server_args=...``
  (``srt/entrypoints/engine.py``, ``_launch_subprocesses``) and its ``/server_info``
  answer (behind the key): the README says so.

In both cases ``API_KEY`` and ``API_KEY_FILE`` are removed from the engine's environment,
and the key joins the secrets ``entrypoint.output`` blanks in everything printed.
"""

from __future__ import annotations

import os

from .errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every container start
    from collections.abc import Mapping

    from .plan import Plan

# The variables the key comes from; never passed on to the engine.
KEY_VARIABLES = ("API_KEY", "API_KEY_FILE")
# The variable vLLM reads its key from (vllm/envs.py).
VLLM_KEY_VARIABLE = "VLLM_API_KEY"
# The name SGLang's config reader needs: a .yaml or .yml suffix
# (srt/utils/server_args_config_parser.py, _validate_yaml_file).
SGLANG_CONFIG_NAME = "api-key.yaml"
# The private folders of SGLang's key link: <TMPDIR>/longcat-deploy-key-<pid>-<random>, the
# pid being the launcher's, which the exec hands to the engine.
KEY_FOLDER_PREFIX = "longcat-deploy-key-"
# The longest key file read (a key is a line; a Secret is at most 1 MiB).
MAX_KEY_FILE_BYTES = 4096


def read_api_key(plan: Plan, env: Mapping[str, str]) -> str | None:
    """Return the API key of ``plan`` (from ``API_KEY``, or the file ``API_KEY_FILE``
    names), or ``None`` when the plan has none.

    A file's trailing newline (``echo KEY > file``; a Secret made with ``--from-file``) is
    dropped; the key is then checked like ``API_KEY`` (``entrypoint.settings``).

    Raises:
        ConfigError: the file cannot be read, is not a regular file, is too long, or
            holds no valid key, or its key is one the engine cannot take
            (``check_engine_key``; ``API_KEY`` itself was checked with the settings),
            naming API_KEY_FILE, never the key.
    """
    if plan.api_key_source is None:
        return None
    if plan.api_key_source == "API_KEY":  # checked with the settings (load_settings)
        return env["API_KEY"]
    from .values import check_secret

    path = env["API_KEY_FILE"].strip()
    data = _read_regular_file("API_KEY_FILE", path, MAX_KEY_FILE_BYTES + 1)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigError(
            "API_KEY_FILE", path, f"a file of at most {MAX_KEY_FILE_BYTES} bytes holding one key"
        )
    try:
        key = data.decode().rstrip("\r\n")
    except UnicodeDecodeError:
        raise ConfigError("API_KEY_FILE", path, "a UTF-8 text file holding one key") from None
    if not key:
        raise ConfigError("API_KEY_FILE", path, "a file holding one key", "The file is empty.")
    check_secret(f"the key in API_KEY_FILE={path}", key)
    check_engine_key(plan.engine, "API_KEY_FILE", path, key)
    return key


def _read_regular_file(variable: str, path: str, limit: int) -> bytes:
    """Read at most ``limit`` bytes of the regular file ``path``, never blocking on it
    (``entrypoint.transfer.read_small_file``: a FIFO or a device is not read). Symbolic
    links are followed, as Kubernetes mounts each Secret key as a link to ``..data/KEY``.

    Raises:
        ConfigError: naming ``variable``: the path cannot be opened or read, or is not a
            regular file (it says what it is: a FIFO, a device, a directory...).
    """
    from .transfer import NotAFile, read_small_file

    accepted = "the path of a readable file holding the key"
    try:
        found = read_small_file(path, limit)
    except NotAFile as error:
        raise ConfigError(
            variable,
            path,
            accepted,
            f"It is {error.kind}, not a regular file. Mount the Secret or file there.",
        ) from None
    except OSError as error:
        raise ConfigError(
            variable,
            path,
            accepted,
            f"It cannot be read: {error.strerror}. Mount the Secret or file there.",
        ) from None
    if found is None:
        raise ConfigError(
            variable,
            path,
            accepted,
            "It cannot be read: No such file or directory. Mount the Secret or file there.",
        )
    return found[1]


def check_engine_key(engine: str, variable: str, where: str | None, key: str) -> None:
    """Refuse a key that ``engine`` cannot be given, naming ``variable`` (never the key).

    SGLang merges the key from its ``--config`` file into its own arguments
    (``srt/server_args.py``, ``prepare_server_args``; ``srt/utils/server_args_config_parser.py``),
    where a value starting with ``-`` reads as an option. vLLM takes any key
    (``VLLM_API_KEY``).

    Args:
        engine: ``"sglang"`` or ``"vllm"``.
        variable: where the key came from: ``"API_KEY"`` or ``"API_KEY_FILE"``.
        where: the file's path for ``API_KEY_FILE`` (quoted in the message), else ``None``.
        key: the key.

    Raises:
        ConfigError: SGLang and a key starting with ``-``.
    """
    if engine == "sglang" and key.startswith("-"):
        detail = (
            "SGLang merges the key into its own arguments, where a leading '-' reads as an option."
        )
        if where is None:
            raise ConfigError(
                variable,
                key,
                "a key that does not start with '-' on SGLang",
                detail,
                hide_value=True,
            )
        raise ConfigError(
            variable, where, "a file whose key does not start with '-' on SGLang", detail
        )


def engine_key_environment(
    plan: Plan, environ: Mapping[str, str], key: str | None
) -> dict[str, str]:
    """``environ`` as the engine should get it: without ``API_KEY`` and ``API_KEY_FILE``,
    and with ``VLLM_API_KEY`` set to ``key`` for vLLM (replacing any value it had)."""
    env = {name: value for name, value in environ.items() if name not in KEY_VARIABLES}
    if key is not None and plan.engine == "vllm":
        env[VLLM_KEY_VARIABLE] = key
    return env


def remove_stale_key_folders(tmp: str) -> list[str]:
    """Remove the key folders of SGLang engines that are gone; return their paths.

    The link in a key folder must outlive the exec (the engine reads it as it parses its
    arguments), so no process of the launcher is left to remove it: each start removes
    those of earlier ones instead. A folder is stale when the process its name records is
    gone (no ``/proc/<pid>``) or is this one (a restarted container's pid 1: the engine
    that had it has exited). Only folders this user owns, holding nothing but the
    ``SGLANG_CONFIG_NAME`` link to ``/proc/self/fd/...``, are touched; any error leaves a
    folder as it is.

    Args:
        tmp: the folder the key folders are made in (``tempfile.gettempdir()``).
    """
    import stat

    removed: list[str] = []
    try:
        names = os.listdir(tmp)
    except OSError:
        return removed
    for name in names:
        pid = name[len(KEY_FOLDER_PREFIX) :].split("-", 1)[0]
        if not name.startswith(KEY_FOLDER_PREFIX) or not pid.isdigit():
            continue
        if int(pid) != os.getpid() and os.path.exists(f"/proc/{pid}"):
            continue  # that engine may still be reading its link
        folder = os.path.join(tmp, name)
        link = os.path.join(folder, SGLANG_CONFIG_NAME)
        try:
            info = os.lstat(folder)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                continue
            if os.listdir(folder) != [SGLANG_CONFIG_NAME]:
                continue
            if not os.readlink(link).startswith("/proc/self/fd/"):
                continue
            os.unlink(link)
            os.rmdir(folder)
        except OSError:
            continue
        removed.append(folder)
    return removed


def sglang_key_config(key: str) -> str:
    """Put ``key`` where SGLang's ``--config`` reader finds it, and return that path.

    The YAML (``api-key: "KEY"``, the key as a JSON string, which YAML reads as the same
    text) lives in an anonymous memory file (``os.memfd_create``) whose descriptor stays
    open, inheritable, across the exec. The returned path, ``<private dir>/api-key.yaml``,
    is a symbolic link to ``/proc/self/fd/N``: it leads to the file in the engine process
    only (see the module docstring). The private directory (mode 0700, under ``TMPDIR``,
    named ``KEY_FOLDER_PREFIX<pid>-...``) holds nothing but the link. It has to outlive the
    exec, so it stays after the engine exits; the next start removes it
    (``remove_stale_key_folders``), so at most one is left per engine started here.

    Raises:
        ConfigError: the key starts with ``-`` (SGLang's parser would read it as an option
            once the file is merged into its arguments), or no memory file or private
            directory can be made here.
    """
    import json
    import tempfile

    check_engine_key("sglang", "API_KEY", None, key)  # checked at the start already
    try:
        fd = os.memfd_create("longcat-api-key", 0)  # flags 0: no MFD_CLOEXEC
        os.write(fd, f"api-key: {json.dumps(key)}\n".encode())
        os.set_inheritable(fd, True)
        remove_stale_key_folders(tempfile.gettempdir())
        folder = tempfile.mkdtemp(prefix=f"{KEY_FOLDER_PREFIX}{os.getpid()}-")
        link = os.path.join(folder, SGLANG_CONFIG_NAME)
        os.symlink(f"/proc/self/fd/{fd}", link)
    except (OSError, AttributeError) as error:  # AttributeError: no memfd_create here
        raise ConfigError(
            "API_KEY",
            key,
            "a key SGLang can be given",
            f"The private key file for SGLang could not be made: {error}. Use "
            "ENGINE=vllm, or run where memfd_create and TMPDIR are available.",
            hide_value=True,
        ) from None
    return link
