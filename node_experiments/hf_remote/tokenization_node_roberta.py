"""The ODE BERT's tokenizer: node-transformer's text preparation (lowercase, Moses punctuation normalisation
and tokenisation, subword-nmt BPE with the training data's codes) and fairseq's dictionary, so that a
sentence reaches the exported model as it reached the fairseq one."""
import json
import os
import shutil
from typing import List, Optional

from transformers import PreTrainedTokenizer

VOCAB_FILE = "vocab.json"  # the fairseq dictionary's symbols, in id order
CODES_FILE = "bpe.codes"
BPE_SEPARATOR = "@@"
LANGUAGE = "en"


class NODERobertaTokenizer(PreTrainedTokenizer):
    vocab_files_names = {"vocab_file": VOCAB_FILE, "bpe_codes": CODES_FILE}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file, bpe_codes, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                 cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", **kwargs):
        from sacremoses import MosesDetokenizer, MosesPunctNormalizer, MosesTokenizer
        from subword_nmt.apply_bpe import BPE

        with open(vocab_file, encoding="utf-8") as f:
            self.symbols = json.load(f)
        self.ids = {symbol: index for index, symbol in enumerate(self.symbols)}
        self.vocab_file, self.bpe_codes = vocab_file, bpe_codes
        with open(bpe_codes, encoding="utf-8") as codes:
            self.bpe = BPE(codes, separator=BPE_SEPARATOR)
        self.normalizer, self.moses = MosesPunctNormalizer(lang=LANGUAGE), MosesTokenizer(lang=LANGUAGE)
        self.detokenizer = MosesDetokenizer(lang=LANGUAGE)
        super().__init__(bos_token=bos_token, eos_token=eos_token, sep_token=sep_token, cls_token=cls_token,
                         unk_token=unk_token, pad_token=pad_token, mask_token=mask_token, **kwargs)

    @property
    def vocab_size(self):
        return len(self.symbols)

    def get_vocab(self):
        return dict(self.ids)

    def _tokenize(self, text, **kwargs):
        if not text.strip():
            return []
        tokens = self.moses.tokenize(self.normalizer.normalize(text.lower()), escape=False, return_str=True)
        return self.bpe.process_line(tokens).split()

    def _convert_token_to_id(self, token):
        return self.ids.get(token, self.ids[str(self.unk_token)])

    def _convert_id_to_token(self, index):
        return self.symbols[index]

    def convert_tokens_to_string(self, tokens):
        words = (" ".join(tokens) + " ").replace(BPE_SEPARATOR + " ", "").split()
        return self.detokenizer.detokenize(words)

    def build_inputs_with_special_tokens(self, ids0: List[int], ids1: Optional[List[int]] = None) -> List[int]:
        """fairseq RoBERTa's ``<s> A </s>`` and ``<s> A </s> </s> B </s>``."""
        bos, eos = self.bos_token_id, self.eos_token_id
        return [bos, *ids0, eos] if ids1 is None else [bos, *ids0, eos, eos, *ids1, eos]

    def get_special_tokens_mask(self, ids0, ids1=None, already_has_special_tokens=False):
        if already_has_special_tokens:
            return super().get_special_tokens_mask(ids0, ids1, already_has_special_tokens=True)
        return [1, *[0] * len(ids0), 1] if ids1 is None else [1, *[0] * len(ids0), 1, 1, *[0] * len(ids1), 1]

    def save_vocabulary(self, save_directory, filename_prefix=None):
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        vocab, codes = (os.path.join(save_directory, prefix + name) for name in (VOCAB_FILE, CODES_FILE))
        with open(vocab, "w", encoding="utf-8") as f:
            json.dump(self.symbols, f, ensure_ascii=False)
        if os.path.abspath(self.bpe_codes) != os.path.abspath(codes):
            shutil.copyfile(self.bpe_codes, codes)
        return vocab, codes
