"""The result of one host check: what ``entrypoint.preflight`` and ``entrypoint.fabric``
report. A leaf module (standard library only), so both can import it without importing
each other.
"""

from __future__ import annotations


class Outcome:
    """The result of one check.

    A check passes, passes with a warning, or fails. A warning does not stop the launch
    under any ``PREFLIGHT`` mode, but is printed in the report: for example a multi-node
    plan on a host without RDMA, which works, slowly.

    Attributes:
        name (str): what was checked, e.g. ``"gpus"``.
        ok (bool): the check passed (with or without a warning).
        text (str): what was found; for a failure or a warning, also what to change.
        warning (bool): the check passed, but ``text`` says what the user should know.
        engine_env (dict[str, str]): variables this check chose for the engine (e.g.
            ``GLOO_SOCKET_IFNAME``); the launch passes them on unless already set.
        rlimits (dict[str, int]): soft resource limits this check chose for the engine, by
            ``resource`` name (``{"RLIMIT_MEMLOCK": ...}``); the launcher sets them just
            before the exec.
    """

    __slots__ = ("name", "ok", "text", "warning", "engine_env", "rlimits")

    def __init__(
        self,
        name: str,
        ok: bool,
        text: str,
        engine_env: dict[str, str] | None = None,
        *,
        warning: bool = False,
        rlimits: dict[str, int] | None = None,
    ):
        self.name = name
        self.ok = ok
        self.text = text
        self.warning = warning and ok
        self.engine_env = engine_env or {}
        self.rlimits = rlimits or {}

    def __repr__(self) -> str:
        kind = "warning" if self.warning else self.ok
        return f"Outcome({self.name!r}, {kind}, {self.text!r})"
