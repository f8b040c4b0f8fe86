"""Every fake of the test suite, in one tree, and only for what is physically absent on our
GPU-less, registry-less machines: GPUs (and the engines' GPU code), the official base
images, the Hub, Slurm, and the Docker daemon's answers in unit tests. Each copies the real
thing's observable behaviour and names the source of each fact it copies.

- ``official_images.toml``: what the official engine images look like, each fact with its
  upstream source; ``bases`` builds stand-in bases from it.
- ``engines/``: fake SGLang and vLLM packages (the real import paths, commands and
  parsers; they record their argv and play a server), for the images.
- ``recorders/``: ``vllm`` and ``sglang.launch_server`` stand-ins that record the argv,
  process ID and environment the launcher exec'd them with, then exit, for the launcher.
- ``docker_client``: a scripted ``docker.DockerClient`` for build.py's unit tests (the
  Docker tests use a real daemon).
- ``nvml``/``nvml_site``: the ``pynvml`` module (nvidia-ml-py) at the NVML boundary.
- ``hub``: a Hugging Face Hub-compatible HTTP server on loopback.
- ``slurm/bin``: ``srun`` and ``scontrol`` that record what they get.
- ``noflock_site``: file locks that lock nothing, as on a shared filesystem that ignores
  them.
"""
