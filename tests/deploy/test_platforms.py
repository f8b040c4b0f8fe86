"""entrypoint.platforms: rank, leader and node count from LeaderWorkerSet and Slurm, and
how the launcher's settings use them (explicit variables win; contradictions are errors)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from entrypoint.errors import ConfigError
from entrypoint.platforms import first_host, platform_values
from entrypoint.settings import load_settings

from .dryrun import REPO

LWS_LEADER = "longcat-sglang-2node-0.longcat-sglang-2node.default"
LWS = {"LWS_WORKER_INDEX": "1", "LWS_GROUP_SIZE": "2", "LWS_LEADER_ADDRESS": LWS_LEADER}
SLURM = {"SLURM_NODEID": "1", "SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "gpu[07-08]"}


def settings(env):
    """The launcher's settings for ``env`` (ENGINE given, so no engine need be installed)."""
    return load_settings({"ENGINE": "sglang", **env}, installed=lambda: [])


# --- platform_values: each platform alone ---------------------------------------------


def test_no_platform_gives_nothing():
    assert platform_values({}) == {}
    assert platform_values({"PATH": "/usr/bin", "NODE_RANK": "1"}) == {}


def test_leaderworkerset():
    assert platform_values(LWS) == {
        "NODE_RANK": ("1", "LWS_WORKER_INDEX"),
        "MASTER_IP": (LWS_LEADER, "LWS_LEADER_ADDRESS"),
        "NNODES": ("2", "LWS_GROUP_SIZE"),
    }


def test_slurm_job_nodelist():
    assert platform_values(SLURM) == {
        "NODE_RANK": ("1", "SLURM_NODEID"),
        "MASTER_IP": ("gpu07", "SLURM_JOB_NODELIST (first host)"),
        "NNODES": ("2", "SLURM_NNODES"),
    }


def test_slurm_prefers_the_step_nodelist():
    # A step on part of the allocation: SLURM_NODEID counts within the step, so node 0 is
    # the step's first host, not the allocation's.
    env = {**SLURM, "SLURM_JOB_NODELIST": "gpu[01-04]", "SLURM_STEP_NODELIST": "gpu[03-04]"}
    assert platform_values(env)["MASTER_IP"] == ("gpu03", "SLURM_STEP_NODELIST (first host)")


def test_partial_and_empty_values():
    assert platform_values({"SLURM_NODEID": "0"}) == {"NODE_RANK": ("0", "SLURM_NODEID")}
    assert platform_values({"LWS_GROUP_SIZE": "4", "LWS_WORKER_INDEX": " "}) == {
        "NNODES": ("4", "LWS_GROUP_SIZE")
    }
    assert platform_values({"SLURM_NNODES": "", "LWS_LEADER_ADDRESS": ""}) == {}


def test_numbers_are_normalised():
    assert platform_values({"LWS_WORKER_INDEX": " 03 ", "LWS_GROUP_SIZE": "04"}) == {
        "NODE_RANK": ("3", "LWS_WORKER_INDEX"),
        "NNODES": ("4", "LWS_GROUP_SIZE"),
    }


# --- host lists -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "nodelist, first",
    [
        ("gpu[01-04,07]", "gpu01"),
        ("gpu[07,01-04]", "gpu07"),  # Slurm's order, not sorted
        ("gpu07", "gpu07"),
        ("gpu07,gpu01", "gpu07"),
        ("node-a[9-11]", "node-a9"),
        ("rack[1-2]-gpu[03-04]", "rack1-gpu03"),
        ("dgx[001-128]", "dgx001"),
        ("h100-0[5-6].cluster.example", "h100-05.cluster.example"),
    ],
)
def test_first_host_of_compressed_lists(nodelist, first):
    assert first_host("SLURM_JOB_NODELIST", nodelist) == first
    assert platform_values({"SLURM_JOB_NODELIST": nodelist})["MASTER_IP"][0] == first


@pytest.mark.parametrize(
    "nodelist", ["gpu[01-", "gpu[3-1]", "gpu[]", "gpu[01-04", "gpu 07", "gpu_07", ","]
)
def test_bad_host_list_names_the_variable(nodelist):
    with pytest.raises(ConfigError) as info:
        platform_values({"SLURM_JOB_NODELIST": nodelist})
    assert info.value.variable == "SLURM_JOB_NODELIST"
    assert info.value.value == nodelist
    assert "gpu[01-04,07]" in info.value.accepted


