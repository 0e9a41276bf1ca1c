"""Local, stateful emulators of the external services, speaking their real wire formats.

Used by `ledgerlink demo`, the tests and the benchmarks. Product code never imports this package.
"""
