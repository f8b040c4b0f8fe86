"""Fake ``vllm.reasoning``: the reasoning-parser base class and registry that parser plugins
use, as the pinned vLLM defines them (vllm/reasoning/abs_reasoning_parsers.py): plugins
register with the ``register_module(name)`` decorator, which records the class by module
and name; ``import_reasoning_parser(path)`` imports a plugin file under its base name
(vllm/utils/import_utils.py, ``import_plugin``); ``list_registered`` names every parser."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys


class ReasoningParser:
    """Base of every reasoning parser: holds the tokenizer."""

    def __init__(self, tokenizer, *args, **kwargs):
        self.model_tokenizer = tokenizer
        self._model_config = kwargs.get("model_config")

    @property
    def vocab(self) -> dict:
        return self.model_tokenizer.get_vocab()


class ReasoningParserManager:
    """The registry: name -> (module, class name), imported on first use."""

    reasoning_parsers: dict = {}
    lazy_parsers: dict = {}

    @classmethod
    def register_module(cls, name=None, force=True, module=None):
        def decorator(obj):
            names = [name] if isinstance(name, str) else list(name or [obj.__name__])
            for each in names:
                cls.lazy_parsers[each] = (obj.__module__, obj.__name__)
            return obj

        return decorator

    @classmethod
    def list_registered(cls) -> list[str]:
        return sorted(set(cls.reasoning_parsers) | set(cls.lazy_parsers))

    @classmethod
    def get_reasoning_parser(cls, name: str):
        if name in cls.reasoning_parsers:
            return cls.reasoning_parsers[name]
        module, class_name = cls.lazy_parsers[name]
        cls.reasoning_parsers[name] = getattr(importlib.import_module(module), class_name)
        return cls.reasoning_parsers[name]

    @classmethod
    def import_reasoning_parser(cls, plugin_path: str) -> None:
        """A module name, else a file imported under its base name; failures are logged
        and swallowed, as vLLM's ``import_plugin`` does."""
        try:
            importlib.import_module(plugin_path)
            return
        except ModuleNotFoundError:
            pass
        name = os.path.splitext(os.path.basename(plugin_path))[0]
        try:
            spec = importlib.util.spec_from_file_location(name, plugin_path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        except Exception as error:  # noqa: BLE001 (vLLM logs it and goes on)
            print(f"Failed to load module {name!r} from {plugin_path}: {error}", file=sys.stderr)


__all__ = ["ReasoningParser", "ReasoningParserManager"]
