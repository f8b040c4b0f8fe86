"""A stand-in for nvidia-ml-py's ``pynvml`` module: the NVML boundary, faked for GPU-less tests.

``module(gpus, driver=...)`` builds a module object with the functions the launcher calls
and ``NVMLError``; tests put it in ``sys.modules["pynvml"]``. For a launcher subprocess,
``tests/fakes/nvml_site/pynvml.py`` builds the same module from the ``FAKE_NVML_GPUS``
variable (JSON, see ``from_environment``).

Names, arguments, return shapes and error codes copy nvidia-ml-py's ``pynvml.py`` (the
package is installed with ``pip install -e '.[test]'``; read it there):

- ``nvmlInit()``, ``nvmlShutdown()``; a device call before ``nvmlInit`` fails with
  NVML_ERROR_UNINITIALIZED (1).
- ``nvmlSystemGetDriverVersion() -> str`` (``@convertStrBytes``: str, e.g. "580.65.06").
- ``nvmlDeviceGetCount() -> int``, ``nvmlDeviceGetHandleByIndex(i) -> handle``.
- ``nvmlDeviceGetName(h) -> str``; ``nvmlDeviceGetUUID(h)``: bytes here, as older
  releases returned, so the launcher's decoding stays tested.
- ``nvmlDeviceGetMemoryInfo(h)`` -> a struct with ``total``, ``free``, ``used`` (bytes).
- ``nvmlDeviceGetCudaComputeCapability(h) -> (major, minor)``, a tuple of ints.
- ``nvmlDeviceGetMigMode(h) -> [current, pending]``, each ``NVML_DEVICE_MIG_DISABLE`` (0)
  or ``NVML_DEVICE_MIG_ENABLE`` (1); GPUs without MIG raise NVML_ERROR_NOT_SUPPORTED (3).
- ``nvmlDeviceGetMaxMigDeviceCount(h) -> int`` (0 when MIG is off or not supported).
- ``nvmlDeviceGetMigDeviceHandleByIndex(h, i) -> handle``; an empty slot raises
  NVML_ERROR_NOT_FOUND (6).
- ``NVMLError(value)`` carries the code in ``value``; ``str()`` is NVML's error string.

Memory sizes and compute capabilities are what NVML reports for real boards.
"""

from __future__ import annotations

import json
import types

MiB = 2**20
# (name, NVML's total memory, compute capability): H200 (141 GB datasheet), H100 SXM
# (80 GB), A100 SXM4 80 GB (capability 8.0: no FP8), L40S (48 GB, capability 8.9).
H200 = ("NVIDIA H200", 143771 * MiB, (9, 0))
H100 = ("NVIDIA H100 80GB HBM3", 81559 * MiB, (9, 0))
A100 = ("NVIDIA A100-SXM4-80GB", 81920 * MiB, (8, 0))
L40S = ("NVIDIA L40S", 46068 * MiB, (8, 9))
V100 = ("Tesla V100-SXM2-32GB", 32768 * MiB, (7, 0))
# Boards without MIG (nvmlDeviceGetMigMode raises NOT_SUPPORTED); the others support it.
NO_MIG = {L40S[0], V100[0]}
# The driver the tests' hosts run unless told otherwise (an R580 datacenter driver).
DRIVER = "580.95.05"

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1
_MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
}


class NVMLError(Exception):
    """Like pynvml.NVMLError: carries the NVML return code in ``value``."""

    def __init__(self, value: int):
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML Error with code {self.value}")


def gpus(model: tuple, count: int, mig_instances: int | None = None) -> list[dict]:
    """``count`` GPUs of one ``model`` (name, bytes, capability), with distinct UUIDs.

    Args:
        mig_instances: MIG mode on, with this many MIG devices on each GPU; None: MIG off
            (or not supported, for the boards in ``NO_MIG``).
    """
    name, memory, capability = model
    return [
        {
            "name": name,
            "memory": memory,
            "uuid": f"GPU-{i:08x}-fake-{name[-4:]}",
            "capability": list(capability),
            "mig": name not in NO_MIG,
            "mig_instances": mig_instances,
        }
        for i in range(count)
    ]


def module(
    devices: list[dict] | None, init_error: int | None = None, driver: str = DRIVER
) -> types.ModuleType:
    """A fake ``pynvml`` exposing ``devices``; ``nvmlInit`` fails with ``init_error`` if given.

    Each device is a dict as ``gpus`` makes them.
    """
    fake = types.ModuleType("pynvml")
    fake.NVMLError = NVMLError
    for name, value in globals().items():
        if name.startswith(("NVML_ERROR_", "NVML_DEVICE_MIG_")):
            setattr(fake, name, value)
    state = {"initialised": 0}

    def nvmlInit():
        if init_error is not None:
            raise NVMLError(init_error)
        state["initialised"] += 1

    def nvmlShutdown():
        state["initialised"] -= 1

    def initialised():
        if not state["initialised"]:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def handle(index):
        initialised()
        return devices[index]

    def mig_mode(h):
        initialised()
        if not h.get("mig", True):
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        on = (
            NVML_DEVICE_MIG_ENABLE
            if h.get("mig_instances") is not None
            else NVML_DEVICE_MIG_DISABLE
        )
        return [on, on]

    def max_mig_devices(h):
        initialised()
        return 7 if h.get("mig", True) and h.get("mig_instances") is not None else 0

    def mig_handle(h, index):
        initialised()
        if index >= (h.get("mig_instances") or 0):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return {"parent": h["uuid"], "index": index}

    def driver_version():
        initialised()
        return driver

    fake.nvmlInit = nvmlInit
    fake.nvmlShutdown = nvmlShutdown
    fake.nvmlSystemGetDriverVersion = driver_version
    fake.nvmlDeviceGetCount = lambda: len(devices or [])
    fake.nvmlDeviceGetHandleByIndex = handle
    fake.nvmlDeviceGetName = lambda h: h["name"]
    fake.nvmlDeviceGetUUID = lambda h: h["uuid"].encode()  # older pynvml returns bytes
    fake.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(
        total=h["memory"], free=h["memory"], used=0
    )
    fake.nvmlDeviceGetCudaComputeCapability = lambda h: tuple(h.get("capability", (9, 0)))
    fake.nvmlDeviceGetMigMode = mig_mode
    fake.nvmlDeviceGetMaxMigDeviceCount = max_mig_devices
    fake.nvmlDeviceGetMigDeviceHandleByIndex = mig_handle
    fake.state = state
    return fake


def from_environment(value: str | None) -> types.ModuleType:
    """The module ``FAKE_NVML_GPUS`` describes.

    The value is "no-driver" (NVML cannot be loaded), a JSON list of GPUs as ``gpus``
    makes them, or a JSON object ``{"driver": "570.86.15", "gpus": [...]}``.
    """
    if not value or value == "no-driver":
        return module(None, init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    described = json.loads(value)
    if isinstance(described, dict):
        return module(described["gpus"], driver=described.get("driver", DRIVER))
    return module(described)
