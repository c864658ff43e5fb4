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
from palplat.nvidia import cluster, keyring, packages, runtime, verify
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
    p = keyring.plan(
        rooted(cfg.gpu.root, kw["path"]), kw["url"], kw["fingerprint"], fetch_salt=e.fetch_salt
    )
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
    proprietary module), then the module check: the state fails with "reboot required"
    (both versions named) when the installed module differs from the loaded one, and when
    the driver is installed but not loaded; it never reboots."""
    e = _env()
    cfg, g, ret = _gate(e, name)
    if ret:
        return ret
    plan = packages.plan(cfg.gpu, __grains__)
    result, changes, comments = _run_steps(e, cfg, plan.driver)
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


@loaderkit.state
def toolkit(name="nvidia-container-toolkit"):
    """nvidia-container-toolkit: Arch's package, or NVIDIA's apt repository (pinned
    signing key) and its package on Debian and Ubuntu."""
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


def _kube(e, cfg):
    """The cluster client; None in test mode while the kubeconfig does not exist yet."""
    path = config.kubeconfig_path(cfg)
    if e.test and not os.path.exists(path):
        return None
    return e.kube(cfg=cfg)


@loaderkit.state
def runtime_(name="k3s-nvidia-runtime"):
    """k3s's containerd with the NVIDIA runtime: restart k3s only when the toolkit
    appeared or changed after k3s started (or the default-runtime drop-in changed), then
    check the regenerated containerd config; create the ``nvidia`` RuntimeClass where k3s
    did not."""
    e = _env()
    cfg, g, ret = _gate(e, name)
    if ret:
        return ret
    comments = []
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
    kube = _kube(e, cfg)
    if kube is None:
        comments.append("would check the nvidia RuntimeClass once the cluster is up")
    else:
        rc = cluster.ensure_runtime_class(kube, dry_run=e.test)
        changes.update(rc)
        if rc:
            comments.append(f"{'would create' if e.test else 'created'} RuntimeClass nvidia")
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
    kube = _kube(e, cfg)
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
    that the node can be verified; the platform stage then finds it converged. The pinned
    helm first (``palplat_helm.installed``), then ``palplat_helm.release``."""
    e = _env()
    cfg, g, ret = _gate(e, name)
    if ret:
        return ret
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
        kube = _kube(e, cfg)
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
    verify.verify(cfg, det, e.kube(cfg=cfg), node, progress=e.progress("gpu"))
    return loaderkit.state_ret(
        name, {}, True, f"node {node} offers {want} {name}: every link of the GPU chain holds"
    )
