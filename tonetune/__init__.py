"""tonetune: teach a small open LLM to speak in a persona's tone."""

__version__ = "0.2.0"
