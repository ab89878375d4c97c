"""Scores of a run's translations (RUN/gen/SUBSET.txt from fairseq-generate): tokenized lowercased BLEU
(comparable with published Multi30k numbers), sacreBLEU on detokenized output (with its signature) and the
mean NFE per sentence that the node_translation task reports."""
from pathlib import Path


def read_generation(path):
    """(hypotheses, references, sentence ids, NFE per sentence or None) of a fairseq-generate output, in id order."""
    from node_transformer.nfe import parse_generation_nfe

    hyps, refs, nfe = {}, {}, None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        kind, _, rest = line.partition("-")
        if kind in ("H", "T") and "\t" in rest:
            fields = rest.split("\t")
            index = int(fields[0])
            (hyps if kind == "H" else refs)[index] = fields[-1]
        elif (report := parse_generation_nfe(line)) is not None:
            nfe = report["per_sentence"]
    order = sorted(hyps)
    return [hyps[i] for i in order], [refs[i] for i in order], order, nfe


class ScoringError(ValueError):
    pass


def score(run, raw_dir, subsets):
    """{test set name: scores} of RUN's (a RunDir) generations of SUBSETS against RAW_DIR/SUBSET.de."""
    import sacrebleu
    from sacremoses import MosesDetokenizer

    from .run_dir import SUBSETS

    detok = MosesDetokenizer(lang="de")
    results = {}
    for subset in subsets:
        hyps, refs, order, nfe = read_generation(run.generation(subset))
        raw_refs = (Path(raw_dir) / f"{subset}.de").read_text(encoding="utf-8").splitlines()
        if len(order) != len(raw_refs):
            raise ScoringError(f"{subset}: {len(order)} translations for {len(raw_refs)} references")
        tokenized = sacrebleu.corpus_bleu(hyps, [refs], tokenize="none", lowercase=True, force=True)
        metric = sacrebleu.BLEU(lowercase=True)
        detokenized = metric.corpus_score([detok.detokenize(h.split()) for h in hyps], [raw_refs])
        results[SUBSETS.get(subset, subset)] = {
            "subset": subset,
            "sentences": len(hyps),
            "tokenized_bleu": round(tokenized.score, 2),
            "sacrebleu": round(detokenized.score, 2),
            "sacrebleu_signature": str(metric.get_signature()),
            "nfe_per_sentence": nfe,
        }
    return results


def print_scores(run):
    """RUN's results.json as a table on stdout."""
    import json

    results = json.loads(run.scores_file.read_text())
    print(f"{'test set':18} {'sents':>5} {'tok BLEU':>9} {'sacreBLEU':>9}  NFE/sentence")
    for name, r in results.items():
        nfe = ", ".join(f"{k} {v:g}" for k, v in (r["nfe_per_sentence"] or {}).items()) or "-"
        print(f"{name:18} {r['sentences']:5d} {r['tokenized_bleu']:9.2f} {r['sacrebleu']:9.2f}  {nfe}")
    print(f"sacreBLEU signature: {next(iter(results.values()))['sacrebleu_signature']}")
    print(f"wrote {run.scores_file}")
