"""A pretrained ODE BERT from Python, with the training data's own text preparation:

    from node_transformer.models.node_roberta import NODERobertaModel
    roberta = NODERobertaModel.from_pretrained("runs/node_roberta_tiny")   # checkpoint_best.pt
    roberta.fill_mask("a man in a blue <mask> .", topk=3)
    features = roberta.extract_features(roberta.encode("two dogs play in the snow ."))
    roberta.last_nfe                                                          # {"encoder": 26}

fairseq's RobertaHubInterface (encode, decode, fill_mask, extract_features, classification heads), whose
BPE is this project's preparation (node_transformer/text.py: lowercase, Moses, the run's BPE codes).
"""
from typing import Dict

from fairseq import checkpoint_utils
from fairseq.models.roberta import RobertaHubInterface

from . import nfe
from .hub import run_files
from .text import BPE_SEPARATOR, Preparation

DICTIONARY = "dict.txt"  # the masked-LM task's one dictionary
LANGUAGE = "en"  # the Moses rules a sentence is tokenised by (English and German tokenise alike here)


class PreparedText:
    """The ``bpe`` of RobertaHubInterface: a raw sentence to BPE pieces and back."""

    def __init__(self, preparation: Preparation):
        self.preparation = preparation

    def encode(self, sentence: str) -> str:
        return self.preparation.source(sentence) if sentence.strip() else ""

    def decode(self, pieces: str) -> str:
        return self.preparation.target(pieces)

    def is_beginning_of_word(self, piece: str) -> bool:
        return not piece.endswith(BPE_SEPARATOR)


class NODERobertaHub(RobertaHubInterface):
    def __init__(self, cfg, task, model, preparation: Preparation):
        super().__init__(cfg, task, model)
        self.bpe = PreparedText(preparation)

    @property
    def last_nfe(self) -> Dict[str, int]:
        """The function evaluations of the last forward solve, per NODE side ({} for a classic encoder)."""
        return {nfe.SIDES[side]: block.stats.nfe_forward for side, block in nfe.node_blocks(self.model).items()}

    def fill_mask(self, masked_input: str, topk: int = 5):
        """fairseq's fill_mask, [(filled sentence, probability, predicted piece)], the piece put where
        <mask> stands (fairseq's own assumes GPT-2 pieces that carry their leading space)."""
        nfe.reset(self.model)
        return [(masked_input.replace("<mask>", token, 1), score, token)
                for _, score, token in super().fill_mask(masked_input, topk)]

    def extract_features(self, tokens, return_all_hiddens=False):
        nfe.reset(self.model)
        return super().extract_features(tokens, return_all_hiddens=return_all_hiddens)


def load(run, checkpoint: str = "checkpoint_best.pt", data=None) -> NODERobertaHub:
    """The hub interface of a masked-LM or fine-tuning RUN (a run directory; ``checkpoint`` a file name in
    RUN/checkpoints or a path; ``data`` the prepared data for a run that recorded none)."""
    files = run_files(run, checkpoint, data)
    if not any((files.dicts / part / DICTIONARY).is_file() for part in ("", "input0")):
        raise FileNotFoundError(f"{files.dicts / DICTIONARY} is missing: {files.run.path} is not a masked-LM run "
                                "(a translation run loads with node_transformer.hub.load)")
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(files.checkpoint)], arg_overrides={"data": str(files.dicts)})
    return NODERobertaHub(cfg, task, models[0], Preparation(files.codes, LANGUAGE, LANGUAGE))
