"""Settings and plan, called in-process with plain dicts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from entrypoint.errors import ConfigError
from entrypoint.plan import resolve_plan
from entrypoint.settings import BY_NAME, VARIABLES, load_settings
from entrypoint.values import FALSE_WORDS, TRUE_WORDS, parse_address, parse_bool


def settings(env, installed=("sglang",)):
    return load_settings(env, installed=lambda: list(installed))


@pytest.mark.parametrize("word", [*TRUE_WORDS, "TRUE", "Yes", " on "])
def test_true_words(word):
    assert parse_bool("MTP", word) is True


@pytest.mark.parametrize("word", [*FALSE_WORDS, "FALSE", "Off", " "])
def test_false_words(word):
    assert parse_bool("MTP", word) is False


@pytest.mark.parametrize("word", ["2", "maybe", "y", "enabled", "-1"])
def test_other_booleans_are_refused(word):
    with pytest.raises(ConfigError) as info:
        parse_bool("MTP", word)
    assert info.value.variable == "MTP" and info.value.value == word


@pytest.mark.parametrize(
    "raw, want",
    [
        ("10.0.0.1", "10.0.0.1"),
        ("fd00::1", "fd00::1"),
        ("[fd00::1]", "fd00::1"),
        ("[FD00:0::1]", "fd00::1"),
        ("node-0.example.com", "node-0.example.com"),
        ("leader.svc.cluster.local.", "leader.svc.cluster.local"),
        ("localhost", "localhost"),
    ],
)
def test_addresses(raw, want):
    assert parse_address("MASTER_IP", raw) == want


@pytest.mark.parametrize(
    "raw",
    [
        "10.0.0.1:5000",
        "[fd00::1]:5000",
        "-bad.example",
        "a..b",
        "has space",
        "[node0]",
        "http://node0",
        "x" * 300,
    ],
)
def test_bad_addresses(raw):
    with pytest.raises(ConfigError) as info:
        parse_address("MASTER_IP", raw)
    assert "MASTER_IP" in info.value.message()


def test_engine_defaults_to_the_installed_one():
    s = settings({}, installed=("vllm",))
    assert s["ENGINE"] == "vllm" and s.sources["ENGINE"] == "installed engine"


@pytest.mark.parametrize("installed, words", [((), "neither"), (("sglang", "vllm"), "both")])
def test_engine_must_be_set_unless_exactly_one_is_installed(installed, words):
    with pytest.raises(ConfigError) as info:
        settings({}, installed=installed)
    assert info.value.variable == "ENGINE" and words in info.value.message()


def test_explicit_engine_does_not_look_for_installed_ones():
    def fail():
        raise AssertionError("detection must not run when ENGINE is set")

    assert load_settings({"ENGINE": "vllm"}, installed=fail)["ENGINE"] == "vllm"


def test_sources_say_where_values_came_from():
    plan = resolve_plan(
        settings({"ENGINE": "vllm", "PRECISION": "bf16", "MASTER_IP": "192.0.2.10"})
    )
    assert plan.sources["ENGINE"] == "environment"
    assert plan.sources["NNODES"] == "default for bf16"
    assert plan.sources["PORT"] == "default for vllm"
    assert plan.sources["MODEL"] == "checkpoint for chat bf16"


@pytest.mark.parametrize("engine, tp, ep, dp", [("sglang", 16, 16, 1), ("vllm", 8, 16, 2)])
def test_parallel_sizes(engine, tp, ep, dp):
    # vLLM's expert-parallel group spans tensor x data parallel ranks (docs/engines.md).
    plan = resolve_plan(
        settings({"ENGINE": engine, "PRECISION": "bf16", "MASTER_IP": "192.0.2.10"})
    )
    assert (plan.tensor_parallel_size, plan.expert_parallel_size, plan.data_parallel_size) == (
        tp,
        ep,
        dp,
    )


def test_roles():
    base = {"PRECISION": "bf16", "MASTER_IP": "192.0.2.10"}
    vllm1 = resolve_plan(settings(dict(base, ENGINE="vllm", NODE_RANK="1")))
    sglang1 = resolve_plan(settings(dict(base, ENGINE="sglang", NODE_RANK="1")))
    leader = resolve_plan(settings(dict(base, ENGINE="vllm")))
    assert (vllm1.headless, vllm1.serves_http, vllm1.serves_api) == (True, False, False)
    assert (sglang1.headless, sglang1.serves_http, sglang1.serves_api) == (False, True, False)
    assert (leader.headless, leader.serves_http, leader.serves_api) == (False, True, True)


def test_master_ip_is_ignored_on_one_node():
    plan = resolve_plan(settings({"ENGINE": "sglang", "MASTER_IP": "192.0.2.10"}))
    assert plan.master_ip is None and not plan.multi_node


def test_headless_node_may_reuse_the_rpc_port_number_for_http():
    # A headless vLLM node binds no HTTP port, so PORT cannot clash with MASTER_PORT.
    plan = resolve_plan(
        settings(
            {
                "ENGINE": "vllm",
                "PRECISION": "bf16",
                "NODE_RANK": "1",
                "MASTER_IP": "192.0.2.10",
                "PORT": "13345",
            }
        )
    )
    assert plan.headless


def test_draft_model_follows_the_served_checkpoint():
    plan = resolve_plan(settings({"ENGINE": "sglang", "MTP": "1"}))
    plan = plan.replace(model="/cache/snapshots/abc")
    assert plan.draft_model == "/cache/snapshots/abc"


def test_the_plan_is_immutable_and_replace_makes_a_changed_copy():
    plan = resolve_plan(settings({"ENGINE": "vllm"}))
    with pytest.raises(AttributeError, match="immutable"):
        plan.model = "x"
    with pytest.raises(TypeError):
        plan.engine_env["GLOO_SOCKET_IFNAME"] = "eth0"
    changed = plan.replace(served_model_name="longcat")
    assert changed.served_model_name == "longcat"
    assert plan.served_model_name == "meituan-longcat/LongCat-Flash-Chat-FP8"
    assert changed.replace(served_model_name=plan.served_model_name) == plan


def test_every_variable_has_help_and_a_known_kind():
    kinds = {
        "choice",
        "bool",
        "count",
        "index",
        "port",
        "seconds",
        "timeout",
        "address",
        "model",
        "revision",
        "args",
        "library",
        "name",
        "file",
        "secret",
    }
    assert len(BY_NAME) == len(VARIABLES)
    for var in VARIABLES:
        assert var.kind in kinds and var.help.endswith(".") and var.accepted()


def test_a_stall_bound_is_one_second_or_more():
    assert load_settings({"ENGINE": "vllm"})["DOWNLOAD_STALL_S"] == 60
    assert load_settings({"ENGINE": "vllm", "DOWNLOAD_STALL_S": " 5 "})["DOWNLOAD_STALL_S"] == 5
    for bad in ("0", "-1", "1.5", "1m"):
        with pytest.raises(
            ConfigError,
            match=r"DOWNLOAD_STALL_S is .*; accepted: a whole "
            r"number of seconds, 1\.\.2147483647",
        ):
            load_settings({"ENGINE": "vllm", "DOWNLOAD_STALL_S": bad})


@given(st.text(alphabet="ab-_./9Zé２", min_size=1, max_size=12))  # é, ２: non-ASCII word characters
def test_repo_ids_are_accepted_exactly_when_huggingface_hub_accepts_them(text):
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if text.startswith(("/", "./", "../")) or text.strip() != text:
        return  # local directories, not repo ids
    try:
        validate_repo_id(text)
        hub_accepts = True
    except HFValidationError:
        hub_accepts = False
    try:
        load_settings({"ENGINE": "vllm", "MODEL": text})
        we_accept = True
    except ConfigError:
        we_accept = False
    assert we_accept == hub_accepts, text


@pytest.mark.parametrize(
    "revision, ok",
    [
        ("main", True),
        ("v1.0", True),
        ("refs/pr/1", True),
        ("a" * 40, True),
        ("../../etc", False),
        ("/abs", False),
        ("has space", False),
        ("-x", False),
        # git-check-ref-format(1): each was accepted, then failed late with exit 4.
        (".", False),
        ("./main", False),
        ("main/", False),
        ("refs//pr", False),
        ("refs/.hidden", False),
        ("main.", False),
        ("main.lock", False),
        ("v1.0.1", True),
    ],
)
def test_model_revision(revision, ok):
    env = {"ENGINE": "vllm", "MODEL_REVISION": revision}
    if ok:
        assert load_settings(env)["MODEL_REVISION"] == revision
    else:
        with pytest.raises(ConfigError) as info:
            load_settings(env)
        assert info.value.variable == "MODEL_REVISION"
