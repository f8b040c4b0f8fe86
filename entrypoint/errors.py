"""The launcher's errors: one root, and one subclass per way a launch can be refused.

Every error carries its process exit status, so ``entrypoint.cli`` turns any of them into
one message on stderr and that status, never a traceback. The statuses are part of the
public contract and are documented in the README ("Exit statuses"):

====== =====================================================================
status meaning
====== =====================================================================
0      the engine was started (exec), or a dry run / check / health passed
1      ``check`` found a flag the engine rejects; ``health`` found it unhealthy
2      the configuration is invalid or inconsistent (``ConfigError``)
3      a preflight check of the host failed (``PreflightError``)
4      the checkpoint could not be made available locally (``WeightsError``)
74     the launcher's own output could not be written (a full disk, a closed pipe, a
       closed stdout or stderr)
127    the chosen engine is not installed here, or not importable completely
       (``EngineNotInstalled``, ``EngineNotImportable``)
130    SIGINT during the download, or Ctrl-C anywhere (``entrypoint.weights``)
143    SIGTERM during the download (``entrypoint.weights``); elsewhere SIGTERM's default
====== =====================================================================
"""

from __future__ import annotations

EXIT_CHECK_FAILED = 1
EXIT_CONFIG = 2
EXIT_PREFLIGHT = 3
EXIT_WEIGHTS = 4
EXIT_OUTPUT = 74  # sysexits.h EX_IOERR: "an error occurred while doing I/O"
EXIT_ENGINE_MISSING = 127  # the shell's "command not found"


def output_failed() -> int:
    """Exit quietly when stdout or stderr cannot be written (``>/dev/full``, a closed pipe,
    a descriptor closed at start): both are pointed at /dev/null so the interpreter's final
    flush cannot fail again (Python's documentation, "Note on SIGPIPE"). A stream that is
    None (its descriptor was closed when Python started: CPython's Python/pylifecycle.c,
    ``create_stdio``, returns None for an invalid descriptor) is left as it is.

    Returns:
        ``EXIT_OUTPUT`` (74, sysexits.h EX_IOERR), the status the launcher and
        ``build.py`` exit with then.
    """
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # ValueError: the stream is closed
            pass
    return EXIT_OUTPUT


# How much of a refused value a message quotes: enough to recognise it, never a flood.
SHOWN_VALUE_CHARS = 80


def shorten(value: str) -> str:
    """``repr(value)`` redacted, cut to ``SHOWN_VALUE_CHARS`` characters with its length said.

    Redacted (``entrypoint.output.redact``) BEFORE the cut: a cut can drop the ``@`` that
    ends a URL's password, or the end of a configured secret, and the part left would no
    longer be recognised when the message is printed. The length said is the value's own.
    """
    from .output import redact

    shown = redact(value)
    if len(shown) <= SHOWN_VALUE_CHARS:
        return repr(shown)
    return f"{shown[:SHOWN_VALUE_CHARS]!r}... ({len(value)} characters)"


class LaunchError(Exception):
    """Root of every error the launcher reports to the user.

    Attributes:
        exit_status (int): the process exit status for this error.
    """

    exit_status = 1

    def message(self) -> str:
        """Return the one-paragraph message printed on stderr (no secrets, no traceback)."""
        return str(self)


class ConfigError(LaunchError):
    """An environment variable (or a combination of them) is invalid. Exit status 2.

    Args:
        variable: the variable at fault, e.g. ``"NODE_RANK"``.
        value: the value it had; ``None`` when it was unset.
        accepted: what would be accepted, e.g. ``"0..1 (NNODES=2)"``.
        detail: optional extra sentence (why, or how to fix it).
        hide_value: do not quote the value (a secret, or text that may hold one, such as
            engine flags); the message says it is not shown.
    """

    exit_status = EXIT_CONFIG

    def __init__(
        self,
        variable: str,
        value: str | None,
        accepted: str,
        detail: str = "",
        hide_value: bool = False,
    ):
        self.variable = variable
        self.value = value
        self.accepted = accepted
        self.detail = detail
        self.hide_value = hide_value
        super().__init__(self.message())

    def message(self) -> str:
        if self.value is None:
            got = "is not set"
        elif self.hide_value:
            got = f"is refused (value not shown, {len(self.value)} characters)"
        else:
            got = f"is {shorten(self.value)}"
        text = f"{self.variable} {got}; accepted: {self.accepted.rstrip('.')}."
        if self.detail:
            text += f" {self.detail}"
        return text


