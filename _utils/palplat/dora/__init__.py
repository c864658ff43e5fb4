"""DORA: the platform measures its own delivery, for itself and for every service
(docs/dora.md).

Import the module you need (this package imports nothing itself, so that the pillar model
can use :mod:`.pillar` without a cycle):

- :mod:`.pillar`: the ``palplat:dora`` section; :mod:`.bands`: the report years' bands;
- :mod:`.records`: ledger records from orchestration returns, Argo CD, Woodpecker;
- :mod:`.ledger`: the ledger in the cluster (compare-and-swap chunks) and the spool;
- :mod:`.timeline`: deployments, failures, recoveries per component;
  :mod:`.keys`: the five keys over a window; :mod:`.report`: the report and its tables;
- :mod:`.metrics`: the textfile metrics; :mod:`.rules`: recording rules, alerts, dashboard;
- :mod:`.api`: what the ``palplat_dora`` execution module runs; :mod:`.ci`: what CI passes.
"""
