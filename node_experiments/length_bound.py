"""The bound on a translation's length, shared by every way this project translates (scripts/generate.sh,
scripts/translate.sh, hub, the study runner): at most MAX_LEN_A x source length + MAX_LEN_B tokens.

fairseq's own default (0 x source + 200) lets an early checkpoint repeat one word 200 times, and an
adaptive NODE decoder recomputes its whole prefix at every one of those tokens: one such sentence took
12 s on 2 CPU cores, a test set hours. 1.2 x source + 10 holds every Multi30k validation and test
reference. Plain Python with no imports: ``python node_experiments/length_bound.py`` prints the flags for
the shell scripts.
"""
MAX_LEN_A = 1.2
MAX_LEN_B = 10
FLAGS = ["--max-len-a", str(MAX_LEN_A), "--max-len-b", str(MAX_LEN_B)]  # fairseq-generate's names

if __name__ == "__main__":
    print(" ".join(FLAGS))
