"""LongCat-Flash launcher: environment variables in, the engine command out, then exec."""


def __getattr__(name: str) -> str:
    """``entrypoint.__version__``: the installed distribution's version (pyproject.toml).

    Read from the package metadata on first use, never at import: the launcher's start-up
    path does not pay for ``importlib.metadata``.
    """
    if name == "__version__":
        from importlib.metadata import version

        return version("longcat-deploy")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
