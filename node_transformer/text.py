"""The text preparation of the Multi30k data, in one place: what scripts/multi30k.py applies to the
training data and what translation applies to a user's sentence (and undoes on the output).

Lowercase, Moses punctuation normalisation and tokenisation (sacremoses), then subword-nmt BPE with the
codes learnt on the training data. ``RECIPE_VERSION`` is recorded in every prepared data directory
(``prepared.json``); translation refuses data prepared by another recipe.
"""
from pathlib import Path
from typing import List

RECIPE_VERSION = 1
BPE_SEPARATOR = "@@"


def moses_tokenize(lines: List[str], lang: str) -> List[str]:
    """Lowercased, Moses-normalised and Moses-tokenised lines (no escaping: '&' stays '&')."""
    from sacremoses import MosesPunctNormalizer, MosesTokenizer

    normalizer, tokenizer = MosesPunctNormalizer(lang=lang), MosesTokenizer(lang=lang)
    return [tokenizer.tokenize(normalizer.normalize(line.lower()), escape=False, return_str=True) for line in lines]


class Preparation:
    """The source side's preparation and the target side's inverse, for one prepared data directory."""

    def __init__(self, bpe_codes: Path, source_lang: str, target_lang: str):
        from sacremoses import MosesDetokenizer
        from subword_nmt.apply_bpe import BPE

        with open(bpe_codes, encoding="utf-8") as codes:
            self.bpe = BPE(codes, separator=BPE_SEPARATOR)
        self.source_lang = source_lang
        self.detokenizer = MosesDetokenizer(lang=target_lang)

    def source(self, sentence: str) -> str:
        """A raw sentence as the model saw its training sources: tokenised, lowercased, BPE-split."""
        return self.bpe.process_line(moses_tokenize([sentence], self.source_lang)[0])

    def target(self, sentence: str) -> str:
        """A translation in BPE pieces back to plain text: pieces joined, Moses-detokenised."""
        words = (sentence + " ").replace(BPE_SEPARATOR + " ", "").split()
        return self.detokenizer.detokenize(words)
