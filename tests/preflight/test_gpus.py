"""GPUs: count (honouring CUDA_VISIBLE_DEVICES) and memory per precision, read through NVML.

There are no GPUs here: a fake ``pynvml`` module (tests/fakes/nvml.py) stands in
for nvidia-ml-py, and everything above that boundary is the launcher's own code.
"""

from __future__ import annotations

import sys

import pytest

from entrypoint.preflight import check_gpus, required_gpu_memory
from tests.fakes import nvml as fake_nvml
from tests.fakes.nvml import A100, H100, H200, L40S, V100, gpus
from tests.preflight.support import plan_for


@pytest.fixture
def nvml(monkeypatch):
    """Install a fake pynvml with the given GPUs: ``nvml(devices)``."""

    def install(devices, init_error=None, driver=fake_nvml.DRIVER):
        fake = fake_nvml.module(devices, init_error, driver)
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
    outcome = by_name(check_gpus(plan_for(), {}))["gpus"]
    assert not outcome.ok
    assert "GPUs: 4 visible" in outcome.text and "but GPUS_PER_NODE=8" in outcome.text
    assert "--gpus all" in outcome.text


def test_cuda_visible_devices_limits_what_counts(nvml):
    nvml(gpus(H200, 8))
    outcome = by_name(check_gpus(plan_for(), {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}))["gpus"]
    assert not outcome.ok
    assert (
        "4 visible" in outcome.text
        and "NVML reports 8, CUDA_VISIBLE_DEVICES '0,1,2,3'" in outcome.text
    )
    assert "correct CUDA_VISIBLE_DEVICES" in outcome.text
    assert by_name(check_gpus(plan_for(GPUS_PER_NODE=4), {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}))[
        "gpus"
    ].ok


@pytest.mark.parametrize(
    "value, visible",
    [
        ("", 0),
        ("-1", 0),
        ("0,1,-1,3", 2),
        ("7,6", 2),
        ("0,0", 1),
        ("8", 0),
        ("3,9,1", 1),
        ("GPU-00000002,GPU-00000005", 2),
        ("GPU-0000000", 0),
        ("MIG-abc", 0),
        (" 1 , 2 ", 2),
    ],
)
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
    assert (
        "PRECISION=fp8 needs 8 x 141 GB = 1128 GB of GPU memory (the guide's minimum "
        "hardware), 1128 GB on each of NNODES=1" in text
    )
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


# --- compute capability per engine and precision (entrypoint/compat.py) ---------------


def test_sglang_fp8_on_hopper_passes(nvml):
    nvml(gpus(H200, 8))
    outcome = by_name(check_gpus(plan_for(ENGINE="sglang", PRECISION="fp8"), {}))[
        "compute capability"
    ]
    assert outcome.ok and not outcome.warning
    assert outcome.text == (
        "compute capability 9.0 (NVIDIA H200) >= 8.9, what SGLang with PRECISION=fp8 needs"
    )


def test_sglang_fp8_below_8_9_is_refused_naming_vllm_and_bf16(nvml):
    # Two nodes of A100 80 GB hold the FP8 checkpoint (564 GB per node), so only the
    # capability stands in the way.
    nvml(gpus(A100, 8))
    plan = plan_for(ENGINE="sglang", PRECISION="fp8", NNODES=2, MASTER_IP="127.0.0.1")
    outcomes = by_name(check_gpus(plan, {}))
    assert outcomes["gpu memory"].ok
    outcome = outcomes["compute capability"]
    assert not outcome.ok
    assert outcome.text.startswith(
        "compute capability 8.0 (NVIDIA A100-SXM4-80GB): SGLang "
        "runs the FP8 MoE experts with Triton FP8 kernels"
    )
    assert "'type fp8e4nv not supported in this architecture'" in outcome.text
    assert "serve with ENGINE=vllm" in outcome.text and "or set PRECISION=bf16" in outcome.text


