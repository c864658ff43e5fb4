"""Two network namespaces joined by a veth pair, for real nftables tests: ``host`` (the
firewall, a dual-stack TCP listener on the test ports) and ``client`` (the operator's
machine). Connections from the client prove what a ruleset lets through."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

HOST_IP, CLIENT_IP = "10.77.0.1", "10.77.0.2"
HOST_IP6, CLIENT_IP6 = "fd77::1", "fd77::2"
SSH, WEB, OTHER = 2222, 8080, 9090
API, KUBELET = 6443, 10250

LISTENER = textwrap.dedent(
    """
    import selectors, socket, sys
    sel = selectors.DefaultSelector()
    for p in sys.argv[1:]:
        s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 and IPv6
        s.bind(("::", int(p))); s.listen(64); s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            try:
                c, _ = key.fileobj.accept(); c.close()
            except OSError:
                pass
    """
)

PROBE = textwrap.dedent(
    """
    import json, socket, sys, threading
    host, ports, out = sys.argv[1], [int(p) for p in sys.argv[2:]], {}
    def probe(p):
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET); s.settimeout(0.8)
        try:
            s.connect((host, p)); out[p] = True
        except OSError:
            out[p] = False
        finally:
            s.close()
    ts = [threading.Thread(target=probe, args=(p,)) for p in ports]
    [t.start() for t in ts]; [t.join() for t in ts]
    print(json.dumps(out))
    """
)

UNIT = "[Unit]\nDescription=nftables\n[Service]\nType=oneshot\nExecStart=/usr/sbin/nft -f /etc/nftables.conf\n[Install]\nWantedBy=sysinit.target\n"  # noqa: E501
DEBIAN_MAIN = "#!/usr/sbin/nft -f\n\nflush ruleset\n\ntable inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter;\n\t}\n}\n"  # noqa: E501

FOREIGN = """
table ip k3s_fake {
    chain KUBE-INPUT {
        type filter hook input priority 10; policy accept; tcp dport 1 counter accept;
    }
}
table inet flannel_fake {
    set nodes { type ipv4_addr; elements = { 10.42.0.1, 10.42.1.1 }; }
    chain FLANNEL-FWD {
        type filter hook forward priority 0; policy accept; ip saddr @nodes accept;
    }
}
"""


def sh(*argv, check=True, **kw):
    return subprocess.run(argv, capture_output=True, text=True, check=check, **kw)


class Pair:
    def __init__(self, tmp: Path):
        tag = uuid.uuid4().hex[:6]
        self.host, self.client = f"pp-{tag}-h", f"pp-{tag}-c"
        self.tmp = tmp
        self.listener = None
        sh("ip", "netns", "add", self.host)
        sh("ip", "netns", "add", self.client)
        va, vb = f"pv{tag}a", f"pv{tag}b"
        sh("ip", "link", "add", va, "netns", self.host, "type", "veth", "peer", "name", vb,
           "netns", self.client)  # fmt: skip
        for ns, dev, ip, ip6 in (
            (self.host, va, HOST_IP, HOST_IP6),
            (self.client, vb, CLIENT_IP, CLIENT_IP6),
        ):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "-n", ns, "addr", "add", f"{ip6}/64", "dev", dev, "nodad")
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        self.listener = subprocess.Popen(
            ["ip", "netns", "exec", self.host, sys.executable, "-c", LISTENER,
             str(SSH), str(WEB), str(OTHER), str(API), str(KUBELET)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.listener.stdout.readline().strip() == "ready"

    def reach(self, *ports: int, host: str = HOST_IP) -> dict[int, bool]:
        out = sh("ip", "netns", "exec", self.client, sys.executable, "-c", PROBE, host,
                 *map(str, ports)).stdout  # fmt: skip
        return {int(k): v for k, v in json.loads(out).items()}

    def reach6(self, *ports: int) -> dict[int, bool]:
        return self.reach(*ports, host=HOST_IP6)

    def nft(self, *args, check=True):
        return sh("ip", "netns", "exec", self.host, "nft", *args, check=check)

    def close(self):
        if self.listener is not None:
            self.listener.kill()
            self.listener.wait()
        for ns in (self.host, self.client):
            sh("ip", "netns", "del", ns, check=False)
