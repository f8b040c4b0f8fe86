"""The stand-in bases copy the official layouts, and our images handle what those contain.

- Each layout (tests/fakes/bases.py) is what tests/fakes/official_images.toml says: where
  python3 and pip are, PEP 668, PATH, environment, labels, WORKDIR, ENTRYPOINT, CMD, user,
  the pre-downloaded Hugging Face files, and the engine's version string.
- A cu129 vLLM, whose wheel reports ``<pin>+cu129``, passes build.py's verification.
- The SGLang base's kernel files survive a volume mounted over HF_HOME (the seed).
- Our vLLM image reports no usage by default (checked with the real vLLM's own logic),
  and a base's digest reaches the image's labels, the summary and, asked, the matrix.

Real Docker engine and registry, 127.0.0.1 only; everything made here is removed.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from images.matrix import Options, load_matrix, plan
from images.pipeline import build_targets
from tests import engine_venvs
from tests.conftest import build_with_buildpy
from tests.fakes.bases import build_fake_base, ensure_layout, hf_cache_files, load_facts
from tests.images.dockerutil import copy_project, remove_images, run_to_end

ROOT = Path(__file__).resolve().parents[2]
FACTS = load_facts()
LAYOUTS = [(e, v["cuda"]) for e, s in load_matrix(ROOT)["engines"].items() for v in s["variants"]]

# Prints what a container sees of its Python and its caches, as JSON.
PROBE = r"""
import json, os, shutil, subprocess, sys, sysconfig

def listing(root):
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                found[rel] = "-> " + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    found[rel] = f.read().decode(errors="replace")
    return found

pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True)
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
home = os.environ.get("HF_HOME", "/root/.cache/huggingface")
seed = os.environ.get("LONGCAT_HF_SEED", "")
print(json.dumps({
    "python3": shutil.which("python3"), "executable": sys.executable,
    "prefix": sys.prefix, "base_prefix": sys.base_prefix,
    "pip": pip.stdout.strip(), "pip_status": pip.returncode,
    "marker": os.path.exists(marker),
    "vllm": shutil.which("vllm"),
    "cwd": os.getcwd(), "uid": os.getuid(),
    "hf_home": listing(home) if os.path.isdir(home) else None,
    "default_cache": listing("/root/.cache/huggingface"),
    "seed": listing(seed) if seed and os.path.isdir(seed) else None,
    "env": dict(os.environ),
}))
"""


def probe(client, image: str, token: str, **kwargs) -> dict:
    status, out, err = run_to_end(
        client, image, token, entrypoint=["python3", "-c", PROBE], command=[], **kwargs
    )
    assert status == 0, err
    return json.loads(out.strip().splitlines()[-1])


def expected_cache(engine: str) -> dict[str, str]:
    """What the engine's official image keeps under HF_HOME, as PROBE lists it."""
    files = hf_cache_files(FACTS[engine]["hf_cache"])
    return {
        path: (f"-> {data}" if isinstance(data, str) else data.decode())
        for path, data in files.items()
    }


@pytest.fixture(scope="module")
def layouts(docker_client, standin_image) -> dict[tuple[str, str], str]:
    """{(engine, cuda): layout image}; kept after the session, like the minbase."""
    return {key: ensure_layout(docker_client, *key) for key in LAYOUTS}


