"""The one glue between Salt's loader modules and the library.

Loader modules (``_modules``, ``_states``, ``_runners``) are thin: each function builds a
:class:`Env` from its loader globals, calls the library, and returns. Everything that
would otherwise be repeated per module lives here:

- :func:`translate` / :func:`state` decorators: library errors become Salt exceptions
  (execution modules, runners) or failed, masked state returns (states). They keep the
  wrapped signature (``functools.wraps``), which is what Salt reads for arguments.
- :func:`is_test`: the one reading of test mode.
- :class:`Env`: the validated pillar, progress events to the right bus, and the per-area
  factories (``kube``, ``helm_context``, ``k3s_config``) shared by an area's execution
  and state modules; :func:`manifests_from` parses manifest arguments.
- :func:`state_ret` / :func:`failed`: masked state returns.

No ``sys.path`` bootstrap is needed in the loader modules: Salt (3006 and 3007) puts the
``utils`` module directories (``extension_modules/utils`` after ``saltutil.sync_all``, and
``utils_dirs``) on ``sys.path`` while it imports a module (``LazyLoader`` with
``extra_module_dirs``), and ``pip install`` makes ``palplat`` a normal package.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from palplat import config, redact
from palplat.errors import InputError, PalplatError, PillarError
from palplat.model import PalplatPillar

log = logging.getLogger("palplat")

EVENT_PREFIX = "palplat"

Fire = Callable[[Mapping[str, Any], str], Any]


# ------------------------------------------------------------------ test mode and errors


def is_test(opts: Mapping[str, Any] | None) -> bool:
    """True in test mode (``test=True`` on the command line or in the config)."""
    return bool((opts or {}).get("test"))


def salt_exception(exc: Exception) -> Exception:
    """Translate a library error into the Salt exception a loader module should raise."""
    from salt.exceptions import CommandExecutionError, SaltInvocationError

    msg = redact.mask_text(str(exc))
    if isinstance(exc, (PillarError, InputError)):
        return SaltInvocationError(msg)
    if isinstance(exc, PalplatError):
        return CommandExecutionError(msg)
    return exc


def translate(fn: Callable) -> Callable:
    """Decorator for execution-module and runner functions: a library error is raised as
    the matching Salt exception, with secrets masked."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PalplatError as exc:
            raise salt_exception(exc) from None

    return wrapper


class NoClusterYet(PalplatError):
    """Test mode on a host whose cluster does not exist yet (bare host: the k3s stage of
    the same run would create it). A state that raises it returns ``result: None``."""


def state(fn: Callable) -> Callable:
    """Decorator for state functions: a library error becomes a failed, masked state
    return naming the error (with the changes already made when the error carries them);
    :class:`NoClusterYet` (raised only in test mode) a pending one (``result: None``).
    Every return is also fired as ``palplat/<stage>/<state ID>/<result>`` (see
    :func:`item_event`), so ``salt-run state.event`` shows a run item by item."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            ret = fn(*args, **kwargs)
        except PalplatError as exc:
            bound = sig.bind_partial(*args, **kwargs)
            bound.apply_defaults()
            name = bound.arguments.get("name", fn.__name__)
            if isinstance(exc, NoClusterYet):
                ret = state_ret(name, {}, None, str(exc))
            else:
                ret = failed(name, exc, getattr(exc, "changes", None))
        item_event(fn.__globals__, ret)
        return ret

    return wrapper


def result_word(ret: Mapping[str, Any]) -> str:
    """``failed`` / ``pending`` (test mode, would change) / ``changed`` / ``unchanged``."""
    if ret.get("result") is False:
        return "failed"
    if ret.get("result") is None:
        return "pending"
    return "changed" if ret.get("changes") else "unchanged"


def item_event(module_globals: Mapping[str, Any], ret: Mapping[str, Any]) -> None:
    """Fire ``palplat/<stage>/<item>/<result>`` for a state return, where the state
    compiler says which SLS and ID it runs (``__low__``); quiet otherwise."""
    # Salt injects __low__ into the globals of the function it calls: this wrapper's
    # (loaderkit's module) when the state is decorated, the module's otherwise.
    low = globals().get("__low__") or module_globals.get("__low__")
    salt_funcs = module_globals.get("__salt__")
    if not low or salt_funcs is None:
        return
    try:
        sls = str(low.get("__sls__") or "")
        stage = sls.split(".", 1)[1] if sls.startswith("palplat.") else sls or "adhoc"
        item = str(low.get("__id__") or ret.get("name"))
        fire = salt_fire(salt_funcs, module_globals.get("__opts__") or {})
        if fire is None:
            return
        data = {
            "stage": stage,
            "item": item,
            "result": ret.get("result"),
            "changes": len(ret.get("changes") or {}),
            "comment": redact.mask_text(str(ret.get("comment") or ""))[:2000],
        }
        fire(data, f"{EVENT_PREFIX}/{stage}/{item}/{result_word(ret)}")
    except Exception:  # noqa: BLE001 - an event bus hiccup must not fail a state
        log.debug("could not fire palplat item event", exc_info=True)


def state_ret(
    name: str,
    changes: Mapping[str, Any] | None = None,
    result: bool | None = True,
    comment: str | list[str] = "",
    summary: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A masked state return dict. ``summary`` (``{"add"|"change"|"remove"|"orphaned":
    [names]}``) tells the plan report what the change is made of; Salt keeps it in the
    return under ``palplat``."""
    if isinstance(comment, list):
        comment = "\n".join(c for c in comment if c)
    ret = {
        "name": name,
        "changes": redact.mask(dict(changes or {})),
        "result": result,
        "comment": redact.mask_text(comment),
    }
    if summary:
        ret["palplat"] = redact.mask({k: list(v) for k, v in summary.items() if v})
    return ret


