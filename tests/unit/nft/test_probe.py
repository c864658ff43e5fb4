"""The orchestrated confirm decides from new connections opened outside the node, before
and after the change (palplat.nft.probe); the decision itself is pure."""

import json
import socket
import time

from palplat import proc
from palplat.nft import probe


def r(ok, local=False):
    return {"ok": ok, "local": local, "error": "" if ok else "timed out"}


V4, V6 = "192.0.2.10:22", "[2001:db8::10]:22"


def test_confirmed_only_when_a_new_connection_from_outside_succeeds():
    d = probe.decide({"master": {V4: r(True), V6: r(True)}}, {"master": {V4: r(True), V6: r(True)}})
    assert d.confirm and V4 in d.why
    d = probe.decide({"master": {V4: r(False)}}, {"master": {V4: r(False)}})
    assert not d.confirm and "none worked before the change either" in d.why


def test_an_ipv6_path_that_worked_before_and_fails_now_is_not_confirmed():
    before = {"master": {V4: r(True), V6: r(True)}}
    d = probe.decide({"master": {V4: r(True), V6: r(False)}}, before)
    assert not d.confirm and d.lost == [f"{V6} from master"]
    # a path that never worked (no IPv6 route from the master) does not count
    d = probe.decide(
        {"master": {V4: r(True), V6: r(False)}}, {"master": {V4: r(True), V6: r(False)}}
    )
    assert d.confirm


def test_the_master_on_the_node_proves_nothing():
    d = probe.decide({"master": {V4: r(True, local=True)}}, {"master": {V4: r(True, local=True)}})
    assert not d.confirm and "runs on this node itself" in d.why
    # a second vantage point on another machine does
    d = probe.decide(
        {"master": {V4: r(True, local=True)}, "laptop": {V4: r(True)}},
        {"master": {V4: r(True, local=True)}, "laptop": {V4: r(True)}},
    )
    assert d.confirm and "from laptop" in d.why
    assert not probe.decide({}, None).confirm


def test_connect_here_sees_a_local_address_and_a_closed_port():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        got = probe.connect_here("127.0.0.1", port, 2)
    assert got["ok"] and got["local"]
    closed = probe.connect_here("127.0.0.1", port, 2)
    assert not closed["ok"] and closed["error"]


def test_node_addresses_leave_out_loopback_link_local_and_pod_interfaces():
    links = [
        {"ifname": "lo", "flags": ["LOOPBACK", "UP"], "addr_info": [
            {"family": "inet", "local": "127.0.0.1", "scope": "host"}]},
        {"ifname": "eth0", "flags": ["UP"], "addr_info": [
            {"family": "inet", "local": "192.0.2.10", "scope": "global"},
            {"family": "inet6", "local": "2001:db8::10", "scope": "global"},
            {"family": "inet6", "local": "fe80::1", "scope": "link"}]},
        {"ifname": "cni0", "flags": ["UP"], "addr_info": [
            {"family": "inet", "local": "10.42.0.1", "scope": "global"}]},
        {"ifname": "eth1", "flags": ["BROADCAST"], "addr_info": [
            {"family": "inet", "local": "198.51.100.1", "scope": "global"}]},
    ]  # fmt: skip

    def run(argv, **kw):
        assert argv == ["ip", "-n", "ns1", "-j", "addr", "show"]
        return proc.Result(argv, 0, json.dumps(links), "")

    assert probe.node_addresses("ns1", run) == ["192.0.2.10", "2001:db8::10"]


def test_a_baseline_counts_for_one_orchestration(tmp_path):
    probe.save_baseline(str(tmp_path), "host/1", {"master": {V4: r(True)}})
    assert probe.load_baseline(str(tmp_path), "host/1") == {"master": {V4: r(True)}}
    assert probe.load_baseline(str(tmp_path), "host/1", max_age=-1) is None
    assert probe.load_baseline(str(tmp_path), "other") is None


def test_the_message_says_how_to_confirm_by_hand():
    msg = probe.by_hand("host1", {"pending": {"deadline": time.time() + 60}, "ssh_ports": [2222]})
    assert "NOT confirmed" in msg and "salt 'host1' palplat_nftables.confirm" in msg
    assert "port 2222" in msg and "probe_from" in msg
