"""State module: the GPU stage's chain on one node (``salt/palplat/gpu.sls``).

    driver -> toolkit -> runtime -> labeled -> device_plugin -> verified

Every state first decides whether the stage acts on this node (``palplat:gpu:enabled``:
``auto`` only where an NVIDIA display device is found) and returns "nothing to do"
otherwise. Packages and repositories go through Salt's own ``pkgrepo.managed`` and
``pkg.installed`` (``__states__``), so test mode is theirs. ``driver`` stops the chain
with "reboot required" when the installed module differs from the loaded one: palplat
never reboots. See docs/gpu.md.
"""

import os

from palplat import config, k3s, loaderkit, nvidia
from palplat.fetch import SourceError
from palplat.nvidia import cluster, keyring, localtoolkit, owner, packages, runtime, smi, verify
from palplat.nvidia.hardware import rooted

__virtualname__ = "palplat_nvidia"
__func_alias__ = {"runtime_": "runtime"}


def __virtual__():
    return __virtualname__


def _env():
    return loaderkit.env(__salt__, __opts__, __pillar__, __context__)


def _gate(e, name):
    """(cfg, gate, None) or (cfg, gate, the 'nothing to do' return)."""
    cfg = e.config()
    g = nvidia.gate(cfg)
    if not g.active:
        return cfg, g, loaderkit.state_ret(name, {}, True, g.reason)
    return cfg, g, None


def _keyring_step(e, cfg, step):
    kw = step.kwargs
    try:
        p = keyring.plan(
            rooted(cfg.gpu.root, kw["path"]), kw["url"], kw["fingerprint"], fetch_salt=e.fetch_salt
        )
    except SourceError as exc:
        if not e.test:
            raise SourceError(
                f"{exc}. An air-gapped host can point palplat:gpu:toolkit_repo:key_url (and "
                "url) at a mirror (https://, file://, salt://), or install the toolkit from a "
                "directory (palplat:gpu:toolkit_from)"
            ) from None
        # the plan goes on: what the real run would do, marked as not verified here
        return {
            "result": None,
            "changes": {
                "keyring": {
                    "old": None,
                    "new": kw["fingerprint"],
                    "path": kw["path"],
                    "source": kw["url"],
                    "verified": "no: the key could not be downloaded now",
                }
            },
            "comment": (
                f"would install the signing key from {kw['url']} as {kw['path']} (NOT VERIFIED "
                f"in this plan: {exc}; the real run installs it only if its fingerprint is "
                f"the pinned {kw['fingerprint']})"
            ),
        }
    if not p.changed:
        return {"result": True, "changes": {}, "comment": f"{kw['path']} holds {p.want}"}
    if e.test:
        return {
            "result": None,
            "changes": p.changes,
            "comment": f"would install the signing key {p.want} as {kw['path']}",
        }
    changes = keyring.apply(p)
    return {"result": True, "changes": changes, "comment": f"installed key {p.want} (verified)"}


def _package_version(name):
    """The installed version of a package ('' when it is not installed)."""
    fn = __salt__.get("pkg.version")
    return fn(name) if fn else ""


def _run_steps(e, cfg, steps):
    """Run package steps in order, stopping at a failure: (result, changes, comments)."""
    result, changes, comments = True, {}, []
    for step in steps:
        if step.state == "keyring":
            ret = _keyring_step(e, cfg, step)
        else:
            ret = __states__[step.state](**step.kwargs)
        if ret.get("changes"):
            changes[step.id] = ret["changes"]
        comments.append(f"{step.id} ({step.state}): {ret.get('comment') or 'ok'}")
        if ret.get("result") is False:
            return False, changes, comments
        if ret.get("result") is None:
            result = None
    return result, changes, comments


