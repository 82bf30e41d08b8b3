"""DPO's reference: the starting model's log-probabilities of every pair, computed once before training.

The policy starts as the reference (the base, or the SFT run it continues), so one forward pass over
the pairs before the first update gives the reference's numbers; training then holds one model.
They are stored with the run (``reference_logps.pt``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from tqdm.auto import tqdm

from tonetune.data.preference import PreferenceDataModule
from tonetune.models.shared_prompt import pair_logprobs

log = logging.getLogger(__name__)
REFERENCE_FILE = "reference_logps.pt"


@torch.inference_mode()
def split_logprobs(model: torch.nn.Module, data: PreferenceDataModule, split: str) -> torch.Tensor:
    """[pairs, 2]: the summed log-probability of each pair's chosen and rejected answer, in split order."""
    loader = data.loader(data.split(split), data.eval_batch_size)
    rows = []
    for batch in tqdm(loader, desc=f"Reference log-probabilities ({split})", unit="batch"):
        batch = {k: v.to(model.device) for k, v in batch.items()}
        logps, _ = pair_logprobs(model, batch)
        half = logps.shape[0] // 2
        rows.append(torch.stack([logps[:half], logps[half:]], dim=1).float().cpu())
    return torch.cat(rows)


def compute_reference(
    model: torch.nn.Module, data: PreferenceDataModule, run_dir: Path
) -> dict[str, torch.Tensor]:
    """Reference log-probabilities of the train and validation pairs, attached to the data and saved."""
    was_training = model.training
    model.eval()
    try:
        reference = {split: split_logprobs(model, data, split) for split in ("train", "validation")}
    finally:
        model.train(was_training)
    for split, logps in reference.items():
        data.set_reference(split, logps)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.save(reference, run_dir / REFERENCE_FILE)
    log.info(
        "Reference log-probabilities of %d pairs saved to %s",
        sum(len(v) for v in reference.values()),
        run_dir / REFERENCE_FILE,
    )
    return reference
