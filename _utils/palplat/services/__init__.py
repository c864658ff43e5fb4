"""Service onboarding: one ``palplat:services`` entry gives a service everything it needs.

Import the module you need (this package imports nothing itself, so that the pillar model
can use :mod:`.pillar` without a cycle):

- :mod:`.pillar`: the ``services`` pillar section; :mod:`.checks`: its cross checks.
- :mod:`.resolve`: an entry merged with ``services:defaults`` (names, image, overlay).
- :mod:`.bundle` and :mod:`.network`: the Kubernetes objects of a service, by part.
- :mod:`.http`, :mod:`.harbor`, :mod:`.woodpecker`: the API clients (``requests``).
- :mod:`.inventory`: what exists (one LIST per kind, Harbor and Woodpecker listings).
- :mod:`.registry`, :mod:`.ci`: the Harbor and Woodpecker parts of a service.
- :mod:`.converge`: onboarding; :mod:`.offboard`: ``absent`` and orphans;
  :mod:`.outcome`: the result (changes, what is left per service and part).
"""
