"""Exact incremental decoding on fixed grids: each generation step solves for the new position alone,
and its scores equal a full-prefix recomputation; beam search gives the same translations."""
import pytest
import torch

from helpers import TINY_DIMS, batch, build

FIXED_GRID = ["--node-method", "rk4", "--node-step-size", "0.5", "--node-augment-dims", "1", "--node-time-dependent",
              "--encoder-layers", "1"]
VARIANTS = {
    "full_decoder": ["--node-decoder", *FIXED_GRID],
    "separated_decoder": ["--node-decoder", "--node-separated-decoder", *FIXED_GRID],
    "full_decoder_midpoint_node_encoder": ["--node-decoder", "--node-encoder", "--node-method", "midpoint",
                                           "--node-step-size", "0.25"],
    "layer_full_decoder": ["--node-decoder", "--node-function", "layer", *FIXED_GRID],
    "layer_separated_decoder": ["--node-decoder", "--node-separated-decoder", "--node-function", "layer", *FIXED_GRID],
}


def model_in_float64(data, flags):
    torch.manual_seed(0)
    task, model, _ = build(data, *TINY_DIMS, *flags)
    return task, model.double().eval()


def log_probs(model, net_output):
    return model.get_normalized_probs(net_output, log_probs=True)[:, -1]


@pytest.mark.parametrize("flags", VARIANTS.values(), ids=VARIANTS.keys())
def test_every_step_scores_equal_a_full_prefix_recomputation(reverse_data, flags):
    task, model = model_in_float64(reverse_data, flags)
    assert model.decoder.incremental
    sample = batch(task, split="test", size=3)
    encoder_out = model.encoder(sample["net_input"]["src_tokens"], sample["net_input"]["src_lengths"])
    generator = torch.Generator().manual_seed(1)
    prefix = torch.full((3, 1), task.target_dictionary.eos())
    state = {}
    block = model.node_blocks()["dec"]
    with torch.no_grad():
        for step in range(8):
            block.stats.reset()
            incremental = model.decoder(prefix, encoder_out=encoder_out, incremental_state=state)
            assert incremental[0].shape[1] == 1  # the new position alone went through the solve
            nfe_incremental = block.stats.nfe_forward
            block.stats.reset()
            full = model.decoder(prefix, encoder_out=encoder_out)
            assert block.stats.nfe_forward == nfe_incremental  # the same evaluations, on one position
            torch.testing.assert_close(log_probs(model, incremental), log_probs(model, full), rtol=0, atol=1e-6)
            tokens = torch.randint(4, len(task.target_dictionary), (3, 1), generator=generator)
            prefix = torch.cat([prefix, tokens], dim=1)


def _beam_search(task, model, sample, incremental):
    from fairseq.sequence_generator import SequenceGenerator

    model.decoder.incremental = incremental
    generator = SequenceGenerator([model], task.target_dictionary, beam_size=5, max_len_a=0, max_len_b=10)
    with torch.no_grad():
        return generator.generate([model], sample)


@pytest.mark.parametrize("flags", VARIANTS.values(), ids=VARIANTS.keys())
def test_beam5_translations_are_identical(reverse_data, flags):
    task, model = model_in_float64(reverse_data, flags)
    sample = batch(task, split="test", size=6)
    with_cache = _beam_search(task, model, sample, incremental=True)
    recomputed = _beam_search(task, model, sample, incremental=False)
    for ours, reference in zip(with_cache, recomputed):
        assert len(ours) == len(reference) == 5
        for hypo, expected in zip(ours, reference):
            assert hypo["tokens"].tolist() == expected["tokens"].tolist()
            # fairseq's SequenceGenerator keeps the running scores in float32 whatever the model's dtype
            # (sequence_generator.py: `.float()`): a few float32 ulps of a score of magnitude ~5.
            torch.testing.assert_close(hypo["positional_scores"], expected["positional_scores"], rtol=0, atol=1e-5)


def test_adaptive_methods_recompute_the_prefix(reverse_data):
    """An adaptive solver's steps depend on the whole state: there, no cache is exact."""
    _, model = model_in_float64(reverse_data, ["--node-decoder", "--encoder-layers", "1"])
    assert not model.decoder.incremental