@loaderkit.state
def driver(name="nvidia-driver"):
    """The distribution's NVIDIA driver packages (``palplat:gpu:driver``: open or
    proprietary module) where palplat owns the driver (``palplat:gpu:driver_managed``: a
    loaded, healthy driver of the wanted branch from elsewhere is left alone under
    ``auto``, and never touched under ``external``), then the module check: the state
    fails with "reboot required" (both versions named) when the installed module differs
    from the loaded one, and when the driver is installed but not loaded; it never
    reboots."""
    e = _env()
    cfg, g, ret = _gate(e, name)
    if ret:
        return ret
    plan = packages.plan(cfg.gpu, __grains__)
    det = g.detection
    decision = owner.decide(cfg.gpu, plan.os, det, _package_version, smi.read(det.root))
    if decision.error:
        return loaderkit.state_ret(name, {}, False, decision.error)
    if decision.manage:
        result, changes, comments = _run_steps(e, cfg, plan.driver)
        comments.insert(0, decision.reason)
    else:
        result, changes, comments = True, {}, [decision.reason]
    if result is False:
        return loaderkit.state_ret(name, changes, False, comments)
    if result is None:
        comments.append("would then compare the installed nvidia module with the loaded one")
        return loaderkit.state_ret(name, changes, None, comments)
    det = nvidia.detect(cfg.gpu.root)
    loaded, inst = det.loaded, det.installed
    if det.reboot_required:
        comments.append(
            f"reboot required: the installed nvidia module is {inst.version} ({inst.path}), "
            f"the loaded one is {loaded.version}. Reboot the node, then re-run; palplat never "
            "reboots a node, and the GPU chain stops here until then"
        )
        return loaderkit.state_ret(name, changes, False, comments)
    if not loaded.loaded:
        what = (
            f"the nvidia module {inst.version} is installed ({inst.path})"
            if inst
            else f"no nvidia module is installed for kernel {det.kernel} (did DKMS build it? "
            "see `dkms status`)"
        )
        comments.append(
            f"reboot required: {what} but not loaded. Reboot the node (or `modprobe nvidia`), "
            "then re-run; palplat never reboots a node"
        )
        return loaderkit.state_ret(name, changes, False, comments)
    comments.append(f"nvidia {loaded.version} ({loaded.flavor or 'flavor unknown'}) is loaded")
    return loaderkit.state_ret(name, changes, True, comments)


def _toolkit_from(e, cfg):
    """The toolkit's binaries from ``palplat:gpu:toolkit_from`` (no package manager)."""
    src = cfg.gpu.toolkit_from
    p = localtoolkit.plan(cfg.gpu.root, src, cfg.gpu.toolkit_dir)
    where = f"from {src} ({localtoolkit.P}), not from a package repository"
    if not p.changes:
        return True, {}, [f"the toolkit installed {where} is up to date (jit-cdi mode)"]
    if e.test:
        return None, p.changes, [f"would install the toolkit {where}, in jit-cdi mode"]
    changes = localtoolkit.apply(p)
    return True, changes, [f"installed the toolkit {where}, in jit-cdi mode (verified)"]


@loaderkit.state
def toolkit(name="nvidia-container-toolkit"):
    """nvidia-container-toolkit: Arch's package, or NVIDIA's apt repository (pinned
    signing key) and its package on Debian and Ubuntu; or, with
    ``palplat:gpu:toolkit_from``, its binaries copied from a directory on the node (no
    package manager: air-gapped hosts, the GPU proof kit)."""
    e = _env()
    cfg, g, ret = _gate(e, name)
    if ret:
        return ret
    if not cfg.gpu.container_toolkit:
        found = runtime.find_toolkit(cfg.gpu.root)
        note = f"found {found.path}" if found else f"{runtime.RUNTIME_BINARY} is not installed"
        return loaderkit.state_ret(
            name, {}, True, f"palplat:gpu:container_toolkit is false: not managed ({note})"
        )
    if cfg.gpu.toolkit_from:
        result, changes, comments = _toolkit_from(e, cfg)
    else:
        plan = packages.plan(cfg.gpu, __grains__)
        result, changes, comments = _run_steps(e, cfg, plan.toolkit)
    if result is not True:
        return loaderkit.state_ret(name, changes, result, comments)
    found = runtime.find_toolkit(cfg.gpu.root)
    if found is None:
        comments.append(
            f"verify failed: the toolkit is installed but {runtime.RUNTIME_BINARY} is not in "
            f"{', '.join('/' + d for d in runtime.TOOLKIT_DIRS)}"
        )
        return loaderkit.state_ret(name, changes, False, comments)
    comments.append(f"{found.path} is installed")
    return loaderkit.state_ret(name, changes, True, comments)


