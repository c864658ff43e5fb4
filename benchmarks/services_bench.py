"""Service onboarding at 6, 50 and 100 services: plan, onboard, no-op, one change.

    .venv/bin/python benchmarks/services_bench.py [--sizes 6,50,100]

Per size: a fresh control plane (tests/support/testenv.py: kine + kube-apiserver +
controller-manager) with the vendor CRDs of ../shared/reference/crds, and fresh Harbor and
Woodpecker contract fakes (tests/support/fakes, every request validated against the
vendor documents). Size 6 is the example pillar's six services; larger sizes are
synthetic services shaped like them (funnel, database with backups, metrics, secrets).

Measured (the library calls the state makes, with its verification):

- plan: test mode on an empty cluster (what a pull request shows);
- onboard: the first real run;
- no-op: a real run with nothing to change: must write nothing, and make a constant
  number of Kubernetes requests (one LIST per kind) and Harbor requests;
- no-op plan: test mode after it;
- floor: the no-op's very requests (recorded while it ran) made again bare: the
  ``kubernetes`` client for the Kubernetes ones, a plain ``requests.Session`` per API for
  Harbor and Woodpecker, each answer decoded from JSON, no palplat code. Made 3 times,
  alternating with 3 more no-ops; ``x floor`` is the best no-op over the best floor:
  palplat's own work on top of the requests;
- change one: one service's quota changes among all of them: only its objects are written.

Prints wall time, Kubernetes requests (and writes) and Harbor / Woodpecker requests, in
total and per service.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "_utils"), str(REPO)]

from palplat import config, kube  # noqa: E402
from palplat.services import api, inventory  # noqa: E402
from tests.support import testenv  # noqa: E402
from tests.support.fakes import platform  # noqa: E402


def services_for(n: int) -> dict:
    example = {k: v for k, v in platform.example()["services"].items() if k != "defaults"}
    return example if n == len(example) else platform.synthetic_services(n)


def cfg_for(services: dict, harbor, wp):
    p = platform.example()
    p["services"] = platform.point_at(
        {"defaults": p["services"]["defaults"], **services}, harbor, wp
    )
    return config.load({"palplat": p})


class Meter:
    def __init__(self, k, harbor, wp):
        self.k, self.harbor, self.wp = k, harbor, wp

    def __enter__(self):
        self.k.stats.update(requests=0, writes=0)
        self.k.stats["verbs"].clear()
        self.harbor.reset_log()
        self.wp.reset_log()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        self.kube = self.k.stats["requests"]
        self.kube_writes = self.k.stats["writes"]
        self.verbs = dict(self.k.stats["verbs"])
        self.h = len(self.harbor.log)
        self.h_writes = sum(1 for m, _, _ in self.harbor.log if m != "GET")
        self.w = len(self.wp.log)
        self.w_writes = sum(1 for m, _, _ in self.wp.log if m != "GET")


@contextlib.contextmanager
def recorded(k):
    """Record the Kubernetes and HTTP (Harbor, Woodpecker) requests made inside."""
    import requests

    kube_calls: list = []
    http_calls: list = []
    k_request, s_request = k.request, requests.Session.request

    def kube_rec(method, path, **kw):
        kube_calls.append((method.upper(), path, list(kw.get("query") or [])))
        return k_request(method, path, **kw)

    def http_rec(session, method, url, **kw):
        http_calls.append((id(session), session.auth, dict(session.headers), method, url, kw))
        return s_request(session, method, url, **kw)

    k.request = kube_rec
    requests.Session.request = http_rec
    try:
        yield kube_calls, http_calls
    finally:
        del k.request
        requests.Session.request = s_request


def bare(kubeconfig: str, kube_calls: list, http_calls: list) -> float:
    """Wall time of the recorded requests made bare (see the module docstring)."""
    import requests
    from kubernetes import config as kconfig

    api = kconfig.new_client_from_config(config_file=kubeconfig)
    try:
        t0 = time.perf_counter()
        for method, path, query in kube_calls:
            req = api.param_serialize(
                method,
                path,
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            json.loads(api.call_api(*req).read())
        sessions: dict = {}
        for key, auth, headers, method, url, kw in http_calls:
            if key not in sessions:
                sessions[key] = requests.Session()
                sessions[key].auth = auth
                sessions[key].headers.update(headers)
            resp = sessions[key].request(method, url, **kw)
            if resp.content:
                resp.json()
        for s in sessions.values():
            s.close()
        return time.perf_counter() - t0
    finally:
        api.close()


def row(label: str, m: Meter, n: int) -> str:
    return (
        f"  {label:<13} {m.wall:7.2f}s {m.wall / n * 1000:8.1f}ms/svc | kube {m.kube:5d} "
        f"({m.kube / n:6.1f}/svc, writes {m.kube_writes:4d}) | harbor {m.h:4d} "
        f"({m.h / n:4.1f}/svc, writes {m.h_writes:3d}) | woodpecker {m.w:4d} "
        f"({m.w / n:4.1f}/svc, writes {m.w_writes:3d})"
    )


def bench(n: int, work: Path) -> dict:
    cp = testenv.ControlPlane(work / f"cp-{n}")
    cp.start(timeout=120)
    harbor, wp = platform.start_fakes()
    k = kube.Kube(str(cp.kubeconfig))
    try:
        platform.install_crds(k)
        argocd = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}}
        kube.converge(k, [argocd], owner="bench-platform", dry_run=False)
        services = services_for(n)
        cfg = cfg_for(services, harbor, wp)
        out: dict = {}
        with Meter(k, harbor, wp) as m:
            res, _ = api.run(cfg, k, dry_run=True)
        assert res.ok and len(res.changes()) == n + 1, res.left()
        out["plan"] = m
        with Meter(k, harbor, wp) as m:
            res, problems = api.run(cfg, k, dry_run=False)
        assert res.ok and not problems, (res.left(), problems)
        out["onboard"] = m
        with recorded(k) as (kube_calls, http_calls), Meter(k, harbor, wp) as m:
            res, _ = api.run(cfg, k, dry_run=False)
        assert res.ok and res.changes() == {}, res.changes()
        assert m.kube_writes == 0 and m.h_writes == 0 and m.w_writes == 0
        assert m.kube == len(inventory.KINDS), m.verbs  # one LIST per kind, nothing else
        assert len(kube_calls) == m.kube and len(http_calls) == m.h + m.w
        out["no-op"] = m
        # the floor, and the no-op again, alternately (a shared machine is noisy): best of each
        noops, bares = [m.wall], []
        for _ in range(3):
            bares.append(bare(str(cp.kubeconfig), kube_calls, http_calls))
            t0 = time.perf_counter()
            res, _ = api.run(cfg, k, dry_run=False)
            noops.append(time.perf_counter() - t0)
            assert res.ok and res.changes() == {}, res.changes()
        out["_floor"] = (min(noops), min(bares))
        with Meter(k, harbor, wp) as m:
            res, _ = api.run(cfg, k, dry_run=True)
        assert res.changes() == {}
        out["no-op plan"] = m
        target = sorted(services)[len(services) // 2]
        services[target]["quota"] = {"pods": "7"}
        cfg = cfg_for(services, harbor, wp)
        writes: list[str] = []
        request = k.request

        def recording(method, path, **kw):
            dry = any(q == "dryRun" for q, _ in kw.get("query") or [])
            if method in ("PATCH", "POST", "PUT", "DELETE") and not dry:
                writes.append(path)
            return request(method, path, **kw)

        k.request = recording
        with Meter(k, harbor, wp) as m:
            res, _ = api.run(cfg, k, dry_run=False)
        del k.request
        assert list(res.changes()) == [target], list(res.changes())
        ns = services[target].get("namespace", target)
        assert writes and all(f"/namespaces/{ns}/" in p for p in writes), writes
        out["change one"] = m
        out["_target"] = (target, len(writes))
        assert not harbor.violations and not wp.violations, harbor.violations + wp.violations
        return out
    finally:
        k.close()
        harbor.stop()
        wp.stop()
        cp.stop()


def main() -> int:
    warnings.simplefilter("ignore")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="6,50,100")
    args = ap.parse_args()
    why = platform.missing() or (
        ", ".join(testenv.missing_bins()) + " not built" if testenv.missing_bins() else None
    )
    if why:
        print(f"skipped: {why}")
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="palplat-services-bench-") as tmp:
        for n in sizes:
            res = bench(n, Path(tmp))
            target, n_writes = res.pop("_target")
            noop, floor = res.pop("_floor")
            print(f"{n} services:")
            for label, m in res.items():
                print(row(label, m, n))
            print(
                f"  change one ({target}): {n_writes} Kubernetes write(s), all in its namespace; "
                f"no-op Kubernetes requests: {res['no-op'].verbs}"
            )
            m = res["no-op"]
            print(
                f"  floor (the no-op's {m.kube + m.h + m.w} requests made bare, best of 3): "
                f"{floor:.2f}s; no-op (best of 4) {noop:.2f}s = {noop / floor:.1f}x floor "
                f"({(noop - floor) / n * 1000:.1f} ms/svc of palplat's own work)"
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
