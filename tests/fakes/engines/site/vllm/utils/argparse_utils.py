"""Fake ``vllm.utils.argparse_utils``: the parser class and the argparse helpers vLLM uses."""

from __future__ import annotations

import argparse


def optional_type(return_type):
    """vLLM's ``optional_type``: empty or "None" -> None, else ``return_type(value)``."""

    def _optional_type(value: str):
        if value == "" or value == "None":
            return None
        return return_type(value)

    return _optional_type


class EnableDisableAction(argparse.Action):
    """vLLM's switch pair: ``--x`` sets True and ``--no-x``/``--disable-x`` sets False."""

    def __init__(self, option_strings, dest, default=False, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=default, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        negative = option_string.startswith(("--no-", "--disable-"))
        setattr(namespace, self.dest, not negative)


class FlexibleArgumentParser(argparse.ArgumentParser):
    """vLLM's parser: ``--some_flag`` is accepted as ``--some-flag``."""

    def parse_args(self, args=None, namespace=None):
        import sys

        args = list(sys.argv[1:] if args is None else args)
        normalised = []
        for arg in args:
            if arg.startswith("--") and len(arg) > 2:
                name, sep, value = arg.partition("=")
                arg = name.replace("_", "-") + sep + value
            normalised.append(arg)
        return super().parse_args(normalised, namespace)
