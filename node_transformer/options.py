"""The --node-* options, declared once: :class:`NodeConfig` gives their types, defaults and help texts,
argparse is generated from it (as fairseq's Transformer does from ``TransformerConfig``), and
:meth:`NodeSettings.from_args` checks every value and every rule between values, once per model.

Every message names the flag. A closed choice (``--node-method``, ``--node-function``, ``--node-gradient``)
is also refused by argparse itself, before fairseq builds anything; :meth:`NodeSettings.from_args` checks
it again for options that do not come from the command line (``--model-overrides``, a checkpoint's
arguments).
"""
from dataclasses import dataclass, field, fields
from typing import Optional, Tuple

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.dataclass.utils import gen_parser_from_dataclass

from odeint_ext import ADAPTIVE_METHODS, FIXED_GRID_METHODS, METHODS, checks

# scipy_solver runs outside torch (no adjoint parameters, no step callbacks): not for ODE blocks.
SUPPORTED_METHODS = tuple(m for m in METHODS if m != "scipy_solver")
GRADIENT_MODES = ("adjoint", "backprop")
# chain: the 2019 f, sub-layers chained with no residual between them. layer: one pre-norm layer's whole
# update (each sub-layer added to the running state), so that one Euler step of size 1 is that layer.
FUNCTIONS = ("chain", "layer")


def node_field(default, help):
    """A dataclass field whose help text ends with its default (argparse gets no defaults: see
    :func:`add_node_args`)."""
    shown = "" if default in (None, False) else f" (default {default})"
    return field(default=default, metadata={"help": help + shown})


@dataclass
class NodeConfig(FairseqDataclass):
    node_encoder: bool = node_field(False, "replace the encoder's layer stack by one Neural-ODE block")
    node_decoder: bool = node_field(False, "replace the decoder's layer stack by one Neural-ODE block")
    node_rtol: float = node_field(0.01, "relative tolerance of the adaptive solver")
    node_atol: float = node_field(0.01, "absolute tolerance of the adaptive solver")
    node_ts: str = node_field(
        "0,1", "integration times T0,T1[,...], increasing; the block returns the state at the last one "
               "('[0.0, 1.0]' is accepted too)"
    )
    node_method: ChoiceEnum(SUPPORTED_METHODS) = node_field("dopri5", "torchdiffeq solver")
    node_step_size: Optional[float] = node_field(
        None, "step size of fixed-grid methods (" + ", ".join(FIXED_GRID_METHODS) + "); required by them"
    )
    node_max_num_steps: int = node_field(
        1000, "step budget (accepted + rejected steps) of each adaptive solve, forward and adjoint"
    )
    node_augment_dims: int = node_field(
        0, "ANODE: N zero channels per attention head appended to the ODE state, which grows by N x heads "
           "channels; a linear layer maps the result back to the embedding width"
    )
    node_time_dependent: bool = node_field(
        False, "the ODE function also sees t, as one extra input channel per attention head"
    )
    node_function: ChoiceEnum(FUNCTIONS) = node_field(
        "chain", "the ODE function f(t, h): 'chain' (the 2019 f: FFN(LN(CrossAttn(LN(SelfAttn(LN(h)))))), the "
                 "sub-layers chained without residuals) or 'layer' (the whole update of one pre-norm Transformer "
                 "layer, each sub-layer added to the running state: one Euler step of size 1 over [0, 1] is that "
                 "layer, k steps a k-layer stack with shared weights and updates scaled by 1/k)"
    )
    node_separated_decoder: bool = node_field(
        False, "with --node-decoder: keep decoder self-attention a classic residual layer; only "
               "encoder-decoder attention + feed-forward form the ODE"
    )
    node_gradient: ChoiceEnum(GRADIENT_MODES) = node_field(
        "adjoint", "how gradients pass the solver: 'adjoint' (solve the adjoint ODE, constant memory) or "
                   "'backprop' (through the solver's operations)"
    )
    node_adjoint_seminorm: bool = node_field(
        False, "adjoint steps judged on the state and its adjoint only, not the parameter adjoints "
               "(Kidger et al. 2021): fewer backward evaluations"
    )
    node_kinetic_reg: Optional[float] = node_field(
        None, "RNODE kinetic-energy regulariser: adds LAMBDA x (integral over the solve of ||f(t, h)||^2), summed "
              "over real positions, to the training loss; integrated with h, logged as node_kinetic_{enc,dec} "
              "(per position); 0 logs it without adding it"
    )
    node_jacobian_reg: Optional[float] = node_field(
        None, "RNODE Jacobian regulariser: adds LAMBDA x (integral of ||df/dh||_F^2, one Gaussian probe per solve), "
              "summed over real positions, to the training loss; logged as node_jacobian_{enc,dec}; 0 logs it "
              "without adding it"
    )
    node_detach_encoder: bool = node_field(
        False, "ABLATION, not for use: reproduces the 2019 implementation's gradient bug on purpose. The NODE "
               "decoder's solve sees the encoder output detached, so the encoder gets no gradient from the loss "
               "through it (the cross-attention's own projections still learn)"
    )
    node_steer: float = node_field(
        0.0, "STEER: each training solve ends at a time drawn uniformly from [T1 - B, T1 + B] (B smaller than the "
             "last interval of --node-ts); validation and generation end at T1"
    )


