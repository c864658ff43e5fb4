"""k3s lifecycle: pinned install, config files, service unit, join token, readiness.

Every path lives under ``palplat:k3s:root`` (``/`` on real hosts, a tmp dir in tests).
The state module calls, in order:

- :func:`check` -- pillar problems (unknown config keys, missing token, ...), before
  anything changes (:mod:`.flags`);
- :func:`plan_binary` / :func:`install_binary` -- the pinned binary from the configured
  source, sha256 verified (pillar or the release's ``sha256sum-<arch>.txt``), written to a
  temporary file beside the target and renamed over it, so a mismatch leaves the current
  binary in place; a downgrade is refused unless ``allow_downgrade`` (:mod:`.install`);
- :func:`plan_files` / :func:`write_files` -- ``config.yaml`` and ``registries.yaml``
  (0600), changes shown with secrets masked (:mod:`.files`);
- :func:`check_token` -- the pillar token against the running cluster (the server's
  token file, or the join server's ``/cacerts`` + an authenticated supervisor request)
  (:mod:`.join`);
- :func:`plan_service` / :func:`apply_service` -- the unit for the role; a restart only
  when the fingerprint of (binary, config, registries, unit) differs from the one recorded
  after the last successful start (:mod:`.service`); then :func:`wait_ready` (API /readyz
  and the node Ready) with progress events (:mod:`.ready`);
- :func:`uninstall` (:mod:`.removal`).

Paths, the unit name and the service manager are in :mod:`.layout`; the quorum-safe
upgrade across minions (:func:`status`, ``upgrade.plan``, ``upgrade.execute``, cordon and
drain) is in :mod:`.upgrade`. This module only re-exports.
"""

from palplat.fetch import ChecksumError, SourceError
from palplat.k3s import upgrade
from palplat.k3s.files import (
    HIDDEN,
    desired_config,
    desired_registries,
    plan_files,
    write_files,
)
from palplat.k3s.flags import (
    AGENT_FLAGS,
    MANAGED_KEYS,
    SECRET_KEYS,
    SERVER_FLAGS,
    P,
    check,
)
from palplat.k3s.install import (
    BINARY_NAME,
    VERSION_RE,
    BinaryPlan,
    expected_sha256,
    install_binary,
    installed_version,
    parse_version,
    plan_binary,
    release_url,
)
from palplat.k3s.join import TokenMismatch, check_token
from palplat.k3s.layout import (
    K3S_KUBECONFIG,
    Paths,
    kubeconfig_path,
    node_name,
    paths,
    service_manager,
    unit_name,
)
from palplat.k3s.ready import api_ready, node_status, verify_kubeconfig, wait_ready
from palplat.k3s.removal import plan_uninstall, uninstall
from palplat.k3s.service import (
    ServicePlan,
    apply_service,
    fingerprint,
    plan_service,
    unit_text,
)
from palplat.k3s.upgrade import UPGRADE_PILLAR, status

__all__ = [
    "AGENT_FLAGS",
    "BINARY_NAME",
    "HIDDEN",
    "K3S_KUBECONFIG",
    "MANAGED_KEYS",
    "SECRET_KEYS",
    "SERVER_FLAGS",
    "UPGRADE_PILLAR",
    "VERSION_RE",
    "BinaryPlan",
    "ChecksumError",
    "P",
    "Paths",
    "ServicePlan",
    "SourceError",
    "TokenMismatch",
    "api_ready",
    "apply_service",
    "check",
    "check_token",
    "desired_config",
    "desired_registries",
    "expected_sha256",
    "fingerprint",
    "install_binary",
    "installed_version",
    "kubeconfig_path",
    "node_name",
    "node_status",
    "parse_version",
    "paths",
    "plan_binary",
    "plan_files",
    "plan_service",
    "plan_uninstall",
    "release_url",
    "service_manager",
    "status",
    "uninstall",
    "unit_name",
    "unit_text",
    "upgrade",
    "verify_kubeconfig",
    "wait_ready",
    "write_files",
]
