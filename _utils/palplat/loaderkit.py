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

from palplat import config, provenance, redact
from palplat.errors import InputError, PalplatError, PillarError
from palplat.model import PalplatPillar

log = logging.getLogger("palplat")

EVENT_PREFIX = "palplat"
# A pull request's pillar, sealed (palplat.provenance: no secret value in it), handed to
# a test-mode run by ``salt-run palplat.plan pillarenv=...`` as a pillar override.
PLAN_PILLAR = "palplat_plan"
# Minion/master config option (never pillar): secret fields may hold plain text (tests,
# the sandbox). Off by default: a secret must come from GPG decryption.
PLAINTEXT_OPTION = "palplat_plaintext_secrets"

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


def unexpected(exc: BaseException) -> str:
    """One masked line for an exception palplat did not raise on purpose (its traceback,
    masked, goes to the debug log)."""
    log.debug("unexpected error in palplat", exc_info=exc)
    text = exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], str) else str(exc)
    first = (text.strip().splitlines() or [""])[0]
    return redact.mask_text(f"{type(exc).__name__}: {first}"[:500])


def translate(fn: Callable) -> Callable:
    """Decorator for execution-module and runner functions: a library error is raised as
    the matching Salt exception, with secrets masked; so is any other exception (one
    masked line, never a raw traceback that could quote a secret)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from salt.exceptions import CommandExecutionError, SaltException

        try:
            return fn(*args, **kwargs)
        except PalplatError as exc:
            raise salt_exception(exc) from None
        except SaltException as exc:
            exc.args = tuple(redact.mask(a) for a in exc.args)
            if hasattr(exc, "strerror"):
                exc.strerror = redact.mask_text(str(exc.strerror))
            raise
        except Exception as exc:  # noqa: BLE001 - masked, one line, never raw
            raise CommandExecutionError(unexpected(exc)) from None

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
            name = _name(sig, args, kwargs, fn)
            if isinstance(exc, NoClusterYet):
                ret = state_ret(name, {}, None, str(exc))
            else:
                ret = failed(name, exc, getattr(exc, "changes", None))
        except Exception as exc:  # noqa: BLE001 - a masked, one-line state error
            ret = state_ret(
                _name(sig, args, kwargs, fn),
                {},
                False,
                f"{unexpected(exc)} (an unexpected error: the debug log has its traceback; "
                "fix the cause and re-run)",
            )
        item_event(fn.__globals__, ret)
        return ret

    return wrapper


def _name(sig: inspect.Signature, args: tuple, kwargs: dict, fn: Callable) -> str:
    try:
        bound = sig.bind_partial(*args, **kwargs)
    except TypeError:
        return fn.__name__
    bound.apply_defaults()
    return str(bound.arguments.get("name", fn.__name__))


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
        plan: Mapping[str, Any] | None = None,
    ):
        self.salt = salt or {}
        self.opts = opts or {}
        # ``plan``: a pull request's plan given to an execution function (states get it
        # as the palplat_plan pillar)
        self.pillar = pillar if plan is None else {**(pillar or {}), PLAN_PILLAR: plan}
        self._plan_given = plan is not None
        self.context = context if context is not None else {}
        redact.install_log_filter()
        if self.opts.get("id"):
            from palplat.kube import client as kube_client

            # the API server's audit log tells which minion (or master) asked
            kube_client.set_user_agent(f"palplat ({self.opts['id']})")

    @property
    def test(self) -> bool:
        return is_test(self.opts)

    def option(self, key: str, default: Any = None) -> Any:
        """A minion/master config value (``config.get`` where the loader offers it)."""
        get = self.salt.get("config.get")
        if get is not None:
            return get(key, default)
        return self.opts.get(key, default)

    @property
    def plaintext_secrets(self) -> bool:
        """Whether secret fields may hold plain text: the ``palplat_plaintext_secrets``
        option of the minion's (or master's) own config, never the pillar's."""
        return bool(self.opts.get(PLAINTEXT_OPTION, False))

    @property
    def planning(self) -> bool:
        """True in a pull request's plan (``palplat_plan`` in the pillar, test mode)."""
        return PLAN_PILLAR in (self.pillar or {})

    def _plan_tree(self) -> Any:
        from palplat import pullrequest

        tree = pullrequest.tree_for((self.pillar or {}).get(PLAN_PILLAR), self.opts.get("id"))
        if tree is None:
            raise PillarError([config.missing_problem({}, "palplat")])
        return tree

    def config(self) -> PalplatPillar:
        """The validated ``palplat`` pillar; raises ``PillarError`` with every problem
        (also when this minion's pillar has no ``palplat`` key, or a null one).

        In a pull request's plan, the pull request's pillar (``palplat_plan``): its
        unchanged ciphertexts are this minion's own (applied) values, the others sealed
        (never decrypted); a real run refuses it."""
        if not self.planning:
            return self._load(self.pillar)
        if not self.test and not self._plan_given:
            raise InputError(
                f"the {PLAN_PILLAR} pillar is a pull request's plan: it runs only in test "
                "mode (salt-run palplat.plan); nothing was changed"
            )
        own = (self.pillar or {}).get("palplat")
        return self._load(
            {"palplat": self._plan_tree()},
            planning=True,
            resolve=lambda path: provenance.lookup(own, path),
        )

    def applied(self) -> PalplatPillar | None:
        """In a pull request's plan, the pillar this minion applies today (the pull
        request's base), to which credentials may be sent; None outside a plan."""
        if not self.planning:
            return None
        try:
            return self._load(self.pillar)
        except PillarError:
            return None

    def guard(self):
        """The :class:`palplat.egress.Guard` of this run: in a pull request's plan,
        credentials go only to the applied pillar's endpoints."""
        from palplat import egress

        return egress.Guard(self.planning, self.applied())

    def _load(self, pillar: Any, **kw: Any) -> PalplatPillar:
        return config.load(pillar, required=True, plaintext_secrets=self.plaintext_secrets, **kw)

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
            guard=self.guard() if self.planning else None,
        )
        try:
            yield ctx
        finally:
            ctx.kube.close()


def env(salt: Any, opts: Any, pillar: Any = None, context: Any = None, plan: Any = None) -> Env:
    """Shorthand used by loader modules: ``loaderkit.env(__salt__, __opts__, ...)``."""
    return Env(salt, opts, pillar, context, plan)
