"""benchmarks/equal_time.py without training: which flags a run takes from its config and which from
--hparams, and the table's loss at equal updates."""
import sys

from helpers import REPO
from node_experiments.runner import RunResult, TimeBudget, common_update
from node_experiments.training_log import Training

sys.path.insert(0, str(REPO / "benchmarks"))
import equal_time  # noqa: E402


def test_a_run_takes_its_architecture_from_the_config_and_the_rest_from_hparams(tmp_path):
    config = tmp_path / "twin.args"
    config.write_text("--arch node_transformer_tiny\n--decoder-layers 1\n--decoder-normalize-before\n"
                      "--node-function layer\n--lr 9\n")
    hparams = tmp_path / "hparams.args"
    hparams.write_text("--lr 0.002\n--decoder-layers 6\n--dropout 0.1\n--max-update 500\n")
    experiment = equal_time.experiment(config, hparams)
    assert experiment.name == "twin"
    words = TimeBudget(minutes=9, validate_every=200).flags(experiment)
    flags = " ".join(words)
    assert "--decoder-normalize-before" in words and "--node-function layer" in flags
    assert "--lr 0.002" in flags and "--lr 9" not in flags and "--dropout 0.1" in flags
    assert "--decoder-layers 1" in flags and "--decoder-layers 6" not in flags
    # time is the only limit: the budget's flags come last and lift the update cap
    assert flags.endswith("--no-epoch-checkpoints --no-last-checkpoints") and "--stop-time-hours 0.150000" in flags
    assert words[len(words) - 1 - words[::-1].index("--max-update") + 1] == "0"


def _result(name, curve, updates):
    return RunResult.from_training(
        name, Training(updates=updates, train_seconds=2.0 * updates, curve=curve, nfe={}, inner=[], valid=[], budget_skips=0),
        translation={"test2016_flickr": {"tokenized_bleu": 10.0, "sentences_per_second": 50.0}})


def test_loss_at_equal_updates_is_the_last_regular_validation_every_run_reached():
    results = {
        "fast": _result("fast", [(10, 200, 6.0), (20, 400, 5.0), (30, 600, 4.5), (31, 611, 4.4)], 611),
        "slow": _result("slow", [(20, 200, 6.2), (40, 400, 5.4), (45, 455, 5.3)], 455),
    }
    at = common_update(list(results.values()), every=200)
    assert at == 400  # not 455 or 611: those are end-of-training validations the other run lacks
    rows = {name: equal_time.row(name, result, results["fast"], at) for name, result in results.items()}
    assert rows["fast"][5] == "5.00" and rows["slow"][5] == "5.40"
    assert rows["slow"][4] == "5.30 (update 455)" and rows["slow"][1] == 455 and rows["slow"][2] == "2.00"
    assert rows["slow"][7] == "10.0" and rows["slow"][9] == "1.00"
