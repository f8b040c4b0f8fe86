"""Unit tests of build.py and the images/ package: the plan, tags, labels, the
resolve/build/verify/tag/push sequence and its errors, against a fake docker client
(tests/fakes/docker_client.py). No daemon needed; the real builds are in test_images.py and
test_bases.py."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import io
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import docker.errors
import pytest

import build
from images import cli, context, dockerbuild, pipeline, publish, verify
from images.errors import BuildError, UsageError
from images.matrix import Options, Target, load_matrix, plan, record_digest
from tests.fakes.docker_client import FakeDockerClient, FakeImage
from tests.images.dockerutil import copy_project

ROOT = Path(__file__).resolve().parents[2]
CREATED = "2026-11-29T12:00:00Z"


@pytest.fixture(scope="module")
def matrix():
    return load_matrix(ROOT)


def versions(matrix):
    return {name: spec["version"] for name, spec in matrix["engines"].items()}


def planned(matrix, engines=(), **options):
    options.setdefault("revision", "r1")
    return plan(matrix, engines, Options(**options), created=CREATED)


# --------------------------------------------------------------------------------------
# plan
# --------------------------------------------------------------------------------------


def test_plan_default_builds_each_engine_on_its_default_variant_with_the_tag_scheme(matrix):
    targets = planned(matrix, revision="g0123456789ab")
    v = versions(matrix)
    assert [(t.engine, t.cuda, t.default) for t in targets] == [
        ("sglang", "cu130", True),
        ("vllm", "cu130", True),
    ]
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


def test_plan_labels_carry_url_source_revision_version_created_engine_and_base(matrix):
    (target,) = planned(matrix, ["vllm"], revision="g0123456789ab")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    labels = target.labels()
    assert labels["org.opencontainers.image.revision"] == "g0123456789ab"
    assert labels["org.opencontainers.image.created"] == CREATED
    assert labels["org.opencontainers.image.version"] == project["version"]
    assert labels["org.opencontainers.image.base.name"] == target.base_image
    assert labels["org.opencontainers.image.source"]
    assert labels["org.opencontainers.image.url"] == labels["org.opencontainers.image.source"]
    assert labels["dev.longcat-deploy.engine"] == "vllm"
    assert labels["dev.longcat-deploy.engine.version"] == versions(matrix)["vllm"]
    assert labels["dev.longcat-deploy.cuda"] == "cu130"
    assert target.build_args["BASE_IMAGE"] == target.base_image


def test_plan_all_cuda_variants_gives_moving_engine_tag_to_the_default_only(matrix):
    targets = planned(matrix, ["vllm"], cuda="all")
    assert [t.cuda for t in targets] == ["cu130", "cu129"]
    cu129 = targets[1]
    assert "longcat-deploy:vllm" not in cu129.tags
    assert "longcat-deploy:vllm-cu129" in cu129.tags
    assert cu129.base_image.endswith(f":v{versions(matrix)['vllm']}-cu129")
    assert cu129.min_driver == "575.51.03"
    assert "v0.31" in cu129.unconfirmed  # upstream's -cu129 tag is not confirmed


def test_plan_base_override_registry_and_extra_tags(matrix):
    (target,) = planned(
        matrix,
        ["sglang"],
        base_image="local/standin:1",
        registry="127.0.0.1:5000",
        repository="team/longcat",
        tag=["1.0", "{engine}-rc"],
    )
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
    (target,) = planned(pinned, ["sglang"])
    assert target.base_image.endswith(f"-cu130-runtime@{digest}")
    assert target.build_args["BASE_DIGEST"] == digest


def test_plan_without_git_has_no_revision_tag(matrix, tmp_path):
    (tmp_path / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    (target,) = plan(matrix, ["sglang"], root=tmp_path, created=CREATED)
    assert len(target.tags) == 3
    assert target.build_args["VCS_REF"] == "unknown"


def test_plan_names_an_engine_given_twice_once(matrix):
    assert [t.engine for t in planned(matrix, ["vllm", "vllm"])] == ["vllm"]
    assert [
        (t.engine, t.cuda) for t in planned(matrix, ["vllm", "sglang", "vllm"], cuda="all")
    ] == [("vllm", "cu130"), ("vllm", "cu129"), ("sglang", "cu130")]


@pytest.mark.parametrize(
    "options",
    [
        {"engines": ["vllm"], "cuda": "all", "tag": "{engine}-custom"},
        {"engines": ["vllm"], "cuda": "all", "tag": "{version}"},
        {"cuda": "all", "tag": "{cuda}-x"},
    ],
)
def test_a_tag_that_would_name_two_images_is_refused(matrix, options):
    options = dict(options)
    engines = options.pop("engines", ())
    with pytest.raises(UsageError) as caught:
        planned(matrix, engines, **options)
    message = str(caught.value)
    assert "would name both" in message and "--tag" in message and "{cuda}" in message


def test_a_tag_template_that_names_each_image_once_is_accepted(matrix):
    targets = planned(matrix, cuda="all", tag="{engine}-{cuda}-custom")
    tags = [t for target in targets for t in target.tags]
    assert len(tags) == len(set(tags))


def test_a_matrix_template_that_collides_is_refused_too(matrix):
    broken = copy.deepcopy(matrix)
    broken["tags"]["moving_cuda"] = "{engine}-latest"
    with pytest.raises(UsageError, match=r"\[tags\]\.moving_cuda"):
        planned(broken, ["vllm"], cuda="all")


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"engines": ["tgi"]}, ["unknown engine", "tgi", "sglang", "vllm"]),
        (
            {"engines": ["sglang"], "cuda": "cu129"},
            ["sglang", "cu129", "cu130", "no longer publishes", "v0.5.19"],
        ),
        ({"cuda": "cu999"}, ["cu999", "cu129", "cu130"]),
        ({"tag": "latest"}, ["--tag", "latest", "{engine}"]),
        ({"registry": "bad host"}, ["--registry", "bad host"]),
        ({"registry": "host:99999"}, ["--registry", "host:99999", "1..65535"]),
        ({"registry": "host:0"}, ["--registry", "host:0"]),
        ({"repository": "Upper/Case"}, ["--repository", "Upper/Case"]),
        ({"revision": "bad rev"}, ["--revision", "bad rev"]),
        ({"engines": ["sglang"], "tag": "{nope}"}, ["{nope}", "unknown field"]),
        ({"engines": ["sglang"], "tag": "-x"}, ["-x", "not a valid tag"]),
        ({"engines": ["sglang"], "base_image": ""}, ["--base-image"]),
        ({"engines": ["sglang"], "tag": 1.0}, ["--tag", "text"]),
    ],
)
def test_plan_rejects_bad_input_with_a_clear_usage_error(matrix, kwargs, words):
    kwargs = dict(kwargs)
    engines = kwargs.pop("engines", ())
    with pytest.raises(UsageError) as caught:
        planned(matrix, engines, **kwargs)
    assert caught.value.exit_status == 2
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize("registry", ["myreg", "registry", "MyReg", "LOCALHOST", "127"])
def test_a_registry_docker_would_read_as_a_docker_hub_namespace_is_refused(matrix, registry):
    """Docker takes the first path component for a registry host only when it holds a '.'
    or a ':' or is 'localhost' (docker/auth.py, ``split_repo_name``): ``myreg/longcat-deploy``
    is docker.io/myreg/longcat-deploy, so ``push`` would have gone to Docker Hub."""
    with pytest.raises(UsageError) as caught:
        planned(matrix, ["sglang"], registry=registry)
    message = str(caught.value)
    for word in (
        repr(registry),
        f"docker.io/{registry}/",
        "registry.example.com",
        "localhost:5000",
    ):
        assert word in message


@pytest.mark.parametrize("registry", [True, False, 1, 5000.0, ["reg.example.com"]])
def test_a_registry_that_is_not_text_is_refused(matrix, registry):
    with pytest.raises(UsageError) as caught:
        planned(matrix, ["sglang"], registry=registry)
    assert str(caught.value).startswith("--registry must be text")


@pytest.mark.parametrize(
    "template, field",
    [
        ("{engine.__class__}", "{engine.__class__}"),
        ("{version.__init__.__globals__}", "{version.__init__.__globals__}"),
        ("{engine[0]}", "{engine[0]}"),
        ("{engine!r}", "{engine!r}"),
        ("{cuda:>12}", "{cuda:>12}"),
        ("{engine:{cuda}}", "{engine:{cuda}}"),
        ("x-{}", "{}"),
        ("{0}", "{0}"),
        ("{nope}", "{nope}"),
        ("{engine", "'{engine'"),
        ("engine}", "'engine}'"),
    ],
)
def test_a_tag_template_takes_only_the_plain_field_names(matrix, template, field):
    """``--tag='{engine.__class__}'`` formatted the attribute (the message then showed
    ``<class 'str'>``) and ``{engine[0]}`` an index: a field is one of the documented names,
    without attribute, index, conversion or format spec."""
    with pytest.raises(UsageError) as caught:
        planned(matrix, ["sglang"], tag=template)
    message = str(caught.value)
    assert field in message
    assert "{engine} {version} {cuda} {revision}" in message
    assert "<class" not in message and "'s'" not in message


def test_a_tag_template_with_every_field_is_accepted(matrix):
    (target,) = planned(matrix, ["sglang"], tag="{engine}-{version}-{cuda}-{revision}-x")
    assert target.tags[-1].endswith(f":sglang-{versions(matrix)['sglang']}-cu130-r1-x")


def test_registry_ports_at_the_ends_of_the_range_are_accepted(matrix):
    for registry in (
        "host:1",
        "host:65535",
        "[fd00::1]:5000",
        "registry.example.com",
        "localhost",
        "localhost:5000",
        "127.0.0.1",
        "Registry.Example.com",
    ):
        (target,) = planned(matrix, ["sglang"], registry=registry)
        assert target.tags[0].startswith(f"{registry}/")


def test_load_matrix_names_the_missing_key(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "matrix.toml").write_text('[engines.sglang]\nversion = "1"\n')
    with pytest.raises(UsageError, match="lacks a required key"):
        load_matrix(tmp_path)
    (tmp_path / "images" / "matrix.toml").write_text("not = [toml")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_matrix(tmp_path)


# --------------------------------------------------------------------------------------
# recording a digest into the matrix
# --------------------------------------------------------------------------------------

DIGEST = "sha256:" + "12" * 32


def matrix_copy(tmp_path) -> Path:
    (tmp_path / "images").mkdir(parents=True)
    shutil.copyfile(ROOT / "images" / "matrix.toml", tmp_path / "images" / "matrix.toml")
    return tmp_path / "images" / "matrix.toml"


def test_record_digest_fills_exactly_that_variant_and_keeps_every_comment(tmp_path):
    path = matrix_copy(tmp_path)
    before = path.read_text()
    record_digest(tmp_path, "vllm", "cu129", DIGEST)
    after = path.read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert len(before.splitlines()) == len(after.splitlines())
    assert len(changed) == 1 and DIGEST in changed[0][1]
    assert "#" in changed[0][1]  # the line's comment stays
    variants = tomllib.loads(after)["engines"]["vllm"]["variants"]
    assert [v["digest"] for v in variants] == ["", DIGEST]
    (target,) = planned(load_matrix(tmp_path), ["vllm"], cuda="cu129")
    assert target.base_image.endswith(f"-cu129@{DIGEST}")


def test_record_digest_refuses_a_pinned_variant_an_unknown_one_and_a_non_digest(tmp_path):
    path = matrix_copy(tmp_path)
    record_digest(tmp_path, "sglang", "cu130", DIGEST)
    pinned = path.read_text()
    with pytest.raises(BuildError, match="already pins"):
        record_digest(tmp_path, "sglang", "cu130", "sha256:" + "34" * 32)
    with pytest.raises(BuildError, match="no .*cu129"):
        record_digest(tmp_path, "sglang", "cu129", DIGEST)
    with pytest.raises(UsageError):
        record_digest(tmp_path, "vllm", "cu130", "latest")
    assert path.read_text() == pinned


# --------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------


def test_the_shared_options_are_defined_once_by_options():
    fields = [f.name for f in dataclasses.fields(Options)]
    shared = list(inspect.signature(cli.Commands.__init__).parameters)[1:]
    assert shared == fields
    for field in fields:  # the help text, from Options' docstring
        assert f"    {field}: " in cli.Commands.__doc__
    for name in ("plan", "build", "push"):
        own = inspect.signature(getattr(cli.Commands, name)).parameters
        assert not set(own) & set(fields), name  # no command repeats them
    source = inspect.getsource(cli)
    assert "base_image=None" not in source and '"base_image", "registry"' not in source


def test_protect_strings_keeps_version_like_values_as_text():
    assert cli.protect_strings(["plan", "--tag=1.0", "--revision", "0123", "--cuda=all"]) == [
        "plan",
        "--tag='1.0'",
        "--revision",
        "'0123'",
        "--cuda='all'",
    ]
    assert cli.protect_strings(["build", "sglang", "--no-cache", "--push", "--cache-dir=1"]) == [
        "build",
        "sglang",
        "--no-cache",
        "--push",
        "--cache-dir='1'",
    ]


def test_cli_plan_json_keeps_tags_and_revisions_as_strings(capsys):
    status = cli.main(["plan", "sglang", "--tag=1.0", "--revision=0123", "--format=json"])
    assert status == 0
    (target,) = json.loads(capsys.readouterr().out)
    assert any(t.endswith(":1.0") for t in target["tags"])
    assert any(t.endswith("-0123") for t in target["tags"])
    assert target["labels"]["org.opencontainers.image.revision"] == "0123"


@pytest.mark.parametrize(
    "args",
    [
        ["--cuda=all", "plan", "vllm", "--format=json"],
        ["plan", "vllm", "--cuda=all", "--format=json"],
        ["plan", "--cuda", "all", "vllm", "--format=json"],
    ],
)
def test_cli_shared_options_work_before_and_after_the_command(capsys, args):
    assert cli.main(args) == 0
    assert [t["cuda"] for t in json.loads(capsys.readouterr().out)] == ["cu130", "cu129"]


def run_cli(*args, env=None):
    """Run ``python build.py ARGS`` as a user would; return the CompletedProcess."""
    return subprocess.run(
        [sys.executable, str(ROOT / "build.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, **(env or {})),
    )


def test_cli_plan_needs_no_daemon_and_shows_both_engines_with_their_pinned_bases(matrix):
    done = run_cli("plan", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert done.returncode == 0, done.stderr
    v = versions(matrix)
    assert f"lmsysorg/sglang:v{v['sglang']}-cu130-runtime" in done.stdout
    assert f"vllm/vllm-openai:v{v['vllm']}" in done.stdout
    assert "580.65.06" in done.stdout
    assert run_cli("list").stdout == done.stdout


def test_cli_help_lists_the_commands_and_the_shared_options():
    done = run_cli("--help")
    assert done.returncode == 0, done.stderr
    shown = done.stdout + done.stderr  # fire writes help to stderr off a terminal
    for word in (
        "plan",
        "build",
        "push",
        "--cuda",
        "--base_image",
        "--registry",
        "--repository",
        "--tag",
        "--revision",
    ):
        assert word in shown


@pytest.mark.parametrize(
    "args, status, words",
    [
        (["plan", "tgi"], 2, ["unknown engine 'tgi'"]),
        (["build", "sglang", "--cuda=cu129"], 2, ["no CUDA variant 'cu129'", "no longer"]),
        (["plan", "--format=yaml"], 2, ["--format"]),
        (["plan", "--registry=http://x"], 2, ["--registry"]),
        (["plan", "--registry=host:99999"], 2, ["--registry", "1..65535"]),
        (["build", "--registry=host:99999"], 2, ["--registry", "1..65535"]),
        (["push", "vllm", "--registry=myreg"], 2, ["docker.io/myreg/longcat-deploy"]),
        (["push", "vllm", "--registry=True"], 2, ["docker.io/True/longcat-deploy"]),
        (["plan", "--registry", "1"], 2, ["docker.io/1/longcat-deploy"]),
        (["plan", "--registry"], 2, ["--registry must be text", "True"]),
        (["plan", "--tag={engine.__class__}"], 2, ["{engine.__class__}", "{revision}"]),
        (["plan", "vllm", "--cuda=all", "--tag={engine}-custom"], 2, ["would name both"]),
        (["build", "vllm", "--cuda=all", "--tag={engine}-custom"], 2, ["would name both"]),
        (["push", "--base-image=x"], 2, ["push has no option --base-image"]),
        (["build", "sglang"], 1, ["cannot reach the Docker daemon", "setup-docker"]),
        (["push", "vllm"], 1, ["cannot reach the Docker daemon"]),
    ],
)
def test_cli_bad_input_is_one_message_and_a_status_never_a_traceback(args, status, words):
    done = run_cli(*args, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert done.returncode == status, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.startswith("build.py: error: ")
    for word in words:
        assert word in done.stderr


def test_cli_plans_an_engine_given_twice_once():
    done = run_cli("plan", "vllm", "vllm")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("vllm/vllm-openai:") == 1


def test_cli_unknown_option_exits_2_without_traceback():
    done = run_cli("plan", "--bogus=1")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    "args, unknown",
    [
        (["plan", "--cdua=all"], "--cdua"),
        (["build", "sglang", "--cdua", "all"], "--cdua"),
        (["push", "--no-cache"], "--no-cache"),
    ],
)
def test_cli_unknown_option_is_refused_before_the_command_runs(args, unknown):
    # fire would run the command first (a whole build) and complain afterwards.
    done = run_cli(*args, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == "", "nothing may run before the refusal"
    assert f"{args[0]} has no option {unknown}; it takes: --cuda" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--", "--interactive"],
        ["plan", "vllm", "--", "--trace"],
        ["build", "vllm", "--", "--completion"],
        ["plan", "--", "-i"],
    ],
)
def test_fires_own_flags_after_a_lone_dash_dash_are_refused(args):
    # fire reads them itself: --interactive opened a Python REPL on stdin.
    done = run_cli(*args, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert "build.py takes nothing after '--' but --help" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_after_a_lone_dash_dash_still_shows_the_help():
    done = run_cli("plan", "--", "--help")
    assert done.returncode == 0, done.stderr
    assert "build.py plan - Print what would be built" in done.stdout + done.stderr  # fire's help


def spellings(secret: str) -> set[str]:
    """``secret`` as it may appear in output: raw, and percent-encoded with either case of
    hex digits (RFC 3986, section 2.1)."""
    import re
    from urllib.parse import quote

    encoded = quote(secret, safe="")
    return {secret, encoded, re.sub("%[0-9A-F]{2}", lambda m: m[0].lower(), encoded)}


def leaked(text: str, secret: str) -> list[str]:
    """The spellings of ``secret`` that ``text`` holds."""
    return sorted(form for form in spellings(secret) if form in text)


DOCKER_PW = "Dock!Pw12345"


@pytest.mark.parametrize(
    "command, host",
    [
        # A password (the SDK refuses one: docker/utils/utils.py, parse_host).
        ("push", "tcp://builder:{pw}@127.0.0.1:{port}"),
        ("build", "tcp://builder:{pw}@127.0.0.1:{port}"),
        # Without a scheme the SDK reads "builder" as one; a ":" after the port.
        ("push", "builder:{pw}@127.0.0.1:{port}"),
        ("push", "builder:{pw}@127.0.0.1:{port}:x"),
        ("push", "tcp://127.0.0.1"),  # no port
        # A "/" in the password: urllib's own ValueError quotes the rest as the port.
        ("build", "tcp://builder:{pw}/rest@127.0.0.1:{port}"),
        ("build", "tcp://builder:{pw}@[::1"),  # a bracket left open: urllib's ValueError
    ],
)
def test_a_malformed_docker_host_is_named_with_exit_2_and_its_value_never_shown(command, host):
    """Not "cannot reach the Docker daemon ... Start it": the address is the problem."""
    from urllib.parse import quote

    from tests.images.dockerutil import free_port

    host = host.format(pw=quote(DOCKER_PW, safe=""), port=free_port())
    done = run_cli(command, "vllm", env={"DOCKER_HOST": host})
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert done.stderr.startswith("build.py: error: DOCKER_HOST is not a Docker daemon address")
    assert done.stderr.count("\n") == 1, done.stderr  # one message
    assert "Start it" not in done.stderr and "Traceback" not in done.stderr
    assert not leaked(done.stderr, DOCKER_PW)
    assert host not in done.stderr


def test_an_unreachable_docker_host_is_exit_1_and_names_the_address():
    from tests.images.dockerutil import free_port

    host = f"tcp://127.0.0.1:{free_port()}"
    done = run_cli("push", "vllm", env={"DOCKER_HOST": host})
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.startswith(f"build.py: error: cannot reach the Docker daemon at {host}: ")


@pytest.mark.parametrize("before", [[], ["--cuda=all"]])
@pytest.mark.parametrize("password", ["Fire!Pw12345", "FirePw12345"])
def test_fires_own_messages_and_usage_pass_redaction(before, password):
    """fire prints "ERROR: Could not consume arg: ARG" and a usage line itself
    (fire/core.py, _DisplayError), which quote the arguments. (A word holding "@" is
    refused before fire: test_a_list_url_or_bare_word_holding_user_info_is_refused_unshown.)"""
    from urllib.parse import quote

    done = run_cli(*before, f"http://h/x?token={quote(password, safe='')}")
    shown = done.stdout + done.stderr
    assert done.returncode == 2, shown
    assert not leaked(shown, password) and "Traceback" not in shown
    assert "ERROR: Could not consume arg: http://h/x?token=***\n" in done.stderr


def test_build_progress_lines_pass_redaction(matrix, artifacts, monkeypatch, capsys):
    """The build's output stream, what the image's check prints and our own lines reach
    the user through the same redaction, a secret split across chunks included."""
    pw = "Build!Pw12345"
    client = FakeDockerClient()
    client.run_script = accepting(versions(matrix)["sglang"])
    client.build_stream = [
        {"stream": "Step 1/2 : FROM base\n"},
        {"stream": "Looking in indexes: https://bot:Build"},
        {"stream": "!Pw12345@pypi.internal/simple\n"},
        {"stream": "Step 2/2 : RUN true\n"},
        {"aux": {"ID": client.built_id}},
        {"stream": f"Successfully built {client.built_id[7:19]}\n"},
    ]
    monkeypatch.setattr(pipeline, "docker_client", lambda: client)
    status = cli.main(["build", "sglang", f"--cache-dir={artifacts / 'cache'}"])
    shown = capsys.readouterr()
    assert status == 0, shown.err
    assert "Looking in indexes: https://bot:***@pypi.internal/simple\n" in shown.out
    assert not leaked(shown.out + shown.err, pw)
    assert "=== tagged" in shown.out


def test_the_redacting_stream_holds_a_line_until_it_ends_and_writes_the_rest_on_close():
    from images.streams import RedactingStream

    target = io.StringIO()
    stream = RedactingStream(target)
    assert stream.write("a https://u:Split") == len("a https://u:Split")
    stream.flush()
    assert target.getvalue() == ""  # the password's first half is held, not shown
    stream.write("Pw12345@h\nb http://u:Tail")
    assert target.getvalue() == "a https://u:***@h\n"
    stream.write("Pw12345@h")
    stream.close()
    assert target.getvalue() == "a https://u:***@h\nb http://u:***@h"
    assert not target.closed and not stream.isatty()
    with pytest.raises(ValueError):
        stream.write("x")


def test_main_restores_the_streams_it_redacted():
    before = sys.stdout, sys.stderr
    assert cli.main(["plan", "--format=yaml"]) == 2
    assert (sys.stdout, sys.stderr) == before


@pytest.mark.parametrize("how", ["registry error", "client exception"])
def test_cli_errors_from_docker_are_redacted(how, monkeypatch, capsys):
    """A registry's error message (push stream) and any exception of the client reach the
    user redacted: URL passwords and query-string credentials blanked."""
    leak = "https://bot:RegPw12345@127.0.0.1:5000/v2/token?access_token=Tok3n_abcdef"
    client = FakeDockerClient()
    client.images.get = lambda name: FakeImage(client.built_id, [name])
    if how == "registry error":
        client.push_stream = lambda name: iter([{"errorDetail": {"message": f"Get {leak}"}}])
    else:

        def push(repository, tag=None, stream=False, decode=False):
            raise OSError(f"connection to {leak} reset")

        client.api.push = push
    monkeypatch.setattr(dockerbuild, "docker_client", lambda: client)
    status = cli.main(["push", "vllm"])
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("build.py: error: ")
    assert "RegPw12345" not in err and "Tok3n_abcdef" not in err
    assert "https://bot:***@127.0.0.1:5000/v2/token?access_token=***" in err


def test_build_py_and_pyproject_agree_on_the_oldest_python():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    oldest = ".".join(map(str, build.MIN_PYTHON))
    assert project["requires-python"] == f">={oldest}"
    assert build.python_too_old(build.MIN_PYTHON) == ""
    older = (build.MIN_PYTHON[0], build.MIN_PYTHON[1] - 1, 9, "final", 0)
    message = build.python_too_old(older)
    assert message.startswith("build.py: error: needs Python " + oldest)
    assert ".venv/bin/python build.py" in message


def test_build_py_checks_the_python_before_importing_anything_newer():
    # An old Python must reach the check: build.py parses with old grammar and imports
    # only sys before it; the images package (tomllib, 3.10+ syntax) comes after.
    import ast

    text = (ROOT / "build.py").read_text()
    tree = ast.parse(text, feature_version=(3, 6))
    top_imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [alias.name for n in top_imports for alias in n.names] == ["sys"]
    assert text.index("python_too_old()") < text.index("from images.cli import main")


# --------------------------------------------------------------------------------------
# the base: found, pulled, or missing
# --------------------------------------------------------------------------------------


def test_a_local_base_is_used_as_it_is_with_the_digest_the_daemon_recorded():
    client = FakeDockerClient()
    client.bases["127.0.0.1:5000/x:1"] = FakeImage(
        "sha256:" + "aa" * 32, ["127.0.0.1:5000/x:1"], ["127.0.0.1:5000/x@" + DIGEST]
    )
    client.bases["local/standin:1"] = FakeImage("sha256:" + "bb" * 32, ["local/standin:1"])
    out = io.StringIO()
    assert dockerbuild.resolve_base(client, "127.0.0.1:5000/x:1", out) == dockerbuild.Base(
        "127.0.0.1:5000/x:1", "sha256:" + "aa" * 32, DIGEST, pulled=False
    )
    assert dockerbuild.resolve_base(client, "local/standin:1", out).digest == ""
    assert "pull" not in client.names()


def test_a_missing_base_is_pulled_and_its_digest_recorded():
    client = FakeDockerClient()
    out = io.StringIO()
    base = dockerbuild.resolve_base(client, "vllm/vllm-openai:v1-cu129", out)
    assert client.names() == ["pull"]
    assert base.pulled and base.digest == client.pull_digest
    assert "pulling it" in out.getvalue()


@pytest.mark.parametrize("failure", ["raise", "stream"])
def test_a_base_that_does_not_exist_fails_at_once_naming_the_tag_and_how_to_list_tags(failure):
    client = FakeDockerClient()
    message = "manifest for vllm/vllm-openai:v1-cu129 not found: manifest unknown: manifest unknown"

    def script(reference):
        if failure == "raise":
            raise docker.errors.NotFound("404 Client Error", explanation=message)
        return [{"errorDetail": {"message": message}, "error": message}]

    client.pull_script = script
    with pytest.raises(BuildError) as caught:
        dockerbuild.resolve_base(client, "vllm/vllm-openai:v1-cu129", io.StringIO())
    text = str(caught.value)
    assert "vllm/vllm-openai:v1-cu129 does not exist" in text
    assert "skopeo list-tags docker://docker.io/vllm/vllm-openai" in text
    assert "https://hub.docker.com/r/vllm/vllm-openai/tags" in text


def test_a_base_that_cannot_be_pulled_for_another_reason_says_so():
    client = FakeDockerClient()
    client.pull_script = lambda reference: [
        {"error": "dial tcp: lookup registry-1.docker.io: no such host"}
    ]
    with pytest.raises(BuildError, match="cannot pull the base image .* no such host"):
        dockerbuild.resolve_base(client, "lmsysorg/sglang:v1", io.StringIO())


def test_listing_hint_for_a_private_registry_names_no_docker_hub_page():
    hint = dockerbuild.listing_hint("127.0.0.1:5000/team/x")
    assert "skopeo list-tags docker://127.0.0.1:5000/team/x" in hint
    assert "hub.docker.com" not in hint


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

    monkeypatch.setattr(pipeline, "init_binary", lambda matrix, cache: FAKE_INIT)
    monkeypatch.setattr(pipeline, "dependency_wheels", lambda reqs, cache: [dep])
    monkeypatch.setattr(pipeline, "launcher_wheel", fake_launcher)
    return tmp_path


def accepting(engine_version):
    """A run_script: the probe finds everything, the check accepts every plan."""

    def script(image, entrypoint, command):
        if entrypoint and entrypoint[:2] == ["python3", "-c"]:
            return 0, json.dumps(
                {"problems": [], "engine_version": engine_version, "python": "/usr/bin/python3"}
            ) + "\n"
        assert command == ["check", "--all"] and entrypoint is None
        return 0, "checking 6 plan(s) against sglang\n6 accepted, 0 rejected\n"

    return script


def one_target(matrix, engine="sglang", **options) -> Target:
    (target,) = planned(matrix, [engine], **options)
    return target


def run_build(client, targets, matrix, cache, **kwargs) -> tuple[dict, str]:
    out = io.StringIO()
    results = pipeline.build_targets(
        targets, client=client, matrix=matrix, cache=cache, out=out, **kwargs
    )
    return results, out.getvalue()


def test_build_resolves_the_base_then_verifies_inside_the_image_before_any_tag(matrix, artifacts):
    client = FakeDockerClient()
    client.run_script = accepting(versions(matrix)["sglang"])
    target = one_target(matrix)
    results, out = run_build(client, [target], matrix, artifacts)
    names = client.names()
    first_tag = names.index("tag")
    assert names[:first_tag] == [
        "pull",
        "build",
        "run",
        "container.remove",
        "run",
        "container.remove",
    ]
    assert names[first_tag:] == ["tag"] * len(target.tags)
    assert [c[2] for c in client.calls if c[0] == "tag"] == target.tags
    assert all(c[1] == client.built_id for c in client.calls if c[0] == "tag")
    (result,) = results.values()
    assert result["id"] == client.built_id and result["tags"] == target.tags
    assert result["digests"] == {} and result["base_digest"] == client.pull_digest
    assert "Step 1/1 : FROM base" in out  # the build output is streamed
    assert "6 accepted, 0 rejected" in out  # and so is the check's report
    run_calls = [c for c in client.calls if c[0] == "run"]
    assert all(c[4]["network_mode"] == "host" for c in run_calls)
    assert run_calls[1][3] == ["check", "--all"]


def test_the_base_digest_reaches_the_labels_and_the_summary(matrix, artifacts):
    client = FakeDockerClient()
    client.run_script = accepting(versions(matrix)["sglang"])
    target = one_target(matrix)
    results, out = run_build(client, [target], matrix, artifacts)
    build_kwargs = next(c[1] for c in client.calls if c[0] == "build")
    assert build_kwargs["buildargs"]["BASE_DIGEST"] == client.pull_digest
    summary = out[out.index("=== summary") :]
    assert f"base digest  {client.pull_digest}" in summary
    assert target.base_image in summary and target.tags[0] in summary


def test_a_cu129_build_whose_engine_carries_a_local_version_passes_and_shows_both(
    matrix, artifacts
):
    client = FakeDockerClient()
    pin = versions(matrix)["vllm"]
    client.run_script = accepting(f"{pin}+cu129")
    target = one_target(matrix, "vllm", cuda="cu129")
    results, out = run_build(client, [target], matrix, artifacts)
    (result,) = results.values()
    assert result["engine_version"] == f"{pin}+cu129"
    assert f"vllm {pin}+cu129 (public version {pin}), the pin is {pin}" in out
    assert "tag" in client.names()


@pytest.mark.parametrize("have, public", [("0.0.1+cu129", "0.0.1"), ("0.0.1", "0.0.1")])
def test_a_different_public_version_still_fails_verification(matrix, artifacts, have, public):
    client = FakeDockerClient()
    client.run_script = accepting(have)
    with pytest.raises(BuildError) as caught:
        run_build(client, [one_target(matrix, "vllm", cuda="cu129")], matrix, artifacts)
    assert f"holds vllm {have} (public version {public})" in str(caught.value)
    assert "tag" not in client.names()


def test_public_version():
    assert verify.public_version("1.2.3+cu129") == "1.2.3"
    assert verify.public_version("1.2.3.post1") == "1.2.3.post1"
    with pytest.raises(ValueError, match="not a PEP 440 version"):
        verify.public_version("nightly")


def test_every_base_is_resolved_before_anything_is_built(matrix, artifacts):
    client = FakeDockerClient()
    client.run_script = accepting(versions(matrix)["vllm"])

    def script(reference):
        if reference.endswith("-cu129"):
            raise docker.errors.NotFound("404", explanation="manifest unknown")
        return FakeDockerClient().pull_script(reference)

    client.pull_script = script
    targets = planned(matrix, ["vllm"], cuda="all")
    with pytest.raises(BuildError, match="-cu129 does not exist"):
        run_build(client, targets, matrix, artifacts)
    assert client.names() == ["pull", "pull"]  # nothing built, nothing tagged


def test_record_digests_fills_the_pulled_digest_into_the_matrix(matrix, artifacts, tmp_path):
    project = copy_project(ROOT, tmp_path / "project")
    client = FakeDockerClient()
    client.run_script = accepting(versions(matrix)["vllm"])
    (target,) = plan(load_matrix(project), ["vllm"], Options(revision="r1"), root=project)
    _, out = run_build(
        client, [target], load_matrix(project), artifacts, root=project, record_digests=True
    )
    assert f'digest = "{client.pull_digest}" written to' in out
    variants = load_matrix(project)["engines"]["vllm"]["variants"]
    assert variants[0]["digest"] == client.pull_digest and variants[1]["digest"] == ""


def test_record_digests_leaves_the_matrix_alone_for_an_overridden_base(matrix, artifacts, tmp_path):
    project = copy_project(ROOT, tmp_path / "project")
    path = project / "images" / "matrix.toml"
    before = path.read_text()
    client = FakeDockerClient()
    client.run_script = accepting(versions(matrix)["vllm"])
    (target,) = plan(
        load_matrix(project),
        ["vllm"],
        Options(revision="r1", base_image="127.0.0.1:5000/standin:1"),
        root=project,
    )
    _, out = run_build(
        client, [target], load_matrix(project), artifacts, root=project, record_digests=True
    )
    assert "not the official base; nothing recorded" in out
    assert path.read_text() == before


def test_build_passes_the_plan_as_build_args_with_host_networking(matrix, artifacts):
    client = FakeDockerClient()
    client.run_script = accepting(versions(matrix)["sglang"])
    target = one_target(matrix, base_image="stand/in:1")
    run_build(client, [target], matrix, artifacts, no_cache=True)
    kwargs = next(c[1] for c in client.calls if c[0] == "build")
    assert kwargs["buildargs"] == {**target.build_args, "BASE_DIGEST": client.pull_digest}
    assert kwargs["buildargs"]["BASE_IMAGE"] == "stand/in:1"
    assert kwargs["network_mode"] == "host"
    assert kwargs["nocache"] is True and kwargs["pull"] is False
    assert kwargs["dockerfile"] == "Dockerfile"


def test_build_context_holds_exactly_what_the_dockerfile_copies(matrix, artifacts):
    client = FakeDockerClient()
    client.run_script = accepting(versions(matrix)["vllm"])
    run_build(client, [one_target(matrix, "vllm")], matrix, artifacts)
    built = client.context
    assert set(built) == {
        "Dockerfile",
        "dumb-init",
        "deps/requirements.txt",
        "deps/python_hostlist-2.0-py3-none-any.whl",
        "launcher/longcat_deploy-0.1.0-py3-none-any.whl",
    }
    assert built["Dockerfile"][0] == (ROOT / "images" / "vllm" / "Dockerfile").read_bytes()
    assert built["dumb-init"][0] == FAKE_INIT
    assert built["dumb-init"][1] & 0o777 == 0o755
    assert b"python_hostlist==2.0\n" in built["deps/requirements.txt"][0]


def test_a_failed_step_names_the_step_and_shows_its_log(matrix, artifacts):
    client = FakeDockerClient()
    client.build_stream = [
        {"stream": "Step 1/3 : FROM base\n"},
        {"stream": " ---> 1234\n"},
        {"stream": "Step 2/3 : RUN pip install x\n"},
        {"stream": " ---> Running in 99\n"},
        {"stream": "ERROR: No matching distribution\n"},
        {
            "errorDetail": {"code": 1, "message": "The command returned a non-zero code: 1"},
            "error": "The command returned a non-zero code: 1",
        },
    ]
    with pytest.raises(BuildError) as caught:
        run_build(client, [one_target(matrix)], matrix, artifacts)
    message = str(caught.value)
    assert "step 2/3: RUN pip install x" in message
    assert "ERROR: No matching distribution" in message
    assert "non-zero code: 1" in message
    assert " ---> 1234" not in message  # only the failing step's log
    assert caught.value.exit_status == 1
    assert "tag" not in client.names() and "run" not in client.names()


def test_a_rejected_flag_fails_the_build_names_the_flag_and_tags_nothing(matrix, artifacts):
    client = FakeDockerClient()
    probe = accepting(versions(matrix)["sglang"])

    def script(image, entrypoint, command):
        if command == ["check", "--all"]:
            return 1, (
                "FAIL fp8 node 0 of 1, MTP off: python3 -m sglang.launch_server ...\n"
                "     rejected --ep-size: not an option of sglang X\n"
                "5 accepted, 1 rejected\n"
            )
        return probe(image, entrypoint, command)

    client.run_script = script
    with pytest.raises(BuildError) as caught:
        run_build(client, [one_target(matrix)], matrix, artifacts)
    assert "--ep-size: not an option" in str(caught.value)
    assert "not tagged" in str(caught.value)
    assert "tag" not in client.names()
    assert ("remove_image", client.built_id) in client.calls


@pytest.mark.parametrize(
    "probe, words",
    [
        (
            {"problems": ["python-hostlist is not installed"], "engine_version": "PINNED"},
            ["lacks", "python-hostlist"],
        ),
        ({"problems": [], "engine_version": "0.0.1"}, ["holds sglang 0.0.1", "pins"]),
        ({"problems": [], "engine_version": None}, ["does not have sglang installed"]),
    ],
)
def test_verification_catches_missing_dependencies_and_a_wrong_engine(
    matrix, artifacts, probe, words
):
    client = FakeDockerClient()
    if probe["engine_version"] == "PINNED":
        probe = dict(probe, engine_version=versions(matrix)["sglang"])
    client.run_script = lambda image, entrypoint, command: (0, json.dumps(probe))
    with pytest.raises(BuildError) as caught:
        run_build(client, [one_target(matrix)], matrix, artifacts)
    for word in words:
        assert word in str(caught.value)
    assert "tag" not in client.names()


def test_push_after_build_returns_each_tags_digest(matrix, artifacts):
    client = FakeDockerClient()
    client.run_script = accepting(versions(matrix)["sglang"])
    target = one_target(matrix, registry="127.0.0.1:5000")
    results, out = run_build(client, [target], matrix, artifacts, push=True)
    (result,) = results.values()
    assert set(result["digests"]) == set(target.tags)
    assert [c[1] for c in client.calls if c[0] == "push"] == target.tags
    assert client.names().index("push") > max(i for i, n in enumerate(client.names()) if n == "tag")
    assert f"{target.tags[0]}@sha256:" in out[out.index("=== summary") :]


def test_push_errors_are_reported():
    client = FakeDockerClient()
    with pytest.raises(BuildError, match="no such image here"):
        publish.push_tags(client, ["127.0.0.1:1/x:missing"], out=io.StringIO())
    client.tags["127.0.0.1:1/x:t"] = client.built_id
    client.push_stream = lambda name: iter(
        [{"errorDetail": {"message": "denied"}, "error": "denied"}]
    )
    with pytest.raises(BuildError, match="pushing 127.0.0.1:1/x:t failed: denied"):
        publish.push_tags(client, ["127.0.0.1:1/x:t"], out=io.StringIO())


def test_added_layers_size_counts_only_what_sits_above_the_base():
    client = FakeDockerClient()
    client.histories = {
        "ours": [
            {"Id": "a", "Size": 10},
            {"Id": "b", "Size": 5},
            {"Id": "<missing>", "Size": 100},
            {"Id": "<missing>", "Size": 1000},
        ],
        "base": [{"Id": "x", "Size": 100}, {"Id": "<missing>", "Size": 1000}],
    }
    assert dockerbuild.added_layers_size(client, "ours", "base") == 15


# --------------------------------------------------------------------------------------
# the artifacts: dumb-init, dependency wheels, the launcher wheel
# --------------------------------------------------------------------------------------


def test_init_binary_refuses_a_wheel_whose_hash_differs_from_the_pin(matrix, tmp_path):
    wheel = tmp_path / "init" / matrix["init"]["wheel"]
    wheel.parent.mkdir()
    wheel.write_bytes(b"not the pinned wheel")
    with pytest.raises(BuildError, match="differs from the pin"):
        context.init_binary(matrix, tmp_path)


def test_init_binary_is_the_static_dumb_init_from_the_pinned_wheel(matrix):
    binary = context.init_binary(matrix, context.build_cache_dir())
    assert binary[:4] == b"\x7fELF"
    assert len(binary) < 200_000


def test_missing_dependencies_are_the_ones_the_bases_do_not_ship(matrix):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name = context.distribution_name
    provided = {name(n) for n in matrix["image"]["base_provides"]}
    expected = [d for d in project["dependencies"] if name(d) not in provided]
    assert context.missing_dependencies(matrix, ROOT) == expected
    assert not any(name(d) in provided for d in context.missing_dependencies(matrix, ROOT))


def test_a_failed_wheel_build_leaves_nothing_in_the_cache(monkeypatch, tmp_path):
    def failing(argv, what, cwd=None):
        out_dir = Path(argv[argv.index("--wheel-dir") + 1])
        (out_dir / "half-written.tmp").write_bytes(b"partial")  # as pip may leave
        raise BuildError(f"{what} failed (exit 1)")

    monkeypatch.setattr(context, "_run", failing)
    with pytest.raises(BuildError, match="building a wheel for python-hostlist"):
        context.dependency_wheels(["python-hostlist>=2"], tmp_path)
    assert [p for p in tmp_path.rglob("*")] == []


def test_launcher_wheel_is_reproducible(tmp_path):
    first = context.launcher_wheel(ROOT, tmp_path / "a")
    second = context.launcher_wheel(ROOT, tmp_path / "b")
    assert first.name == second.name
    assert first.read_bytes() == second.read_bytes()  # same sources, same layer


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--registry=u:ab/{pw}@reg.example:5000"],
        ["push", "--registry", "u:ab/{pw}@reg"],
        ["plan", "--tag=x:y/{pw}@z"],
        ["plan", "--repository=u:ab/{pw}@team/longcat"],
        ["plan", "--revision=u:ab/{pw}@r"],
        ["plan", "u:ab/{pw}@reg"],
    ],
)
def test_an_option_holding_user_info_is_refused_without_quoting_it(args):
    """A password holding "/" in user:password@host is no URL that redaction recognises:
    such values are described in messages, never quoted (images.errors.shown)."""
    result = run_cli(*[a.format(pw=DOCKER_PW) for a in args])
    assert result.returncode == 2, result.stderr
    assert "not shown: it may hold a password" in result.stderr
    assert "Pw123" not in result.stdout + result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("host", ["http://{pw}:@127.0.0.1:9", "{pw}@127.0.0.1:9", "tcp://{pw}@h:1"])
def test_a_docker_host_with_user_info_outside_ssh_is_refused_unshown(host):
    done = run_cli("push", "vllm", env={"DOCKER_HOST": host.format(pw="Tok3nAsUserName")})
    assert done.returncode == 2, done.stderr
    assert "it holds user info, which only ssh:// takes" in done.stderr
    assert "Tok3n" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["plan", '--registry=["user:Pa/ssw0rd@host:5000"]'],
        ["plan", "vllm", "--base-image=https://user:Pa/ssw0rd@reg.example:5000/img:tag"],
        ["user:Pa/ssw0rd@host"],
    ],
)
def test_a_list_url_or_bare_word_holding_user_info_is_refused_unshown(args):
    done = run_cli(*args)
    assert done.returncode == 2, done.stderr
    assert "not shown: it may hold a password" in done.stderr
    assert "ssw0rd" not in done.stdout + done.stderr


def test_a_base_image_pinned_by_digest_is_still_accepted():
    digest = "sha256:" + "a" * 64
    done = run_cli("plan", "vllm", f"--base-image=vllm/vllm-openai@{digest}")
    assert done.returncode == 0, done.stderr
    assert digest in done.stdout


@pytest.mark.parametrize("closed", ["1", "2"])
@pytest.mark.parametrize("args", [["plan"], ["--help"], ["plan", "--cuda=cu1"]])
def test_a_closed_stdout_or_stderr_is_exit_74_without_a_traceback(closed, args):
    """A descriptor closed at start (``>&-``) makes Python set ``sys.stdout`` or
    ``sys.stderr`` to None: ``plan`` ended in two chained tracebacks and exit 1."""
    from tests.launcher.support import run_with_a_closed_descriptor

    done = run_with_a_closed_descriptor([sys.executable, "build.py", *args], closed, ROOT)
    assert done.returncode == 74, (done.stdout, done.stderr)
    assert (done.stdout or "") + (done.stderr or "") == ""


def test_output_that_cannot_be_written_is_exit_74():
    """A closed stderr, as the launcher's EXIT_OUTPUT; Python's final flush used to end in 120."""
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, str(ROOT / "build.py"), "--help"],
            stdout=subprocess.DEVNULL,
            stderr=full,
            timeout=60,
        )
    assert done.returncode == 74
