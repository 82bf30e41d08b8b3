"""Models: loading base models and runs, adapters, the loss, sentence embeddings."""
