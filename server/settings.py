"""The process settings, as the server and the CLI import them.

The class lives in `graphs/settings.py` so the graph can take its defaults from it when Studio loads
the graph without the server; this module keeps the server's import path.
"""

from booktutor.graphs.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
