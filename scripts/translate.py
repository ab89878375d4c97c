"""Translate raw English lines with a trained run (see scripts/translate.sh --help)."""
# Third-party modules are imported after argument parsing, so --help works before install.sh.
import argparse
import sys
from pathlib import Path

CHUNK = 32  # lines translated together, then printed: a failure later loses none of them


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="scripts/translate.sh",
        description="Translate raw English (one sentence per line, from FILE or standard input) with a run's "
                    "checkpoint: the lines get the training data's own preparation (lowercase, Moses "
                    "normalisation and tokenisation, the run's BPE codes) and the German comes back "
                    "detokenised, one line per input line, in order. An empty line gives an empty line; a line "
                    "that is not UTF-8 or too long for the model gives an empty line and a message on stderr.")
    parser.add_argument("run", type=Path, help="run directory written by scripts/train.sh (e.g. runs/demo)")
    parser.add_argument("file", nargs="?", type=Path, help="input file (default: standard input)")
    parser.add_argument("--beam", type=int, default=5, help="beam size (default 5)")
    parser.add_argument("--max-len-a", type=float, default=None, metavar="A",
                        help="each translation at most A x its source + B tokens long (default: "
                             "node_experiments/length_bound.py's, 1.2 x source + 10)")
    parser.add_argument("--max-len-b", type=int, default=None, metavar="B", help="see --max-len-a")
    parser.add_argument("--checkpoint", default="checkpoint_best.pt",
                        help="checkpoint file, in RUN/checkpoints or a path (default checkpoint_best.pt)")
    parser.add_argument("--data", type=Path, help="prepared data directory (.../bin), only for a run trained "
                                                  "before runs recorded their data, whose data has moved")
    parser.add_argument("--verbose", action="store_true",
                        help="also print each sentence's prepared source, score and NFE (on stderr)")
    parser.add_argument("--cpu", action="store_true", help="stay on the CPU even when CUDA is available")
    args = parser.parse_intermixed_args(argv)  # RUN --verbose FILE as well as RUN FILE --verbose
    if args.beam < 1:
        parser.error("--beam must be at least 1")
    if args.max_len_a is not None and args.max_len_a < 0:
        parser.error(f"--max-len-a must not be negative, got {args.max_len_a:g}")
    if args.max_len_b is not None and args.max_len_b < 0:
        parser.error(f"--max-len-b must not be negative, got {args.max_len_b}")
    if args.max_len_a == 0 and args.max_len_b == 0:
        parser.error("--max-len-a 0 --max-len-b 0 leaves no room for a word")
    args.bound = {name: value for name, value in (("max_len_a", args.max_len_a), ("max_len_b", args.max_len_b))
                  if value is not None}
    if not args.run.is_dir():
        parser.error(f"no run directory '{args.run}'")
    if args.file is not None and not args.file.is_file():
        parser.error(f"no input file '{args.file}'")
    return args


def read_lines(stream):
    """(line number, text or None) for each line; None where the bytes are not UTF-8."""
    for number, raw in enumerate(stream, 1):
        try:
            yield number, raw.rstrip(b"\r\n").decode("utf-8")
        except UnicodeDecodeError as error:
            print(f"translate: line {number} is not UTF-8 ({error.reason} at byte {error.start}); "
                  "printing an empty line for it", file=sys.stderr)
            yield number, None


def chunks(lines, size):
    chunk = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def translate_chunk(model, chunk, beam, verbose, bound):
    texts = []
    for number, text in chunk:
        problem = model.problem(text) if text is not None else None
        if problem is not None:
            print(f"translate: line {number} is {problem}; printing an empty line for it", file=sys.stderr)
        texts.append(text if text is not None and problem is None else "")
    for (number, _), result in zip(chunk, model.translate_with_details(texts, beam=beam, **bound)):
        print(result.translation, flush=True)
        if verbose and result.prepared:
            nfe = ", ".join(f"{side} {value:.1f}" for side, value in result.nfe.items()) or "-"
            print(f"S-{number}\t{result.prepared}\nH-{number}\t{result.score:.4f}\t{result.translation}\n"
                  f"NFE-{number}\t{nfe}", file=sys.stderr, flush=True)


def main(argv=None):
    args = parse_args(argv)
    import logging
    import warnings

    import torch

    from node_transformer import hub

    logging.getLogger("fairseq").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*pin_memory.*")  # fairseq's data loader, on a CPU
    model = hub.load(args.run, checkpoint=args.checkpoint, data=args.data).eval()
    if torch.cuda.is_available() and not args.cpu:
        model.cuda()
    stream = open(args.file, "rb") if args.file else sys.stdin.buffer
    with stream, torch.no_grad():
        for chunk in chunks(read_lines(stream), CHUNK):
            translate_chunk(model, chunk, args.beam, args.verbose, args.bound)
    return 0


if __name__ == "__main__":
    sys.exit(main())
