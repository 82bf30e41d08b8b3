"""tonetune: teach a small open LLM to speak in a persona's tone."""

import logging

__version__ = "0.1.0"

# bitsandbytes tries to fetch an optional CPU kernel from the Hub and warns when it cannot; its
# built-in kernels work, so the warning says nothing a tonetune user can act on.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
