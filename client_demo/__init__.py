"""giftcast demo client: a small scriptable CLI over the HTTP API and the WebSocket protocol.

Run `python -m client_demo --help`; the code is in `client_demo/cli.py`.
"""
