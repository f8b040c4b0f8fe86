"""LongCat-Flash launcher: environment variables in, the engine command out, then exec."""

__version__ = "0.1.0"
