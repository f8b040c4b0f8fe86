"""The fake NVML (tests/fakes/nvml.py) copies the real nvidia-ml-py where the launcher
touches it: the same function names and parameters, the same constants, and errors that
carry their code in ``value`` as the real ``NVMLError`` does.

The real package is a dependency of ours (pyproject.toml), so it is installed wherever the
tests run; only its calls into the driver cannot be made here.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from tests.fakes import nvml as fake_nvml

NVML_SITE = Path(fake_nvml.__file__).resolve().parent / "nvml_site"


@pytest.fixture
def real():
    """nvidia-ml-py's own pynvml module, as installed (importing it touches no driver)."""
    try:
        import pynvml
    except ImportError:
        pytest.fail("nvidia-ml-py is not installed: pip install -e '.[test]'", pytrace=False)
    assert Path(pynvml.__file__).parent != NVML_SITE and hasattr(pynvml, "_nvmlCheckReturn")
    return pynvml


def test_every_fake_function_exists_in_nvidia_ml_py_with_the_same_parameters(real):
    fake = fake_nvml.module(fake_nvml.gpus(fake_nvml.H200, 1))
    names = sorted(n for n in vars(fake) if n.startswith("nvml"))
    assert {
        "nvmlDeviceGetCudaComputeCapability",
        "nvmlSystemGetDriverVersion",
        "nvmlDeviceGetMigMode",
        "nvmlDeviceGetMaxMigDeviceCount",
        "nvmlDeviceGetMigDeviceHandleByIndex",
    } <= set(names)
    for name in names:
        assert hasattr(real, name), name
        # The same required parameters (the real ones may add optional ones, e.g. the
        # ``version`` of nvmlDeviceGetMemoryInfo, which the launcher does not pass).
        want = [
            p.name
            for p in inspect.signature(getattr(real, name)).parameters.values()
            if p.default is inspect.Parameter.empty
        ]
        have = list(inspect.signature(getattr(fake, name)).parameters)
        assert len(have) == len(want), (name, have, want)


def test_constants_have_nvidia_ml_pys_values(real):
    fake = fake_nvml.module([])
    constants = [n for n in vars(fake) if n.startswith(("NVML_ERROR_", "NVML_DEVICE_MIG_"))]
    assert len(constants) >= 6
    for name in constants:
        assert getattr(fake, name) == getattr(real, name), name


def test_errors_carry_their_code_and_nvmls_message(real):
    for code in (
        fake_nvml.NVML_ERROR_NOT_SUPPORTED,
        fake_nvml.NVML_ERROR_NOT_FOUND,
        fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND,
    ):
        ours, theirs = fake_nvml.NVMLError(code), real.NVMLError(code)
        assert ours.value == theirs.value == code
        assert isinstance(theirs, real.NVMLError)  # a subclass per code, caught by the base
        assert str(ours) == real.NVMLError._errcode_to_string[code]


def test_return_shapes_follow_the_real_wrappers():
    """pynvml.py: capability is a (major, minor) tuple, MIG mode a [current, pending] list,
    the driver version a str; a device call before nvmlInit is NVML_ERROR_UNINITIALIZED."""
    fake = fake_nvml.module(fake_nvml.gpus(fake_nvml.A100, 1, mig_instances=2))
    with pytest.raises(fake_nvml.NVMLError) as raised:
        fake.nvmlDeviceGetHandleByIndex(0)
    assert raised.value.value == fake_nvml.NVML_ERROR_UNINITIALIZED
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    assert fake.nvmlDeviceGetCudaComputeCapability(handle) == (8, 0)
    assert fake.nvmlDeviceGetMigMode(handle) == [1, 1]
    assert isinstance(fake.nvmlSystemGetDriverVersion(), str)
    fake.nvmlDeviceGetMigDeviceHandleByIndex(handle, 1)
    with pytest.raises(fake_nvml.NVMLError) as raised:
        fake.nvmlDeviceGetMigDeviceHandleByIndex(handle, 2)
    assert raised.value.value == fake_nvml.NVML_ERROR_NOT_FOUND
