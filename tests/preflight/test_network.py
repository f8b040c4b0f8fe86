"""Ports, MASTER_IP and GLOO_SOCKET_IFNAME, checked with real sockets and interfaces."""

from __future__ import annotations

import os
import socket

import pytest

from entrypoint.preflight import (
    check_gloo,
    check_master_ip,
    check_ports,
    interface_addresses,
    network_interfaces,
    route_interface,
)
from tests.preflight.support import free_port, plan_for


@pytest.fixture
def listener():
    """A socket listening on 127.0.0.1; returns its port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_free_http_port_passes():
    port = free_port()
    (outcome,) = check_ports(plan_for(HOST="127.0.0.1", PORT=port))
    assert outcome.ok and outcome.text == f"127.0.0.1:{port} (PORT) is free"


def test_http_port_in_use_fails(listener):
    (outcome,) = check_ports(plan_for(HOST="127.0.0.1", PORT=listener))
    assert not outcome.ok
    assert f"127.0.0.1:{listener} (PORT) is already in use on this host" in outcome.text
    assert "Stop it, or set PORT to a free port." in outcome.text


def test_http_port_on_the_wildcard_conflicts_with_a_loopback_listener(listener):
    (outcome,) = check_ports(plan_for(PORT=listener))  # HOST 0.0.0.0
    assert not outcome.ok and "already in use" in outcome.text


def test_host_that_is_not_this_hosts_fails():
    (outcome,) = check_ports(plan_for(HOST="192.0.2.1", PORT=free_port()))
    assert not outcome.ok
    assert "192.0.2.1 is not an address of this host. Set HOST to 0.0.0.0" in outcome.text


def test_node_0_checks_the_dist_init_port_too(listener):
    plan = plan_for(PRECISION="bf16", MASTER_IP="127.0.0.1", MASTER_PORT=listener, PORT=free_port())
    http, master = check_ports(plan)
    assert http.ok
    assert not master.ok and master.name == "SGLang dist-init port"
    assert f"0.0.0.0:{listener} (MASTER_PORT) is already in use" in master.text
    assert "set MASTER_PORT to a free port, the same on every node" in master.text
    plan = plan_for(
        PRECISION="bf16",
        MASTER_IP="127.0.0.1",
        MASTER_PORT=free_port(),
        PORT=free_port(),
        ENGINE="vllm",
    )
    assert [o.ok for o in check_ports(plan)] == [True, True]
    assert check_ports(plan)[1].name == "vLLM data-parallel RPC port"


def test_headless_vllm_node_binds_no_port(listener):
    plan = plan_for(
        ENGINE="vllm",
        PRECISION="bf16",
        NODE_RANK=1,
        MASTER_IP="127.0.0.1",
        PORT=listener,
        MASTER_PORT=listener + 1 if listener < 65535 else 1024,
    )
    assert check_ports(plan) == []


def test_this_hosts_interfaces_and_addresses_are_found():
    names = network_interfaces()
    assert "lo" in names and names == sorted(os.listdir("/sys/class/net"))
    addresses = interface_addresses()
    assert addresses["127.0.0.1"] == "lo"
    assert set(addresses.values()) <= set(names)


@pytest.mark.parametrize("master", ["127.0.0.1", "localhost"])
def test_master_ip_of_this_host_passes_on_node_0(master):
    outcome = check_master_ip(plan_for(PRECISION="bf16", MASTER_IP=master))
    assert outcome.ok and "is this host's, on lo" in outcome.text


def test_master_ip_of_another_host_fails_on_node_0():
    outcome = check_master_ip(plan_for(PRECISION="bf16", MASTER_IP="192.0.2.10"))
    assert not outcome.ok
    assert (
        "MASTER_IP=192.0.2.10 is not an address of this host, which has "
        "127.0.0.1 on lo" in outcome.text
    )
    assert "run it with --network host (compose: network_mode: host)" in outcome.text


def test_master_ip_that_does_not_resolve_fails():
    now = [0.0]
    waits = []

    def sleep(seconds):
        waits.append(seconds)
        now[0] += seconds

    outcome = check_master_ip(
        plan_for(PRECISION="bf16", MASTER_IP="no-such-host.invalid"),
        resolve_wait_s=5,
        sleep=sleep,
        clock=lambda: now[0],
    )
    assert sum(waits) == 5 and len(waits) >= 3, "a name that does not resolve is retried"
    assert not outcome.ok
    assert "MASTER_IP=no-such-host.invalid does not resolve on this host" in outcome.text


def test_gloo_interface_that_exists_passes():
    outcome = check_gloo(
        plan_for(PRECISION="bf16", MASTER_IP="127.0.0.1"), {"GLOO_SOCKET_IFNAME": "lo"}
    )
    assert outcome.ok and outcome.text == "GLOO_SOCKET_IFNAME=lo exists"


def test_gloo_interface_that_does_not_exist_fails():
    plan = plan_for()
    outcome = check_gloo(plan, {"GLOO_SOCKET_IFNAME": "ib7"})
    assert not outcome.ok
    assert (
        "GLOO_SOCKET_IFNAME='ib7' is not an interface of this host (interfaces: " in outcome.text
        and "lo" in outcome.text
    )
    assert outcome.engine_env == {}


@pytest.mark.parametrize("value", ["^docker,lo", "lo,lo"])
def test_gloo_interface_list_fails_as_nccl_syntax(value):
    outcome = check_gloo(plan_for(), {"GLOO_SOCKET_IFNAME": value})
    assert not outcome.ok
    assert (
        "is a list; Gloo takes one interface name (lists and ^exclusions are "
        "NCCL_SOCKET_IFNAME syntax)" in outcome.text
    )


def test_unset_gloo_interface_is_chosen_towards_master_ip_on_multi_node_plans():
    plan = plan_for(PRECISION="bf16", NODE_RANK=1, MASTER_IP="127.0.0.1")
    outcome = check_gloo(plan, {"NCCL_SOCKET_IFNAME": "^lo,docker"})
    assert outcome.ok
    assert outcome.engine_env == {"GLOO_SOCKET_IFNAME": "lo"}
    assert (
        "set to lo (this host's 127.0.0.1), the interface that routes to MASTER_IP="
        "127.0.0.1" in outcome.text
    )
    assert check_gloo(plan_for(), {}) is None, "one node: nothing to choose"


def test_unset_gloo_interface_without_a_route_fails():
    plan = plan_for(PRECISION="bf16", NODE_RANK=1, MASTER_IP="no-such-host.invalid")
    outcome = check_gloo(plan, {})
    assert not outcome.ok
    assert (
        "GLOO_SOCKET_IFNAME is unset and no interface routes to MASTER_IP="
        "no-such-host.invalid" in outcome.text
    )
    assert outcome.engine_env == {}


def test_route_interface_for_a_remote_address_is_a_real_interface():
    # No packet is sent: connecting a UDP socket only asks the kernel for the route.
    interface, address = route_interface("192.0.2.10", 9)
    assert interface in network_interfaces()
    assert interface_addresses()[address] == interface


def test_master_ip_name_that_resolves_late_passes(monkeypatch):
    # A LeaderWorkerSet leader's DNS record can appear after the pod starts: the first
    # lookups fail, a later one gives this host's loopback address.
    import entrypoint.preflight as preflight

    attempts = []
    real_resolve = preflight._resolve

    def late_resolve(host):
        attempts.append(host)
        if len(attempts) < 3:
            raise OSError("Name or service not known")
        return real_resolve("127.0.0.1")

    monkeypatch.setattr(preflight, "_resolve", late_resolve)
    now = [0.0]
    outcome = check_master_ip(
        plan_for(PRECISION="bf16", MASTER_IP="leader.lws.invalid"),
        resolve_wait_s=30,
        sleep=lambda s: now.__setitem__(0, now[0] + s),
        clock=lambda: now[0],
    )
    assert outcome.ok, outcome.text
    assert len(attempts) == 3 and "is this host's, on lo" in outcome.text
