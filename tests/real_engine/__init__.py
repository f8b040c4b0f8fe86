"""The real engine in the loop: vLLM's CPU build serving a tiny, random LongCat-Flash.

Every other test that starts an engine starts a fake one. These start the real ``vllm
serve`` (the CPU build pinned in images/matrix.toml ``[real_engine]``) through our
launcher, our image and our compose files, and check the served tokens against
transformers' own output for the same checkpoint.

- ``env``: the cached virtual environment (``python -m tests.real_engine.env``), its
  wheelhouse, and the test-only vLLM plugin under ``plugin/``;
- ``checkpoint``: the tiny checkpoint and its reference output (runs in that environment);
- ``server``: start, probe, ask and stop a real server through the launcher;
- ``demo``: the README's first command.

Standard library only at import time: ``env`` runs before the test extras are installed.
"""
