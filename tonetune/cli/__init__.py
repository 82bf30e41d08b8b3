"""Console entrypoints: thin ``@hydra.main`` wrappers over plain functions."""

import warnings

# Deprecation chatter from our dependencies' dependencies, printed on every run; nothing to act on.
for _message in (
    r".*set_vital.*",
    r".*isinstance\(treespec, LeafSpec\).*",
):
    warnings.filterwarnings("ignore", message=_message)
