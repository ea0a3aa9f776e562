"""s2s-demo: an LSTM sequence-to-sequence translator you can look inside."""

__version__ = "0.1.0"
