"""One generation engine for evaluation, the local LLM client, the server, the chat and the arena."""
