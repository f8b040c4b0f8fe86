"""A tiny, randomly initialised LongCat-Flash checkpoint and its reference output.

Built locally, from a fixed seed, with the transformers that the real-engine environment
holds (it implements ``longcat_flash``); nothing is downloaded and no weights are
committed. ``ensure_checkpoint(python)`` runs ``python -m tests.real_engine.checkpoint
OUT`` in that environment once and caches the result under
``<cache>/checkpoints/tiny-longcat-flash-<hash>``, the hash taken over this file and the
engine pin: change the recipe, get a new checkpoint.

The folder holds ``model/`` (config, safetensors, tokenizer with a chat template) and
``reference.json``: one chat request and what transformers' greedy ``generate()`` answers,
as token ids with their log-probabilities, computed from the model in memory before it is
saved.

What the recipe needs (checked against the pinned engine):

- ``kv_lora_rank=512`` and ``qk_rope_head_dim=64``: vLLM's CPU MLA decode kernel supports
  only a head size of 576 (512 + 64).
- ``mla_scale_q_lora`` and ``mla_scale_kv_lora``: vLLM's LongCat model reads them
  (``vllm/model_executor/models/longcat_flash.py``, ``scale_mla_lora_norms_on_load``);
  transformers always applies the scaling they switch on, as the real checkpoints do.
- ``zero_expert_type="identity"``: vLLM's ``LongcatMoe`` requires it.
- ``save_pretrained`` writes gate/up weights for the zero experts, which a real checkpoint
  does not have and vLLM cannot load: they are dropped.
- float32: served with ``--dtype float32``, so the served log-probabilities match the
  reference to float32 rounding (about 1e-5), and a real difference shows.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

SEED = 20250901
# The request the reference answers, and how many tokens it generates.
MESSAGES = [{"role": "user", "content": "Hello, LongCat! How are you today?"}]
MAX_TOKENS = 16
# The tokenizer's training text: a byte-level BPE vocabulary learnt from it, so most
# generated tokens are words or word pieces.
CORPUS = [
    "LongCat-Flash is a mixture-of-experts language model with zero-computation experts.",
    "The launcher reads a few environment variables and starts the inference engine.",
    "Hello, how are you today? I am fine, thank you, and you?",
    "vLLM and SGLang serve large language models over an OpenAI-compatible API.",
    "One node serves FP8 weights; two nodes serve BF16 weights with data parallelism.",
    "The quick brown fox jumps over the lazy dog while the cat naps in the sun.",
]
SPECIAL_TOKENS = ["<longcat_s>", "</longcat_s>", "<longcat_pad>"]
# LongCat-Flash-Chat's conversation format, in short.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}[Round {{ loop.index0 // 2 }}] USER:{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %} ASSISTANT:{{ message['content'] }}</longcat_s>"
    "{% endif %}{% endfor %}{% if add_generation_prompt %} ASSISTANT:{% endif %}"
)
CONFIG = {
    "hidden_size": 256,
    "num_layers": 2,
    "num_attention_heads": 4,
    "ffn_hidden_size": 512,
    "expert_ffn_hidden_size": 128,
    "q_lora_rank": 128,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 32,
    "qk_rope_head_dim": 64,
    "head_dim": 64,
    "v_head_dim": 32,
    "n_routed_experts": 8,
    "zero_expert_num": 4,
    "moe_topk": 2,
    "zero_expert_type": "identity",
    "mla_scale_q_lora": True,
    "mla_scale_kv_lora": True,
    "max_position_embeddings": 512,
    "routed_scaling_factor": 6.0,
}


def recipe_hash() -> str:
    """A hash of this file and the engine pin: the checkpoint cache key."""
    from tests.real_engine.env import real_engine_pin

    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(json.dumps(real_engine_pin()).encode())
    return digest.hexdigest()[:12]


def checkpoint_dir() -> Path:
    """Where the checkpoint for the current recipe is cached (it may not exist yet)."""
    from tests.real_engine.env import cache_root

    return cache_root() / "checkpoints" / f"tiny-longcat-flash-{recipe_hash()}"


def load_reference(folder: Path) -> dict:
    """``reference.json`` of a checkpoint folder (see ``build``)."""
    return json.loads((folder / "reference.json").read_text())


def ensure_checkpoint(python: Path) -> Path:
    """Build the checkpoint with ``python`` (the real-engine environment) unless cached.

    Returns:
        The checkpoint folder (``model/`` and ``reference.json``).

    Raises:
        subprocess.CalledProcessError: the build failed.
    """
    from tests.real_engine.env import REPO, _log

    target = checkpoint_dir()
    if (target / "reference.json").exists():
        return target
    _log(f"building the tiny LongCat-Flash checkpoint and its reference in {target} (about 30 s)")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(
        [str(python), "-m", "tests.real_engine.checkpoint", str(partial)],
        cwd=REPO,
        check=True,
        env={**_quiet_env(), "PYTHONHASHSEED": "0"},
        stdout=sys.stderr,
    )
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def _quiet_env() -> dict:
    import os

    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }


def build(out: Path) -> dict:
    """Train the tokenizer, build the model from ``SEED``, compute the reference, save both.

    Runs in the real-engine environment (torch, transformers, tokenizers, safetensors).

    Returns:
        The reference: ``messages``, ``max_tokens``, ``prompt_token_ids``,
        ``completion_token_ids`` and ``completion_logprobs`` (natural log, per generated
        token), plus the versions it was computed with.
    """
    import tokenizers
    import torch
    import transformers
    from safetensors.torch import load_file, save_file
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tokenizer = tokenizers.Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(
        CORPUS * 20,
        trainers.BpeTrainer(
            vocab_size=1024,
            special_tokens=SPECIAL_TOKENS,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=SPECIAL_TOKENS[0],
        eos_token=SPECIAL_TOKENS[1],
        pad_token=SPECIAL_TOKENS[2],
    )
    fast.chat_template = CHAT_TEMPLATE

    torch.manual_seed(SEED)
    config = transformers.LongcatFlashConfig(
        vocab_size=len(fast),
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        dtype="float32",
        **CONFIG,
    )
    model = transformers.LongcatFlashForCausalLM(config).eval()

    prompt = fast.apply_chat_template(MESSAGES, add_generation_prompt=True, return_dict=False)
    with torch.no_grad():
        generated = model.generate(
            torch.tensor([prompt]),
            max_new_tokens=MAX_TOKENS,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
    completion = generated.sequences[0, len(prompt) :].tolist()
    if len(completion) != MAX_TOKENS or fast.eos_token_id in completion:
        raise RuntimeError(
            f"the reference stops early ({completion}): change SEED, so "
            "that the served and the reference answers have the same length"
        )
    logprobs = [
        torch.log_softmax(logits[0].float(), dim=-1)[token].item()
        for logits, token in zip(generated.logits, completion)
    ]

    model_dir = out / "model"
    model.save_pretrained(model_dir)
    fast.save_pretrained(model_dir)
    # Drop the zero experts' weights (ids >= n_routed_experts): see the module docstring.
    for shard in model_dir.glob("*.safetensors"):
        tensors = load_file(shard)
        kept = {
            k: v
            for k, v in tensors.items()
            if not (
                (m := re.search(r"\.mlp\.experts\.(\d+)\.", k))
                and int(m[1]) >= CONFIG["n_routed_experts"]
            )
        }
        save_file(kept, shard, metadata={"format": "pt"})
    reference = {
        "messages": MESSAGES,
        "max_tokens": MAX_TOKENS,
        "seed": SEED,
        "prompt_token_ids": prompt,
        "completion_token_ids": completion,
        "completion_logprobs": logprobs,
        "completion_text": fast.decode(completion),
        "computed_with": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    (out / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    return reference


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(
            "usage: python -m tests.real_engine.checkpoint OUT  (in the real-engine "
            "environment; see tests/real_engine/env.py)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    result = build(Path(sys.argv[1]))
    print(
        f"real-engine: reference completion {result['completion_token_ids']} "
        f"{result['completion_text']!r}",
        flush=True,
    )
