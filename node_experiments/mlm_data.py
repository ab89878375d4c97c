"""Data for the ODE BERT, made from the prepared Multi30k (scripts/prepare_multi30k.sh's OUT: bpe/, bin/):

    python -m node_experiments.mlm_data pretrain --multi30k data/multi30k_en_de --out data/mlm_en_de [--langs en de]
    python -m node_experiments.mlm_data pairs --multi30k data/multi30k_en_de --out data/pairs_en_de

``pretrain``: a masked-LM corpus for fairseq-preprocess --only-source: each split's BPE lines of the chosen
languages (train, valid, and test = test2016), binarised with the translation data's dictionary (one joint
dictionary for English and German; refused if the two languages' dictionaries differ) into OUT/bin, for
``--task node_masked_lm``. ``pairs``: a downstream task for fairseq's sentence_prediction: is the German
caption the translation of the English one? Each English sentence of a split is paired with its own German
translation or, for half of them (chosen with --seed), with the German of another sentence of the same
split; labels 1 (translation) and 0. Written as fairseq's sentence-prediction layout: OUT/bin/input0
(English), input1 (German), label.

Both keep the translation data's BPE codes and recipe (OUT/bpe/codes, OUT/prepared.json), so that a run
trained on them records what node_transformer.hub needs to prepare raw text.
"""
import argparse
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

SPLITS = {"train": "train", "valid": "valid", "test": "test"}  # ours -> the Multi30k subset's fairseq name
LANGUAGES = ("en", "de")


class DataError(ValueError):
    pass


def _lines(multi30k, split, lang):
    path = Path(multi30k) / "bpe" / f"{SPLITS[split]}.{lang}"
    if not path.is_file():
        raise DataError(f"no {path} (prepare Multi30k first: scripts/prepare_multi30k.sh)")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{path} holds no lines")
    return lines


def joint_dictionary(multi30k, langs) -> Path:
    """The translation data's dictionary of LANGS: one file, or the same for every language."""
    dicts = [Path(multi30k) / "bin" / f"dict.{lang}.txt" for lang in langs]
    missing = [str(d) for d in dicts if not d.is_file()]
    if missing:
        raise DataError(f"no dictionary {', '.join(missing)}")
    if any(d.read_bytes() != dicts[0].read_bytes() for d in dicts[1:]):
        raise DataError(f"the dictionaries of {' and '.join(langs)} differ ({', '.join(map(str, dicts))}): "
                        "one masked LM needs one joint dictionary (scripts/prepare_multi30k.sh makes one)")
    return dicts[0]


def _keep_preparation(multi30k, out):
    """The BPE codes and recipe beside the binarised data, where RunDir.record_data looks for them."""
    (out / "bpe").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(multi30k) / "bpe" / "codes", out / "bpe" / "codes")
    shutil.copyfile(Path(multi30k) / "prepared.json", out / "prepared.json")


def _preprocess(text_prefix, destdir, srcdict=None):
    """fairseq-preprocess --only-source of TEXT_PREFIX.{train,valid,test} into DESTDIR."""
    command = [str(Path(sys.executable).parent / "fairseq-preprocess"), "--only-source",
               "--trainpref", f"{text_prefix}.train", "--validpref", f"{text_prefix}.valid",
               "--testpref", f"{text_prefix}.test", "--destdir", str(destdir), "--workers", "1"]
    if srcdict is not None:
        command += ["--srcdict", str(srcdict)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DataError(f"fairseq-preprocess failed:\n{proc.stderr[-2000:]}")


def pretraining_corpus(multi30k, out, langs=LANGUAGES):
    """OUT/text/corpus.SPLIT (the languages' lines, in order) and OUT/bin (dict.txt, SPLIT.bin/.idx)."""
    out = Path(out)
    dictionary = joint_dictionary(multi30k, langs)
    text = out / "text"
    text.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in SPLITS:
        lines = [line for lang in langs for line in _lines(multi30k, split, lang)]
        (text / f"corpus.{split}").write_text("\n".join(lines) + "\n", encoding="utf-8")
        counts[split] = len(lines)
    _preprocess(text / "corpus", out / "bin", dictionary)
    _keep_preparation(multi30k, out)
    (out / "bin" / "corpus.json").write_text(json.dumps({"languages": list(langs), "lines": counts}) + "\n")
    return out / "bin"


def translation_pairs(multi30k, out, seed=1):
    """OUT/bin/{input0,input1,label} for fairseq's sentence_prediction; returns OUT/bin."""
    out = Path(out)
    dictionary = joint_dictionary(multi30k, LANGUAGES)
    text = out / "text"
    text.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    counts = {}
    for split in SPLITS:
        english, german = _lines(multi30k, split, "en"), _lines(multi30k, split, "de")
        if len(english) != len(german):
            raise DataError(f"{split}: {len(english)} English lines for {len(german)} German ones")
        if len(english) < 2:
            raise DataError(f"{split}: a shuffled pair needs at least two sentences, got {len(english)}")
        paired, labels = [], []
        for i in range(len(english)):
            if rng.random() < 0.5:
                paired.append(german[i])
                labels.append("1")
            else:
                other = rng.randrange(len(german) - 1)
                paired.append(german[other + (other >= i)])  # any sentence but its own
                labels.append("0")
        for name, lines in (("input0", english), ("input1", paired), ("label", labels)):
            (text / f"{name}.{split}").write_text("\n".join(lines) + "\n", encoding="utf-8")
        counts[split] = {"pairs": len(labels), "translations": labels.count("1")}
    for name in ("input0", "input1"):
        _preprocess(text / name, out / "bin" / name, dictionary)
    _preprocess(text / "label", out / "bin" / "label")
    _keep_preparation(multi30k, out)
    (out / "bin" / "pairs.json").write_text(json.dumps({"seed": seed, "splits": counts}) + "\n")
    return out / "bin"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m node_experiments.mlm_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("pretrain", "the masked-LM corpus"), ("pairs", "the translation-or-not pairs")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--multi30k", type=Path, default=Path("data/multi30k_en_de"),
                             help="scripts/prepare_multi30k.sh's output (default data/multi30k_en_de)")
        command.add_argument("--out", type=Path, required=True)
        if name == "pretrain":
            command.add_argument("--langs", nargs="+", choices=LANGUAGES, default=list(LANGUAGES),
                                 help="the languages of the corpus (default: en de)")
        else:
            command.add_argument("--seed", type=int, default=1, help="which pairs are shuffled (default 1)")
    args = parser.parse_args(argv)
    try:
        if args.command == "pretrain":
            if len(set(args.langs)) != len(args.langs):
                parser.error("--langs names a language twice")
            written = pretraining_corpus(args.multi30k, args.out, args.langs)
        else:
            written = translation_pairs(args.multi30k, args.out, args.seed)
    except DataError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