NODE_OPTION_NAMES = tuple(f.name for f in fields(NodeConfig))


def add_node_args(parser):
    """The --node-* options, without defaults: the architecture functions fill them (fairseq's way,
    so that an architecture can set its own)."""
    gen_parser_from_dataclass(parser, NodeConfig(), delete_default=True, with_prefix="")


def fill_node_defaults(args):
    defaults = NodeConfig()
    for name in NODE_OPTION_NAMES:
        if getattr(args, name, None) is None:
            setattr(args, name, getattr(defaults, name))


def parse_times(text) -> Tuple[float, ...]:
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        items = str(text).strip().strip("[]()").replace(",", " ").split()
    try:
        return tuple(float(s) for s in items)
    except ValueError:
        raise ValueError(f"--node-ts must be numbers separated by commas, e.g. 0,1; got {text!r}") from None


def _check_times(text):
    ts = parse_times(text)
    if len(ts) < 2:
        raise ValueError(f"--node-ts needs at least two times (start and end), got {text!r}")
    if any(b <= a for a, b in zip(ts, ts[1:])):
        raise ValueError(f"--node-ts must be strictly increasing, got {text!r}")
    return ts


def _check_step_size(args, ts):
    if args.node_method not in FIXED_GRID_METHODS:
        if args.node_step_size is not None:
            raise ValueError(f"--node-step-size applies to fixed-grid methods, not to --node-method {args.node_method}")
        return
    if args.node_step_size is None:
        raise ValueError(f"--node-method {args.node_method} is a fixed-grid method and needs --node-step-size")
    checks.check_positive_number(args.node_step_size, "--node-step-size")
    if args.node_step_size > ts[-1] - ts[0]:
        raise ValueError(
            f"--node-step-size {args.node_step_size} is longer than the integration interval --node-ts {args.node_ts}"
        )


def _check_regularisers(args, ts):
    for flag in ("node_kinetic_reg", "node_jacobian_reg"):
        if getattr(args, flag) is not None:
            checks.check_non_negative_number(getattr(args, flag), "--" + flag.replace("_", "-"))
    checks.check_non_negative_number(args.node_steer, "--node-steer")
    last_interval = ts[-1] - ts[-2]
    if args.node_steer >= last_interval:
        raise ValueError(
            f"--node-steer {args.node_steer} must be smaller than the last interval of --node-ts {args.node_ts} "
            f"({last_interval:g}): the end time must stay after the time before it"
        )
    used = [flag for flag, on in (("--node-kinetic-reg", args.node_kinetic_reg is not None),
                                  ("--node-jacobian-reg", args.node_jacobian_reg is not None),
                                  ("--node-steer", args.node_steer > 0)) if on]
    if used and not (args.node_encoder or args.node_decoder):
        raise ValueError(f"{used[0]} regularises ODE blocks: it needs --node-encoder or --node-decoder")


