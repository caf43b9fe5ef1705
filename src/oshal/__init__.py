"""oshal: a self-hosted platform that runs a fleet of AI bots as accountable workers."""

__version__ = "0.1.0"
