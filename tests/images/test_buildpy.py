"""Unit tests of build.py: the plan, tags, labels, the build/verify/tag/push sequence and
its errors, against a fake docker client (tests/images/fakedocker.py). No daemon needed;
the real builds are in test_images.py."""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import build
from tests.images.fakedocker import FakeDockerClient

ROOT = Path(__file__).resolve().parents[2]
CREATED = "2026-11-29T12:00:00Z"


@pytest.fixture(scope="module")
def matrix():
    return build.load_matrix(ROOT)


def versions(matrix):
    return {name: spec["version"] for name, spec in matrix["engines"].items()}


# --------------------------------------------------------------------------------------
# plan
# --------------------------------------------------------------------------------------

def test_plan_default_builds_each_engine_on_its_default_variant_with_the_tag_scheme(matrix):
    targets = build.plan(matrix, revision="g0123456789ab", created=CREATED)
    v = versions(matrix)
    assert [(t.engine, t.cuda, t.default) for t in targets] == \
        [("sglang", "cu130", True), ("vllm", "cu130", True)]
    sglang, vllm = targets
    assert sglang.base_image == f"lmsysorg/sglang:v{v['sglang']}-cu130-runtime"
    assert vllm.base_image == f"vllm/vllm-openai:v{v['vllm']}"
    assert sglang.tags == [
        f"longcat-deploy:sglang-{v['sglang']}-cu130",
        "longcat-deploy:sglang-cu130",
        "longcat-deploy:sglang",
        f"longcat-deploy:sglang-{v['sglang']}-cu130-g0123456789ab",
    ]
    assert sglang.min_driver == "580.65.06"
    assert sglang.dockerfile == "images/sglang/Dockerfile"


def test_plan_labels_carry_source_revision_version_created_engine_and_base(matrix):
    (target,) = build.plan(matrix, ["vllm"], revision="g0123456789ab", created=CREATED)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    labels = target.labels()
    assert labels["org.opencontainers.image.revision"] == "g0123456789ab"
    assert labels["org.opencontainers.image.created"] == CREATED
    assert labels["org.opencontainers.image.version"] == project["version"]
    assert labels["org.opencontainers.image.base.name"] == target.base_image
    assert labels["org.opencontainers.image.source"]
    assert labels["dev.longcat-deploy.engine"] == "vllm"
    assert labels["dev.longcat-deploy.engine.version"] == versions(matrix)["vllm"]
    assert labels["dev.longcat-deploy.cuda"] == "cu130"
    assert target.build_args["BASE_IMAGE"] == target.base_image


def test_plan_all_cuda_variants_gives_moving_engine_tag_to_the_default_only(matrix):
    targets = build.plan(matrix, ["vllm"], cuda="all", revision="r1", created=CREATED)
    assert [t.cuda for t in targets] == ["cu130", "cu129"]
    cu129 = targets[1]
    assert "longcat-deploy:vllm" not in cu129.tags
    assert "longcat-deploy:vllm-cu129" in cu129.tags
    assert cu129.base_image.endswith(f":v{versions(matrix)['vllm']}-cu129")
    assert cu129.min_driver == "575.51.03"


def test_plan_base_override_registry_and_extra_tags(matrix):
    (target,) = build.plan(matrix, ["sglang"], base_image="local/standin:1",
                           registry="127.0.0.1:5000", repository="team/longcat",
                           tag=["1.0", "{engine}-rc"], revision="r1", created=CREATED)
    assert target.base_image == "local/standin:1"
    assert target.official_base.startswith("lmsysorg/sglang:")
    assert target.base_digest == ""
    assert target.build_args["BASE_IMAGE"] == "local/standin:1"
    assert all(t.startswith("127.0.0.1:5000/team/longcat:") for t in target.tags)
    assert "127.0.0.1:5000/team/longcat:1.0" in target.tags
    assert "127.0.0.1:5000/team/longcat:sglang-rc" in target.tags


