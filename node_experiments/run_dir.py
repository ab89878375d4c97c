"""A run directory: the one place its layout is spelt, and how a run is trained into it and translated.

    RUN/
      command.txt        the fairseq-train command of the last training call
      train.log          fairseq-train's log, appended to by every (resumed) call
      checkpoints/       fairseq's --save-dir (checkpoint_best.pt, checkpoint_last.pt, interval checkpoints)
      tb/                fairseq's --tensorboard-logdir
      data/              what translating needs of the training data (dictionaries, BPE codes, recipe)
      gen/SUBSET.txt     fairseq-generate's output per test set; gen/SUBSET.log its log, gen/generate.log all, appended
      gen/SUBSET.json    a finished test set: what it was translated with, and its sentences/s
      gen/SUBSET.KofN.*  the same for the K-th of N shards of a test set translated in shards
      results.json       the scores of the last translation (node_experiments.scoring)

    python -m node_experiments.run_dir train CONFIG [FAIRSEQ_FLAGS...]     (scripts/train.sh)
    python -m node_experiments.run_dir translate RUN [--checkpoint FILE] [--subsets 'test test1'] [FLAGS...]
    python -m node_experiments.run_dir record DATA RUN

Environment: DATA (the binarised data, default data/multi30k_en_de/bin), RUNS (where `train` puts
RUNS/NAME, default runs).
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from .experiment_config import flag_value
from .length_bound import FLAGS as LENGTH_BOUND_FLAGS

REPO = Path(__file__).resolve().parents[1]
USER_DIR = REPO / "node_transformer"  # the plugin, as fairseq's --user-dir
SUBSETS = {"test": "test2016_flickr", "test1": "test2017_flickr", "test2": "test2017_mscoco"}  # fairseq's names
LANGUAGES = "languages.json"  # in RUN/data: fairseq infers the pair from binarised files, which a run does not keep


def default_data() -> Path:
    """The binarised Multi30k every tool trains on unless told otherwise: $DATA, else the repository's."""
    return Path(os.environ.get("DATA", REPO / "data" / "multi30k_en_de" / "bin"))


DATA_PARTS = ("", "input0", "label")  # where fairseq's tasks keep dictionaries: translation and masked LM
# at the top (dict.LANG.txt, dict.txt), sentence prediction in input0/ and label/


def check_data(data) -> Optional[str]:
    """What is wrong with a binarised data directory, or None."""
    if not any(list((Path(data) / part).glob("dict*.txt")) for part in DATA_PARTS):
        return (f"no binarised data in '{data}' (no dictionary: run scripts/prepare_multi30k.sh, or "
                "python -m node_experiments.mlm_data for the masked-LM data)")
    return None


def device_flags() -> List[str]:
    """fairseq uses every visible GPU by itself (one process each); without one, it needs --cpu."""
    import torch

    return [] if torch.cuda.is_available() else ["--cpu"]


def _console_script(name) -> str:
    return str(Path(sys.executable).parent / name)


