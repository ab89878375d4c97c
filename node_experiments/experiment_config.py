"""Experiment files (``configs/*.args``): fairseq command-line flags, the one reader of their format.

A file holds flags, one or more per line, split like a shell would split them (quotes work), with
``#`` comments. A line ``@OTHER.args`` includes another file (its path relative to the including
file): its flags come first, and a flag the including file sets again replaces the included value.
So shared settings live in one file (``configs/base/multi30k.args``) and each experiment names only
what it changes.

    python -m node_experiments.experiment_config configs/demo.args   # the flags, one word per line
"""
import argparse
import shlex
import sys
from pathlib import Path
from typing import Dict, List, Optional

INCLUDE_PREFIX = "@"


def read_flag_groups(path, _including=()) -> Dict[str, List[str]]:
    """{flag: its value words} in order of first appearance, includes resolved."""
    path = Path(path)
    if path.resolve() in _including:
        raise ValueError(f"{path}: includes itself (through {' -> '.join(str(p) for p in _including)})")
    if not path.is_file():
        where = f" (included from {_including[-1]})" if _including else ""
        raise FileNotFoundError(f"no config file '{path}'{where}")
    groups: Dict[str, List[str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        words = shlex.split(line, comments=True)
        if words and words[0].startswith(INCLUDE_PREFIX):
            if len(words) != 1:
                raise ValueError(f"{path}:{number}: an include line holds one file name, got {line.strip()!r}")
            included = path.parent / words[0][len(INCLUDE_PREFIX):]
            groups.update(read_flag_groups(included, (*_including, path.resolve())))
            continue
        for word in words:
            if word.startswith("--"):
                current = word
                groups.pop(current, None)  # set again: replaces, and moves after what it overrides
                groups[current] = []
            elif not groups:
                raise ValueError(f"{path}:{number}: {word!r} comes before any --flag")
            else:
                groups[current].append(word)
    return groups


CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"


def config_path(name) -> Path:
    """An experiment named on a command line: a path ending in .args, or NAME for configs/NAME.args."""
    path = Path(name)
    return path if path.suffix == ".args" else CONFIGS_DIR / f"{name}.args"


def flag_words(groups: Dict[str, List[str]]) -> List[str]:
    """{flag: its value words} as command-line words."""
    return [word for flag, values in groups.items() for word in (flag, *values)]


def flag_value(words: List[str], flag: str, default: Optional[str] = None) -> Optional[str]:
    """The value word of FLAG (a one-value flag) in command-line WORDS, its last setting, or DEFAULT where it
    is not set."""
    at = [i for i, word in enumerate(words[:-1]) if word == flag]
    return words[at[-1] + 1] if at else default


def without_flag(words: List[str], flag: str) -> List[str]:
    """Command-line WORDS without any setting of FLAG (a one-value flag)."""
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word == flag:
            skip = True
        else:
            kept.append(word)
    return kept


def read_flags(path) -> List[str]:
    """The file's flags as command-line words, includes resolved."""
    return flag_words(read_flag_groups(path))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m node_experiments.experiment_config",
                                     description="Print an experiment file's fairseq flags, one word per line.")
    parser.add_argument("config", type=Path)
    args = parser.parse_args(argv)
    try:
        words = read_flags(args.config)
    except (OSError, ValueError) as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    sys.stdout.write("".join(word + "\n" for word in words))
    return 0


if __name__ == "__main__":
    sys.exit(main())
