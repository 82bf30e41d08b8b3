"""Console entrypoints: thin ``@hydra.main`` wrappers over plain functions."""
