"""`botmem serve`: the same agents over HTTP, as a Letta-compatible subset of its /v1 API.

Letta's own client (PyPI `letta-client`) drives it unchanged but for `base_url`. Modules:
api.py (the ASGI app: auth, errors, routers), ids.py (Letta ids <-> botmem keys),
paging.py (cursor lists), api_adapter.py (turns started over HTTP, answered in-process),
agents.py, messages.py, blocks.py, archival.py, agentfiles.py (the routes), serve.py.
FastAPI and uvicorn are imported only here (the `server` extra).
"""