@dataclass(frozen=True)
class NodeSettings:
    """Validated solver settings shared by every ODE block of a model."""

    ts: Tuple[float, ...]
    rtol: float
    atol: float
    method: str
    step_size: Optional[float]
    max_num_steps: int
    augment_dims: int
    time_dependent: bool
    adjoint: bool
    seminorm: bool
    kinetic_reg: Optional[float] = None
    jacobian_reg: Optional[float] = None
    steer: float = 0.0
    detach_encoder: bool = False
    function: str = "chain"

    @classmethod
    def from_args(cls, args) -> "NodeSettings":
        """Check every --node-* value of ``args`` (defaults filled in) and build the settings; raises
        ValueError naming the flag."""
        fill_node_defaults(args)
        checks.check_tolerance(args.node_rtol, "--node-rtol")
        checks.check_tolerance(args.node_atol, "--node-atol")
        ts = _check_times(args.node_ts)
        checks.check_method(args.node_method, "--node-method", choices=SUPPORTED_METHODS)
        _check_step_size(args, ts)
        checks.check_integer(args.node_max_num_steps, "--node-max-num-steps", minimum=1)
        checks.check_integer(args.node_augment_dims, "--node-augment-dims", minimum=0)
        if args.node_function not in FUNCTIONS:
            raise ValueError(f"--node-function must be one of {', '.join(FUNCTIONS)}, got {args.node_function!r}")
        if args.node_separated_decoder and not args.node_decoder:
            raise ValueError("--node-separated-decoder needs --node-decoder")
        if args.node_gradient not in GRADIENT_MODES:
            raise ValueError(f"--node-gradient must be one of {', '.join(GRADIENT_MODES)}, got {args.node_gradient!r}")
        if args.node_detach_encoder and not args.node_decoder:
            raise ValueError("--node-detach-encoder cuts the encoder's gradient through a NODE decoder: it needs --node-decoder")
        if args.node_adjoint_seminorm and args.node_gradient != "adjoint":
            raise ValueError("--node-adjoint-seminorm needs --node-gradient adjoint")
        _check_regularisers(args, ts)
        return cls(
            ts=ts,
            rtol=float(args.node_rtol),
            atol=float(args.node_atol),
            method=str(args.node_method),
            step_size=args.node_step_size,
            max_num_steps=args.node_max_num_steps,
            augment_dims=args.node_augment_dims,
            time_dependent=bool(args.node_time_dependent),
            adjoint=args.node_gradient == "adjoint",
            seminorm=bool(args.node_adjoint_seminorm),
            kinetic_reg=None if args.node_kinetic_reg is None else float(args.node_kinetic_reg),
            jacobian_reg=None if args.node_jacobian_reg is None else float(args.node_jacobian_reg),
            steer=float(args.node_steer),
            detach_encoder=bool(args.node_detach_encoder),
            function=str(args.node_function),
        )

    @property
    def regularisers(self) -> Tuple[str, ...]:
        """The regularisers integrated in training solves ("kinetic", "jacobian"), weight 0 included."""
        weights = {"kinetic": self.kinetic_reg, "jacobian": self.jacobian_reg}
        return tuple(kind for kind, weight in weights.items() if weight is not None)

    def regulariser_weight(self, kind) -> float:
        return {"kinetic": self.kinetic_reg, "jacobian": self.jacobian_reg}[kind] or 0.0

    @property
    def adaptive(self):
        return self.method in ADAPTIVE_METHODS

    def solver_kwargs(self):
        """Keyword arguments of odeint_ext for one solve."""
        if self.adaptive:
            options = {"max_num_steps": self.max_num_steps}
        elif self.method in FIXED_GRID_METHODS:
            options = {"step_size": self.step_size}
        else:
            options = {}
        return dict(
            rtol=self.rtol,
            atol=self.atol,
            method=self.method,
            options=options,
            adjoint=self.adjoint,
            adjoint_options={"norm": "seminorm"} if self.seminorm else None,
        )
