"""Export a pretrained ODE BERT (a ``node_roberta --node-encoder`` run) to a HuggingFace transformers directory:

    python -m node_experiments.hf_export RUN OUT [--checkpoint checkpoint_best.pt]

OUT holds config.json, model.safetensors, the tokenizer (the fairseq dictionary as vocab.json and the BPE
codes) and the model code (node_experiments/hf_remote), and loads where fairseq is not installed:

    from transformers import AutoModelForMaskedLM, AutoTokenizer
    model = AutoModelForMaskedLM.from_pretrained(OUT, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(OUT, trust_remote_code=True)

The exported forward pass is the fairseq model's at inference (dropout off), with the same solver settings;
its logits equal fairseq's within 1e-4 (tests/test_hf_export.py).
"""
import argparse
import json
import sys
from pathlib import Path

from .run_dir import RunDir

ARCH_MODEL = "node_roberta"
# The --node-* options the exported model carries, under the same names; the others act in training only
# (gradient mode, regularisers, STEER).
SOLVER_OPTIONS = ("node_ts", "node_method", "node_rtol", "node_atol", "node_step_size", "node_max_num_steps",
                  "node_augment_dims", "node_time_dependent", "node_function")


class ExportError(ValueError):
    pass


def _model_args(state):
    cfg = state["cfg"]
    return cfg.model if cfg.get("model") is not None else state["args"]


def hf_config(args, dictionary):
    """The NODERobertaConfig of a fairseq node_roberta's arguments and dictionary."""
    from node_transformer.options import parse_times

    from .hf_remote.configuration_node_roberta import NODERobertaConfig

    values = {option: getattr(args, option) for option in SOLVER_OPTIONS}
    values["node_ts"] = list(parse_times(values["node_ts"]))
    return NODERobertaConfig(
        vocab_size=len(dictionary), hidden_size=args.encoder_embed_dim, intermediate_size=args.encoder_ffn_embed_dim,
        num_attention_heads=args.encoder_attention_heads, max_positions=args.max_positions,
        pad_token_id=dictionary.pad(), bos_token_id=dictionary.bos(), eos_token_id=dictionary.eos(),
        mask_token_id=dictionary.index("<mask>"), layernorm_embedding=bool(args.layernorm_embedding),
        scale_embedding=not args.no_scale_embedding, activation_fn=args.activation_fn, **values)


def check_exportable(args):
    name = getattr(args, "_name", None) or getattr(args, "arch", None)
    arch = getattr(args, "arch", name)
    if not (str(arch).startswith(ARCH_MODEL) or name == ARCH_MODEL):
        raise ExportError(f"the checkpoint is a {arch} model, not a node_roberta: only an ODE BERT exports "
                          "(a translation model translates with scripts/translate.sh)")
    if not getattr(args, "node_encoder", False):
        raise ExportError("the checkpoint's node_roberta has a classic encoder (trained without --node-encoder): "
                          "export its ODE BERT twin, or convert it as a classic RoBERTa")
    if args.activation_fn not in ("gelu", "relu", "tanh"):
        raise ExportError(f"--activation-fn {args.activation_fn} is not exported (gelu, relu, tanh are)")


def export(run, out, checkpoint="checkpoint_best.pt"):
    """Write OUT from RUN's checkpoint; returns OUT."""
    from fairseq import checkpoint_utils

    from node_transformer import checkpoint_safety  # noqa: F401  (fairseq checkpoints under safe loading)

    from .hf_remote.modeling_node_roberta import NODERobertaForMaskedLM
    from .hf_remote.tokenization_node_roberta import NODERobertaTokenizer

    run = RunDir(run)
    path = run.checkpoint(checkpoint)
    if not path.is_file():
        raise ExportError(f"no checkpoint {path}")
    check_exportable(_model_args(checkpoint_utils.load_checkpoint_to_cpu(str(path))))
    if run.recorded_data() is None or not (run.data / "bpe.codes").is_file():
        raise ExportError(f"{run.path} records no prepared data (no {run.data / 'prepared.json'} and BPE codes): "
                          "the tokenizer could not reproduce its preparation")
    from node_transformer import roberta_hub

    hub = roberta_hub.load(run.path, checkpoint)
    model, dictionary = hub.model, hub.task.source_dictionary
    config = hf_config(hub.cfg.model, dictionary)
    exported = NODERobertaForMaskedLM(config)
    wanted = exported.state_dict()
    weights = {key: value for key, value in model.state_dict().items() if key in wanted}
    missing = sorted(set(wanted) - set(weights))
    if missing:
        raise ExportError(f"the checkpoint lacks what the exported model needs: {', '.join(missing)}")
    for key, value in weights.items():
        if value.shape != wanted[key].shape:
            raise ExportError(f"{key}: {tuple(value.shape)} in the checkpoint, {tuple(wanted[key].shape)} exported")
    exported.load_state_dict(weights)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    type(config).register_for_auto_class()
    type(exported).register_for_auto_class("AutoModelForMaskedLM")
    exported.save_pretrained(out)
    vocab = out / "vocab.json"
    vocab.write_text(json.dumps(list(dictionary.symbols), ensure_ascii=False))
    tokenizer = NODERobertaTokenizer(str(vocab), str(run.data / "bpe.codes"))
    NODERobertaTokenizer.register_for_auto_class("AutoTokenizer")
    tokenizer.save_pretrained(out)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m node_experiments.hf_export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a masked-LM run directory (scripts/train.sh configs/mlm_node_*.args)")
    parser.add_argument("out", type=Path, help="the transformers directory to write")
    parser.add_argument("--checkpoint", default="checkpoint_best.pt", help="a file in RUN/checkpoints, or a path")
    args = parser.parse_args(argv)
    try:
        print(f"wrote {export(args.run, args.out, args.checkpoint)}")
    except (ExportError, FileNotFoundError) as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
