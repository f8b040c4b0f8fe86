"""One module per engine: a plan in, the engine's argv out.

Each engine module provides:

- ``build_argv(plan) -> list[str]``: the exact command, canonical long flags only;
- ``ENGINE_ENV``: variables the launcher sets for the engine unless already set;
- ``OWNED_OPTIONS`` and ``OWNED_WHEN_SET``: the options the launcher sets from a variable
  (always, or while the variable turns them on), as ``OwnedOption`` rows, refused in
  EXTRA_ARGS and after the image name (``owned_option``; tests/launcher/test_engine_contract.py
  checks the rows against the pinned engines' parsers);
- ``FIXED_OPTIONS``: the other options ``build_argv`` emits, with fixed values tied to no
  variable, which EXTRA_ARGS may override (every emitted option is in one of the three:
  tests/launcher/test_owned_flags.py);
- ``NOT_SECRET_OPTIONS``: its options whose names begin like a secret flag's but take no
  secret (``--ssl-keyfile``), which ``entrypoint.plan`` lets through;
- ``find_engine() -> str | None``: what would run, or ``None`` when it is not installed;
- ``parser_rejections(argv) -> list[str]``: run ``argv`` through the installed engine's own
  argument parser (imported only then) and describe each flag it rejects.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import ModuleType

    from ..plan import Plan

# One option the launcher sets from a variable: (option string as the engine's parser
# defines it, the length of its shortest abbreviation that the parser resolves to it alone,
# the variables that set it (space-separated), a sentence on why, or "").
OwnedOption = tuple[str, int, str, str]


def engine_module(engine: str) -> ModuleType:
    """Return the module for ``engine`` (``"sglang"`` or ``"vllm"``)."""
    return importlib.import_module(f"{__name__}.{engine}")


def build_argv(plan: Plan) -> list[str]:
    """Return the engine command for ``plan``."""
    argv: list[str] = engine_module(plan.engine).build_argv(plan)
    return argv


def engine_env(plan: Plan) -> dict[str, str]:
    """Variables the launcher sets for the engine of ``plan`` unless the environment has
    them: the engine module's ``ENGINE_ENV``, then what preflight chose
    (``plan.engine_env``, e.g. ``GLOO_SOCKET_IFNAME``)."""
    return {**engine_module(plan.engine).ENGINE_ENV, **plan.engine_env}


def distribution_version(name: str) -> str | None:
    """Return the installed version of the distribution ``name``, or ``None``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def owned_option(token: str, table: Iterable[OwnedOption]) -> tuple[str, str, str] | None:
    """Return (option, variables, note) when ``token`` names an option of ``table`` in a
    spelling an engine's parser accepts, else ``None``.

    Spellings: the option itself; ``--option=value``; underscores for dashes after ``--``
    (vLLM's ``FlexibleArgumentParser`` turns ``--api_key`` into ``--api-key``;
    docs/engines.md, "vLLM"); and argparse's abbreviations (``allow_abbrev``): any prefix at
    least as long as the row's shortest one, which the parser resolves to that option alone.
    Tokens that do not start with ``-`` (values) are never options.
    """
    if not token.startswith("-") or token in ("-", "--"):
        return None
    name = token.split("=", 1)[0]
    if name.startswith("--"):
        name = "--" + name[2:].replace("_", "-")
    for option, shortest, variables, note in table:
        if option.startswith(name) and len(name) >= shortest:
            return option, variables, note
    return None


def unknown_flags(argv: list[str], known: set[str], engine: str) -> list[str]:
    """Describe each ``--flag`` in ``argv`` that is not spelled exactly as one in ``known``.

    argparse accepts unambiguous prefixes (``--tp`` for ``--tp-size``); we emit only
    canonical names, so a prefix counts as rejected here. ``--flag=value`` is checked by
    its name. Values that start with ``-`` (a negative number) are not flags.

    Args:
        argv: the engine's arguments after its program words.
        known: every option string the engine's parser defines.
        engine: the engine and version, for the message (``"sglang 1.2.3"``).

    Returns:
        One line per rejected flag, starting with the flag.
    """
    rejected = []
    for token in argv:
        if token.startswith("--") and len(token) > 2:
            name = token.split("=", 1)[0]
            if name in known:
                continue
            longer = sorted(k for k in known if k.startswith(name))
            if longer:
                rejected.append(
                    f"{name}: only an abbreviation of {' or '.join(longer[:3])} "
                    f"in {engine}; use the full name"
                )
            else:
                rejected.append(f"{name}: not an option of {engine}")
    return rejected
