"""What ``max_seq_length`` does to a dataset before a run trains on it.

mlx-lm cuts every example at ``max_seq_length`` tokens and says so only on its own stdout (the worker's
log, never seen by an MCP client). The answer comes last, so a cut example loses the call it was meant
to teach, and one whose prompt alone fills the width teaches nothing: 8 tools' schemas in the prompt
already take ~1,000 tokens with the default 1024. The worker reads the lengths back, records them with
what the trainer saw, warns when examples are cut, and refuses a run in which every answer would be.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from tooltune.errors import TooltuneError


class SequenceLengths(BaseModel):
    max_seq_length: int
    examples: int
    longest: int
    truncated: int
    """Examples longer than max_seq_length: their end (the answer's end) is cut off."""
    answer_cut_off: int
    """Examples whose whole answer lies beyond max_seq_length: nothing of them is trained."""

    def warning(self) -> str | None:
        if not self.truncated:
            return None
        lost = f", {self.answer_cut_off} of them losing their whole answer" if self.answer_cut_off else ""
        return (
            f"{self.truncated} of {self.examples} training examples are longer than max_seq_length "
            f"{self.max_seq_length} tokens (the longest: {self.longest}), so their answers are cut "
            f"off{lost}; raise --max-seq-length to {self.longest} to train on them whole"
        )


class NothingToTrainError(TooltuneError):
    """Every training example's answer lies beyond max_seq_length."""


def sequence_lengths(rows: Iterable[tuple[list[int], int]], max_seq_length: int) -> SequenceLengths:
    """``rows``: each example's tokens and the offset where its trained part starts (mlx-lm's
    ``CacheDataset`` items; offset 0 without prompt masking)."""
    n = longest = truncated = cut = 0
    for tokens, offset in rows:
        n += 1
        longest = max(longest, len(tokens))
        truncated += len(tokens) > max_seq_length
        cut += offset >= max_seq_length
    return SequenceLengths(
        max_seq_length=max_seq_length, examples=n, longest=longest, truncated=truncated, answer_cut_off=cut
    )


def check_trainable(lengths: SequenceLengths, dataset: str) -> None:
    if lengths.examples and lengths.answer_cut_off == lengths.examples:
        raise NothingToTrainError(
            f"every training example of {dataset} has its answer beyond max_seq_length "
            f"{lengths.max_seq_length} tokens (the longest example: {lengths.longest}), so nothing would be "
            f"trained; raise --max-seq-length to {lengths.longest}"
        )
