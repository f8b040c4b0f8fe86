"""Render compose/.env.example: every variable the compose files and the launcher read.

The launcher's variables come from ``entrypoint.settings.VARIABLES`` (their one
definition); the compose files' own variables (image, host cache directory, health
start period) and what the compose files do differently from the launcher (fixed or
required values, other defaults) are listed here. ``tests/compose/test_static.py`` checks
that the file is in sync with this rendering and that every variable the compose files
interpolate or put in the container is documented, with the default compose really uses.

Regenerate after changing a variable::

    python3 -m tests.compose.env_example > compose/.env.example
"""

from __future__ import annotations

import sys
import textwrap

from entrypoint.settings import VARIABLES

WIDTH = 92

HEADER = """\
# Settings for compose/single-node.yaml and compose/two-node.yaml.
#
#   cp compose/.env.example compose/.env     # on each node, then edit compose/.env
#
# Compose reads compose/.env (the folder of the compose files) and the shell; the shell
# wins. Every line below is commented out: a variable left unset takes the default shown.
# An empty value counts as unset. Generated from entrypoint/settings.py by
# `python3 -m tests.compose.env_example > compose/.env.example`; do not edit by hand.
"""

# The compose files' own variables: (name, default as compose/*.yaml spell it, meaning).
# test_static checks each default against `docker compose config --variables`.
COMPOSE_VARIABLES = (
    (
        "IMAGE",
        "${IMAGE_REPOSITORY}:${ENGINE}",
        "The image to run. By default the engine's moving tag from build.py; set it to pin "
        "a release tag or a digest.",
    ),
    (
        "IMAGE_REPOSITORY",
        "longcat-deploy",
        "Registry and repository of the images, without a tag (for example "
        "registry.example.com/longcat-deploy).",
    ),
    (
        "HF_CACHE_DIR",
        "${HOME}/.cache/huggingface",
        "Host directory holding the Hugging Face cache, mounted at HF_HOME in the container. "
        "It needs room for the checkpoint: about 560 GB for fp8, 1.1 TB for bf16. Created "
        "when missing.",
    ),
    (
        "HEALTH_START_PERIOD",
        "60m",
        "How long health-check failures do not count while the checkpoint loads (and, on "
        "the first start, downloads). The first passing check ends it early.",
    ),
)

# What the compose files do with a launcher variable, when it is not a plain pass-through:
# name -> (default in the compose files, or None for the launcher's; note).
COMPOSE_NOTES = {
    "ENGINE": ("sglang", "Also picks the image (IMAGE_REPOSITORY:ENGINE)."),
    "PRECISION": ("fp8; two-node.yaml: bf16", ""),
    "NNODES": (
        "single-node.yaml: always 1; two-node.yaml: 2",
        "single-node.yaml ignores this variable.",
    ),
    "NODE_RANK": (
        "single-node.yaml: always 0; two-node.yaml: required",
        "two-node.yaml: 0 on the node that serves the API, 1 on the other; "
        "compose refuses to start without it.",
    ),
    "SHUTDOWN_TIMEOUT_S": (
        None,
        "common.yaml's stop_grace_period (3m) must stay longer: raise both together.",
    ),
    "API_KEY_FILE": (
        None,
        "A path inside the container: mount the file there (an override "
        "file's volumes or secrets).",
    ),
    "MASTER_IP": (
        "two-node.yaml: required",
        "two-node.yaml: node 0's address, the same on every node; compose "
        "refuses to start without it. single-node.yaml ignores it.",
    ),
}

# Launcher variables the compose files do not take from here, and what to do instead.
NOT_FROM_HERE = {
    "HF_TOKEN": "Never write the token in this file: export it in the shell that runs "
    "compose (`export HF_TOKEN=hf_...`); compose passes it into the container.",
    "API_KEY": "Never write the key in this file: export it in the shell that runs compose "
    "(`export API_KEY=...`), or set API_KEY_FILE to a file mounted in the container.",
    "HF_HOME": "Fixed by the compose files to the image's /root/.cache/huggingface, where "
    "HF_CACHE_DIR is mounted; set HF_CACHE_DIR instead.",
    "LONGCAT_HF_SEED": "Set by the images themselves (their ENV); leave it unset here.",
    "DRY_RUN": "Not taken by the service, even from this file (it would restart after "
    "every dry run). Print the plan with `docker compose -f "
    "compose/single-node.yaml run --rm --no-deps longcat --dry-run`.",
}