def failed(name: str, exc: Exception, changes: Mapping[str, Any] | None = None) -> dict:
    if isinstance(exc, PillarError):
        return state_ret(name, changes, False, str(exc))
    text = f"{type(exc).__name__}: {exc}"
    if changes:
        text += "\nthe changes listed were made before this error; fix it and re-run"
    return state_ret(name, changes, False, text)


def needs_kubernetes(virtualname: str) -> str | tuple[bool, str]:
    """``__virtual__`` of modules that talk to the Kubernetes API."""
    try:
        import kubernetes  # noqa: F401
    except ImportError:
        return False, f"{virtualname} needs the kubernetes Python client (pip install kubernetes)"
    return virtualname


# ------------------------------------------------------------------------- progress


def salt_fire(salt_funcs: Mapping[str, Callable], opts: Mapping[str, Any]) -> Fire | None:
    """The ``fire(data, tag)`` for a minion: to the master's event bus when there is a
    master (so ``salt-run state.event`` shows progress), else the local bus."""
    local = (
        opts.get("file_client") == "local"
        or opts.get("master_type") == "disabled"
        or opts.get("local")
    )
    send = salt_funcs.get("event.send")
    if not local and send is not None:
        return lambda data, tag: send(tag, data=dict(data))
    return salt_funcs.get("event.fire")


class Progress:
    """Logs progress of a long wait and fires it as a Salt event (both masked).

    Tag: ``palplat/<topic>/<phase>``. ``every`` throttles repeated 'waiting' messages.
    """

    def __init__(self, fire: Fire | None, topic: str, every: float = 5.0):
        self.fire = fire
        self.topic = topic
        self.every = every
        self._last = 0.0

    def __call__(self, phase: str, message: str, force: bool = False, **data: Any) -> None:
        now = time.monotonic()
        if phase == "waiting" and not force and now - self._last < self.every:
            return
        self._last = now
        message = redact.mask_text(message)
        log.info("palplat %s: %s", self.topic, message)
        if self.fire is not None:
            payload = redact.mask({"message": message, **data})
            try:
                self.fire(payload, f"{EVENT_PREFIX}/{self.topic}/{phase}")
            except Exception:  # noqa: BLE001 - an event bus hiccup must not fail a state
                log.debug("could not fire palplat event", exc_info=True)


# ---------------------------------------------------------------------------- inputs


def manifests_from(manifest: Any = None, manifests: Any = None) -> list[dict]:
    """The objects of a ``manifest`` (one mapping or a YAML string of one) and/or
    ``manifests`` (a list, one mapping, or a multi-document YAML string), validated."""
    from palplat import kube, yamlio

    items: list[Any] = []
    if manifest is not None:
        if isinstance(manifest, str):
            manifest = yamlio.load(manifest, what="manifest")
        if not isinstance(manifest, dict):
            raise InputError("manifest must be a mapping (one object)")
        items.append(manifest)
    if manifests is not None:
        if isinstance(manifests, str):
            manifests = yamlio.load_all(manifests, what="manifests")
        elif isinstance(manifests, dict):
            manifests = [manifests]
        items.extend(manifests)
    if not items:
        raise InputError("give manifest (one object) or manifests (a list of objects)")
    return kube.validate_manifests(items)


