"""Output renderers: pure functions from a :class:`Report` to text. Nothing here prints.

The table of formats is in :mod:`mlgate.render.formats`; this package imports nothing, so that
:mod:`mlgate.render.escape` (used by every command) does not load the text renderer's rich.
"""