def _kube(e, cfg, node=False):
    """The cluster client (``node``: for this node's own objects, which an agent reaches
    with its own credentials, ``config.node_kubeconfig``); None in test mode while the
    kubeconfig does not exist yet."""
    path = config.node_kubeconfig(cfg) if node else config.kubeconfig_path(cfg)
    if e.test and not os.path.exists(path):
        return None
    return e.kube(path, cfg=cfg)


def _cluster_wide(cfg):
    """Whether this minion converges the GPU stage's cluster-wide objects (the device
    plugin release, the RuntimeClass): the one that holds the cluster, whether or not it
    has a GPU itself (whether some node has one is a fact of the cluster), unless
    ``palplat:gpu:enabled`` is false."""
    return cfg.gpu.enabled is not False and config.holds_the_cluster(cfg)


ELSEWHERE = (
    "cluster-wide: the minion that holds the cluster (the first server) converges it in "
    "its GPU stage"
)


def _runtime_class(e, cfg, name, comments):
    """The RuntimeClass part of ``runtime``: (changes, comments)."""
    kube = _kube(e, cfg)
    if kube is None:
        comments.append("would check the nvidia RuntimeClass once the cluster is up")
        return {}
    rc = cluster.ensure_runtime_class(kube, dry_run=e.test)
    comments.append(
        f"{'would create' if e.test else 'created'} RuntimeClass nvidia"
        if rc
        else "RuntimeClass nvidia in place"
    )
    return rc


@loaderkit.state
def runtime_(name="k3s-nvidia-runtime"):
    """k3s's containerd with the NVIDIA runtime: restart k3s only when the toolkit
    appeared or changed after k3s started (or the default-runtime drop-in changed), then
    check the regenerated containerd config; create the ``nvidia`` RuntimeClass where k3s
    did not (cluster-wide: on the minion that holds the cluster, GPU or not)."""
    e = _env()
    cfg, g, ret = _gate(e, name)
    if ret and not _cluster_wide(cfg):
        return ret
    comments = []
    if ret:  # no GPU here, but this minion keeps the cluster's RuntimeClass
        comments.append(g.reason.replace(": nothing to do on this node", ""))
        changes = _runtime_class(e, cfg, name, comments)
        return loaderkit.state_ret(name, changes, None if e.test and changes else True, comments)
    pending = e.test and cfg.gpu.container_toolkit and runtime.find_toolkit(cfg.gpu.root) is None
    if e.test and cfg.k3s.mode == "install" and not runtime.read_containerd(cfg).exists:
        # a bare host: k3s (earlier in the same run) starts with the toolkit in place and
        # writes the nvidia runtime itself; what is left (a restart, the RuntimeClass) is
        # known only once it runs: pending, with no change claimed that may not happen
        return loaderkit.state_ret(
            name,
            {},
            None,
            "pending: k3s does not run yet; its containerd config (nvidia runtime) and the "
            "RuntimeClass are checked once it does",
        )
    p = runtime.plan(cfg, toolkit_pending=pending)
    changes = p.changes
    if not p.managed:
        comments.append("palplat:k3s:mode is external: k3s is not restarted here")
    elif e.test:
        if p.restart:
            comments.append(f"would restart k3s: {'; '.join(p.reasons)}")
    else:
        runtime.apply(cfg, p, progress=e.progress("gpu"))
        if p.restart:
            comments.append(f"restarted k3s: {'; '.join(p.reasons)}")
        comments.append("k3s's containerd config holds the nvidia runtime")
    if _cluster_wide(cfg):
        changes.update(_runtime_class(e, cfg, name, comments))
    else:
        comments.append(f"RuntimeClass nvidia: {ELSEWHERE}")
    if not changes:
        return loaderkit.state_ret(
            name, {}, True, comments or ["nvidia runtime and RuntimeClass in place"]
        )
    return loaderkit.state_ret(name, changes, None if e.test else True, comments)