def _run_logged(command, log, echo, started=None, **kwargs) -> int:
    """COMMAND with its output appended to LOG (an open file), and also to our stdout when ECHO; STARTED, if
    given, is called with the running process (to signal it)."""
    output, buffering = (subprocess.PIPE, 1) if echo else (log, -1)  # line by line to our stdout
    with subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=REPO, text=True, bufsize=buffering,
                          **kwargs) as proc:
        if started is not None:
            started(proc)
        if echo:
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
        return proc.wait()


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tb"

    @property
    def train_log(self) -> Path:
        return self.path / "train.log"

    @property
    def command_file(self) -> Path:
        return self.path / "command.txt"

    @property
    def data(self) -> Path:
        return self.path / "data"

    @property
    def gen(self) -> Path:
        return self.path / "gen"

    @property
    def generate_log(self) -> Path:
        return self.gen / "generate.log"

    @property
    def scores_file(self) -> Path:
        return self.path / "results.json"

    def checkpoint(self, name="checkpoint_best.pt") -> Path:
        """A checkpoint by its file name in checkpoints/ (a path is returned as it is)."""
        path = Path(name)
        return path if path.is_file() or path.parent != Path(".") else self.checkpoints / name

    def generation(self, subset) -> Path:
        return self.gen / f"{subset}.txt"

    def generation_log(self, subset) -> Path:
        return self.gen / f"{subset}.log"

    def generation_done(self, subset) -> Path:
        return self.gen / f"{subset}.json"

    def finished_translations(self) -> List[str]:
        """The test sets and shards of one whose translation finished (gen/PIECE.json), whatever it was made
        with."""
        return sorted(path.stem for path in self.gen.glob("*.json"))

    def translation_files(self, subset) -> List[Path]:
        return [self.generation_done(subset), self.generation(subset), self.generation_log(subset)]

    def mark_finished(self, piece, made_with: dict, translated):
        """Record PIECE's translation (gen/PIECE.txt, its log gen/PIECE.log: a test set or a shard of one) as
        finished, made as MADE_WITH (translated_with) says; TRANSLATED: training_log.Translated."""
        self.generation_done(piece).write_text(json.dumps(
            {"made_with": made_with, "sentences_per_second": translated.sentences_per_second,
             "translated": translated._asdict()}) + "\n")

    def translated_earlier(self, subset, made_with: dict) -> Optional[float]:
        """SUBSET's sentences/s where its translation finished earlier as MADE_WITH says (the checkpoint's
        digest, the data and the flags), else None."""
        done = self.generation_done(subset)
        if not (done.is_file() and self.generation(subset).is_file()):
            return None
        finished = json.loads(done.read_text())
        return finished["sentences_per_second"] if finished["made_with"] == made_with else None

    def log_text(self) -> str:
        return self.train_log.read_text() if self.train_log.is_file() else ""

    def training(self):
        """What the run's log says it did (node_experiments.training_log.Training); ValueError if it never
        trained."""
        from .training_log import read_training

        return read_training(self.log_text())

    def training_so_far(self):
        """training(), or Training.empty() where the run has not begun training."""
        from .training_log import training_so_far

        return training_so_far(self.log_text())

    # --- what it records of its data ---
    def record_data(self, data) -> Path:
        """Copy into data/ what translating needs of the prepared data directory DATA (.../bin): the
        dictionaries, and the BPE codes and recipe of scripts/prepare_multi30k.sh where it made them. Then
        the run translates wherever it goes."""
        from fairseq.data.data_utils import infer_language_pair

        data, record = Path(data), self.data
        record.mkdir(parents=True, exist_ok=True)
        source, target = infer_language_pair(str(data))
        if source is not None:
            (record / LANGUAGES).write_text(json.dumps({"source_lang": source, "target_lang": target}) + "\n")
        for part in DATA_PARTS:
            for dictionary in (data / part).glob("dict*.txt"):
                (record / part).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(dictionary, record / part / dictionary.name)
        prepared = data.parent
        if (prepared / "bpe" / "codes").is_file() and (prepared / "prepared.json").is_file():
            shutil.copyfile(prepared / "bpe" / "codes", record / "bpe.codes")
            shutil.copyfile(prepared / "prepared.json", record / "prepared.json")
        return record

    def recorded_data(self) -> Optional[Path]:
        return self.data if (self.data / "prepared.json").is_file() else None

    # --- training and translation ---
    def train(self, data, flags, *, fresh=False, echo=False, started=None) -> int:
        """fairseq-train DATA with FLAGS into this run, appending to train.log (fairseq resumes from
        checkpoints/checkpoint_last.pt by itself); FRESH empties the run first; STARTED is called with the
        running fairseq-train. Returns fairseq's exit code."""
        if fresh and self.path.exists():
            shutil.rmtree(self.path)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.record_data(data)
        command = [_console_script("fairseq-train"), str(data), "--user-dir", str(USER_DIR), *flags,
                   "--save-dir", str(self.checkpoints), "--tensorboard-logdir", str(self.tensorboard), *device_flags()]
        self.command_file.write_text(" ".join(command) + "\n")
        with open(self.train_log, "a") as log:
            return _run_logged(command, log, echo, started)

    def translate(self, data, checkpoint="checkpoint_best.pt", subsets=tuple(SUBSETS), extra_flags=(),
                  *, echo=False, keep_finished=False, shards=1, started=None) -> "Translation":
        """Beam-5 fairseq-generate of each test set with CHECKPOINT, each translation at most 1.2 x its source
        + 10 tokens long (length_bound.py; EXTRA_FLAGS come after and replace it), then scored
        (node_experiments.scoring) into results.json. fairseq-generate's log goes to gen/SUBSET.log and is
        appended to gen/generate.log. KEEP_FINISHED keeps each test set translated earlier with the same
        checkpoint, data and flags (an interrupted study goes on with the next test set: on 2 cores a slow
        model's test set can take hours). SHARDS cuts each test set into up to that many pieces, each a
        fairseq-generate of every SHARDS-th batch of the whole set (fairseq's --distributed-world-size and
        --distributed-rank, so the batches and translations are those of one call), each kept when finished;
        never more than the set has batches. STARTED is called with each running fairseq-generate."""
        from .scoring import score

        checkpoint = self.checkpoint(checkpoint)
        if not checkpoint.is_file():
            raise TranslationError(f"no checkpoint '{checkpoint}'")
        self.gen.mkdir(parents=True, exist_ok=True)
        made_with = translated_with(data, checkpoint, extra_flags)
        speeds = {}
        for subset in subsets:
            if keep_finished and (speed := self.translated_earlier(subset, made_with)) is not None:
                print(f"translating {subset}: kept (finished earlier with this checkpoint)", file=sys.stderr,
                      flush=True)
                speeds[subset] = speed
                continue
            self.generation_done(subset).unlink(missing_ok=True)
            pieces = min(shards, least_batches(data, subset, int(flag_value(made_with["flags"], "--max-tokens"))))
            if pieces == 1:
                done = self._generate(data, checkpoint, subset, subset, made_with, [], echo, started)
            else:
                names = [f"{subset}.{shard + 1}of{pieces}" for shard in range(pieces)]
                done = self._merge(subset, names, [
                    self._generate(data, checkpoint, subset, name, {**made_with, "shard": [shard, pieces]},
                                   ["--distributed-world-size", str(pieces), "--distributed-rank", str(shard)],
                                   echo, started, keep_finished)
                    for shard, name in enumerate(names)])
                self.mark_finished(subset, made_with, done)
            speeds[subset] = done.sentences_per_second
        scores = score(self, Path(data).parent / "raw", subsets)
        self.scores_file.write_text(json.dumps(scores, indent=1) + "\n")
        return {SUBSETS.get(subset, subset): {**scores[SUBSETS.get(subset, subset)],
                                              "sentences_per_second": speeds[subset]} for subset in subsets}

    def _generate(self, data, checkpoint, subset, piece, made_with, shard_flags, echo, started,
                  keep_finished=False) -> "Translated":
        """fairseq-generate of SUBSET (or the PIECE of it SHARD_FLAGS select) into gen/PIECE.txt and .log,
        marked finished; one finished earlier as MADE_WITH is kept where KEEP_FINISHED."""
        from .training_log import Translated, last_error, translations

        if keep_finished and self.translated_earlier(piece, made_with) is not None:
            print(f"translating {piece}: kept (finished earlier with this checkpoint)", file=sys.stderr, flush=True)
            return Translated(**json.loads(self.generation_done(piece).read_text())["translated"])
        print(f"translating {piece}", file=sys.stderr, flush=True)
        self.generation_done(piece).unlink(missing_ok=True)
        command = [_console_script("fairseq-generate"), str(data), "--user-dir", str(USER_DIR),
                   "--task", "node_translation", "--path", str(checkpoint), "--gen-subset", subset,
                   *made_with["flags"], *shard_flags]
        with open(self.generation(piece), "w") as out, subprocess.Popen(
                command, stdout=out, stderr=subprocess.PIPE, text=True, cwd=REPO) as proc:
            if started is not None:
                started(proc)
            stderr = proc.communicate()[1]
        if echo:
            sys.stderr.write(stderr)
        self.generation_log(piece).write_text(stderr)
        with open(self.generate_log, "a") as log:  # every translation of the run, as train.log every training
            log.write(stderr)
        if proc.returncode != 0:
            # the cause goes into the record: the log stays behind with the run directory
            cause = last_error(stderr) or f"fairseq-generate exited with {proc.returncode}"
            raise TranslationError(f"translating {subset} with {checkpoint.name} failed: {cause} "
                                   f"(log: {self.generate_log})")
        found = translations(stderr)
        if len(found) != 1:
            raise TranslationError(f"{len(found)} speed lines translating {piece}; see {self.generate_log}")
        self.mark_finished(piece, made_with, found[0])
        return found[0]

    def _merge(self, subset, pieces, done) -> "Translated":
        """gen/SUBSET.txt and .log from the PIECES' (DONE: what each translated), with one NFE line for all."""
        from node_transformer.nfe import format_generation_nfe, parse_generation_nfe

        from .training_log import Translated

        lines, reports = [], []
        for piece in pieces:
            for line in self.generation(piece).read_text(encoding="utf-8").splitlines(keepends=True):
                report = parse_generation_nfe(line.rstrip("\n"))
                if report is None:
                    lines.append(line)
                else:
                    reports.append(report)
        if reports:  # the mean per sentence over all pieces, each piece weighted by its sentences
            sentences = sum(report["sentences"] for report in reports)
            per_sentence = {side: sum(r["sentences"] * r["per_sentence"][side] for r in reports) / sentences
                            for side in reports[0]["per_sentence"]}
            solves = (sum(r["sentences"] * r["decoder_solves"] for r in reports) / sentences
                      if reports[0]["decoder_solves"] is not None else None)
            lines.append(format_generation_nfe(sentences, per_sentence, solves) + "\n")
        self.generation(subset).write_text("".join(lines), encoding="utf-8")
        self.generation_log(subset).write_text("".join(self.generation_log(piece).read_text() for piece in pieces))
        sentences, seconds = sum(d.sentences for d in done), sum(d.seconds for d in done)
        return Translated(sentences, seconds, round(sentences / seconds, 2) if seconds else 0.0)

