"""The arena: blind side-by-side comparisons in a browser, whose votes become preference data."""