def test_sglang_fp8_on_ada_passes_at_the_boundary(nvml):
    nvml(gpus(L40S, 8))
    outcome = by_name(check_gpus(plan_for(ENGINE="sglang", PRECISION="fp8", GPUS_PER_NODE=8), {}))[
        "compute capability"
    ]
    assert outcome.ok and "compute capability 8.9 (NVIDIA L40S) >= 8.9" in outcome.text


def test_sglang_bf16_on_ampere_has_no_capability_rule(nvml):
    nvml(gpus(A100, 8))
    plan = plan_for(ENGINE="sglang", PRECISION="bf16", MASTER_IP="127.0.0.1")
    outcome = by_name(check_gpus(plan, {}))["compute capability"]
    assert outcome.ok and not outcome.warning
    assert outcome.text == (
        "compute capability 8.0 (NVIDIA A100-SXM4-80GB); SGLang with "
        "PRECISION=bf16 sets no minimum of its own"
    )


def test_vllm_fp8_below_8_9_serves_with_marlin_and_warns(nvml):
    nvml(gpus(A100, 8))
    plan = plan_for(ENGINE="vllm", PRECISION="fp8", NNODES=2, MASTER_IP="127.0.0.1")
    outcome = by_name(check_gpus(plan, {}))["compute capability"]
    assert outcome.ok and outcome.warning
    assert "vLLM serves the FP8 checkpoint with its Marlin kernels" in outcome.text


@pytest.mark.parametrize("precision", ["fp8", "bf16"])
def test_vllm_below_8_0_is_refused(nvml, precision):
    nvml(gpus(V100, 8))
    plan = plan_for(ENGINE="vllm", PRECISION=precision, NNODES=2, MASTER_IP="127.0.0.1")
    outcome = by_name(check_gpus(plan, {}))["compute capability"]
    assert not outcome.ok
    assert outcome.text.startswith(
        "compute capability 7.0 (Tesla V100-SXM2-32GB): vLLM runs "
        "bfloat16, the dtype of both checkpoints, only on compute "
        "capability 8.0 or newer"
    )
    assert "use GPUs of compute capability 8.0 or newer" in outcome.text


def test_the_lowest_capability_of_the_gpus_used_decides(nvml):
    nvml(gpus(H200, 4) + gpus(A100, 4))
    plan = plan_for(ENGINE="sglang", PRECISION="fp8", GPUS_PER_NODE=4)
    assert by_name(check_gpus(plan, {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}))["compute capability"].ok
    outcome = by_name(check_gpus(plan, {"CUDA_VISIBLE_DEVICES": "3,4,5,6"}))["compute capability"]
    assert not outcome.ok and "8.0 (NVIDIA A100-SXM4-80GB)" in outcome.text


# --- the driver against the image's CUDA variant --------------------------------------

# What build.py writes into each image (images/matrix.toml): the vLLM cu130 image.
VLLM_CU130 = {
    "LONGCAT_CUDA_VARIANT": "cu130",
    "LONGCAT_CUDA_DRIVERS": "cu130:13.0:580.65.06 cu129:12.9:575.51.03:525.60.13",
}


def test_a_new_enough_driver_passes(nvml):
    nvml(gpus(H200, 8), driver="580.95.05")
    outcome = by_name(check_gpus(plan_for(ENGINE="vllm"), VLLM_CU130))["driver"]
    assert outcome.ok and not outcome.warning
    assert outcome.text == (
        "driver 580.95.05 >= 580.65.06, which this image's CUDA 13.0 (cu130) needs"
    )


