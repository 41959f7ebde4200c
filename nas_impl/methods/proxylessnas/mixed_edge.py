"""ProxylessNAS's mixed edge: binary gates over candidate ops and its architecture gradients.

Each edge holds one logit per candidate (`alpha`, p = softmax(alpha)) and, per step, binary
gates g (one-hot on the active path). Only the active path is computed forward (`two` also runs
its second, inactive path, detached); dL/dg_j = <dL/dy, o_j(x)> is obtained for every gate the
mode involves, and `set_arch_param_grad` turns those into alpha.grad with the BinaryConnect rule
dL/dalpha_i = sum_j dL/dg_j * p_j * (delta_ij - p_i) (proxylessnas.md §3.2). The REINFORCE
variant's reward, baseline and loss are at the end (proxylessnas.md §3.4).

Modes (the official `MixedEdge.MODE`, set to the binary mode only for an architecture step and
back to None for weight steps, `search/nas_manager.py` 548 and 582):

- None: one path sampled from multinomial(p), run as a plain module; no gates in the graph
  (weight steps, REINFORCE samples).
- "full_v2" (the official default): one path forward; in backward every candidate is re-run on
  the saved input under no_grad to give every gate its gradient (one path of memory).
- "full": every candidate runs forward, the inactive outputs detached (N paths of memory).
- "two": two distinct paths sampled from multinomial(p); the active one of the two is drawn
  from their renormalised probabilities; the inactive one runs forward, detached; only the
  two logits get a gradient, and `rescale_updated_arch_param` (after the optimizer step)
  shifts them so that every other path's probability is unchanged.

The Zero op (a `None` candidate) outputs zeros of the input's shape. In the official super-net
a residual block whose edge has Zero active returns its input and does not call the edge at
all (`MobileInvertedResidualBlock.forward`); such a block should test `is_zero_active` and do
the same. The edge's arch gradient is then skipped for that step (alpha.grad = None).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

MODES = ("full_v2", "two", "full", None)


class Zero(nn.Module):
    """The Zero op: zeros of the input's shape (the official `ZeroLayer` at stride 1).

    With `stride` > 1 the spatial size is divided (floor) as in `ZeroLayer`; the official
    super-net only offers Zero at stride 1 with equal in/out channels.
    """

    def __init__(self, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return torch.zeros_like(x)
        n, c, h, w = x.shape
        return x.new_zeros(n, c, h // self.stride, w // self.stride)

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


class _ArchGradient(torch.autograd.Function):
    """Forward: the active candidate on a detached copy of x. Backward: the gradient w.r.t. x
    (and, optionally, the active candidate's weights) through that candidate's graph, and
    dL/dg_k = sum(o_k(x) * dL/dy) for every candidate k, the inactive ones re-run on the
    saved input under no_grad (the official `ArchGradientFunction`)."""

    @staticmethod
    def forward(ctx, x, gates, ops, active, *params):  # noqa: ANN001 - autograd signature
        detached = x.detach().requires_grad_(x.requires_grad)
        with torch.enable_grad():
            out = ops[active](detached)
        ctx.ops, ctx.active, ctx.n_params = ops, active, len(params)
        ctx.detached, ctx.out, ctx.params = detached, out, params
        ctx.gate_dtype = gates.dtype
        return out.detach()

    @staticmethod
    def backward(ctx, grad_out):  # noqa: ANN001 - autograd signature
        detached, out, params = ctx.detached, ctx.out, ctx.params
        wanted = ([detached] if detached.requires_grad else []) + list(params)
        grads: list[torch.Tensor | None] = [None] * len(wanted)
        if wanted and out.requires_grad:
            grads = list(torch.autograd.grad(out, wanted, grad_out, allow_unused=True))
        grad_x = grads.pop(0) if detached.requires_grad else None
        if grad_x is None and ctx.needs_input_grad[0]:
            grad_x = torch.zeros_like(detached)  # the active path is Zero
        binary = torch.zeros(len(ctx.ops), dtype=ctx.gate_dtype, device=grad_out.device)
        with torch.no_grad():
            for k, op in enumerate(ctx.ops):
                out_k = out if k == ctx.active else op(detached)
                binary[k] = torch.sum(out_k * grad_out)
        ctx.detached = ctx.out = ctx.params = None
        return (grad_x, binary, None, None, *grads)


class MixedEdge(nn.Module):
    """One searchable edge: candidate ops, architecture logits `alpha` and binary gates.

    candidates: modules, or None (or `Zero`) for the Zero op; all map the input to outputs of
        one shape.
    init_std: alpha ~ normal(0, init_std) (official `--arch_init_ratio` 1e-3).
    mode: "full_v2", "two", "full" or None (see the module docstring); settable later.
    skip_arch_grad_when_zero: True (official): with the Zero op active, `set_arch_param_grad`
        sets alpha.grad to None (the step leaves this edge alone). False: the gates' gradients
        are turned into alpha.grad as for any other op (needs the edge to have been called).
    full_v2_weight_grads: False (official): in "full_v2" the active candidate's weights get no
        gradient from the edge (the official backward asks for the input's gradient only).
        True: they get the gradient of running that candidate alone.
    reset_candidate_grads: True (official `binarize`): every sampling sets the .grad of every
        candidate's parameters to None, so that an optimizer skips (no weight decay, no
        momentum for) the candidates that did not run.
    generator: draws the initial alpha (None: the global generator).
    """

    def __init__(self, candidates: Sequence[nn.Module | None], init_std: float = 1e-3,
                 mode: str | None = None, *, skip_arch_grad_when_zero: bool = True,
                 full_v2_weight_grads: bool = False, reset_candidate_grads: bool = True,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if len(candidates) == 0:
            raise ValueError("a mixed edge needs at least one candidate op")
        self.candidates = nn.ModuleList([Zero() if op is None else op for op in candidates])
        self.alpha = nn.Parameter(torch.empty(len(candidates)).normal_(0.0, init_std, generator=generator))
        self.mode = mode
        self.skip_arch_grad_when_zero = skip_arch_grad_when_zero
        self.full_v2_weight_grads = full_v2_weight_grads
        self.reset_candidate_grads = reset_candidate_grads
        self.log_prob: torch.Tensor | None = None  # log p(active), single-path samples (REINFORCE)
        self.current_probs: torch.Tensor | None = None  # official current_prob_over_ops
        self._pair: list[int] | None = None  # `two`: [active, inactive]
        self._old_alphas: torch.Tensor | None = None  # `two`: the pair's logits before the step
        self._set_active(0)

    # --- properties -----------------------------------------------------------------------

    @property
    def mode(self) -> str | None:
        return self._mode

    @mode.setter
    def mode(self, value: str | None) -> None:
        if value not in MODES:
            raise ValueError(f"unknown mixed-edge mode {value!r}; expected one of {MODES}")
        self._mode = value

    @property
    def n_choices(self) -> int:
        return len(self.candidates)

    @property
    def probs(self) -> torch.Tensor:
        return F.softmax(self.alpha, dim=0)

    @property
    def gates(self) -> torch.Tensor:
        """The binary gates of the current sample (a leaf; .grad holds dL/dg after backward)."""
        if self._gates.device != self.alpha.device or self._gates.dtype != self.alpha.dtype:
            self._set_gates()
        return self._gates

    @property
    def active(self) -> int:
        return self.active_index[0]

    def is_zero(self, index: int) -> bool:
        return isinstance(self.candidates[index], Zero)

    @property
    def is_zero_active(self) -> bool:
        return self.is_zero(self.active)

    def chosen_index(self) -> int:
        """argmax p (the derived op; the first on ties)."""
        return int(torch.argmax(self.alpha.detach()))

    def entropy(self, eps: float = 1e-8) -> torch.Tensor:
        p = self.probs
        return -torch.sum(p * torch.log(p + eps))

    def extra_repr(self) -> str:
        return f"n_choices={self.n_choices}, mode={self.mode!r}"

    # --- sampling -------------------------------------------------------------------------

    def _set_gates(self) -> None:
        gates = torch.zeros(self.n_choices, dtype=self.alpha.dtype, device=self.alpha.device)
        gates[self.active] = 1.0
        self._gates = gates.requires_grad_(True)

    def _set_active(self, active: int, inactive: list[int] | None = None) -> None:
        self.active_index = [int(active)]
        self.inactive_index = ([i for i in range(self.n_choices) if i != active]
                               if inactive is None else [int(i) for i in inactive])
        self._old_alphas = None
        self._set_gates()

    def _clear_candidate_grads(self) -> None:
        if self.reset_candidate_grads:
            for p in self.candidates.parameters():
                p.grad = None

    def binarize(self, generator: torch.Generator | None = None) -> int:
        """Sample the path(s) of the next forward (the official `binarize`); returns the active one.

        "two": two distinct paths from multinomial(p) without replacement, then the active one
        of them from their renormalised probabilities; otherwise one path from multinomial(p).
        """
        probs = self.probs
        if self.mode == "two":
            if self.n_choices < 2:
                raise ValueError("mode 'two' needs at least two candidates")
            pair = torch.multinomial(probs.detach(), 2, replacement=False, generator=generator)
            slice_probs = F.softmax(self.alpha[pair], dim=0)
            self.current_probs = torch.zeros_like(probs).index_put((pair,), slice_probs)
            c = int(torch.multinomial(slice_probs.detach(), 1, generator=generator)[0])
            active, inactive = int(pair[c]), int(pair[1 - c])
            self._set_active(active, inactive=[inactive])
            self._pair = [active, inactive]
            self.log_prob = None
        else:
            active = int(torch.multinomial(probs.detach(), 1, generator=generator)[0])
            self._set_active(active)
            self._pair = None
            self.log_prob = torch.log(probs[active])
            self.current_probs = probs
        self._clear_candidate_grads()
        return active

    def set_chosen(self, index: int) -> None:
        """Force one path (one-hot gates, every other path inactive): tests and derivation."""
        if not 0 <= index < self.n_choices:
            raise IndexError(f"candidate {index} out of range for {self.n_choices} choices")
        self._set_active(index)
        self._pair = None
        probs = self.probs
        self.log_prob = torch.log(probs[index])
        self.current_probs = probs

    # --- forward --------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        active = self.active
        if self.mode is None:
            return self.candidates[active](x)
        gates = self.gates
        if self.mode == "full_v2":
            params = ([p for p in self.candidates[active].parameters() if p.requires_grad]
                      if self.full_v2_weight_grads else [])
            return _ArchGradient.apply(x, gates, self.candidates, active, *params)
        out: torch.Tensor | int = 0
        for i in self.active_index:
            o = self.candidates[i](x)
            out = out + gates[i].to(o.dtype) * o
        for i in self.inactive_index:
            o = self.candidates[i](x).detach()
            out = out + gates[i].to(o.dtype) * o
        return out

    # --- architecture gradient ------------------------------------------------------------

    def set_arch_param_grad(self) -> None:
        """Add the BinaryConnect gradient of the gates to alpha.grad (the official
        `set_arch_param_grad`): call after loss.backward(), before the optimizer step.

        Adds to an existing alpha.grad (e.g. a latency term's gradient through
        `current_probs`). With the Zero op active (and `skip_arch_grad_when_zero`), sets
        alpha.grad to None instead.
        """
        if self.mode is None:
            raise RuntimeError("mode None puts no gates in the graph: set the edge's mode to "
                               "'full_v2', 'full' or 'two' before the architecture step")
        if self.is_zero_active and self.skip_arch_grad_when_zero:
            self.alpha.grad = None
            self._old_alphas = None
            return
        binary = self._gates.grad
        if binary is None:
            raise RuntimeError("the binary gates have no gradient: run forward and loss.backward() "
                               "after binarize() before set_arch_param_grad()")
        if self.alpha.grad is None:
            self.alpha.grad = torch.zeros_like(self.alpha)
        with torch.no_grad():
            if self.mode == "two":
                if self._pair is None:
                    raise RuntimeError("mode 'two' needs a pair of paths sampled by binarize()")
                idx = torch.tensor(self._pair, device=self.alpha.device)
                p = F.softmax(self.alpha[idx], dim=0)
                g = binary[idx].to(p.dtype)
                # sum_j g_j p_j (delta_ij - p_i) = p_i (g_i - sum_j g_j p_j)
                self.alpha.grad[idx] += p * (g - torch.sum(g * p))
                self._old_alphas = self.alpha.detach()[idx].clone()
            else:
                p = self.probs.detach()
                g = binary.to(p.dtype)
                self.alpha.grad += p * (g - torch.sum(g * p))

    def rescale_updated_arch_param(self) -> None:
        """"two" only, after the optimizer step: shift the two updated logits by
        log(sum exp(new) / sum exp(old)) so that sum exp over the pair, hence the probability
        of every other path, is what it was before the step (official
        `rescale_updated_arch_param`). Does nothing when the step skipped this edge."""
        if self.mode != "two":
            raise RuntimeError("rescale_updated_arch_param is for mode 'two'")
        if self._old_alphas is None:
            return
        idx = torch.tensor(self._pair, device=self.alpha.device)
        with torch.no_grad():
            new = self.alpha[idx]
            offset = torch.logsumexp(new, 0) - torch.logsumexp(self._old_alphas, 0)
            self.alpha[idx] = new - offset
        self._old_alphas = None


def mixed_edges(module: nn.Module) -> Iterator[MixedEdge]:
    """Every MixedEdge inside `module`, in module order (the official `redundant_modules`)."""
    return (m for m in module.modules() if isinstance(m, MixedEdge))


# --- REINFORCE (the official `rl_update_step`, proxylessnas.md §3.4) -------------------------


def reinforce_reward(acc: float, metric: float | None, ref: float | None, tradeoff: float = 0.1) -> float:
    """acc * (ref / metric) ** tradeoff (the official `calculate_reward`); acc alone when no
    metric (no target hardware). `acc` is a fraction: the official divides top-1 % by 100."""
    if metric is None:
        return float(acc)
    if ref is None:
        raise ValueError("a reward with a metric needs its reference value `ref`")
    return float(acc) * (float(ref) / float(metric)) ** tradeoff


class MovingAverageBaseline:
    """The official REINFORCE baseline: None until the first update, which sets it to that
    batch's mean reward; later b <- b + decay * (mean - b). The decay weight (0.99) thus
    multiplies the new batch's mean, as in the official code. Update it with the batch's
    rewards before computing the advantages (reward - b) of that same batch."""

    def __init__(self, decay: float = 0.99) -> None:
        self.decay = decay
        self.value: float | None = None

    def update(self, rewards: float | Sequence[float]) -> float:
        """Fold in one update's rewards (a sequence: their mean) and return the new baseline."""
        mean = float(rewards) if isinstance(rewards, (int, float)) else sum(rewards) / len(rewards)
        if self.value is None:
            self.value = mean
        else:
            self.value += self.decay * (mean - self.value)
        return self.value

    def state_dict(self) -> dict[str, float | None]:
        return {"decay": self.decay, "value": self.value}

    def load_state_dict(self, state: dict[str, float | None]) -> None:
        self.decay, self.value = state["decay"], state["value"]


def reinforce_loss(log_probs: Sequence[torch.Tensor], rewards: Sequence[float], baseline: float) -> torch.Tensor:
    """-(1/n) sum_j (R_j - b) * log p(sample j): its gradient w.r.t. alpha is the official one.

    log_probs[j]: the sum over edges of log p(chosen op) of sample j (each edge's `log_prob`
    after `binarize` in mode None); rewards[j] its reward; b the baseline already updated with
    this batch's rewards.
    """
    if len(log_probs) != len(rewards) or not rewards:
        raise ValueError(f"need one reward per sample, got {len(log_probs)} log-probs and {len(rewards)} rewards")
    total = sum((r - baseline) * lp for lp, r in zip(log_probs, rewards))
    return -total / len(rewards)
