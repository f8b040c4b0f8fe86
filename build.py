#!/usr/bin/env python3
"""Build, verify, tag and push the LongCat-Flash engine images: ``python build.py --help``.

A thin entry point: the work is done by the ``images`` package next to the Dockerfiles
(``images/cli.py`` is the command line; one module per step). Run it with the Python that
has the build extra installed (``pip install -e '.[build]'``).
"""

import sys

# pyproject.toml's requires-python; images/ reads TOML with tomllib (Python 3.11+).
# Checked before importing the package, so an older Python gets a message, not a traceback.
MIN_PYTHON = (3, 11)


def python_too_old(version_info=sys.version_info) -> str:
    """The message for a Python older than MIN_PYTHON, or "" when this one is recent enough."""
    if tuple(version_info[:2]) >= MIN_PYTHON:
        return ""
    need, have = "{}.{}".format(*MIN_PYTHON), "{}.{}".format(*version_info[:2])
    return (
        f"build.py: error: needs Python {need} or newer, this is {have} "
        f"({sys.executable}); run it with the Python of the project's virtual environment "
        "(.venv/bin/python build.py)"
    )


if __name__ == "__main__":
    problem = python_too_old()
    if problem:
        print(problem, file=sys.stderr)
        sys.exit(2)
    from images.cli import main

    sys.exit(main())
