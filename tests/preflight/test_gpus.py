"""GPUs: count (honouring CUDA_VISIBLE_DEVICES) and memory per precision, read through NVML.

There are no GPUs here: a fake ``pynvml`` module (tests/fakes/nvml.py) stands in
for nvidia-ml-py, and everything above that boundary is the launcher's own code.
"""

from __future__ import annotations

import sys

import pytest

from entrypoint.preflight import check_gpus, required_gpu_memory
from tests.fakes import nvml as fake_nvml
from tests.fakes.nvml import H100, H200, gpus
from tests.preflight.support import plan_for


@pytest.fixture
def nvml(monkeypatch):
    """Install a fake pynvml with the given GPUs: ``nvml(devices)``."""
    def install(devices, init_error=None):
        fake = fake_nvml.module(devices, init_error)
        monkeypatch.setitem(sys.modules, "pynvml", fake)
        return fake
    return install


def by_name(outcomes):
    return {o.name: o for o in outcomes}


def test_eight_h200_serve_fp8_on_one_node(nvml):
    fake = nvml(gpus(H200, 8))
    outcomes = by_name(check_gpus(plan_for(PRECISION="fp8"), {}))
    assert outcomes["gpus"].ok and outcomes["gpu memory"].ok
    assert "8 visible (8 x NVIDIA H200 (150.8 GB)" in outcomes["gpus"].text
    assert "1206 GB on 8 GPUs >= 1128 GB" in outcomes["gpu memory"].text
    assert fake.state["initialised"] == 0, "NVML is shut down again"


def test_too_few_gpus_is_a_failure_naming_the_fix(nvml):
    nvml(gpus(H200, 4))
    (outcome,) = check_gpus(plan_for(), {})
    assert not outcome.ok
    assert "GPUs: 4 visible" in outcome.text and "but GPUS_PER_NODE=8" in outcome.text
    assert "--gpus all" in outcome.text


def test_cuda_visible_devices_limits_what_counts(nvml):
    nvml(gpus(H200, 8))
    (outcome,) = check_gpus(plan_for(), {"CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    assert not outcome.ok
    assert "4 visible" in outcome.text and "NVML reports 8, CUDA_VISIBLE_DEVICES '0,1,2,3'" \
        in outcome.text
    assert "correct CUDA_VISIBLE_DEVICES" in outcome.text
    assert by_name(check_gpus(plan_for(GPUS_PER_NODE=4),
                              {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}))["gpus"].ok


@pytest.mark.parametrize("value, visible", [
    ("", 0), ("-1", 0), ("0,1,-1,3", 2), ("7,6", 2), ("0,0", 1), ("8", 0), ("3,9,1", 1),
    ("GPU-00000002,GPU-00000005", 2), ("GPU-0000000", 0), ("MIG-abc", 0), (" 1 , 2 ", 2),
])
def test_cuda_visible_devices_is_read_as_cuda_reads_it(nvml, value, visible):
    nvml(gpus(H200, 8))
    (outcome, *_) = check_gpus(plan_for(GPUS_PER_NODE=1), {"CUDA_VISIBLE_DEVICES": value})
    assert f"{visible} visible" in outcome.text
    assert outcome.ok == (visible >= 1)


def test_eighty_gigabyte_gpus_are_too_small_for_fp8_on_one_node(nvml):
    nvml(gpus(H100, 8))
    outcomes = by_name(check_gpus(plan_for(PRECISION="fp8"), {}))
    assert outcomes["gpus"].ok and not outcomes["gpu memory"].ok
    text = outcomes["gpu memory"].text
    assert "the 8 GPUs this node uses have 684 GB in total" in text
    assert "PRECISION=fp8 needs 8 x 141 GB = 1128 GB of GPU memory (the guide's minimum " \
           "hardware), 1128 GB on each of NNODES=1" in text
    assert "spread the deployment over more nodes (NNODES)" in text


def test_bf16_on_two_nodes_of_eighty_gigabyte_gpus_passes(nvml):
    nvml(gpus(H100, 8))
    outcomes = by_name(check_gpus(plan_for(PRECISION="bf16", MASTER_IP="127.0.0.1"), {}))
    assert outcomes["gpu memory"].ok, outcomes["gpu memory"].text
    assert required_gpu_memory("bf16", 2) == 640 * 10**9


def test_bf16_on_one_node_of_eighty_gigabyte_gpus_fails_and_suggests_fp8(nvml):
    nvml(gpus(H100, 8))
    outcomes = by_name(check_gpus(plan_for(PRECISION="bf16", NNODES=1), {}))
    assert not outcomes["gpu memory"].ok
    assert "1280 GB on each of NNODES=1" in outcomes["gpu memory"].text
    assert "or serve PRECISION=fp8" in outcomes["gpu memory"].text


def test_memory_counts_only_the_gpus_the_engine_uses(nvml):
    nvml(gpus(H200, 8))
    outcomes = by_name(check_gpus(plan_for(GPUS_PER_NODE=4), {}))
    assert not outcomes["gpu memory"].ok
    assert "the 4 GPUs this node uses have 603 GB" in outcomes["gpu memory"].text


def test_no_driver_in_the_container_is_a_failure(nvml):
    nvml(None, init_error=fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    (outcome,) = check_gpus(plan_for(), {})
    assert not outcome.ok
    assert "NVML cannot read the GPUs (NVML Shared Library Not Found)" in outcome.text
    assert "docker run --gpus all" in outcome.text


def test_missing_nvidia_ml_py_is_a_failure(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    (outcome,) = check_gpus(plan_for(), {})
    assert not outcome.ok
    assert "nvidia-ml-py package (module pynvml) is not installed" in outcome.text
