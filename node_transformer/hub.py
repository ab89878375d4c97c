"""Translate raw text with a trained run, from Python:

    from node_transformer import hub
    model = hub.load("runs/demo")                       # checkpoint_best.pt; .cuda() moves it
    model.translate(["A man in a blue shirt is riding a bike down the street."], beam=5)

``load`` returns fairseq's ``GeneratorHubInterface`` whose tokenisation and BPE are the training data's
own (node_transformer/text.py, with the run's recorded BPE codes and dictionaries), so a sentence typed
with capitals and punctuation reaches the model as the training sentences did, and the German comes
back detokenised. ``scripts/translate.sh`` is this, on the command line.
"""
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from fairseq import checkpoint_utils
from fairseq.data import data_utils
from fairseq.hub_utils import GeneratorHubInterface

from node_experiments.length_bound import MAX_LEN_A, MAX_LEN_B
from node_experiments.run_dir import LANGUAGES, RunDir

from . import nfe
from .text import RECIPE_VERSION, Preparation

logger = logging.getLogger(__name__)


class TranslationInputError(ValueError):
    """A sentence the model cannot take; the message names it."""


@dataclass
class Translation:
    source: str  # the sentence as given
    prepared: str  # as the model saw it: lowercased, tokenised, BPE-split
    translation: str
    score: Optional[float]  # the hypothesis' score (mean log-probability per token, base e)
    nfe: Dict[str, float]  # NFE per sentence of the batch it was translated in, per NODE side


class NODETranslator(GeneratorHubInterface):
    """fairseq's hub interface with the run's own text preparation."""

    def __init__(self, cfg, task, models, preparation: Preparation):
        super().__init__(cfg, task, models)
        self.preparation = preparation
        task.report_generation_nfe_at_exit = False  # the NFE goes with each Translation instead

    def tokenize(self, sentence: str) -> str:
        return self.preparation.source(sentence)

    def apply_bpe(self, sentence: str) -> str:
        return sentence  # Preparation.source did it, with the run's codes

    def detokenize(self, sentence: str) -> str:
        return self.preparation.target(sentence)

    def remove_bpe(self, sentence: str) -> str:
        return sentence  # Preparation.target does it

    def _length_problem(self, tokens) -> Optional[str]:
        longest = self.max_positions[0] if isinstance(self.max_positions, tuple) else self.max_positions
        if longest is not None and len(tokens) > longest:
            return f"{len(tokens)} tokens long once prepared; the model takes at most {longest}"
        return None

    def problem(self, sentence) -> Optional[str]:
        """Why the model cannot take ``sentence``, or None."""
        if not isinstance(sentence, str):
            return f"a {type(sentence).__name__}, not a str"
        return self._length_problem(self.encode(sentence))

    def translate_with_details(self, sentences: List[str], beam: int = 5, max_len_a: float = MAX_LEN_A,
                               max_len_b: int = MAX_LEN_B, **kwargs) -> List[Translation]:
        """Each sentence's translation with its prepared form, score and NFE, at most max_len_a x its
        source + max_len_b tokens long (node_experiments/length_bound.py). An empty (or blank) sentence
        translates to an empty string without reaching the model. A sentence the model cannot take raises
        TranslationInputError naming it, before anything is translated. Other keyword arguments are
        fairseq generation options (``lenpen``, ``sampling``, ...)."""
        prepared, tokens = {}, {}
        for number, sentence in enumerate(sentences, 1):
            if not isinstance(sentence, str):
                raise TranslationInputError(f"sentence {number} is a {type(sentence).__name__}, not a str")
            prepared[number - 1] = self.tokenize(sentence)  # each sentence prepared once
            tokens[number - 1] = self.binarize(prepared[number - 1])
            problem = self._length_problem(tokens[number - 1])
            if problem is not None:
                raise TranslationInputError(f"sentence {number} is {problem}")
        wanted = [i for i, sentence in enumerate(sentences) if sentence.strip()]
        counts_before = dict(self.task.generation_nfe)
        hypos = self.generate([tokens[i] for i in wanted], beam, max_len_a=max_len_a, max_len_b=max_len_b,
                              **kwargs) if wanted else []
        per_sentence = _nfe_per_sentence(counts_before, self.task.generation_nfe)
        results = [Translation(sentence, "", "", None, {}) for sentence in sentences]
        for index, best in zip(wanted, (h[0] for h in hypos)):
            results[index] = Translation(sentences[index], prepared[index], self.decode(best["tokens"]),
                                         float(best["score"]), per_sentence)
        return results

    def translate(self, sentences: List[str], beam: int = 5, verbose: bool = False, **kwargs) -> List[str]:
        if isinstance(sentences, str):
            return self.translate([sentences], beam, verbose, **kwargs)[0]
        return [t.translation for t in self.translate_with_details(sentences, beam, **kwargs)]


