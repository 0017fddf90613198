"""Real-time Binance USD-M futures market data service.

Layout: ``core`` is pure (no I/O, no clock), ``binance`` turns wire bytes into
core events, ``io`` holds the thin loops that drive the core, ``service`` wires
them together and ``cli`` is the command line.
"""

__version__ = "0.1.0"
