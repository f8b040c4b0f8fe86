"""Option tables the fake engines' parsers are built from (tests only).

Each fake defines exactly the options our plans use, plus a few common ones that tests
pass through EXTRA_ARGS, copied from the pinned engine's own parser: option strings,
action, type name, nargs, choices and default. tests/images/test_fakes.py compares every
entry with the real parser in the pinned engine's virtual environment, so a fake cannot
accept what the real engine rejects. Options the real engine no longer has, such as
SGLang's ``--enable-ep-moe``, are absent here too.

``FAKE_ENGINE_REJECT`` (comma-separated option strings), set when the fake base image is
built, removes options: a stand-in for an engine release that dropped a flag, used to
prove that the in-image ``check`` fails the build.
"""

from __future__ import annotations

import os


def rejected() -> set[str]:
    """The option strings this fake was built without (``FAKE_ENGINE_REJECT``)."""
    return {s.strip() for s in os.environ.get("FAKE_ENGINE_REJECT", "").split(",") if s.strip()}


def add_options(parser, table) -> None:
    """Add each ``(option_strings, kwargs)`` of ``table`` to ``parser``, minus rejected ones."""
    drop = rejected()
    for strings, kwargs in table:
        if drop.intersection(strings):
            continue
        parser.add_argument(*strings, **kwargs)
