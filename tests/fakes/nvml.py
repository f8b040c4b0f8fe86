"""A stand-in for nvidia-ml-py's ``pynvml`` module: the NVML boundary, faked for GPU-less tests.

``module(gpus)`` builds a module object with the functions the launcher calls
(``nvmlInit``, ``nvmlShutdown``, ``nvmlDeviceGetCount``, ``nvmlDeviceGetHandleByIndex``,
``nvmlDeviceGetName``, ``nvmlDeviceGetUUID``, ``nvmlDeviceGetMemoryInfo``) and ``NVMLError``;
tests put it in ``sys.modules["pynvml"]``. For a launcher subprocess, ``tests/fakes/nvml_site/pynvml.py``
builds the same module from the ``FAKE_NVML_GPUS`` variable (JSON).

Memory sizes are what NVML reports for real boards (``nvmlDeviceGetMemoryInfo().total``).
"""

from __future__ import annotations

import json
import types

MiB = 2**20
# NVML's total memory: H200 (141 GB datasheet) and H100 SXM (80 GB datasheet).
H200 = ("NVIDIA H200", 143771 * MiB)
H100 = ("NVIDIA H100 80GB HBM3", 81559 * MiB)
NVML_ERROR_LIBRARY_NOT_FOUND = 12


class NVMLError(Exception):
    """Like pynvml.NVMLError: carries the NVML return code in ``value``."""

    def __init__(self, value: int):
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {12: "NVML Shared Library Not Found"}.get(self.value, f"NVML error {self.value}")


def gpus(model: tuple[str, int], count: int) -> list[dict]:
    """``count`` GPUs of one ``model`` (name, bytes), with distinct UUIDs."""
    name, memory = model
    return [{"name": name, "memory": memory, "uuid": f"GPU-{i:08x}-fake-{name[-4:]}"}
            for i in range(count)]


def module(devices: list[dict] | None, init_error: int | None = None) -> types.ModuleType:
    """A fake ``pynvml`` exposing ``devices``; ``nvmlInit`` fails with ``init_error`` if given."""
    fake = types.ModuleType("pynvml")
    fake.NVMLError = NVMLError
    state = {"initialised": 0}

    def nvmlInit():
        if init_error is not None:
            raise NVMLError(init_error)
        state["initialised"] += 1

    def nvmlShutdown():
        state["initialised"] -= 1

    def handle(index):
        if not state["initialised"]:
            raise NVMLError(1)  # NVML_ERROR_UNINITIALIZED
        return devices[index]

    fake.nvmlInit = nvmlInit
    fake.nvmlShutdown = nvmlShutdown
    fake.nvmlDeviceGetCount = lambda: len(devices or [])
    fake.nvmlDeviceGetHandleByIndex = handle
    fake.nvmlDeviceGetName = lambda h: h["name"]
    fake.nvmlDeviceGetUUID = lambda h: h["uuid"].encode()  # older pynvml returns bytes
    fake.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=h["memory"],
                                                                   free=h["memory"], used=0)
    fake.state = state
    return fake


def from_environment(value: str | None) -> types.ModuleType:
    """The module ``FAKE_NVML_GPUS`` describes: a JSON list of GPUs, or "no-driver"."""
    if not value or value == "no-driver":
        return module(None, init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    return module(json.loads(value))