# -------------------------------------------------------------------------------- env


class Env:
    """What a loader function needs from its globals, built once per call:
    ``Env(__salt__, __opts__, __pillar__, __context__)``."""

    def __init__(
        self,
        salt: Mapping[str, Callable] | None,
        opts: Mapping[str, Any] | None,
        pillar: Mapping[str, Any] | None = None,
        context: dict | None = None,
    ):
        self.salt = salt or {}
        self.opts = opts or {}
        self.pillar = pillar
        self.context = context if context is not None else {}
        redact.install_log_filter()

    @property
    def test(self) -> bool:
        return is_test(self.opts)

    def option(self, key: str, default: Any = None) -> Any:
        """A minion/master config value (``config.get`` where the loader offers it)."""
        get = self.salt.get("config.get")
        if get is not None:
            return get(key, default)
        return self.opts.get(key, default)

    def config(self) -> PalplatPillar:
        """The validated ``palplat`` pillar; raises ``PillarError`` with every problem
        (also when this minion's pillar has no ``palplat`` key, or a null one)."""
        return config.load(self.pillar, required=True)

    def k3s_config(self) -> PalplatPillar:
        """The validated pillar plus the k3s stage's own checks (a pinned version, ...)."""
        from palplat import k3s

        cfg = self.config()
        problems = k3s.check(cfg)
        if problems:
            raise PillarError(problems)
        return cfg

    def _cluster_or_pending(self, kubeconfig: str, cfg: PalplatPillar | None) -> None:
        """In test mode with ``k3s:mode: install``, a kubeconfig that does not exist yet
        means a bare host whose k3s stage (earlier in the same plan) would create the
        cluster: the Kubernetes and Helm states are pending (``result: None``), not failed.
        (In external mode a missing kubeconfig stays an error.)"""
        import os

        if not self.test or os.path.exists(kubeconfig):
            return
        if (cfg or self.config()).k3s.mode == "install":
            raise NoClusterYet(
                f"no cluster yet: {kubeconfig} does not exist (the k3s stage would create "
                "it); this is planned once the cluster runs"
            )

    def fire(self) -> Fire | None:
        return salt_fire(self.salt, self.opts)

    def progress(self, topic: str) -> Progress:
        return Progress(self.fire(), topic)

    def fetch_salt(self, url: str) -> str:
        """A ``salt://`` (or other Salt-fetchable) source cached on the minion."""
        return self.salt["cp.cache_file"](url)

    def kube(self, kubeconfig: str | None = None, cfg: PalplatPillar | None = None):
        """A ``palplat.kube.Kube`` for ``kubeconfig`` (default: the pillar's), cached in
        the loader's ``__context__`` for the rest of the run."""
        from palplat import kube

        if not kubeconfig:
            kubeconfig = config.kubeconfig_path(cfg or self.config())
        self._cluster_or_pending(kubeconfig, cfg)
        cache = self.context.setdefault("palplat_kube.clients", {})
        if kubeconfig not in cache:
            cache[kubeconfig] = kube.Kube(kubeconfig)
        return cache[kubeconfig]

    @contextlib.contextmanager
    def helm_context(self, cfg: PalplatPillar) -> Iterator[Any]:
        """The ``palplat.helm.Context`` for the pillar's releases (helm binary, kube
        client, progress events); its kube client is closed on exit."""
        from palplat import helm

        self._cluster_or_pending(
            self.option("palplat.kubeconfig", None) or config.kubeconfig_path(cfg), cfg
        )
        ctx = helm.context_for(
            cfg,
            helm_bin=self.option("palplat.helm_bin", None),
            kubeconfig=self.option("palplat.kubeconfig", None),
            progress=self.progress("helm"),
        )
        try:
            yield ctx
        finally:
            ctx.kube.close()


def env(salt: Any, opts: Any, pillar: Any = None, context: Any = None) -> Env:
    """Shorthand used by loader modules: ``loaderkit.env(__salt__, __opts__, ...)``."""
    return Env(salt, opts, pillar, context)
