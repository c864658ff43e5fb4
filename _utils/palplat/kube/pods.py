"""Why pods are not ready, in words an operator can act on.

A wait that times out (``helm upgrade --wait``, a rollout) says "context deadline
exceeded"; the cause is on the pods: one the scheduler cannot place ("0/1 nodes are
available: 1 Insufficient nvidia.com/gpu"), an image that does not pull, a container in a
crash loop, a readiness probe that fails. :func:`not_ready` reads the pods of a release
(or a namespace) and the last event of each, and :func:`describe` turns that into one
line per pod.

Pods an atomic upgrade deletes while rolling back are gone when the wait has failed, so
:class:`Watch` takes the picture while the wait is still running (every ``every``
seconds) and keeps the last one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from palplat import redact
from palplat.kube.client import Kube
from palplat.kube.errors import KubeError

log = logging.getLogger("palplat.kube")

# helm's and most charts' label of a release's objects, then the older charts' label
RELEASE_SELECTORS = ("app.kubernetes.io/instance={name}", "release={name}")
MAX_PODS = 5  # described in full; the rest are counted


def _cond(pod: Mapping[str, Any], ctype: str) -> dict | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def _ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") == "Succeeded":
        return True  # a finished Job's pod waits for nothing
    c = _cond(pod, "Ready")
    return bool(c and c.get("status") == "True")


def _text(*parts: Any) -> str:
    return ": ".join(str(p) for p in parts if p)


def _containers(pod: Mapping[str, Any]) -> list[str]:
    """What the containers (init first) say: waiting reasons, the last termination of a
    restarting one, and readiness."""
    status = pod.get("status") or {}
    out: list[str] = []
    for kind in ("initContainerStatuses", "containerStatuses"):
        for c in status.get(kind) or []:
            state = c.get("state") or {}
            name = c.get("name", "?")
            waiting = state.get("waiting") or {}
            if waiting.get("reason") and waiting.get("reason") != "PodInitializing":
                why = _text(waiting.get("reason"), waiting.get("message"))
                last = (c.get("lastState") or {}).get("terminated") or {}
                if last:
                    why += (
                        f" (last exit {last.get('exitCode')}"
                        + (f", {last.get('reason')}" if last.get("reason") else "")
                        + f"; {c.get('restartCount', 0)} restarts)"
                    )
                out.append(f"container {name}: {why}")
                continue
            term = state.get("terminated") or {}
            if term and term.get("exitCode", 0) != 0:
                out.append(
                    f"container {name}: terminated {_text(term.get('reason'), term.get('message'))}"
                    f" (exit {term.get('exitCode')})"
                )
                continue
            if "running" in state and not c.get("ready") and kind == "containerStatuses":
                out.append(f"container {name}: running, not ready (its readiness probe fails)")
    return out


def _last_events(events: Iterable[Mapping[str, Any]]) -> dict[str, dict]:
    """Per pod name, its last Warning event (else its last event)."""

    def when(ev: Mapping[str, Any]) -> str:
        meta = ev.get("metadata") or {}
        return str(
            ev.get("lastTimestamp")
            or ev.get("eventTime")
            or (ev.get("series") or {}).get("lastObservedTime")
            or meta.get("creationTimestamp")
            or ""
        )

    best: dict[str, dict] = {}
    for ev in sorted(events, key=when):
        obj = ev.get("involvedObject") or ev.get("regarding") or {}
        if obj.get("kind") != "Pod":
            continue
        name = obj.get("name", "")
        prev = best.get(name)
        if prev is None or ev.get("type") == "Warning" or prev.get("type") != "Warning":
            best[name] = dict(ev)
    return best


def pod_line(pod: Mapping[str, Any], event: Mapping[str, Any] | None) -> str:
    """One pod, why it is not ready and its last event."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    where = f"{meta.get('namespace', '')}/{meta.get('name', '?')}".lstrip("/")
    parts: list[str] = [status.get("phase") or "Unknown"]
    sched = _cond(pod, "PodScheduled")
    if sched and sched.get("status") == "False":
        parts.append("not scheduled: " + _text(sched.get("reason"), sched.get("message")))
    parts += _containers(pod)
    if event:
        msg = " ".join(str(event.get("message") or event.get("note") or "").split())
        shown = " ".join(parts)
        ev = _text(event.get("reason"), msg)
        if msg and msg in shown:
            parts.append(f"last event {event.get('reason')}")
        elif ev:
            parts.append(f"last event: {event.get('type', 'Normal')} {ev}")
    return f"{where} ({'; '.join(parts)})"


def not_ready(kube: Kube, namespace: str, release: str | None = None) -> list[str]:
    """One line per pod that is not ready in ``namespace`` (only the release's pods when
    ``release`` is given and has labelled pods), with its last event."""
    pods: list[dict] = []
    if release:
        for sel in RELEASE_SELECTORS:
            pods = kube.list("v1", "Pod", namespace, sel.format(name=release))
            if pods:
                break
    if not pods:
        pods = kube.list("v1", "Pod", namespace)
    bad = [
        p for p in pods if not _ready(p) and not (p.get("metadata") or {}).get("deletionTimestamp")
    ]
    if not bad:
        return []
    events = _last_events(kube.list("v1", "Event", namespace))
    bad.sort(key=lambda p: (p.get("metadata") or {}).get("name", ""))
    lines = [pod_line(p, events.get(p["metadata"].get("name", ""))) for p in bad[:MAX_PODS]]
    if len(bad) > MAX_PODS:
        lines.append(f"and {len(bad) - MAX_PODS} more")
    return [redact.mask_text(line) for line in lines]


def describe(lines: list[str]) -> str:
    """``lines`` as a sentence for an error message (empty when there are none)."""
    if not lines:
        return ""
    return f"pods not ready: {'; '.join(lines)}"


class Watch:
    """Pictures of the not-ready pods of one release, taken while a wait runs.

    ``tick()`` is cheap to call often: it reads the cluster at most every ``every``
    seconds, and only after ``after`` seconds (a wait that ends fast needs no picture).
    ``last`` holds the latest picture; ``final()`` takes one more when possible (the
    pods may still be there) and returns the best it has."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        release: str | None,
        *,
        every: float = 10.0,
        after: float = 10.0,
    ):
        self.kube, self.namespace, self.release = kube, namespace, release
        self.every, self.after = every, after
        self.start = time.monotonic()
        self._next = self.start + after
        self.last: list[str] = []

    def tick(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every
        self._take()

    def _take(self, keep: bool = False) -> None:
        """A new picture (``keep``: an empty one does not replace the last)."""
        try:
            now = not_ready(self.kube, self.namespace, self.release)
        except KubeError as exc:  # a picture is a help, never a second failure
            log.debug("reading the pods of %s: %s", self.namespace, exc)
            return
        if now or not keep:
            self.last = now

    def final(self) -> list[str]:
        self._take(keep=True)
        return self.last
