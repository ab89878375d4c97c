"""Make ``fairseq-train --user-dir node_transformer --arch ARCH --help`` list the model's options.

fairseq 0.12 adds model- and task-specific options only after a first parse, and that first parse
already acts on ``--help``, so no model option ever appears in the help (fairseq issue #701).
fairseq imports the user-dir before it parses, so this module wraps ``fairseq.options.
parse_args_and_arch`` to add those options before printing help. Nothing changes without ``--help``.
"""
import argparse
import functools
import sys

from fairseq import options

HELP_FLAGS = ("-h", "--help")


def _print_full_help(parser, argv):
    from fairseq.models import ARCH_MODEL_REGISTRY
    from fairseq.tasks import TASK_REGISTRY

    known, _ = parser.parse_known_args([a for a in argv if a not in HELP_FLAGS])
    arch = getattr(known, "arch", None)
    if arch in ARCH_MODEL_REGISTRY:
        group = parser.add_argument_group("Model-specific configuration", argument_default=argparse.SUPPRESS)
        ARCH_MODEL_REGISTRY[arch].add_args(group)
    task = getattr(known, "task", None)
    if task in TASK_REGISTRY:
        TASK_REGISTRY[task].add_args(parser)
    parser.print_help()
    parser.exit()


def _with_full_help(parse_args_and_arch):
    if getattr(parse_args_and_arch, "node_transformer_full_help", False):
        return parse_args_and_arch

    @functools.wraps(parse_args_and_arch)
    def wrapper(parser, input_args=None, *args, **kwargs):
        argv = sys.argv[1:] if input_args is None else list(input_args)
        if any(a in HELP_FLAGS for a in argv):
            _print_full_help(parser, argv)
        return parse_args_and_arch(parser, input_args, *args, **kwargs)

    wrapper.node_transformer_full_help = True
    return wrapper


options.parse_args_and_arch = _with_full_help(options.parse_args_and_arch)
