"""giftcast benchmarks: a harness that starts servers and a separate load generator over loopback.

`python -m benchmarks --help` (or `make bench`); see benchmarks/README.md and RESULTS.md.
"""
