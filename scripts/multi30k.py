"""Prepare Multi30k task 1 EN-DE for fairseq: verify, lowercase, Moses-normalise and tokenise, joint BPE,
binarise. Run through scripts/prepare_multi30k.sh (see its --help). The text preparation itself is
node_transformer/text.py's, which translation applies to new sentences too."""
import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

SPLITS = {  # Multi30k file stem -> fairseq split name
    "train": "train",
    "val": "valid",
    "test_2016_flickr": "test",
    "test_2017_flickr": "test1",
    "test_2017_mscoco": "test2",
}
LANGS = ("en", "de")
DOWNLOAD_URL = "https://github.com/multi30k/dataset/raw/master/data/task1/raw/{name}"


class PrepareError(Exception):
    pass


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_lines(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def fetch(src_dir, download_dir):
    """The ten raw .gz files: from src_dir, or downloaded into download_dir."""
    names = [f"{stem}.{lang}.gz" for stem in SPLITS for lang in LANGS]
    if src_dir is None:
        download_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            target = download_dir / name
            if not target.exists():
                print(f"downloading {name}", flush=True)
                partial = target.with_suffix(".part")
                try:
                    urllib.request.urlretrieve(DOWNLOAD_URL.format(name=name), partial)
                except OSError as error:
                    raise PrepareError(f"cannot download {name} ({error}); give a local copy with --src-dir") from None
                partial.rename(target)
        src_dir = download_dir
    missing = [name for name in names if not (src_dir / name).is_file()]
    if missing:
        raise PrepareError(f"{src_dir}: missing {', '.join(missing)}")
    return {name: src_dir / name for name in names}


def verify_checksums(files, src_dir):
    sums = src_dir / "SHA256SUMS"
    if not sums.exists():
        return
    expected = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            expected[name.lstrip("*")] = digest
    for name, path in files.items():
        if name in expected and sha256(path) != expected[name]:
            raise PrepareError(f"{path}: checksum mismatch with {sums}")


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def prepare(src_dir, out, merges, workers, fairseq_preprocess):
    download_dir = out.parent / (out.name + ".downloads")
    files = fetch(src_dir, download_dir)
    verify_checksums(files, src_dir or download_dir)
    from node_transformer.text import RECIPE_VERSION, moses_tokenize

    stamp = {"recipe": RECIPE_VERSION, "merges": merges,
             "inputs": {name: sha256(path) for name, path in sorted(files.items())}}
    stamp_file = out / "prepared.json"
    if stamp_file.exists() and json.loads(stamp_file.read_text()) == stamp:
        print(f"{out}: already prepared", flush=True)
        return
    if out.exists():
        raise PrepareError(f"{out} exists but was prepared differently (or not finished); remove it first")

    work = Path(tempfile.mkdtemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent))
    try:
        (work / "raw").mkdir()
        (work / "tok").mkdir()
        (work / "bpe").mkdir()
        texts = {}
        for stem in SPLITS:
            lines = {lang: read_lines(files[f"{stem}.{lang}.gz"]) for lang in LANGS}
            if len(lines["en"]) != len(lines["de"]):
                raise PrepareError(
                    f"{stem}: {len(lines['en'])} English lines but {len(lines['de'])} German lines"
                )
            for lang in LANGS:
                print(f"tokenizing {stem}.{lang} ({len(lines[lang])} lines)", flush=True)
                write(work / "raw" / f"{SPLITS[stem]}.{lang}", lines[lang])
                texts[stem, lang] = moses_tokenize(lines[lang], lang)
                write(work / "tok" / f"{SPLITS[stem]}.{lang}", texts[stem, lang])

        from subword_nmt.apply_bpe import BPE
        from subword_nmt.learn_bpe import learn_bpe

        print(f"learning joint BPE ({merges} merges)", flush=True)
        codes = work / "bpe" / "codes"
        with open(codes, "w", encoding="utf-8") as out_codes:
            learn_bpe(texts["train", "en"] + texts["train", "de"], out_codes, merges)
        with open(codes, encoding="utf-8") as in_codes:
            bpe = BPE(in_codes)
        for (stem, lang), lines in texts.items():
            write(work / "bpe" / f"{SPLITS[stem]}.{lang}", [bpe.process_line(line) for line in lines])

        print("binarizing", flush=True)
        prefix = work / "bpe"
        subprocess.run(
            [fairseq_preprocess, "--source-lang", "en", "--target-lang", "de",
             "--trainpref", prefix / "train", "--validpref", prefix / "valid",
             "--testpref", f"{prefix / 'test'},{prefix / 'test1'},{prefix / 'test2'}",
             "--destdir", work / "bin", "--joined-dictionary", "--workers", str(workers)],
            check=True,
        )
        write(work / "prepared.json", [json.dumps(stamp, indent=1)])
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    print(f"prepared {out}/bin", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="scripts/prepare_multi30k.sh",
        description="Prepare Multi30k task 1 EN-DE (train, val, test2016, test2017, mscoco2017) for fairseq: "
                    "lowercase, Moses punctuation normalisation and tokenisation (sacremoses), joint BPE "
                    "(subword-nmt), fairseq-preprocess --joined-dictionary. The test sets become test (2016 "
                    "flickr), test1 (2017 flickr) and test2 (2017 mscoco). Idempotent.",
    )
    parser.add_argument("--src-dir", type=Path, default=os.environ.get("MULTI30K_DIR") or None,
                        help="directory with the raw {train,val,test_2016_flickr,test_2017_flickr,"
                             "test_2017_mscoco}.{en,de}.gz (and optionally SHA256SUMS); default $MULTI30K_DIR, "
                             "else download from the multi30k dataset repository (data/task1/raw)")
    parser.add_argument("--out", type=Path, default=Path("data/multi30k_en_de"),
                        help="output directory; the binarised data goes to OUT/bin (default data/multi30k_en_de)")
    parser.add_argument("--bpe-merges", type=int, default=10000, help="joint BPE merge operations (default 10000)")
    parser.add_argument("--workers", type=int, default=2, help="fairseq-preprocess workers (default 2)")
    args = parser.parse_args(argv)
    if args.bpe_merges < 1:
        parser.error("--bpe-merges must be positive")
    if args.src_dir is not None and not args.src_dir.is_dir():
        parser.error(f"--src-dir {args.src_dir} is not a directory")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    preprocess = str(Path(sys.executable).parent / "fairseq-preprocess")
    try:
        prepare(args.src_dir, args.out.resolve(), args.bpe_merges, args.workers, preprocess)
    except (PrepareError, subprocess.CalledProcessError) as error:
        print(f"prepare_multi30k: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
