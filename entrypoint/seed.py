"""Seed: files the image ships in Hugging Face hub layout, made visible in the mounted cache.

The official SGLang image keeps pre-downloaded files (kernels) in its Hugging Face cache
(docs/engines.md, "Official images"). Every deployment mounts a volume exactly over
``HF_HOME``, which would hide them, so our images move that cache to a seed directory and
name it in ``LONGCAT_HF_SEED`` (``images/*/Dockerfile``; same relative layout:
``<seed>/hub/models--org--name/...``). Before the exec, the launcher links each repository
folder of the seed that the cache lacks into it:

    HF_HOME/hub/models--org--name -> <seed>/hub/models--org--name

A symlink, so nothing is copied and the seed stays read-only; absolute, since the seed has
the same path in every container of the image. huggingface_hub and the engines then find
those files in the cache as if they had fetched them. A folder the cache already has is
left alone (the engine's own download, or a link to the seed); a link whose target does
not exist here (a seed of another image) is replaced.

Best effort: a seed that cannot be read, or a cache that cannot be written (read-only
volume), is logged and the launch goes on; the engine then fetches what it needs itself.
Standard library only.
"""

from __future__ import annotations

import os

from .output import log as default_log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

SEED_VARIABLE = "LONGCAT_HF_SEED"
# The repository folders huggingface_hub keeps per model (file_download.py, repo_folder_name).
REPO_FOLDER_PREFIX = "models--"


def seed_hub(seed: str) -> str:
    """The seed's hub folder: ``<seed>/hub`` (the layout of a whole ``HF_HOME``), or the seed
    itself when it is a hub folder (it holds ``models--*`` directly)."""
    inner = os.path.join(seed, "hub")
    return inner if os.path.isdir(inner) else seed


def link_seed(env: Mapping[str, str], log: Callable[[str], None] = default_log) -> list[str]:
    """Link the seed's repository folders that the cache lacks into the cache.

    Args:
        env: the environment: ``LONGCAT_HF_SEED``; ``HF_HUB_CACHE`` or ``HF_HOME`` for the
            cache (``entrypoint.weights.hub_cache``).
        log: where the summary or a warning goes.

    Returns:
        The folder names linked (``models--org--name``), in order; empty when there is no
        seed, nothing to link, or the links cannot be made (logged).
    """
    seed = (env.get(SEED_VARIABLE) or "").strip()
    if not seed:
        return []
    from .weights import hub_cache

    source_hub = seed_hub(seed)
    try:
        names = sorted(
            name
            for name in os.listdir(source_hub)
            if name.startswith(REPO_FOLDER_PREFIX) and os.path.isdir(os.path.join(source_hub, name))
        )
    except OSError as error:
        log(
            f"seed: {SEED_VARIABLE}={seed} cannot be read ({error.strerror or error}); the "
            "files the image ships stay hidden, and the engine fetches what it needs itself"
        )
        return []
    target = hub_cache(env)
    if not names or os.path.realpath(target) == os.path.realpath(source_hub):
        return []
    linked = []
    try:
        for name in names:
            entry, source = os.path.join(target, name), os.path.join(source_hub, name)
            if os.path.lexists(entry):
                if not os.path.islink(entry) or os.path.exists(entry):
                    continue  # the cache's own folder, or a link that works
                temporary = f"{entry}.{os.getpid()}.seed"
                os.symlink(os.path.abspath(source), temporary)
                os.replace(temporary, entry)
            else:
                os.makedirs(target, exist_ok=True)
                try:
                    os.symlink(os.path.abspath(source), entry)
                except FileExistsError:  # another node of a shared cache was first
                    continue
            linked.append(name)
    except OSError as error:
        log(
            f"seed: cannot link the files the image ships ({source_hub}) into the Hugging "
            f"Face cache {target}: {error.strerror or error}; the engine fetches what it "
            "needs itself"
        )
    if linked:
        log(
            f"seed: linked {len(linked)} folder{'s' if len(linked) > 1 else ''} the image "
            f"ships into {target}: {', '.join(linked)}"
        )
    return linked