MAX_TOKENS = 4096  # fairseq-generate's batches


def least_batches(data, subset, max_tokens) -> int:
    """The fewest batches fairseq can cut SUBSET into under MAX_TOKENS: each holds at most MAX_TOKENS tokens
    of its sentences' max(source, target) length, padded. As many shards leave none empty (fairseq-generate
    fails on an empty one)."""
    from fairseq.data import data_utils

    source, target = data_utils.infer_language_pair(str(data))
    sides = [data_utils.load_indexed_dataset(f"{data}/{subset}.{source}-{target}.{language}", None)
             for language in (source, target)]
    tokens = int(sum(max(pair) for pair in zip(*(side.sizes for side in sides if side is not None))))
    return max(1, -(-tokens // max_tokens))


def translated_with(data, checkpoint, extra_flags=()) -> dict:
    """What a translation is made with: the checkpoint's digest, the data and fairseq-generate's flags."""
    # --required-batch-size-multiple 1: fairseq 0.12 otherwise drops the last, smaller batch (#5036).
    flags = ["--beam", "5", "--remove-bpe", "--max-tokens", str(MAX_TOKENS), "--required-batch-size-multiple", "1",
             *device_flags(), *LENGTH_BOUND_FLAGS, *extra_flags]
    return {"checkpoint_sha256": file_sha256(checkpoint), "data": str(Path(data).resolve()), "flags": flags}


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


Translation = Dict[str, dict]  # {test set name: its scores (scoring.score) and fairseq-generate's sentences/s}


class TranslationError(RuntimeError):
    pass


def _train_command(args, extra) -> int:
    from .experiment_config import read_flags

    if not args.config.is_file():
        return _fail(f"no config file '{args.config}'")
    data = default_data()
    if check_data(data):
        return _fail(check_data(data))
    try:
        flags = read_flags(args.config)
    except (OSError, ValueError) as error:
        return _fail(str(error))
    if not flags:
        return _fail(f"'{args.config}' holds no flags")
    run = RunDir(Path(os.environ.get("RUNS", REPO / "runs")) / args.config.stem)
    return run.train(data, [*flags, *extra], echo=True)


def _translate_command(args, extra) -> int:
    from .scoring import print_scores

    run = RunDir(args.run)
    if not run.path.is_dir():
        return _fail(f"no run directory '{run.path}'")
    data = default_data()
    if check_data(data):
        return _fail(check_data(data))
    try:
        run.translate(data, args.checkpoint, args.subsets.split(), extra, echo=True)
    except TranslationError as error:
        return _fail(str(error))
    print_scores(run)
    return 0


def _fail(message) -> int:
    print(f"node_experiments.run_dir: {message}", file=sys.stderr)
    return 2


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m node_experiments.run_dir", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", allow_abbrev=False, help="fairseq-train CONFIG into $RUNS/NAME (resumes an existing run)")
    train.add_argument("config", type=Path)
    translate = commands.add_parser("translate", allow_abbrev=False, help="translate and score RUN's test sets")
    translate.add_argument("run", type=Path)
    translate.add_argument("--checkpoint", default="checkpoint_best.pt", help="a file in RUN/checkpoints, or a path")
    translate.add_argument("--subsets", default=" ".join(SUBSETS), help="fairseq's test set names, space-separated")
    record = commands.add_parser("record", help="copy DATA's dictionaries, BPE codes and recipe into RUN/data")
    record.add_argument("data", type=Path, help="prepared data directory (.../bin)")
    record.add_argument("run", type=Path)
    args, extra = parser.parse_known_args(argv)  # the rest are fairseq's flags
    if args.command == "record":
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if check_data(args.data):
            parser.error(check_data(args.data))
        print(f"recorded {RunDir(args.run).record_data(args.data)}")
        return 0
    return (_train_command if args.command == "train" else _translate_command)(args, extra)


if __name__ == "__main__":
    sys.exit(main())