def test_plan_pins_the_digest_when_the_matrix_knows_it(matrix):
    pinned = copy.deepcopy(matrix)
    digest = "sha256:" + "0" * 64
    pinned["engines"]["sglang"]["variants"][0]["digest"] = digest
    (target,) = build.plan(pinned, ["sglang"], revision="r1", created=CREATED)
    assert target.base_image.endswith(f"-cu130-runtime@{digest}")
    assert target.build_args["BASE_DIGEST"] == digest


def test_plan_without_git_has_no_revision_tag(matrix, tmp_path):
    for name in ("pyproject.toml",):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    (target,) = build.plan(matrix, ["sglang"], root=tmp_path, created=CREATED)
    assert len(target.tags) == 3
    assert target.build_args["VCS_REF"] == "unknown"


@pytest.mark.parametrize("kwargs, words", [
    ({"engines": ["tgi"]}, ["unknown engine", "tgi", "sglang", "vllm"]),
    ({"engines": ["sglang"], "cuda": "cu129"}, ["sglang", "cu129", "cu130"]),
    ({"cuda": "cu999"}, ["cu999", "cu129", "cu130"]),
    ({"tag": "latest"}, ["--tag", "latest", "{engine}"]),
    ({"registry": "bad host"}, ["--registry", "bad host"]),
    ({"repository": "Upper/Case"}, ["--repository", "Upper/Case"]),
    ({"revision": "bad rev"}, ["--revision", "bad rev"]),
    ({"engines": ["sglang"], "tag": "{nope}"}, ["{nope}", "unknown field"]),
    ({"engines": ["sglang"], "tag": "-x"}, ["-x", "not a valid tag"]),
    ({"engines": ["sglang"], "base_image": ""}, ["--base-image"]),
    ({"engines": ["sglang"], "tag": 1.0}, ["--tag", "text"]),
])
def test_plan_rejects_bad_input_with_a_clear_usage_error(matrix, kwargs, words):
    kwargs = dict(kwargs)
    engines = kwargs.pop("engines", ())
    kwargs.setdefault("revision", "r1")
    with pytest.raises(build.UsageError) as caught:
        build.plan(matrix, engines, **kwargs)
    assert caught.value.exit_status == 2
    for word in words:
        assert word in str(caught.value)


def test_load_matrix_names_the_missing_key(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "matrix.toml").write_text('[engines.sglang]\nversion = "1"\n')
    with pytest.raises(build.UsageError, match="lacks a required key"):
        build.load_matrix(tmp_path)
    (tmp_path / "images" / "matrix.toml").write_text("not = [toml")
    with pytest.raises(build.UsageError, match="not valid TOML"):
        build.load_matrix(tmp_path)


# --------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------

def test_protect_strings_keeps_version_like_values_as_text():
    assert build.protect_strings(["plan", "--tag=1.0", "--revision", "0123", "--cuda=all"]) \
        == ["plan", "--tag='1.0'", "--revision", "'0123'", "--cuda='all'"]
    assert build.protect_strings(["build", "sglang", "--no-cache", "--push"]) == \
        ["build", "sglang", "--no-cache", "--push"]


def test_cli_plan_json_keeps_tags_and_revisions_as_strings(capsys):
    status = build.main(["plan", "sglang", "--tag=1.0", "--revision=0123", "--format=json"])
    assert status == 0
    (target,) = json.loads(capsys.readouterr().out)
    assert any(t.endswith(":1.0") for t in target["tags"])
    assert any(t.endswith("-0123") for t in target["tags"])
    assert target["labels"]["org.opencontainers.image.revision"] == "0123"


