"""What the pinned engines and our images need from the GPUs and the NVIDIA driver, as data.

Two kinds of rule, each checked by preflight (``entrypoint.preflight.check_gpus``) against
what NVML reports:

- ``CAPABILITY_RULES``: the compute capability an engine needs to serve a precision.
  Each rule is read from the pinned engine's own source, named in its ``source``
  (docs/engines.md, "GPUs and drivers").
- the driver each CUDA variant of an image needs: our images carry it in their
  environment (``CUDA_VARIANT_ENV``, ``CUDA_DRIVERS_ENV``, written by build.py from
  ``images/matrix.toml``); ``parse_cuda_drivers`` reads it and ``driver_verdict`` compares
  it with the driver version NVML reports.

Standard library only, nothing imported at module level: the launcher runs on every
container start.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at every container start
    from collections.abc import Mapping

# The variables our images set (images/*/Dockerfile, from images/matrix.toml via build.py).
CUDA_VARIANT_ENV = "LONGCAT_CUDA_VARIANT"
CUDA_DRIVERS_ENV = "LONGCAT_CUDA_DRIVERS"


class CapabilityRule:
    """The compute capability one engine needs for one precision.

    Attributes:
        engine: ``"sglang"`` or ``"vllm"``.
        precisions: the precisions the rule applies to (``("fp8",)``, ``("fp8", "bf16")``).
        minimum: the lowest compute capability that passes, ``(major, minor)``.
        refuse: True when a GPU below ``minimum`` cannot serve (a failure); False when it
            serves, slower (a warning).
        why: what happens below ``minimum``, in one clause.
        fix: what to change, in one clause.
        source: the engine file and function the rule is read from.
    """

    __slots__ = ("engine", "precisions", "minimum", "refuse", "why", "fix", "source")

    def __init__(
        self,
        engine: str,
        precisions: tuple[str, ...],
        minimum: tuple[int, int],
        refuse: bool,
        why: str,
        fix: str,
        source: str,
    ):
        self.engine = engine
        self.precisions = precisions
        self.minimum = minimum
        self.refuse = refuse
        self.why = why
        self.fix = fix
        self.source = source


# docs/engines.md, "GPUs and drivers", has each rule with its source. Checked in order;
# the first rule a GPU fails decides (refusals come before warnings).
CAPABILITY_RULES: tuple[CapabilityRule, ...] = (
    # SGLang: Fp8LinearMethod switches linear layers to Marlin (weight-only FP8) on
    # 8.0 <= capability < 8.9 (can_auto_enable_marlin_fp8), but Fp8MoEMethod has no such
    # path: create_moe_runner runs the FP8 experts on Triton, whose kernel
    # (invoke_fused_moe_kernel) quantizes activations to float8_e4m3fn, which Triton
    # compiles only for 8.9 and newer ("type fp8e4nv not supported in this architecture").
    CapabilityRule(
        "sglang",
        ("fp8",),
        (8, 9),
        True,
        "SGLang runs the FP8 MoE experts with Triton FP8 kernels, which need compute "
        "capability 8.9 (its Marlin fallback covers the linear layers only); the load "
        "fails with 'type fp8e4nv not supported in this architecture'",
        "serve with ENGINE=vllm, whose FP8 MoE falls back to Marlin on these GPUs, or "
        "set PRECISION=bf16 (16 x 80 GB: two nodes of 8 x 80 GB)",
        "sglang/srt/layers/quantization/fp8.py, Fp8MoEMethod.create_moe_runner and "
        "Fp8LinearMethod.__init__; sglang/srt/layers/quantization/fp8_utils.py, "
        "can_auto_enable_marlin_fp8",
    ),
    # vLLM: both checkpoints compute in bfloat16 (LongCat-Flash is a BF16 model; the FP8
    # checkpoint quantizes its weights only), which CudaPlatform.check_if_supports_dtype
    # refuses below 8.0.
    CapabilityRule(
        "vllm",
        ("fp8", "bf16"),
        (8, 0),
        True,
        "vLLM runs bfloat16, the dtype of both checkpoints, only on compute capability "
        "8.0 or newer",
        "use GPUs of compute capability 8.0 or newer (A100, H100, H200, B200)",
        "vllm/platforms/cuda.py, CudaPlatform.check_if_supports_dtype",
    ),
    # vLLM FP8 below 8.9: CudaPlatform.supports_fp8 is False, so TritonExperts does not
    # take FP8 (TritonExperts._supports_quant_scheme) and the MoE oracle falls through to
    # MARLIN (MarlinExpertsBase, capability 7.5 and newer): it serves, weight-only FP8.
    CapabilityRule(
        "vllm",
        ("fp8",),
        (8, 9),
        False,
        "below compute capability 8.9 vLLM serves the FP8 checkpoint with its Marlin "
        "kernels (FP8 weights, BF16 compute), slower than native FP8",
        "GPUs of compute capability 8.9 or newer serve FP8 natively",
        "vllm/platforms/cuda.py, CudaPlatform.supports_fp8; "
        "vllm/model_executor/layers/fused_moe/oracle/fp8.py, select_fp8_moe_backend; "
        "vllm/model_executor/layers/fused_moe/experts/triton_moe.py, "
        "TritonExperts._supports_quant_scheme",
    ),
)


def capability_text(capability: tuple[int, int]) -> str:
    """``(8, 9)`` as ``"8.9"``."""
    return f"{capability[0]}.{capability[1]}"


def failed_rule(engine: str, precision: str, capability: tuple[int, int]) -> CapabilityRule | None:
    """The first rule in ``CAPABILITY_RULES`` that a GPU of ``capability`` fails, or None.

    Args:
        engine: ``"sglang"`` or ``"vllm"``.
        precision: ``"fp8"`` or ``"bf16"``.
        capability: the GPU's CUDA compute capability, ``(major, minor)``.
    """
    for rule in CAPABILITY_RULES:
        if rule.engine == engine and precision in rule.precisions and capability < rule.minimum:
            return rule
    return None


# --- the driver against the image's CUDA variant ---------------------------------------


class CudaVariant:
    """One CUDA variant of an image and the host driver it needs (``images/matrix.toml``).

    Attributes:
        name: the variant, e.g. ``"cu130"``.
        toolkit: its CUDA version, e.g. ``"13.0"``.
        min_driver: the driver the toolkit needs, e.g. ``"580.65.06"``.
        min_driver_compat: the lower driver it runs on with CUDA minor-version
            compatibility (no PTX JIT), or ``None`` when it has none.
    """

    __slots__ = ("name", "toolkit", "min_driver", "min_driver_compat")

    def __init__(
        self, name: str, toolkit: str, min_driver: str, min_driver_compat: str | None = None
    ):
        self.name = name
        self.toolkit = toolkit
        self.min_driver = min_driver
        self.min_driver_compat = min_driver_compat

    def encode(self) -> str:
        """``name:toolkit:min_driver[:min_driver_compat]``, one entry of ``CUDA_DRIVERS_ENV``."""
        return ":".join(
            [self.name, self.toolkit, self.min_driver]
            + ([self.min_driver_compat] if self.min_driver_compat else [])
        )

    def needs(self) -> str:
        """The driver this variant needs, in words."""
        text = f"driver >= {self.min_driver}"
        if self.min_driver_compat:
            text += f" (>= {self.min_driver_compat} with CUDA minor-version compatibility)"
        return text


def driver_version(text: str) -> tuple[int, ...] | None:
    """A driver version such as ``"580.65.06"`` as ``(580, 65, 6)``; None if not one."""
    parts = text.strip().split(".")
    if not all(p.isascii() and p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def parse_cuda_drivers(text: str) -> list[CudaVariant] | None:
    """Read ``CUDA_DRIVERS_ENV``: space-separated ``name:toolkit:min[:compat]`` entries.

    Returns:
        The variants in the order given, or None when ``text`` is not in that form.
    """
    variants = []
    for entry in text.split():
        fields = entry.split(":")
        if len(fields) not in (3, 4) or any(driver_version(f) is None for f in fields[2:]):
            return None
        variants.append(CudaVariant(*fields))
    return variants or None


def driver_verdict(driver: str, engine: str, env: Mapping[str, str]) -> tuple[str, str]:
    """Judge the host driver against the image's CUDA variant.

    Args:
        driver: the driver version NVML reports (``nvmlSystemGetDriverVersion``).
        engine: the image's engine, for the build command a failure names.
        env: the environment; our images set ``CUDA_VARIANT_ENV`` and ``CUDA_DRIVERS_ENV``.

    Returns:
        ``(verdict, text)``: verdict ``"ok"``, ``"warn"`` (runs through minor-version
        compatibility only) or ``"fail"`` (the engine would not start), and what was
        found; a failure names the driver to install and the variants that would run.
        Outside our images (the variables unset) the verdict is ``"ok"`` and the text
        says that nothing was checked.
    """
    variant_name = (env.get(CUDA_VARIANT_ENV) or "").strip()
    listed = parse_cuda_drivers(env.get(CUDA_DRIVERS_ENV) or "")
    have = driver_version(driver)
    if not variant_name or listed is None or have is None:
        why = (
            f"NVML reports driver {driver!r}"
            if have is None
            else f"{CUDA_VARIANT_ENV} and {CUDA_DRIVERS_ENV} are not set: not a "
            "longcat-deploy image"
        )
        return "ok", f"driver {driver}; not compared with the image's CUDA ({why})"
    variants = {v.name: v for v in listed}
    own = variants.get(variant_name)
    if own is None:
        return "ok", (
            f"driver {driver}; not compared: {CUDA_DRIVERS_ENV} does not list "
            f"this image's variant {variant_name}"
        )
    where = f"this image's CUDA {own.toolkit} ({own.name})"
    if have >= (driver_version(own.min_driver) or ()):
        return "ok", f"driver {driver} >= {own.min_driver}, which {where} needs"
    if own.min_driver_compat and have >= (driver_version(own.min_driver_compat) or ()):
        return "warn", (
            f"driver {driver} is older than the {own.min_driver} {where} is "
            f"built for; it runs through CUDA minor-version compatibility "
            f"(>= {own.min_driver_compat}), where kernels compiled just in time "
            f"(PTX) fail. Install driver >= {own.min_driver} for full support."
        )
    runs = [
        v
        for v in listed
        if v is not own and have >= (driver_version(v.min_driver_compat or v.min_driver) or ())
    ]
    other = (
        "; or run the image's "
        + " or ".join(
            f"{v.name} variant (CUDA {v.toolkit}, {v.needs()}: build.py build {engine} "
            f"--cuda={v.name})"
            for v in runs
        )
        if runs
        else ""
    )
    return "fail", (
        f"the NVIDIA driver {driver} is older than {where} needs "
        f"({own.needs()}): the engine would stop with 'NVIDIA driver on your "
        f"system is too old'. Install driver >= {own.min_driver} on the host"
        f"{other}."
    )