# --------------------------------------------------------------------------------------
# the layouts are the facts
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine, cuda", LAYOUTS)
def test_each_layout_has_the_official_images_configuration(docker_client, layouts, engine, cuda):
    facts = FACTS[engine]
    config = docker_client.images.get(layouts[engine, cuda]).attrs["Config"]
    assert config["Entrypoint"] == facts["entrypoint"]
    assert (config["Cmd"] or []) == facts["cmd"]
    assert config["WorkingDir"] == facts["workdir"]
    assert config["User"] == facts["user"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"] == facts["path"]
    for key, value in facts["env"].items():
        assert env[key] == value
    for key, value in facts["labels"].items():
        assert config["Labels"][key] == value


@pytest.mark.parametrize("engine, cuda", LAYOUTS)
def test_each_layout_has_the_official_python_pip_and_cache(
    docker_client, layouts, docker_token, engine, cuda
):
    facts = FACTS[engine]
    seen = probe(docker_client, layouts[engine, cuda], docker_token)
    assert seen["python3"] == facts["python"]
    assert seen["pip_status"] == 0
    if facts["packages"] == "venv":
        assert seen["prefix"] == facts["venv"] != seen["base_prefix"]
        assert f"{facts['venv']}/lib/" in seen["pip"]
    else:
        assert facts["packages"] == "get-pip" and seen["prefix"] == seen["base_prefix"]
        assert "/usr/local/lib/" in seen["pip"] and not seen["marker"]
    assert seen["cwd"] == facts["workdir"] and seen["uid"] == 0
    assert seen["default_cache"] == expected_cache(engine)
    if engine == "sglang":
        assert seen["default_cache"], "the SGLang layout ships kernel files"


def test_the_system_python_of_the_sglang_layout_has_none_of_the_packages(
    docker_client, layouts, docker_token
):
    status, out, err = run_to_end(
        docker_client,
        layouts["sglang", "cu130"],
        docker_token,
        entrypoint=["/usr/bin/python3", "-c", "import huggingface_hub"],
        command=[],
    )
    assert status == 1 and "No module named 'huggingface_hub'" in err


@pytest.mark.parametrize("engine, cuda", LAYOUTS)
def test_each_fake_base_reports_the_version_a_real_wheel_would(
    docker_client, matrix, layouts, docker_token, engine, cuda
):
    tag = build_fake_base(
        docker_client,
        matrix,
        engine,
        f"longcat-test-{docker_token}-base:{engine}-{cuda}-version",
        cuda=cuda,
    )
    try:
        status, out, err = run_to_end(
            docker_client,
            tag,
            docker_token,
            entrypoint=[
                "python3",
                "-c",
                (
                    "import importlib.metadata as m, shutil, sys; "
                    "print(m.version(sys.argv[1]), shutil.which('vllm'))"
                ),
            ],
            command=[engine],
        )
        assert status == 0, err
        version, command = out.split()
        suffix = FACTS[engine]["variants"][cuda]["version_suffix"]
        assert version == matrix["engines"][engine]["version"] + suffix
        if engine == "vllm":
            assert command == FACTS["vllm"]["engine_command"]
    finally:
        remove_images(docker_client, [tag])


def test_a_cu129_variant_carries_a_local_version():
    assert FACTS["vllm"]["variants"]["cu129"]["version_suffix"] == "+cu129"


# --------------------------------------------------------------------------------------
# build.py on them
# --------------------------------------------------------------------------------------


def test_a_cu129_vllm_whose_wheel_says_plus_cu129_passes_verification(
    docker_client, matrix, docker_token
):
    pin = matrix["engines"]["vllm"]["version"]
    base = build_fake_base(
        docker_client, matrix, "vllm", f"longcat-test-{docker_token}-base:vllm-cu129", cuda="cu129"
    )
    image = None
    try:
        image = build_with_buildpy(
            docker_client, matrix, "vllm", base, f"longcat-test-{docker_token}-cu129", cuda="cu129"
        )
        assert image.engine_version == f"{pin}+cu129"
        # The build log shows both strings.
        assert f"vllm {pin}+cu129 (public version {pin}), the pin is {pin}" in image.output
        assert f"engine vllm {pin}+cu129" in image.output[image.output.index("=== summary") :]
        labels = docker_client.images.get(image.id).attrs["Config"]["Labels"]
        assert labels["dev.longcat-deploy.cuda"] == "cu129"
        assert labels["dev.longcat-deploy.engine.version"] == pin
        assert image.ref.endswith(f":vllm-{pin}-cu129")
    finally:
        remove_images(docker_client, ([*image.tags, image.id] if image else []) + [base])


def test_the_sglang_kernel_files_survive_a_volume_mounted_over_hf_home(
    docker_client, built_images, docker_token, tmp_path
):
    image = built_images["sglang"]
    kernels = expected_cache("sglang")
    assert kernels, "the SGLang base ships kernel files (official_images.toml, hf_cache)"
    plain = probe(docker_client, image.ref, docker_token)
    assert plain["seed"] == kernels  # kept in the image, as shipped
    assert plain["hf_home"] == {}  # HF_HOME is empty: mountable
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    (cache / "from-the-host").write_text("mounted")
    mounted = probe(
        docker_client,
        image.ref,
        docker_token,
        volumes={str(cache): {"bind": plain["env"]["HF_HOME"], "mode": "rw"}},
    )
    assert mounted["hf_home"] == {"from-the-host": "mounted"}  # the mount hides the image's
    assert mounted["seed"] == kernels  # but not the seed
    assert mounted["env"]["LONGCAT_HF_SEED"] == "/opt/longcat/hf-seed"


def test_a_base_without_cache_files_gives_an_empty_seed(docker_client, built_images, docker_token):
    seen = probe(docker_client, built_images["vllm"].ref, docker_token)
    assert seen["seed"] == {} and seen["hf_home"] == {}


def test_the_vllm_image_reports_no_usage_unless_the_user_turns_it_on(
    docker_client, built_images, docker_token, tmp_path
):
    python = engine_venvs.venv_python("vllm")
    if not Path(python).exists():
        pytest.fail(
            f"the pinned vllm environment is missing at {python}: run "
            "`python -m tests.engine_venvs` (.ci/setup does)",
            pytrace=False,
        )
    image = built_images["vllm"].ref
    environments = {
        "default": probe(docker_client, image, docker_token)["env"],
        "turned on": probe(
            docker_client, image, docker_token, environment={"VLLM_NO_USAGE_STATS": "0"}
        )["env"],
    }
    assert environments["default"]["VLLM_USAGE_SOURCE"] == "production-docker-image"
    # vLLM's own decision (vllm/usage/usage_lib.py, is_usage_stats_enabled) under each
    # container environment; HOME is empty, so no do_not_track file interferes.
    script = (
        "import json, os, sys\n"
        "from vllm.usage import usage_lib\n"
        "answers = {}\n"
        "for name, env in json.loads(sys.argv[1]).items():\n"
        "    os.environ.clear(); os.environ.update(env)\n"
        "    usage_lib._USAGE_STATS_ENABLED = None\n"
        "    answers[name] = usage_lib.is_usage_stats_enabled()\n"
        "print('JSON:' + json.dumps(answers))\n"
    )
    keep = {
        "HOME": str(tmp_path),
        "VLLM_TARGET_DEVICE": "cpu",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    payload = {
        name: {k: v for k, v in env.items() if k != "PATH"} | keep
        for name, env in environments.items()
    }
    done = subprocess.run(
        [str(python), "-c", script, json.dumps(payload)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(payload["default"]),
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("JSON:")]
    assert done.returncode == 0 and lines, done.stderr
    assert json.loads(lines[-1][5:]) == {"default": False, "turned on": True}


def test_the_base_digest_reaches_the_labels_the_summary_and_the_matrix(
    docker_client, matrix, fake_base_images, local_registry, docker_token, tmp_path
):
    """An "official" base in the local registry: build.py pulls it, labels our image with
    its digest, prints it, and --record-digests writes it into a copy of the matrix."""
    project = copy_project(ROOT, tmp_path / "project")
    matrix_path = project / "images" / "matrix.toml"
    official = f"{local_registry}/longcat-test-{docker_token}-official"
    text = matrix_path.read_text().replace(
        'repository = "lmsysorg/sglang"', f'repository = "{official}"'
    )
    matrix_path.write_text(text)
    copied = load_matrix(project)
    (target,) = plan(
        copied,
        ["sglang"],
        Options(repository=f"longcat-test-{docker_token}-dg", revision="test"),
        root=project,
    )
    assert target.base_image.startswith(f"{official}:") and not target.base_digest
    repository, _, tag = target.base_image.rpartition(":")
    docker_client.api.tag(fake_base_images["sglang"], repository, tag)
    pushed = None
    for chunk in docker_client.api.push(repository, tag=tag, stream=True, decode=True):
        assert "error" not in chunk, chunk
        pushed = (chunk.get("aux") or {}).get("Digest", pushed)
    docker_client.images.remove(target.base_image)  # so build.py has to pull it
    results = {}
    try:
        out = io.StringIO()
        results = build_targets(
            [target],
            client=docker_client,
            root=project,
            matrix=copied,
            record_digests=True,
            out=out,
        )
        (result,) = results.values()
        assert pushed and result["base_digest"] == pushed
        labels = docker_client.images.get(result["id"]).attrs["Config"]["Labels"]
        assert labels["org.opencontainers.image.base.digest"] == pushed
        log = out.getvalue()
        assert "pulling it" in log and f"base digest  {pushed}" in log
        variants = tomllib.loads(matrix_path.read_text())["engines"]["sglang"]["variants"]
        assert variants[0]["digest"] == pushed
        (again,) = plan(load_matrix(project), ["sglang"], Options(revision="test"), root=project)
        assert again.base_image == f"{target.base_image}@{pushed}"
    finally:
        for result in results.values():
            remove_images(docker_client, [*result["tags"], result["id"]])
        remove_images(docker_client, [target.base_image])
