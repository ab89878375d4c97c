"""Score fairseq-generate outputs of a run: tokenized BLEU, sacreBLEU (detokenized) and NFE per sentence."""
# Third-party modules are imported where used, after argument parsing, so --help works before install.sh.
import argparse
import json
import sys
from pathlib import Path

NAMES = {"test": "test2016_flickr", "test1": "test2017_flickr", "test2": "test2017_mscoco"}


def read_generation(path):
    from node_transformer.nfe import parse_generation_nfe

    hyps, refs, nfe = {}, {}, None
    for line in path.read_text(encoding="utf-8").splitlines():
        kind, _, rest = line.partition("-")
        if kind in ("H", "T") and "\t" in rest:
            fields = rest.split("\t")
            index = int(fields[0])
            (hyps if kind == "H" else refs)[index] = fields[-1]
        elif (report := parse_generation_nfe(line)) is not None:
            nfe = report["per_sentence"]
    order = sorted(hyps)
    return [hyps[i] for i in order], [refs[i] for i in order], order, nfe


def score(run, raw_dir, subsets):
    import sacrebleu
    from sacremoses import MosesDetokenizer

    detok = MosesDetokenizer(lang="de")
    results = {}
    for subset in subsets:
        hyps, refs, order, nfe = read_generation(run / "gen" / f"{subset}.txt")
        raw_refs = (raw_dir / f"{subset}.de").read_text(encoding="utf-8").splitlines()
        if len(order) != len(raw_refs):
            raise SystemExit(f"score.py: {subset}: {len(order)} translations for {len(raw_refs)} references")
        tokenized = sacrebleu.corpus_bleu(hyps, [refs], tokenize="none", lowercase=True, force=True)
        metric = sacrebleu.BLEU(lowercase=True)
        detokenized = metric.corpus_score([detok.detokenize(h.split()) for h in hyps], [raw_refs])
        results[NAMES.get(subset, subset)] = {
            "subset": subset,
            "sentences": len(hyps),
            "tokenized_bleu": round(tokenized.score, 2),
            "sacrebleu": round(detokenized.score, 2),
            "sacrebleu_signature": str(metric.get_signature()),
            "nfe_per_sentence": nfe,
        }
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(prog="scripts/score.py", description=__doc__)
    parser.add_argument("run", type=Path, help="run directory with gen/SUBSET.txt from fairseq-generate")
    parser.add_argument("--raw-dir", type=Path, required=True, help="raw (untokenized) references: SUBSET.de")
    parser.add_argument("--subsets", nargs="+", default=list(NAMES))
    args = parser.parse_args(argv)
    results = score(args.run, args.raw_dir, args.subsets)
    (args.run / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"{'test set':18} {'sents':>5} {'tok BLEU':>9} {'sacreBLEU':>9}  NFE/sentence")
    for name, r in results.items():
        nfe = ", ".join(f"{k} {v:g}" for k, v in (r["nfe_per_sentence"] or {}).items()) or "-"
        print(f"{name:18} {r['sentences']:5d} {r['tokenized_bleu']:9.2f} {r['sacrebleu']:9.2f}  {nfe}")
    print(f"sacreBLEU signature: {next(iter(results.values()))['sacrebleu_signature']}")
    print(f"wrote {args.run / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
