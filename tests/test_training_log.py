"""Reading fairseq's simple training logs: curves, NFE, skips, sessions of a resumed run, number formats."""
import pytest

from node_experiments.training_log import read_training, time_to_reach, translation_speeds

SESSION = """\
{day} 10:00:00 | INFO | fairseq_cli.train | training on 1 devices (GPUs/TPUs)
{day} 10:00:01 | INFO | fairseq.trainer | begin training epoch 1
{day} 10:00:01 | INFO | fairseq_cli.train | Start iterating over samples
{day} 10:00:41 | WARNING | node_transformer.tasks.node_translation | skipping batch at update {skip}: step budget
{day} 10:01:01 | INFO | train_inner | epoch 001:     50 / 99 loss=9.5, nfe_dec_fwd={nfe_first}, nfe_dec_bwd=20, node_kinetic_dec=2.3e+06, gnorm=inf, num_updates={inner}, wall=60
{day} 10:01:11 | INFO | valid | epoch 001 | valid on 'valid' subset | loss {loss} | nll_loss 6.1 | num_updates {valid} | best_loss {loss}
{day} 10:02:01 | INFO | train_inner | epoch 001:     99 / 99 loss=8.0, nfe_dec_fwd={nfe_last}, num_updates={last}, wall=120
{day} 10:02:02 | INFO | fairseq.trainer | begin training epoch 2
{day} 10:02:02 | INFO | fairseq_cli.train | Start iterating over samples
"""


def test_one_session():
    log = SESSION.format(day="2026-11-24", skip=7, nfe_first=14, nfe_last=19.5, inner=50, valid=60, loss=7.5, last=100)
    log += "2026-11-24 10:02:03 | INFO | fairseq_cli.train | done training in 121.5 seconds\n"
    run = read_training(log)
    assert run.updates == 100 and run.train_seconds == 121.5
    assert run.curve == [(70.0, 60, 7.5)] and (run.curve[0].updates, run.curve[0].loss) == (60, 7.5)
    assert run.nfe == {"nfe_dec_fwd": (14.0, 19.5), "nfe_dec_bwd": (20.0, 20.0)}
    assert run.inner[0]["node_kinetic_dec"] == 2.3e6 and run.inner[0]["gnorm"] == float("inf")
    assert run.budget_skips == 1
    assert run.valid == [{"loss": 7.5, "nll_loss": 6.1, "num_updates": 60.0, "best_loss": 7.5}]


def test_a_resumed_run_counts_each_session_once():
    first = SESSION.format(day="2026-11-24", skip=7, nfe_first=14, nfe_last=15, inner=50, valid=60, loss=7.5, last=100)
    second = SESSION.format(day="2026-11-25", skip=130, nfe_first=16, nfe_last=18, inner=150, valid=160, loss=6.5,
                            last=200)
    run = read_training(first + second + "2026-11-25 10:02:03 | INFO | fairseq_cli.train | done training in 122 seconds\n")
    # The first session was cut off at its last time stamp (10:02:02, 121 s after it began): the second
    # session's validation lies 121 + 70 seconds into training, not a day later.
    assert run.curve == [(70.0, 60, 7.5), (191.0, 160, 6.5)]
    assert run.train_seconds == 121 + 122 and run.updates == 200 and run.budget_skips == 2
    assert run.nfe["nfe_dec_fwd"] == (14.0, 18.0)
    assert time_to_reach(run.curve, 7.0) == pytest.approx(70 + 121 * 0.5)


def test_a_run_that_never_trained_and_the_speed_lines():
    with pytest.raises(ValueError, match="never started"):
        read_training("2026-11-24 10:00:00 | INFO | fairseq_cli.train | training on 1 devices (GPUs/TPUs)\n")
    stderr = ("2026-11-24 | INFO | fairseq_cli.generate | Translated 1,000 sentences (12,345 tokens) in 6.1s "
              "(163.93 sentences/s, 2023.77 tokens/s)\n") * 2
    assert translation_speeds(stderr) == [163.93, 163.93]
