"""python-socketio peer (see benchmarks/peers/__init__.py)."""
