"""Contract fakes of the HTTP APIs that cannot run here (Harbor, Woodpecker).

Each fake is served over HTTP on loopback and checks every request it gets and every
response it gives against the vendor's own API document (../shared/reference/apis, both
Swagger 2.0) with bravado-core; any mismatch is recorded in ``fake.violations`` and the
``fakes`` fixtures fail the test on it. See :mod:`.contract`.
"""
