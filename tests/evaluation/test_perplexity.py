import math

import pytest
import torch
import torch.nn.functional as F

from prunesweep.data.corpora import evaluation_text
from prunesweep.evaluation.perplexity import leading_tokens, perplexity, token_windows
from tests.models import tiny_model


@pytest.fixture(scope="module")
def tiny():
    return tiny_model("gpt2", n_layer=1)


def test_windows_are_non_overlapping_and_drop_the_tail():
    windows = token_windows(torch.arange(10), seq_len=4)
    assert windows.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert token_windows(torch.arange(10), seq_len=2, max_tokens=5).tolist() == [[0, 1], [2, 3]]


def test_perplexity_matches_hand_computation(tiny):
    text = "the quick brown fox jumps over the lazy dog " * 6
    ids = tiny.tokenizer(text, add_special_tokens=False).input_ids
    seq_len = 16
    nll, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - seq_len + 1, seq_len):
            window = torch.tensor([ids[start : start + seq_len]])
            logp = F.log_softmax(tiny.model(window).logits[0].double(), dim=-1)
            for pos in range(seq_len - 1):
                nll -= logp[pos, window[0, pos + 1]].item()
                count += 1
    expected = math.exp(nll / count)
    assert perplexity(tiny.model, tiny.tokenizer, text, seq_len=seq_len, batch_size=3) == pytest.approx(
        expected, rel=1e-4
    )


def test_random_model_perplexity_is_near_vocab_size(tiny):
    value = perplexity(tiny.model, tiny.tokenizer, "abcdefgh" * 40, seq_len=32)
    assert 50 < value < 1000


@pytest.mark.parametrize("max_tokens", [1, 300, 5000])
def test_capped_tokenization_keeps_the_tokens_of_the_whole_text(tiny, data_dir, max_tokens):
    text = evaluation_text("wikitext2", data_dir)[0][:200_000]
    whole = tiny.tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids[0]
    assert torch.equal(leading_tokens(tiny.tokenizer, text, max_tokens), whole[:max_tokens])
    assert torch.equal(leading_tokens(tiny.tokenizer, text, None), whole)


def test_capped_tokenization_of_one_long_line(tiny):
    text = "x" * 10_000
    assert leading_tokens(tiny.tokenizer, text, 50).numel() == 50