def run_cli(*args, env=None):
    """Run ``python build.py ARGS`` as a user would; return the CompletedProcess."""
    return subprocess.run([sys.executable, str(ROOT / "build.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **(env or {})))


def test_cli_plan_needs_no_daemon_and_shows_both_engines_with_their_pinned_bases(matrix):
    done = run_cli("plan", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert done.returncode == 0, done.stderr
    v = versions(matrix)
    assert f"lmsysorg/sglang:v{v['sglang']}-cu130-runtime" in done.stdout
    assert f"vllm/vllm-openai:v{v['vllm']}" in done.stdout
    assert "580.65.06" in done.stdout
    assert run_cli("list").stdout == done.stdout


@pytest.mark.parametrize("args, status, words", [
    (["plan", "tgi"], 2, ["unknown engine 'tgi'"]),
    (["build", "sglang", "--cuda=cu129"], 2, ["no CUDA variant 'cu129'"]),
    (["plan", "--format=yaml"], 2, ["--format"]),
    (["plan", "--registry=http://x"], 2, ["--registry"]),
    (["build", "sglang"], 1, ["cannot reach the Docker daemon", "setup-docker"]),
    (["push", "vllm"], 1, ["cannot reach the Docker daemon"]),
])
def test_cli_bad_input_is_one_message_and_a_status_never_a_traceback(args, status, words):
    done = run_cli(*args, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert done.returncode == status, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.startswith("build.py: error: ")
    for word in words:
        assert word in done.stderr


def test_cli_unknown_option_exits_2_without_traceback():
    done = run_cli("plan", "--bogus=1")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.parametrize("args, unknown", [(["plan", "--cdua=all"], "--cdua"),
                                           (["build", "sglang", "--cdua", "all"], "--cdua"),
                                           (["push", "--no-cache"], "--no-cache")])
def test_cli_unknown_option_is_refused_before_the_command_runs(args, unknown):
    # fire would run the command first (a whole build) and complain afterwards.
    done = run_cli(*args, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == "", "nothing may run before the refusal"
    assert f"{args[0]} has no option {unknown}; it takes: --cuda" in done.stderr


# --------------------------------------------------------------------------------------
# build, verify, tag, push (fake client)
# --------------------------------------------------------------------------------------

FAKE_INIT = b"\x7fELF fake dumb-init"


@pytest.fixture
def artifacts(monkeypatch, tmp_path):
    """Replace the pip-made artifacts by small files (their real makers are tested below)."""
    dep = tmp_path / "python_hostlist-2.0-py3-none-any.whl"
    dep.write_bytes(b"dep wheel")

    def fake_launcher(root, out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        wheel = out_dir / "longcat_deploy-0.1.0-py3-none-any.whl"
        wheel.write_bytes(b"launcher wheel")
        return wheel

    monkeypatch.setattr(build, "init_binary", lambda matrix, cache: FAKE_INIT)
    monkeypatch.setattr(build, "dependency_wheels", lambda reqs, cache: [dep])
    monkeypatch.setattr(build, "launcher_wheel", fake_launcher)
    return tmp_path


def accepting(engine_version):
    """A run_script: the probe finds everything, the check accepts every plan."""
    def script(image, entrypoint, command):
        if entrypoint and entrypoint[:2] == ["python3", "-c"]:
            return 0, json.dumps({"problems": [], "engine_version": engine_version}) + "\n"
        assert command == ["check", "--all"] and entrypoint is None
        return 0, "checking 6 plan(s) against sglang\n6 accepted, 0 rejected\n"
    return script


def one_target(matrix, engine="sglang", **kwargs):
    (target,) = build.plan(matrix, [engine], revision="r1", created=CREATED, **kwargs)
    return target


def test_build_verifies_inside_the_image_before_any_tag(matrix, artifacts):
    client = FakeDockerClient()
    client.run_script = accepting(versions(matrix)["sglang"])
    target = one_target(matrix)
    out = io.StringIO()
    results = build.build_targets([target], client=client, matrix=matrix, cache=artifacts,
                                  out=out)
    names = client.names()
    first_tag = names.index("tag")
    assert names[:first_tag] == ["build", "run", "container.remove", "run", "container.remove"]
    assert names[first_tag:] == ["tag"] * len(target.tags)
    assert [c[2] for c in client.calls if c[0] == "tag"] == target.tags
    assert all(c[1] == client.built_id for c in client.calls if c[0] == "tag")
    (result,) = results.values()
    assert result == {"id": client.built_id, "tags": target.tags, "digests": {}}
    assert "Step 1/1 : FROM base" in out.getvalue()      # the build output is streamed
    assert "6 accepted, 0 rejected" in out.getvalue()    # and so is the check's report
    run_calls = [c for c in client.calls if c[0] == "run"]
    assert all(c[4]["network_mode"] == "host" for c in run_calls)
    assert run_calls[1][3] == ["check", "--all"]


def test_build_passes_the_plan_as_build_args_with_host_networking(matrix, artifacts):
    client = FakeDockerClient()
    client.run_script = accepting(versions(matrix)["sglang"])
    target = one_target(matrix, base_image="stand/in:1")
    build.build_targets([target], client=client, matrix=matrix, cache=artifacts,
                        no_cache=True, out=io.StringIO())
    kwargs = client.calls[0][1]
    assert kwargs["buildargs"] == target.build_args
    assert kwargs["buildargs"]["BASE_IMAGE"] == "stand/in:1"
    assert kwargs["network_mode"] == "host"
    assert kwargs["nocache"] is True and kwargs["pull"] is False
    assert kwargs["dockerfile"] == "Dockerfile"


def test_build_context_holds_exactly_what_the_dockerfile_copies(matrix, artifacts):
    client = FakeDockerClient()
    client.run_script = accepting(versions(matrix)["vllm"])
    build.build_targets([one_target(matrix, "vllm")], client=client, matrix=matrix,
                        cache=artifacts, out=io.StringIO())
    context = client.context
    assert set(context) == {"Dockerfile", "dumb-init", "deps/requirements.txt",
                            "deps/python_hostlist-2.0-py3-none-any.whl",
                            "launcher/longcat_deploy-0.1.0-py3-none-any.whl"}
    assert context["Dockerfile"][0] == (ROOT / "images" / "vllm" / "Dockerfile").read_bytes()
    assert context["dumb-init"][0] == FAKE_INIT
    assert context["dumb-init"][1] & 0o777 == 0o755
    assert b"python_hostlist==2.0\n" in context["deps/requirements.txt"][0]


def test_a_failed_step_names_the_step_and_shows_its_log(matrix, artifacts):
    client = FakeDockerClient()
    client.build_stream = [
        {"stream": "Step 1/3 : FROM base\n"}, {"stream": " ---> 1234\n"},
        {"stream": "Step 2/3 : RUN pip install x\n"},
        {"stream": " ---> Running in 99\n"}, {"stream": "ERROR: No matching distribution\n"},
        {"errorDetail": {"code": 1, "message": "The command returned a non-zero code: 1"},
         "error": "The command returned a non-zero code: 1"},
    ]
    with pytest.raises(build.BuildError) as caught:
        build.build_targets([one_target(matrix)], client=client, matrix=matrix,
                            cache=artifacts, out=io.StringIO())
    message = str(caught.value)
    assert "step 2/3: RUN pip install x" in message
    assert "ERROR: No matching distribution" in message
    assert "non-zero code: 1" in message
    assert " ---> 1234" not in message                    # only the failing step's log
    assert caught.value.exit_status == 1
    assert "tag" not in client.names() and "run" not in client.names()


def test_a_rejected_flag_fails_the_build_names_the_flag_and_tags_nothing(matrix, artifacts):
    client = FakeDockerClient()
    probe = accepting(versions(matrix)["sglang"])

    def script(image, entrypoint, command):
        if command == ["check", "--all"]:
            return 1, ("FAIL fp8 node 0 of 1, MTP off: python3 -m sglang.launch_server ...\n"
                       "     rejected --ep-size: not an option of sglang X\n"
                       "5 accepted, 1 rejected\n")
        return probe(image, entrypoint, command)

    client.run_script = script
    with pytest.raises(build.BuildError) as caught:
        build.build_targets([one_target(matrix)], client=client, matrix=matrix,
                            cache=artifacts, out=io.StringIO())
    assert "--ep-size: not an option" in str(caught.value)
    assert "not tagged" in str(caught.value)
    assert "tag" not in client.names()
    assert ("remove_image", client.built_id) in client.calls


@pytest.mark.parametrize("probe, words", [
    ({"problems": ["python-hostlist is not installed"], "engine_version": "PINNED"},
     ["lacks", "python-hostlist"]),
    ({"problems": [], "engine_version": "0.0.1"}, ["holds sglang 0.0.1", "pins"]),
])
def test_verification_catches_missing_dependencies_and_a_wrong_engine(matrix, artifacts,
                                                                      probe, words):
    client = FakeDockerClient()
    if probe["engine_version"] == "PINNED":
        probe = dict(probe, engine_version=versions(matrix)["sglang"])
    client.run_script = lambda image, entrypoint, command: (0, json.dumps(probe))
    with pytest.raises(build.BuildError) as caught:
        build.build_targets([one_target(matrix)], client=client, matrix=matrix,
                            cache=artifacts, out=io.StringIO())
    for word in words:
        assert word in str(caught.value)
    assert "tag" not in client.names()


def test_push_after_build_returns_each_tags_digest(matrix, artifacts):
    client = FakeDockerClient()
    client.run_script = accepting(versions(matrix)["sglang"])
    target = one_target(matrix, registry="127.0.0.1:5000")
    results = build.build_targets([target], client=client, matrix=matrix, cache=artifacts,
                                  push=True, out=io.StringIO())
    (result,) = results.values()
    assert set(result["digests"]) == set(target.tags)
    assert [c[1] for c in client.calls if c[0] == "push"] == target.tags
    assert client.names().index("push") > max(i for i, n in enumerate(client.names())
                                              if n == "tag")


def test_push_errors_are_reported(matrix):
    client = FakeDockerClient()
    with pytest.raises(build.BuildError, match="no such image here"):
        build.push_tags(client, ["127.0.0.1:1/x:missing"], out=io.StringIO())
    client.tags["127.0.0.1:1/x:t"] = client.built_id
    client.push_stream = lambda name: iter([{"errorDetail": {"message": "denied"},
                                             "error": "denied"}])
    with pytest.raises(build.BuildError, match="pushing 127.0.0.1:1/x:t failed: denied"):
        build.push_tags(client, ["127.0.0.1:1/x:t"], out=io.StringIO())


def test_added_layers_size_counts_only_what_sits_above_the_base():
    client = FakeDockerClient()
    client.histories = {
        "ours": [{"Id": "a", "Size": 10}, {"Id": "b", "Size": 5}, {"Id": "<missing>", "Size": 100},
                 {"Id": "<missing>", "Size": 1000}],
        "base": [{"Id": "x", "Size": 100}, {"Id": "<missing>", "Size": 1000}],
    }
    assert build.added_layers_size(client, "ours", "base") == 15


# --------------------------------------------------------------------------------------
# the artifacts: dumb-init, dependency wheels, the launcher wheel
# --------------------------------------------------------------------------------------

def test_init_binary_refuses_a_wheel_whose_hash_differs_from_the_pin(matrix, tmp_path):
    wheel = tmp_path / "init" / matrix["init"]["wheel"]
    wheel.parent.mkdir()
    wheel.write_bytes(b"not the pinned wheel")
    with pytest.raises(build.BuildError, match="differs from the pin"):
        build.init_binary(matrix, tmp_path)


def test_init_binary_is_the_static_dumb_init_from_the_pinned_wheel(matrix):
    binary = build.init_binary(matrix, build.build_cache_dir())
    assert binary[:4] == b"\x7fELF"
    assert len(binary) < 200_000


def test_missing_dependencies_are_the_ones_the_bases_do_not_ship(matrix):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    provided = {build._distribution_name(n) for n in matrix["image"]["base_provides"]}
    expected = [d for d in project["dependencies"] if build._distribution_name(d) not in provided]
    assert build.missing_dependencies(matrix, ROOT) == expected
    assert not any(build._distribution_name(d) in provided
                   for d in build.missing_dependencies(matrix, ROOT))


def test_launcher_wheel_is_reproducible(tmp_path):
    first = build.launcher_wheel(ROOT, tmp_path / "a")
    second = build.launcher_wheel(ROOT, tmp_path / "b")
    assert first.name == second.name
    assert first.read_bytes() == second.read_bytes()   # same sources, same layer


@pytest.mark.parametrize("installed,public", [("1.2.3", "1.2.3"), ("1.2.3+cu129", "1.2.3"),
                                              ("1.2.0+cpu", "1.2.0"), (None, None)])
def test_verify_compares_the_public_version_of_the_engine(installed, public):
    # vLLM's cu129 wheels and CPU builds carry a local label (engine-notes.md, "Versions").
    assert build.public_version(installed) == public
