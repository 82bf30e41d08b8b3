"""Talking to an LLM: an OpenAI-compatible API or the local model, each behind a response cache."""
