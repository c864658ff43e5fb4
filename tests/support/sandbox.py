"""`make sandbox`: the main job, end to end, inside one work directory.

    python -m tests.support.sandbox up   --dir .sandbox     # make sandbox
    python -m tests.support.sandbox down --dir .sandbox     # make sandbox-down

`up` starts a real control plane (kine + kube-apiserver + kube-controller-manager on
loopback, with kube-scheduler and a kwok node that is a GPU host, and k3s's local-path
storage: see tests/support/testenv.py), a real Salt master and minion (configs, keys,
logs, caches under DIR/salt),
writes a pillar derived from the example (pillar/palplat), with its secrets really
GPG-encrypted for a sandbox key and decrypted by the master's gpg renderer, and runs

    salt-run state.orchestrate palplat.full

then the same orchestration with test=True, which must plan no change.

Nothing outside DIR changes, except two network namespaces when the machine allows it
(root, nft, ip): `palplat-sandbox` holds the firewall and a stand-in sshd (a TCP listener
on port 22, a detached process), and `palplat-sandbox-op`, joined to it by a veth pair,
is the operator's machine the master proves SSH access from before it confirms a firewall
change (firewall:confirm:probe_netns; docs/firewall.md). This uses the stages' own
settings, not special cases: host:manage false, firewall:netns, k3s:mode external,
gpu:enabled false, dora:textfile_dir in DIR. The example's Helm charts live on the
internet, which the sandbox may not reach: the real charts (../shared/reference/charts)
are served on loopback as a helm repository and an OCI registry (tests/support/chartrepo.py,
a detached process, port kept in DIR/chartrepo.json) and the pillar maps the example's
repositories to it with `palplat:platform:mirrors`. Without ../shared/reference/charts
each release uses a local stand-in chart instead (same name, namespace and `needs`). The
services stage talks to Harbor and Woodpecker contract fakes (tests/support/fakes), also a
detached process (python -m tests.support.fakes.serve; pid, ports and logs in
DIR/service-fakes), so that `salt-run palplat.plan` and `palplat.status` work after `up`
has returned; the contract violations they see go to DIR/service-fakes/violations.log and
`up` reports its own.
Everything `up` starts outlives it; `down` stops it all.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.support import saltenv

REPO = Path(__file__).resolve().parents[2]
MINION_ID = "palplat-sandbox"
NETNS = "palplat-sandbox"
NETNS_OP = "palplat-sandbox-op"  # the operator's machine (the confirm's probes)
HOST_ADDR, OP_ADDR = "192.168.1.10", "192.168.1.20"  # in the example's allow_from
SSHD_STANDIN = (
    "import socket\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 22)); s.listen(16)\n"
    "while True:\n"
    "    c, _ = s.accept(); c.sendall(b'SSH-2.0-palplat-sandbox\\r\\n'); c.close()\n"
)
BIN = Path(sys.executable).parent


def say(msg: str) -> None:
    print(f"[sandbox] {msg}", flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------ pieces


def control_plane(work: Path):
    from tests.support.testenv import ControlPlane

    cp_dir = work / "controlplane"
    try:
        cp = ControlPlane.attach(cp_dir)
        if all(cp.running().values()) and "kwok" in cp.running():
            say(f"control plane already running at {cp.server}")
            return cp
        cp.stop()  # an older sandbox's node-less one: start again with nodes (data kept)
    except Exception:  # noqa: BLE001 - not running: start it
        pass
    cp = ControlPlane(cp_dir, detach=True)  # outlives this process; make sandbox-down stops it
    t0 = time.monotonic()
    # kwok: a node (a GPU host, as the GPU stage leaves one) so that the real charts'
    # workloads roll out, and k3s's local-path storage so that their claims bind
    cp.start(timeout=120, kwok=True, gpu_nodes=1)
    say(f"control plane up at {cp.server} in {time.monotonic() - t0:.1f}s")
    return cp


def netns_available() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "not root"
    for tool in ("ip", "nft"):
        if not shutil.which(tool):
            return False, f"{tool} not installed"
    return True, ""


def ensure_netns(work: Path | None = None) -> None:
    """The firewall's namespace and the operator's, joined by a veth pair, and the
    stand-in sshd in the firewall's (started once; ``down`` stops it)."""
    names = [
        ln.split()[0]
        for ln in subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True
        ).stdout.splitlines()
        if ln.strip()
    ]
    for ns in (NETNS, NETNS_OP):
        if ns not in names:
            subprocess.run(["ip", "netns", "add", ns], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    links = subprocess.run(["ip", "-n", NETNS, "-o", "link"], capture_output=True, text=True)
    if " ppsb0@" not in links.stdout:
        subprocess.run(
            ["ip", "-n", NETNS, "link", "add", "ppsb0", "type", "veth", "peer", "name",
             "ppsb1", "netns", NETNS_OP],
            check=True,
        )  # fmt: skip
        for ns, dev, addr in ((NETNS, "ppsb0", HOST_ADDR), (NETNS_OP, "ppsb1", OP_ADDR)):
            subprocess.run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
    if work is not None:
        pidfile = work / "sshd-standin.pid"
        if not (pidfile.exists() and _standin_alive(pidfile)):
            proc = subprocess.Popen(
                ["ip", "netns", "exec", NETNS, sys.executable, "-c", SSHD_STANDIN],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            pidfile.write_text(f"{proc.pid}\n")


def _standin_alive(pidfile: Path) -> bool:
    try:
        cmd = Path(f"/proc/{int(pidfile.read_text().strip())}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return b"palplat-sandbox" in cmd


def gpg_key(work: Path) -> tuple[str, str]:
    from tests.support.saltenv import make_gpg_home

    home = work / "gpgkeys"
    fpr_file = work / "gpg.fingerprint"
    if fpr_file.exists():
        return str(home), fpr_file.read_text().strip()
    home_s, fpr = make_gpg_home(home, "palplat sandbox master")
    fpr_file.write_text(fpr)
    return home_s, fpr


STANDIN_CHART = {
    "Chart.yaml": "apiVersion: v2\nname: {name}\nversion: {version}\n"
    "description: palplat sandbox stand-in for {name}\n",
    "values.yaml": "{{}}\n",
    "templates/configmap.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ .Release.Name }}}}-standin\n"
        "data:\n  chart: {name}\n  values-sha256: {{{{ toJson .Values | sha256sum }}}}\n"
    ),
}


def standin_chart(charts: Path, name: str, version: str) -> Path:
    d = charts / name
    for rel, text in STANDIN_CHART.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text.format(name=name, version=version))
    return d


def helm_release(work: Path) -> dict:
    """The platform stage installs the pinned helm for real: from a release archive (the
    layout get.helm.sh serves, with its .sha256sum) of the helm built for the tests, into
    the sandbox's root."""
    import tarfile

    from palplat.fetch import arch
    from tests.support.testenv import find_bin

    helm = find_bin("helm")
    if helm is None:
        raise SystemExit("[sandbox] helm is not built: run tools/build-testbin")
    version = subprocess.run(
        [str(helm), "version", "--template", "{{.Version}}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    releases = work / "helm-releases"
    releases.mkdir(parents=True, exist_ok=True)
    name = f"helm-{version}-linux-{arch()}.tar.gz"
    archive = releases / name
    if not archive.exists():
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(Path(helm).resolve(), arcname=f"linux-{arch()}/helm")
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        (releases / f"{name}.sha256sum").write_text(f"{digest}  {name}\n")
    return {
        "version": version,
        "url": f"file://{releases}/helm-{{version}}-linux-{{arch}}.tar.gz",
        "path": str(work / "root" / "usr/local/bin/helm"),
    }


def chart_repo(work: Path) -> int | None:
    """The example's real charts on loopback (helm repository + OCI registry), served by a
    detached ``python -m tests.support.chartrepo`` on a port kept in DIR/chartrepo.json;
    its port, or None when ../shared/reference/charts is absent."""
    from tests.support import chartrepo

    if not chartrepo.CHARTS.is_dir():
        say(f"stand-in charts: {chartrepo.SKIP_REASON}")
        return None
    state = work / "chartrepo.json"
    info = json.loads(state.read_text()) if state.exists() else {}
    port = info.get("port") or _free_port()
    if _repo_alive(info) and _port_open(port):
        say(f"chart repository already serving at http://127.0.0.1:{port}")
        return port
    log = open(work / "chartrepo.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.chartrepo", "serve", f"--port={port}",
         f"--work={work / 'chartrepo'}"],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    log.close()
    state.write_text(json.dumps({"port": port, "pid": proc.pid}))
    deadline = time.monotonic() + 60
    while not _port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"[sandbox] the chart repository did not start; see {log.name}")
        time.sleep(0.2)
    say(f"real charts served at http://127.0.0.1:{port} (helm repository and OCI registry)")
    return port


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _repo_alive(info: dict) -> bool:
    try:
        cmdline = Path(f"/proc/{int(info['pid'])}/cmdline").read_bytes()
    except (KeyError, OSError, ValueError):
        return False
    return b"tests.support.chartrepo" in cmdline


def sandbox_pillar(
    work: Path,
    kubeconfig: Path,
    firewall_ns: bool,
    fpr: str,
    gnupghome: str,
    fakes=None,
    repo_port: int | None = None,
):
    """The example pillar with the stages' sandbox settings; secrets GPG-encrypted.
    ``fakes``: the services stage's Harbor and Woodpecker (URLs and forge repositories).
    ``repo_port``: the real charts' loopback repository (else stand-in charts)."""
    from palplat.gpgtool import encrypt, yaml_block

    example = yaml.safe_load((REPO / "pillar/palplat/init.sls").read_text())["palplat"]
    secrets = yaml.safe_load((REPO / "pillar/palplat/secrets.sls").read_text())["palplat"]
    p = copy.deepcopy(example)
    p["host"]["manage"] = False
    if firewall_ns:
        p["firewall"]["netns"] = NETNS
        p["firewall"]["persist"] = False
        p["firewall"]["root"] = str(work / "root")  # rollback state stays in the sandbox
        # the master proves SSH access from the operator's namespace before it confirms
        p["firewall"]["confirm"] = {"probe_netns": NETNS_OP, "addresses": [HOST_ADDR]}
    else:
        p["firewall"]["enabled"] = False
    p["k3s"] = {"mode": "external", "kubeconfig": str(kubeconfig)}
    secrets["k3s"].pop("registries", None)
    p["gpu"] = {"enabled": False}
    # DORA's metrics file stays in the sandbox (the ledger lives in its cluster)
    p["dora"] = {**p.get("dora", {}), "textfile_dir": str(work / "textfile")}
    p["platform"]["helm"] = helm_release(work)
    if fakes is not None:
        fakes.point(p)
    charts = work / "charts"
    for name, rel in p["platform"]["releases"].items():
        # gpu:enabled false: no device plugin release (the kwok node has the GPU's label,
        # runtime class and nvidia.com/gpu already)
        rel["needs"] = [n for n in rel.get("needs", []) if n in p["platform"]["releases"]]
        if repo_port:
            continue
        version = rel["chart"].get("version", "0.1.0")
        rel["chart"] = {"path": str(standin_chart(charts, rel["chart"].get("name", name), version))}
        rel["wait"] = False
        for key in ("database", "expose"):  # stand-ins have no Services nor CRDs
            rel.pop(key, None)
    if repo_port:
        from tests.support.chartrepo import ChartRepo

        p["platform"]["mirrors"] = ChartRepo(port=repo_port).mirrors(p["platform"]["releases"])
    pillar_dir = work / "pillar"
    pillar_dir.mkdir(parents=True, exist_ok=True)
    (pillar_dir / "top.sls").write_text("base:\n  '*':\n    - palplat\n    - secrets\n")
    (pillar_dir / "palplat.sls").write_text(yaml.safe_dump({"palplat": p}, sort_keys=False))

    # Every secret leaf, encrypted for the sandbox master's key (the real gpg renderer).
    def enc(tree, indent):
        lines = []
        pad = " " * indent
        for k, v in tree.items():
            if isinstance(v, dict):
                lines.append(f"{pad}{k}:")
                lines.extend(enc(v, indent + 2))
            elif isinstance(v, list):
                lines.append(f"{pad}{k}:")
                for item in v:
                    sub = enc(item, indent + 4)
                    sub[0] = pad + "  - " + sub[0].lstrip()
                    lines.extend(sub)
            elif isinstance(v, str):
                # every string of secrets.sls is a secret: encrypted (a placeholder gets a
                # value of its own first); numbers may stay in clear
                value = v
                if v.startswith("CHANGE-ME"):
                    value = "sandbox-" + hashlib.sha256((fpr + v).encode()).hexdigest()[:24]
                lines.append(yaml_block(encrypt(value, fpr, gnupghome), k, indent).rstrip())
            else:
                lines.append(f"{pad}{k}: {json.dumps(v)}")
        return lines

    (pillar_dir / "secrets.sls").write_text(
        "#!yaml|palplat\n" + "\n".join(enc({"palplat": secrets}, 0)) + "\n"
    )
    return pillar_dir


def salt_config(work: Path, pillar_dir: Path, gnupghome: str) -> Path:
    etc = work / "salt" / "etc"
    root = work / "salt" / "root"
    etc.mkdir(parents=True, exist_ok=True)
    ports_file = work / "salt" / "ports.json"
    if ports_file.exists():
        ports = json.loads(ports_file.read_text())
    else:
        ports = {"publish": _free_port(), "ret": _free_port()}
        ports_file.write_text(json.dumps(ports))
    common = {
        "root_dir": str(root),
        # under root_dir: Salt puts root_dir in front of a log_file outside it
        "log_file": str(root / "log" / "{role}.log"),
        "log_level_logfile": "info",
        "publish_port": ports["publish"],
        "ret_port": ports["ret"],
        "state_output": "changes",
        "state_verbose": False,
    }
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    common["user"] = user or "root"
    master = dict(
        common,
        interface="127.0.0.1",
        auto_accept=True,
        file_roots={"base": [str(REPO / "salt"), str(saltenv.extension_root())]},
        file_ignore_regex=saltenv.FILE_IGNORE_REGEX,
        pillar_roots={"base": [str(pillar_dir)]},
        gpg_keydir=gnupghome,
        # palplat's renderer (#!yaml|palplat) from the checkout, so the pillar renders
        # from the minion's first start (a real master: salt-run saltutil.sync_all first,
        # or pip install)
        render_dirs=[str(REPO / "_renderers")],
        utils_dirs=[str(REPO / "_utils")],
        log_file=common["log_file"].format(role="master"),
    )
    minion = dict(
        common,
        id=MINION_ID,
        master="127.0.0.1",
        master_port=ports["ret"],
        log_file=common["log_file"].format(role="minion"),
    )
    (root / "log").mkdir(parents=True, exist_ok=True)
    (etc / "master").write_text(yaml.safe_dump(master))
    (etc / "minion").write_text(yaml.safe_dump(minion))
    return etc


def salt(etc: Path, prog: str, *args: str, timeout: int = 900, check=True, quiet=False):
    argv = [str(BIN / prog), "-c", str(etc), *args]
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if not quiet and cp.stdout.strip():
        print(cp.stdout.rstrip())
    if check and cp.returncode != 0:
        sys.stderr.write(cp.stderr[-4000:])
        raise SystemExit(f"[sandbox] {prog} {' '.join(args)} failed ({cp.returncode})")
    return cp


def start_salt(etc: Path) -> None:
    for daemon in ("salt-master", "salt-minion"):
        pidfile = _pidfile(etc, daemon)
        if pidfile and _alive(pidfile):
            continue
        subprocess.run([str(BIN / daemon), "-c", str(etc), "-d"], check=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        cp = salt(
            etc, "salt", MINION_ID, "test.ping", "--out=json", "-t", "10", check=False, quiet=True
        )
        if cp.returncode == 0 and "true" in cp.stdout:
            say("salt master and minion are up")
            return
        time.sleep(2)
    raise SystemExit("[sandbox] the minion did not answer within 180s; see DIR/salt/root/log")


def _pidfile(etc: Path, daemon: str) -> Path | None:
    root = Path(yaml.safe_load((etc / "master").read_text())["root_dir"])
    return root / "var" / "run" / f"{daemon}.pid"


def _alive(pidfile: Path) -> bool:
    """A live (not zombie) salt process with that pid."""
    try:
        pid = int(pidfile.read_text().strip())
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and b"salt" in cmdline


WAITING = "waiting for the operator"


def waiting_steps(stdout: str) -> list[str]:
    """The steps the run waits for the operator to take (the services' comments), once
    each."""
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError:
        return []
    out: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "comment":
                    lines = v if isinstance(v, list) else str(v).splitlines()
                    for line in lines:
                        text = str(line).strip().lstrip("- ").strip()
                        if text.startswith(WAITING + ":") and text not in out:
                            out.append(text)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(data)
    return out


def summarize(stdout: str, label: str) -> tuple[int, int, int]:
    """(succeeded, failed, changed) counts from the orchestrate's JSON output."""
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError:
        print(stdout[-4000:])
        return 0, 1, 0
    ret = data.get("data", data)
    ret = next(iter(ret.values())) if isinstance(ret, dict) and len(ret) == 1 else ret
    ok = bad = changed = 0
    for sid, r in sorted(ret.items(), key=lambda kv: kv[1].get("__run_num__", 0)):
        stage = sid.split("_|-")[1] if "_|-" in sid else sid
        res = r.get("result")
        minions = r.get("changes", {}).get("ret", {})
        n_changed = 0
        for mret in minions.values() if isinstance(minions, dict) else []:
            if isinstance(mret, dict):
                n_changed += sum(
                    1 for s in mret.values() if isinstance(s, dict) and s.get("changes")
                )
        changed += n_changed
        if res is False:
            bad += 1
        else:
            ok += 1
        mark = {True: "ok", None: "plan", False: "FAILED"}[res]
        detail = f"{n_changed} state(s) changed" if minions else ""
        comment = "" if res is not False else " -- " + str(r.get("comment", ""))[:2000]
        say(f"{label}: {stage:28s} {mark:6s} {detail}{comment}")
    return ok, bad, changed


def up(work: Path) -> int:
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO / "_utils"))
    cp = control_plane(work)
    ok_ns, why = netns_available()
    if ok_ns:
        ensure_netns(work)
        say(f"firewall applies inside network namespace {NETNS}")
    else:
        say(f"firewall stage disabled in the sandbox: {why}")
    gnupghome, fpr = gpg_key(work)
    # services stage: Harbor and Woodpecker contract fakes on loopback, a detached process
    # started (or reused) when the pillar points at them (data kept in DIR/service-fakes),
    # and the vendor CRDs the stand-in charts do not carry
    from tests.support.fakes.platform import SandboxFakes

    repo_port = chart_repo(work)
    # with the real charts, the vendor CRDs come with the platform's releases
    fakes = SandboxFakes(work, Path(cp.kubeconfig), fpr, crds=repo_port is None)
    if fakes.why:
        say(f"services left alone (enabled: false) in the sandbox: {fakes.why}")
    pillar_dir = sandbox_pillar(
        work, Path(cp.kubeconfig), ok_ns, fpr, gnupghome, fakes, repo_port=repo_port
    )
    etc = salt_config(work, pillar_dir, gnupghome)
    start_salt(etc)
    salt(etc, "salt-run", "saltutil.sync_all", quiet=True)
    salt(etc, "salt", MINION_ID, "saltutil.sync_all", quiet=True)
    target = json.dumps({"palplat_target": MINION_ID, "palplat_target_type": "glob"})
    t0 = time.monotonic()
    run = salt(
        etc,
        "salt-run",
        "state.orchestrate",
        "palplat.full",
        f"pillar={target}",
        "--out=json",
        check=False,
        quiet=True,
    )
    took = time.monotonic() - t0
    _, bad, changed = summarize(run.stdout, "apply")
    if bad or run.returncode != 0:
        say(f"palplat.full FAILED after {took:.1f}s (logs: {work}/salt/root/log)")
        report_violations(fakes)
        return 1
    say(f"palplat.full succeeded in {took:.1f}s ({changed} state(s) changed)")
    waiting = waiting_steps(run.stdout)
    t0 = time.monotonic()
    plan = salt(
        etc,
        "salt-run",
        "state.orchestrate",
        "palplat.full",
        f"pillar={target}",
        "test=True",
        "--out=json",
        check=False,
        quiet=True,
    )
    took = time.monotonic() - t0
    _, bad, changed = summarize(plan.stdout, "plan ")
    say(f"plan after apply (test=True): {changed} pending change(s) in {took:.1f}s")
    if waiting:
        say(f"converged; {WAITING} ({len(waiting)} step(s), not a failure):")
        for step in waiting:
            say(f"  - {step}")
    violations = report_violations(fakes)
    say(f"kubeconfig: {cp.kubeconfig}   (KUBECONFIG={cp.kubeconfig} kubectl get cm -A)")
    say(f"plan and status: {BIN}/salt-run -c {etc} palplat.plan (palplat.status)")
    say("stop everything with: make sandbox-down")
    return 0 if not bad and changed == 0 and not violations else 1


def report_violations(fakes) -> list[str]:
    """The contract violations the service fakes saw during this run, said out loud (a
    request palplat sent, or an answer the fake gave, that the vendor's document does not
    allow: either is a bug)."""
    if fakes.why:
        return []
    found = fakes.violations()
    if found:
        say(f"the service fakes saw {len(found)} contract violation(s) "
            f"({fakes.violations_log}):")  # fmt: skip
        for v in found:
            say(f"  {v}")
    else:
        say("the service fakes saw no contract violation")
    return found


def down(work: Path) -> int:
    work = work.resolve()
    etc = work / "salt" / "etc"
    if (etc / "master").exists():
        for daemon in ("salt-minion", "salt-master"):
            pidfile = _pidfile(etc, daemon)
            if pidfile and _alive(pidfile):
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
                say(f"stopped {daemon}")
    repo = work / "chartrepo.json"
    info = json.loads(repo.read_text()) if repo.exists() else {}
    if _repo_alive(info):
        os.kill(int(info["pid"]), signal.SIGTERM)
        say("stopped the chart repository")
    from tests.support.fakes.platform import SandboxFakes

    if SandboxFakes.stop(work):
        say(f"stopped the service fakes (data kept in {work / 'service-fakes'})")
    try:
        from tests.support.testenv import ControlPlane

        ControlPlane.attach(work / "controlplane").stop()
        say("stopped the control plane")
    except Exception as exc:  # noqa: BLE001
        say(f"control plane: {exc}")
    if (work / "gpgkeys").is_dir() and shutil.which("gpgconf"):  # the agent gpg started
        subprocess.run(
            ["gpgconf", "--homedir", str(work / "gpgkeys"), "--kill", "gpg-agent"],
            capture_output=True, check=False,
        )  # fmt: skip
    pidfile = work / "sshd-standin.pid"
    if pidfile.exists() and _standin_alive(pidfile):
        os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        say("stopped the stand-in sshd")
    if os.geteuid() == 0 and shutil.which("ip"):
        for ns in (NETNS, NETNS_OP):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["up", "down"])
    ap.add_argument("--dir", default=".sandbox", type=Path)
    args = ap.parse_args(argv)
    return up(args.dir) if args.action == "up" else down(args.dir)


if __name__ == "__main__":
    sys.exit(main())