@loaderkit.state
def labeled(name=config.GPU_NODE_LABEL):
    """Label this GPU node ``nvidia.com/gpu.present=true`` (the device plugin and GPU
    workloads select on it)."""
    e = _env()
    cfg, g, ret = _gate(e, name)
    if ret:
        return ret
    node = k3s.node_name(cfg.k3s)
    kube = _kube(e, cfg, node=True)
    if kube is None:
        return loaderkit.state_ret(
            name,
            {f"label {config.GPU_NODE_LABEL}": {"old": None, "new": "true", "node": node}},
            None,
            f"would label node {node} once the cluster is up",
        )
    changes = cluster.label(kube, node, dry_run=e.test)
    if not changes:
        return loaderkit.state_ret(name, {}, True, f"node {node} is labelled {name}=true")
    verb = "would label" if e.test else "labelled"
    return loaderkit.state_ret(
        name, changes, None if e.test else True, f"{verb} node {node} {config.GPU_NODE_LABEL}=true"
    )


@loaderkit.state
def device_plugin(name=config.DEVICE_PLUGIN_RELEASE):
    """Converge the device plugin release (``nvidia-device-plugin``, synthesized from
    ``palplat:gpu:device_plugin`` unless ``palplat:platform:releases`` defines it) now, so
    that GPU nodes can be verified; the platform stage then finds it converged. The pinned
    helm first (``palplat_helm.installed``), then ``palplat_helm.release``. Cluster-wide:
    only the minion that holds the cluster does it (with or without a GPU of its own);
    on every other node it is "nothing to do"."""
    e = _env()
    cfg = e.config()
    if not _cluster_wide(cfg):
        cfg, g, ret = _gate(e, name)
        if ret:
            return ret
        return loaderkit.state_ret(name, {}, True, f"{name}: {ELSEWHERE}")
    release = config.DEVICE_PLUGIN_RELEASE
    helm_ret = __states__["palplat_helm.installed"]("helm")
    changes = {"helm": helm_ret["changes"]} if helm_ret.get("changes") else {}
    if helm_ret.get("result") is not True:
        comment = [f"helm: {helm_ret.get('comment')}"]
        if helm_ret.get("result") is None:
            comment.append(f"would then converge the {release} release")
        return loaderkit.state_ret(name, changes, helm_ret.get("result"), comment)
    rel = __states__["palplat_helm.release"](release)
    if rel.get("changes"):
        changes.update(rel["changes"])
    return loaderkit.state_ret(name, changes, rel.get("result"), rel.get("comment", ""))


@loaderkit.state
def verified(name="nvidia.com/gpu"):
    """Wait until this node reports ``nvidia.com/gpu`` allocatable = devices x
    time-slicing replicas (``palplat:gpu:verify_timeout``); fail naming the first broken
    link (driver, module loaded, toolkit, containerd runtime, RuntimeClass, plugin pod,
    node allocatable). Test mode checks once and waits for nothing."""
    e = _env()
    cfg, g, ret = _gate(e, name)
    if ret:
        return ret
    det = g.detection
    node = k3s.node_name(cfg.k3s)
    want = verify.expected(cfg, det)
    if e.test:
        kube = _kube(e, cfg, node=True)
        broken = verify.first_broken(verify.links(cfg, det, kube, node))
        if broken is None and kube is not None:
            return loaderkit.state_ret(
                name, {}, True, f"node {node} offers {want} {name}: every link holds"
            )
        now = f"now broken at '{broken.name}': {broken.detail}" if broken else "cluster not up"
        # no changes: the real run only waits and checks, it changes nothing either
        return loaderkit.state_ret(
            name,
            {},
            None,
            f"would wait up to {cfg.gpu.verify_timeout}s for node {node} to offer {want} "
            f"{name} ({now})",
        )
    kube = e.kube(config.node_kubeconfig(cfg), cfg=cfg)
    verify.verify(cfg, det, kube, node, progress=e.progress("gpu"))
    return loaderkit.state_ret(
        name, {}, True, f"node {node} offers {want} {name}: every link of the GPU chain holds"
    )
