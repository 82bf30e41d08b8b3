"""Training objectives as components: one module and one ``conf/objective/<name>.yaml`` each.

The YAML names the class by ``_target_``; the class names its config dataclass (``Config``) and
declares what it reads (chat, pairs, text), whether it needs DPO's reference pass, and whether its
loss is a token NLL (then ``val/ppl`` is logged). The data module, the reference pass and the
perplexity follow those declarations; nothing looks an objective up by name.
"""

from tonetune.training.objectives.base import Objective, Reads, StepResult, build_objective

__all__ = ["Objective", "Reads", "StepResult", "build_objective"]