class OwnedFlagError(ConfigError):
    """An engine flag that the launcher sets from a variable was also given in EXTRA_ARGS or
    after the image name. Exit status 2.

    Given twice, the engine takes the last value, while the health check and preflight use
    the variable's: the flag is refused, never its value shown (it may be a key).

    Args:
        given: the flag as written, without its value (``--po``, ``--api_key``).
        option: the engine option it stands for (``--port``).
        where: ``"EXTRA_ARGS"`` or ``"the arguments after the image name"``.
        variables: the variables that set it, space-separated (``"GPUS_PER_NODE NNODES"``).
        note: an optional sentence on why.
        turned_on: for an option the launcher sets only while a variable turns it on, that
            condition (``"MTP is on"``); ``""`` for an option it always sets.
        remedy: with ``turned_on``, how to turn it off (``"unset MTP"``), or ``""`` when
            only dropping the flag helps.
    """

    def __init__(
        self,
        given: str,
        option: str,
        where: str,
        variables: str,
        note: str = "",
        turned_on: str = "",
        remedy: str = "",
    ):
        self.given, self.option, self.where = given, option, where
        self.variables = variables.split()
        self.turned_on, self.remedy = turned_on, remedy
        super().__init__(where, None, "flags other than the launcher's own", note)

    def message(self) -> str:
        flag = self.given if self.given == self.option else f"{self.given} ({self.option})"
        names = " and ".join(self.variables)
        if self.turned_on:
            text = (
                f"{self.where}: {flag} is set by the launcher while {self.turned_on}; "
                f"{self.remedy + ' or ' if self.remedy else ''}drop {self.option} (given "
                "twice, the engine would take the last value, not the one the launcher "
                f"sets from {names})."
            )
        else:
            text = (
                f"{self.where}: {flag} is set by the launcher from {names}; set {names} "
                f"instead of passing {self.option} (given twice, the engine would take the "
                "last value, while the dry run, health check and preflight use the "
                "variable's)."
            )
        return f"{text} {self.detail}" if self.detail else text


class SecretFlagError(ConfigError):
    """An engine flag that takes a secret was given in EXTRA_ARGS or after the image name.
    Exit status 2.

    Every process on the host can read an engine's command line (``ps``,
    ``/proc/PID/cmdline``), so no secret goes there: the flag is refused, its value never
    shown, and the message names the safe way to give it, or says there is none.

    Args:
        given: the flag as written, without its value (``--hf_tok``).
        option: the secret option it stands for (``--hf-token``; see
            ``entrypoint.output.SECRET_FLAGS``).
        where: ``"EXTRA_ARGS"`` or ``"the arguments after the image name"``.
        alternative: one sentence: the safe way to give the value, or why there is none.
    """

    def __init__(self, given: str, option: str, where: str, alternative: str):
        self.given, self.option, self.where = given, option, where
        super().__init__(where, None, "flags that take no secret", alternative)

    def message(self) -> str:
        flag = self.given if self.given == self.option else f"{self.given} ({self.option})"
        return (
            f"{self.where}: {flag} takes a secret, and every process on the host can read "
            "an engine's command line (ps, /proc/PID/cmdline): it is refused. "
            f"{self.detail}"
        )


# Where SecretOnCommandLineError says a secret is when no text the user gave holds it.
OWN_COMMAND_LINE = "the engine's command line"


class SecretOnCommandLineError(ConfigError):
    """A secret's value would reach the engine's command line through another variable or
    an argument (``SERVED_MODEL_NAME``, ``EXTRA_ARGS="--lora-modules x=$HF_TOKEN"``).
    Exit status 2.

    The output would print it as ``***``, but every process on the host can read an
    engine's command line (``ps``, ``/proc/PID/cmdline``), so it is refused, and no value
    is shown.

    Args:
        where: the variable that holds it, ``"the arguments after the image name"``, or
            ``OWN_COMMAND_LINE`` when only the launcher's own words hold it (a key such as
            ``flashinfer``).
        secret: the secret's name (``"HF_TOKEN"``, ``"the key in API_KEY_FILE"``).
    """

    def __init__(self, where: str, secret: str):
        self.where, self.secret = where, secret
        super().__init__(where, None, f"text without the value of {secret}")

    def message(self) -> str:
        if self.where == OWN_COMMAND_LINE:
            return (
                f"{self.secret} is text the launcher itself puts on the engine's command line "
                "(a flag, the model's name or path), where every process on the host can "
                "read it: it is refused. Choose a secret that is not an ordinary word (a key: "
                "openssl rand -hex 32)."
            )
        return (
            f"{self.where}: holds the value of {self.secret}, and every process on the host "
            "can read an engine's command line (ps, /proc/PID/cmdline): it is refused. Give "
            "a secret only where the launcher takes it (HF_TOKEN, API_KEY, API_KEY_FILE, a "
            "password in its own URL); it reaches the engine through its environment or a "
            "private file."
        )


