"""nas-repro: reproducibility harness for efficient neural-architecture-search papers."""

__version__ = "0.1.0"