def test_hostlist_is_imported_only_for_slurm_node_lists():
    code = (
        "import sys\n"
        "from entrypoint.platforms import platform_values\n"
        "platform_values({'LWS_WORKER_INDEX': '1', 'LWS_GROUP_SIZE': '2',"
        " 'LWS_LEADER_ADDRESS': 'a.b', 'SLURM_NODEID': '1', 'SLURM_NNODES': '2'})\n"
        "assert 'hostlist' not in sys.modules, 'imported too early'\n"
        "platform_values({'SLURM_JOB_NODELIST': 'gpu[1-2]'})\n"
        "assert 'hostlist' in sys.modules\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def test_missing_hostlist_package_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "hostlist", None)  # makes `import hostlist` fail
    with pytest.raises(ConfigError) as info:
        platform_values(SLURM)
    assert info.value.variable == "SLURM_JOB_NODELIST"
    assert "python-hostlist" in info.value.detail and "MASTER_IP" in info.value.detail


# --- malformed platform values --------------------------------------------------------


@pytest.mark.parametrize(
    "env, variable",
    [
        ({"LWS_WORKER_INDEX": "-1"}, "LWS_WORKER_INDEX"),
        ({"LWS_WORKER_INDEX": "one"}, "LWS_WORKER_INDEX"),
        ({"LWS_GROUP_SIZE": "0"}, "LWS_GROUP_SIZE"),
        ({"LWS_GROUP_SIZE": "2.0"}, "LWS_GROUP_SIZE"),
        ({"LWS_GROUP_SIZE": "٢"}, "LWS_GROUP_SIZE"),  # a digit, but not an ASCII one
        ({"LWS_LEADER_ADDRESS": "lws-0.lws.default:5000"}, "LWS_LEADER_ADDRESS"),
        ({"LWS_LEADER_ADDRESS": "two words"}, "LWS_LEADER_ADDRESS"),
        ({"SLURM_NODEID": "x"}, "SLURM_NODEID"),
        ({"SLURM_NNODES": "0"}, "SLURM_NNODES"),
        ({"LWS_WORKER_INDEX": "2", "LWS_GROUP_SIZE": "2"}, "LWS_WORKER_INDEX"),
        ({"SLURM_NODEID": "3", "SLURM_NNODES": "2"}, "SLURM_NODEID"),
        ({"SLURM_LOCALID": "1", **SLURM}, "SLURM_LOCALID"),
        ({"SLURM_NNODES": "9" * 5000}, "SLURM_NNODES"),  # past int()'s 4300-digit limit
        ({"LWS_GROUP_SIZE": str(2**31)}, "LWS_GROUP_SIZE"),
    ],
)
def test_malformed_platform_value_names_the_platform_variable(env, variable):
    with pytest.raises(ConfigError) as info:
        platform_values(env)
    assert info.value.variable == variable
    assert info.value.exit_status == 2


def test_ip_leader_addresses_are_accepted():
    assert platform_values({"LWS_LEADER_ADDRESS": "10.1.2.3"})["MASTER_IP"][0] == "10.1.2.3"
    assert platform_values({"LWS_LEADER_ADDRESS": "[fd00::1]"})["MASTER_IP"][0] == "[fd00::1]"


def test_first_task_on_a_node_is_fine():
    assert platform_values({**SLURM, "SLURM_LOCALID": "0"})["NODE_RANK"] == ("1", "SLURM_NODEID")


# --- both platforms -------------------------------------------------------------------


def test_both_platforms_agreeing_name_both_sources():
    env = {**LWS, **SLURM, "LWS_LEADER_ADDRESS": "GPU07."}  # same host, other spelling
    found = platform_values(env)
    assert found["NODE_RANK"] == ("1", "LWS_WORKER_INDEX and SLURM_NODEID")
    assert found["NNODES"] == ("2", "LWS_GROUP_SIZE and SLURM_NNODES")
    assert found["MASTER_IP"] == (
        "GPU07.",
        "LWS_LEADER_ADDRESS and SLURM_JOB_NODELIST (first host)",
    )


@pytest.mark.parametrize(
    "override, launcher_variable",
    [
        ({"SLURM_NNODES": "4", "SLURM_NODEID": "1"}, "NNODES"),
        ({"SLURM_NODEID": "0"}, "NODE_RANK"),
        ({"SLURM_JOB_NODELIST": "gpu[01-02]"}, "MASTER_IP"),
    ],
)
def test_both_platforms_disagreeing_is_a_config_error(override, launcher_variable):
    with pytest.raises(ConfigError) as info:
        platform_values({**LWS, **SLURM, **override, "LWS_LEADER_ADDRESS": "gpu07"})
    assert info.value.variable.startswith("LWS_")
    assert launcher_variable in info.value.detail
    assert "SLURM_" in info.value.accepted


def test_ip_address_spellings_agree():
    env = {"LWS_LEADER_ADDRESS": "[fd00:0::1]", "SLURM_JOB_NODELIST": "fd00::1"}
    assert platform_values(env)["MASTER_IP"] == (
        "[fd00:0::1]",
        "LWS_LEADER_ADDRESS and SLURM_JOB_NODELIST (first host)",
    )


# --- through the launcher's settings: precedence and conflicts ------------------------


def test_settings_fall_back_to_the_platform():
    got = settings({**LWS, "PRECISION": "bf16"})
    assert (got["NODE_RANK"], got["NNODES"], got["MASTER_IP"]) == (1, 2, LWS_LEADER)
    assert got.sources["NODE_RANK"] == "LWS_WORKER_INDEX"
    assert got.sources["NNODES"] == "LWS_GROUP_SIZE"
    assert got.sources["MASTER_IP"] == "LWS_LEADER_ADDRESS"


def test_explicit_values_win_and_say_so():
    got = settings({**SLURM, "NODE_RANK": "1", "NNODES": "2", "MASTER_IP": "192.0.2.10"})
    assert (got["NODE_RANK"], got["NNODES"], got["MASTER_IP"]) == (1, 2, "192.0.2.10")
    assert {got.sources[n] for n in ("NODE_RANK", "NNODES", "MASTER_IP")} == {"environment"}


@pytest.mark.parametrize(
    "explicit, platform, variable",
    [
        ({"NNODES": "2"}, {"LWS_GROUP_SIZE": "4"}, "NNODES"),
        ({"NODE_RANK": "0"}, {"SLURM_NODEID": "1", "SLURM_NNODES": "2"}, "NODE_RANK"),
    ],
)
def test_explicit_value_contradicting_the_platform_is_a_config_error(explicit, platform, variable):
    with pytest.raises(ConfigError) as info:
        settings({**explicit, **platform})
    assert info.value.variable == variable
    assert info.value.exit_status == 2


def test_malformed_platform_value_stops_settings():
    with pytest.raises(ConfigError) as info:
        settings({"SLURM_JOB_NODELIST": "gpu[01-", "SLURM_NODEID": "0", "SLURM_NNODES": "2"})
    assert info.value.variable == "SLURM_JOB_NODELIST"


# --- any environment: a result or a ConfigError, never a traceback ----------------------

PLATFORM_NAMES = [
    "LWS_WORKER_INDEX",
    "LWS_GROUP_SIZE",
    "LWS_LEADER_ADDRESS",
    "SLURM_NODEID",
    "SLURM_NNODES",
    "SLURM_JOB_NODELIST",
    "SLURM_STEP_NODELIST",
    "SLURM_LOCALID",
]
VALUES = st.one_of(
    st.text(st.sampled_from(list("gpu0123456789[]-,.: _\n٢")), max_size=24),
    st.text(max_size=12),
    st.sampled_from(["0", "1", "2", "gpu[07-08]", "a.b.c", "[fd00::1]", "9" * 5000]),
)


@hypothesis_settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(PLATFORM_NAMES), VALUES))
def test_any_platform_environment_gives_values_or_a_config_error(env):
    try:
        found = platform_values(env)
    except ConfigError as error:
        assert error.variable in PLATFORM_NAMES
        return
    assert set(found) <= {"NODE_RANK", "MASTER_IP", "NNODES"}
    got = settings(env)  # whatever a platform gives, the launcher's settings accept
    for name, (_raw, source) in found.items():
        assert got.sources[name] == source