def _nfe_per_sentence(before, after):
    sentences = after["sentences"] - before["sentences"]
    if not sentences:
        return {}
    return {nfe.SIDES[side]: (after[side] - before[side]) / sentences for side in nfe.SIDES
            if after[side] > before[side]}


def _data_from_checkpoint(cfg) -> Optional[Path]:
    """A run trained before runs recorded their data: the data directory its checkpoint names, if it
    is still there and was prepared by scripts/prepare_multi30k.sh."""
    data = Path(str(cfg.task.data).split(":")[0])
    prepared = data.parent
    if (prepared / "prepared.json").is_file() and (prepared / "bpe" / "codes").is_file():
        return data
    return None


def _languages(task_cfg, dicts: Path):
    """The run's language pair: as configured, else as recorded, else as fairseq infers it from the data."""
    if task_cfg.source_lang and task_cfg.target_lang:
        return task_cfg.source_lang, task_cfg.target_lang
    if (dicts / LANGUAGES).is_file():
        recorded = json.loads((dicts / LANGUAGES).read_text())
        return recorded["source_lang"], recorded["target_lang"]
    source, target = data_utils.infer_language_pair(str(dicts))
    if source is None:
        raise FileNotFoundError(f"cannot tell the run's languages: no --source-lang/--target-lang in its checkpoint, "
                                f"no {dicts / LANGUAGES}, no binarised files in {dicts}")
    return source, target


def _check_recipe(prepared_json: Path):
    recipe = json.loads(prepared_json.read_text()).get("recipe")
    if recipe != RECIPE_VERSION:
        raise RuntimeError(
            f"{prepared_json}: data prepared by preparation recipe {recipe}, but this node-transformer "
            f"prepares text by recipe {RECIPE_VERSION}; translations would not match training"
        )


@dataclass
class RunFiles:
    """What loading a run needs: its checkpoint (loaded), its dictionaries and its text preparation."""

    run: RunDir
    checkpoint: Path
    state: dict
    dicts: Path
    codes: Path
    prepared: Path


def run_files(run, checkpoint: str = "checkpoint_best.pt", data=None) -> RunFiles:
    """Find RUN's checkpoint and the data it was trained on: the data it recorded, else the data its
    checkpoint names (a run trained before node-transformer 0.2), else ``data``; the recipe checked."""
    run = RunDir(run)
    path = run.checkpoint(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint {checkpoint} (looked in {run.checkpoints})")
    state = checkpoint_utils.load_checkpoint_to_cpu(str(path))
    task_cfg = state["cfg"].task
    if data is not None:
        dicts, codes, prepared = Path(data), Path(data).parent / "bpe" / "codes", Path(data).parent / "prepared.json"
    elif run.recorded_data() is not None:
        dicts = run.recorded_data()
        codes, prepared = dicts / "bpe.codes", dicts / "prepared.json"
    elif _data_from_checkpoint(state["cfg"]) is not None:
        dicts = _data_from_checkpoint(state["cfg"])
        codes, prepared = dicts.parent / "bpe" / "codes", dicts.parent / "prepared.json"
        logger.warning(f"{run.path} records no data (trained before node-transformer 0.2); using {dicts}, "
                       "the data its checkpoint was trained on")
    else:
        raise FileNotFoundError(
            f"{run.path} records no data (trained before node-transformer 0.2: no {run.data}) and the data its "
            f"checkpoint names ({task_cfg.data}) is gone; pass the prepared data directory, "
            "e.g. load(run, data='data/multi30k_en_de/bin') or scripts/translate.sh --data DIR"
        )
    if not dicts.is_dir():
        raise FileNotFoundError(f"no data directory {dicts}")
    for needed in (codes, prepared):
        if not needed.is_file():
            raise FileNotFoundError(f"{needed} is missing: cannot prepare text as {run.path} was trained")
    _check_recipe(prepared)
    return RunFiles(run, path, state, dicts, codes, prepared)


def load(run, checkpoint: str = "checkpoint_best.pt", data=None) -> NODETranslator:
    """The translator of RUN (a directory written by scripts/train.sh).

    ``checkpoint``: a file name in RUN/checkpoints, or a path. ``data``: a prepared data directory
    (``.../bin``) for a run that recorded none (trained before node-transformer 0.2) and whose
    training data has moved.
    """
    files = run_files(run, checkpoint, data)
    dicts = files.dicts
    src, tgt = _languages(files.state["cfg"].task, dicts)
    for needed in (dicts / f"dict.{src}.txt", dicts / f"dict.{tgt}.txt"):
        if not needed.is_file():
            raise FileNotFoundError(f"{needed} is missing: cannot prepare text as {files.run.path} was trained")
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(files.checkpoint)], arg_overrides={"data": str(dicts), "source_lang": src, "target_lang": tgt}
    )
    return NODETranslator(cfg, task, models, Preparation(files.codes, src, tgt))