class StoredTokenError(ConfigError):
    """The Hub token stored in a file (``hf auth login``), which huggingface_hub would send
    as the ``Authorization`` header, holds text no HTTP header can carry, or cannot be read
    as a token; or huggingface_hub's stored-tokens file beside it, which it reads then,
    cannot be read as the file it writes. Exit status 2.

    The message names the file and what is wrong, never the text.

    Args:
        path: the file (huggingface_hub's ``HF_TOKEN_PATH``, or ``HF_STORED_TOKENS_PATH``).
        why: what is wrong, e.g. ``"it is not UTF-8 text"``.
        what: ``"the stored Hub token"`` (the token file), or
            ``"huggingface_hub's stored tokens"`` (the stored-tokens file).
    """

    def __init__(self, path: str, why: str, what: str = "the stored Hub token"):
        self.path, self.why, self.what = path, why, what
        super().__init__("HF_TOKEN_PATH", None, "a file that holds one token, as plain text")

    def message(self) -> str:
        if self.what != "the stored Hub token":
            return (
                f"{self.what} in {self.path} cannot be read: {self.why}. huggingface_hub "
                "reads that file whenever it sends the stored token (HF_TOKEN unset). Set "
                "HF_TOKEN, run `hf auth login` again, or remove the file "
                "(HF_HUB_DISABLE_IMPLICIT_TOKEN=1 sends no stored token)."
            )
        return (
            f"the stored Hub token in {self.path} cannot be sent: {self.why}. huggingface_hub "
            "sends that file's text in the Authorization header whenever HF_TOKEN is unset. "
            "Set HF_TOKEN, run `hf auth login` again, or set HF_TOKEN_PATH to a file that "
            "holds only the token (HF_HUB_DISABLE_IMPLICIT_TOKEN=1 sends none)."
        )


class EngineNotInstalled(LaunchError):
    """The chosen engine cannot be found where the launcher runs. Exit status 127.

    Args:
        engine: ``"sglang"`` or ``"vllm"``.
        looked_for: what was searched, e.g. ``"the 'vllm' command on PATH"``.
    """

    exit_status = EXIT_ENGINE_MISSING

    def __init__(self, engine: str, looked_for: str):
        self.engine = engine
        self.looked_for = looked_for
        super().__init__(
            f"ENGINE={engine} but {engine} is not installed here (looked for {looked_for}). "
            f"Use the longcat-deploy {engine} image, or set ENGINE to the engine this image has."
        )


class EngineNotImportable(LaunchError):
    """The chosen engine is installed but one of the modules ``check`` needs does not import
    (a broken or partial install, a missing shared library). Exit status 127.

    Args:
        engine: ``"sglang"`` or ``"vllm"``.
        module: the module that failed to import, e.g. ``"sglang.srt.server_args"``.
        error: the exception its import raised (``ImportError``, ``OSError``, any other).
    """

    exit_status = EXIT_ENGINE_MISSING

    def __init__(self, engine: str, module: str, error: BaseException):
        self.engine = engine
        self.module = module
        detail = " ".join(str(error).split())  # one line, whatever the loader said
        super().__init__(
            f"ENGINE={engine} but {engine} is not importable here: importing {module} "
            f"failed with {type(error).__name__}: {detail}. Reinstall {engine} (or use the "
            f"longcat-deploy {engine} image)."
        )


class PreflightError(LaunchError):
    """One or more host checks failed before the engine was started. Exit status 3.

    Args:
        failures: one line per failed check, each saying what was found and what to change.
    """

    exit_status = EXIT_PREFLIGHT

    def __init__(self, failures: list[str]):
        self.failures = list(failures)
        lines = "\n".join(f"  - {f}" for f in self.failures)
        super().__init__(
            f"preflight failed, the engine was not started:\n{lines}\n"
            "Fix the above, or set PREFLIGHT=warn to start anyway."
        )


class WeightsError(LaunchError):
    """The checkpoint is not available locally and cannot be fetched. Exit status 4."""

    exit_status = EXIT_WEIGHTS
