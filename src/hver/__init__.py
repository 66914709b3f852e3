"""hver: a self-hosted hub for machine-learning models, datasets and demos."""

__version__ = "0.1.0"
