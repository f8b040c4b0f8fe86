"""Fakes, and only for what is physically absent here: GPUs, the official base images, the
Docker daemon's answers in unit tests, and the engines' GPU code.

- ``tests.fakes.official_images.toml``: what the official engine images look like, each
  fact with its upstream source; ``tests.fakes.bases`` builds stand-in bases from it.
- ``tests.fakes.engines``: fake SGLang and vLLM packages (the real import paths, commands
  and parsers; they record their argv and play a server).
- ``tests.fakes.docker_client``: a scripted ``docker.DockerClient`` for build.py's unit
  tests (the Docker tests use a real daemon).

Each fake copies the real thing's observable behaviour and names its source.
"""
