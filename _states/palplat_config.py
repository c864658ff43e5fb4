"""State module: ``palplat_config.validated`` fails (changing nothing) on a bad pillar.

Every palplat SLS requires it first, so a pillar typo stops the run before any change.
"""

from palplat import loaderkit


@loaderkit.state
def validated(name="palplat"):
    """Validate the ``palplat`` pillar. Never changes anything; same in test mode."""
    loaderkit.env(__salt__, __opts__, __pillar__, __context__).config()
    return loaderkit.state_ret(name, {}, True, "the palplat pillar is valid")
