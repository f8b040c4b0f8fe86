"""Every fake of the test suite, in one tree. Each stands for something physically absent
on our GPU-less, registry-less machines, copies the real thing's observable behaviour, and
names the source of each fact it copies:

- ``recorders/``: ``vllm`` and ``sglang.launch_server`` stand-ins that record the argv,
  process ID and environment the launcher exec'd them with, then exit (no GPU to run the
  engines' real servers on; the real vLLM on CPU serves requests in tests/real_engine).
- ``nvml``/``nvml_site``: the ``pynvml`` module (nvidia-ml-py) at the NVML boundary.
- ``hub``: a Hugging Face Hub-compatible HTTP server on loopback.
- ``slurm/bin``: ``srun`` and ``scontrol`` that record what they get (no Slurm here).
- ``noflock_site``: file locks that lock nothing, as on a shared filesystem that ignores
  them.
"""