# Engine and library variables compose/common.yaml also passes from the shell (name,
# meaning, secret). Any other NCCL_*, UCX_*, GLOO_*, HF_*, VLLM_* or SGLANG_* variable
# reaches the container from compose/.env only (common.yaml's env_file).
FROM_THE_SHELL = (
    (
        "HF_HUB_DISABLE_XET",
        "1: download without the Xet protocol (read by huggingface_hub).",
        False,
    ),
    (
        "NCCL_DEBUG",
        "NCCL's log level; INFO logs the transport between the nodes (Using "
        "network IB, or Socket).",
        False,
    ),
    ("NCCL_DEBUG_SUBSYS", "The NCCL subsystems to log, e.g. INIT,NET.", False),
    ("NCCL_IB_HCA", "The HCAs (and ports) NCCL uses, e.g. mlx5_0:1,mlx5_1:1; ^ excludes.", False),
    (
        "NCCL_IB_GID_INDEX",
        "RoCE: the GID index NCCL uses (show_gids lists them; RoCE v2 often needs one set).",
        False,
    ),
    ("UCX_NET_DEVICES", "The devices UCX uses (UCX-based transfers, not NCCL's).", False),
)
SHELL_SECRET_NOTE = (
    "A secret: export it in the shell that runs compose, never write it in "
    "this file; compose passes it into the container."
)


def _comment(text: str, indent: str = "") -> list[str]:
    """Wrap ``text`` into comment lines."""
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent="# " + indent,
        subsequent_indent="# " + indent,
        break_on_hyphens=False,
        break_long_words=False,
    )


def _assignment(var) -> str:
    """The commented-out assignment: the default when it is one plain value, else empty."""
    default = var.default_text()
    if var.kind == "bool" and var.default is not None:
        return f"#{var.name}={default}"
    if var.default not in (None, "", ()) and " " not in default:
        return f"#{var.name}={default}"
    return f"#{var.name}="


def render() -> str:
    """Return the text of compose/.env.example."""
    lines = HEADER.splitlines()
    lines += ["", "# " + "=" * 20 + " the compose files " + "=" * 20]
    for name, default, meaning in COMPOSE_VARIABLES:
        lines += [""] + _comment(f"{name}: {meaning}")
        lines += _comment(f"default: {default}", "  ")
        lines.append(f"#{name}=")
    lines += ["", "# " + "=" * 20 + " the launcher (python3 -m entrypoint env-table) " + "=" * 20]
    for var in VARIABLES:
        lines += [""] + _comment(f"{var.name}: {var.help}")
        lines += _comment(f"accepted: {var.accepted()}", "  ")
        if var.name in NOT_FROM_HERE:
            lines += _comment(NOT_FROM_HERE[var.name], "  ")
            continue
        default, note = COMPOSE_NOTES.get(var.name, (None, ""))
        lines += _comment(f"default: {default or var.default_text()}", "  ")
        if note:
            lines += _comment(note, "  ")
        lines.append(_assignment(var) if var.name not in COMPOSE_NOTES else f"#{var.name}=")
    lines += ["", "# " + "=" * 20 + " the engines and their libraries " + "=" * 20, ""]
    lines += _comment(
        "Every variable written in this file reaches the container, whatever "
        "its name: put NCCL_*, UCX_*, GLOO_*, HF_*, VLLM_* and SGLANG_* "
        "settings here (RoCE, for example, usually needs NCCL_IB_GID_INDEX). "
        "From the shell, compose passes only the variables its files name: "
        "the launcher's above, and these:"
    )
    for name, meaning, secret in FROM_THE_SHELL:
        lines += [""] + _comment(f"{name}: {meaning}")
        if secret:
            lines += _comment(SHELL_SECRET_NOTE, "  ")
        else:
            lines.append(f"#{name}=")
    return "\n".join(lines) + "\n"


def main() -> int:
    """Print the rendering on stdout."""
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
