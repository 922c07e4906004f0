"""One module per benchmark scenario; each exposes `run(bench, ...)` returning JSON-able results."""
