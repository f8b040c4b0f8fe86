"""Fake ``vllm.engine.arg_utils.AsyncEngineArgs``: ``from_cli_args`` and the checks of the
options our plans use."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class AsyncEngineArgs:
    """The engine arguments the fake reads from a parsed ``vllm serve`` namespace."""

    model: str = "Qwen/Qwen3-0.6B"
    trust_remote_code: bool = False
    enable_expert_parallel: bool = False
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    data_parallel_size_local: int | None = None
    data_parallel_address: str | None = None
    data_parallel_rpc_port: int | None = None
    data_parallel_start_rank: int | None = None
    data_parallel_rank: int | None = None
    speculative_config: dict | None = None

    def __post_init__(self):
        if (
            self.data_parallel_size_local is not None
            and self.data_parallel_size_local > self.data_parallel_size
        ):
            raise ValueError("data_parallel_size_local must not exceed data_parallel_size")
        if self.speculative_config is not None:
            if (
                not isinstance(self.speculative_config, dict)
                or "method" not in self.speculative_config
            ):
                raise ValueError("speculative_config must be a JSON object with a method")

    @classmethod
    def from_cli_args(cls, args) -> AsyncEngineArgs:
        """Build from a parsed namespace, as the real classmethod does."""
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{n: getattr(args, n) for n in names if hasattr(args, n)})
