"""What max_seq_length cuts off, read back before a run trains (tooltune/training/seq_lengths.py)."""

from __future__ import annotations

import pytest

from tooltune.training.seq_lengths import NothingToTrainError, check_trainable, sequence_lengths


def test_counts_cut_examples_and_lost_answers_and_names_the_fix() -> None:
    rows = [([1] * 10, 6), ([1] * 30, 12), ([1] * 40, 25), ([1] * 20, 20)]  # (tokens, answer offset)
    got = sequence_lengths(rows, 20)
    assert (got.examples, got.longest, got.truncated, got.answer_cut_off) == (4, 40, 2, 2)
    warning = got.warning()
    assert warning is not None
    assert "2 of 4 training examples are longer than max_seq_length 20" in warning
    assert "2 of them losing their whole answer" in warning and "--max-seq-length to 40" in warning
    check_trainable(got, "d")  # two examples still train: no error


def test_nothing_cut_means_no_warning() -> None:
    got = sequence_lengths([([1] * 8, 3), ([1] * 16, 4)], 16)
    assert got.truncated == got.answer_cut_off == 0 and got.longest == 16
    assert got.warning() is None


def test_every_answer_cut_off_refuses_the_run() -> None:
    got = sequence_lengths([([1] * 50, 30), ([1] * 60, 41)], 24)
    with pytest.raises(NothingToTrainError, match=r"every training example of d .* --max-seq-length to 60"):
        check_trainable(got, "d")


def test_a_non_finite_loss_still_stops_a_run_with_the_fixes_named() -> None:
    """The NaN guard the all-cut case used to reach (it still catches divergence and part-cut batches)."""
    from tooltune.training.worker import LossNotFiniteError, check_finite_loss

    check_finite_loss("train", 3, 0.5, 1024)
    with pytest.raises(
        LossNotFiniteError, match=r"loss became nan at iteration 7.*--max-seq-length \(now 1024\)"
    ):
        check_finite_loss("train", 7, float("nan"), 1024)