def test_an_old_driver_is_refused_naming_the_driver_and_the_variant_that_runs(nvml):
    nvml(gpus(H200, 8), driver="570.86.15")
    outcome = by_name(check_gpus(plan_for(ENGINE="vllm"), VLLM_CU130))["driver"]
    assert not outcome.ok
    assert outcome.text.startswith(
        "the NVIDIA driver 570.86.15 is older than this image's "
        "CUDA 13.0 (cu130) needs (driver >= 580.65.06)"
    )
    assert "Install driver >= 580.65.06 on the host" in outcome.text
    assert (
        "or run the image's cu129 variant (CUDA 12.9, driver >= 575.51.03 (>= 525.60.13 "
        "with CUDA minor-version compatibility): build.py build vllm --cuda=cu129)" in outcome.text
    )


def test_a_driver_too_old_for_every_variant_names_only_the_driver(nvml):
    nvml(gpus(H200, 8), driver="470.256.02")
    outcome = by_name(check_gpus(plan_for(ENGINE="vllm"), VLLM_CU130))["driver"]
    assert not outcome.ok
    assert "Install driver >= 580.65.06 on the host." in outcome.text
    assert "variant" not in outcome.text


def test_minor_version_compatibility_runs_with_a_warning(nvml):
    nvml(gpus(H200, 8), driver="550.163.01")
    env = dict(VLLM_CU130, LONGCAT_CUDA_VARIANT="cu129")
    outcome = by_name(check_gpus(plan_for(ENGINE="vllm"), env))["driver"]
    assert outcome.ok and outcome.warning
    assert "runs through CUDA minor-version compatibility (>= 525.60.13)" in outcome.text
    assert "Install driver >= 575.51.03 for full support." in outcome.text


def test_outside_our_images_the_driver_is_not_compared(nvml):
    nvml(gpus(H200, 8), driver="470.256.02")
    outcome = by_name(check_gpus(plan_for(), {}))["driver"]
    assert outcome.ok and not outcome.warning
    assert outcome.text == (
        "driver 470.256.02; not compared with the image's CUDA "
        "(LONGCAT_CUDA_VARIANT and LONGCAT_CUDA_DRIVERS are not set: not "
        "a longcat-deploy image)"
    )


# --- MIG -------------------------------------------------------------------------------


def test_gpus_in_mig_mode_are_refused_with_their_instances_counted(nvml):
    nvml(gpus(H200, 8, mig_instances=7))
    outcomes = by_name(check_gpus(plan_for(), {}))
    outcome = outcomes["MIG"]
    assert not outcome.ok
    assert outcome.text.startswith(
        "MIG mode is on for GPU 0, 1, 2, 3, 4, 5, 6, 7 (8 of the 8 "
        "visible, with 56 MIG instances in all): a CUDA process "
        "uses at most one MIG instance"
    )
    assert "nvidia-smi -i 0 -mig 0" in outcome.text


def test_mig_on_one_gpu_with_no_instances_yet_is_still_refused(nvml):
    devices = gpus(H200, 8)
    devices[3]["mig_instances"] = 0
    nvml(devices)
    outcome = by_name(check_gpus(plan_for(), {}))["MIG"]
    assert not outcome.ok
    assert (
        "MIG mode is on for GPU 3 (1 of the 8 visible, with 0 MIG instances in all)" in outcome.text
    )


def test_mig_devices_named_in_cuda_visible_devices_are_refused(nvml):
    nvml(gpus(H200, 8))
    outcomes = by_name(check_gpus(plan_for(), {"CUDA_VISIBLE_DEVICES": "MIG-3b0f-11"}))
    assert not outcomes["gpus"].ok
    assert outcomes["MIG"].text.startswith("CUDA_VISIBLE_DEVICES names MIG devices (MIG-3b0f-11)")


def test_gpus_without_mig_support_or_with_mig_off_pass(nvml):
    nvml(gpus(L40S, 8))  # nvmlDeviceGetMigMode: NOT_SUPPORTED
    assert "MIG" not in by_name(check_gpus(plan_for(PRECISION="bf16", MASTER_IP="127.0.0.1"), {}))
    nvml(gpus(H200, 8))  # supported, off
    assert "MIG" not in by_name(check_gpus(plan_for(), {}))
