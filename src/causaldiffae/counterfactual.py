"""Counterfactual images by abduction, intervention and decoding (SPEC §2).

``counterfactual(model, images, do={"thickness": 4.0})`` answers "what would these images look
like had thickness been 4?" in one call. The three steps are separate functions so that a grid
of several interventions on the same images abducts only once:

1. ``abduct``: ``u`` = posterior mean, factual ``z`` by the causal layer, and the decoder's own
   exogenous noise: ``x_T`` by deterministic DDIM inversion conditioned on the factual ``z``
   (``"inversion"``); or ``x_T`` and one residual per step of the stochastic sampler, abducted so
   that decoding with the factual ``z`` returns ``x0`` exactly (``"ddpm"``, edit-friendly DDPM
   inversion); or ``x0`` re-noised with fresh noise (``"stochastic"``, what the reference did).
2. ``intervene``: set (``"set"``) or move the mean of (``"shift"``) each intervened block to the
   standardised value; descendants are recomputed from their own abducted noise by the model,
   non-descendants are left bit-identical.
3. ``decode``: the abduction's sampler from ``x_T`` conditioned on ``z'`` (the stochastic sampler
   driven by the abducted residuals for ``"ddpm"``, DDIM otherwise), with guidance ``w`` away from a reference
   condition: the null condition (classifier-free guidance, ``guidance="null"``) or the factual
   latent itself (``guidance="factual"``), which amplifies only the change the intervention makes
   and so leaves a null intervention exact after inversion.

Values are given and returned in natural units; ``label_mean``/``label_std`` are the train
statistics the model's label prior was standardised with. Models without mechanisms
(``diffae-aligned``, ``label-conditional``) run the same code without propagation, so the
variants can be compared on equal terms.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Mapping, Sequence, overload

import numpy as np
import torch
from numpy.typing import ArrayLike

from causaldiffae.config import (  # the options' vocabularies and measured defaults, torch-free for the CLI's --help
    ABDUCTIONS,
    DEFAULT_ABDUCTION,
    DEFAULT_GUIDANCE,
    DEFAULT_MODE,
    DEFAULT_SPACING,
    DEFAULT_START,
    DEFAULT_STEPS,
    DEFAULT_W,
    GUIDANCES,
    MODES,
    SPACINGS,
    is_finite_number,
)
from causaldiffae.diffusion import ddim_invert, ddim_sample, ddim_timesteps, ddpm_decode, ddpm_invert, guided, q_sample
from causaldiffae.errors import UserError, did_you_mean

if TYPE_CHECKING:
    from causaldiffae.models import CausalDiffAE

CLASS_NAMES = ("digit", "class")
# Fixed-point refinements per DDIM inversion step. On the first shipped model (6,000 steps; 48 test digits) the
# null intervention after inversion + decoding changes pixels by L1 0.037 / 0.0078 / 0.0026 with
# 0 / 1 / 2 refinements at 20 steps (0.010 / 0.0016 / 0.0006 at 50), and x_T's std rises from 0.89
# to 1.03: unrefined inversion at few steps leaves x_T off the Gaussian the decoder expects.
INVERSION_REFINE = 2
# Images per decoder call when a grid's columns are decoded together: on 2 CPU cores the shipped model
# takes 7.8 ms per image at batch 6 and 5.4 ms from batch 30 up, and memory grows with the batch.
MAX_DECODE_BATCH = 64


class CounterfactualError(UserError):
    """An intervention that cannot be carried out on this model: unknown variable, bad value or option."""


@dataclass
class Abduction:
    """What was inferred about each factual image: exogenous noise, causal latent and ``x_T``."""

    u: torch.Tensor  # (B, n*block + style); the standardised labels for label-conditional models (no mechanisms: u = z)
    z: torch.Tensor  # (B, n*block + style) factual latent (standardised labels when label-conditional)
    x_T: torch.Tensor  # (B, C, H, W)
    class_labels: torch.Tensor | None  # (B,) or None
    timesteps: torch.Tensor  # the DDIM schedule shared by inversion and decoding
    abduction: str = DEFAULT_ABDUCTION  # how x_T was made; decoding clips the predicted x0 only after "stochastic"
    residuals: list[torch.Tensor] | None = None  # per-step sampler noise abducted by "ddpm"
    x0: torch.Tensor | None = None  # (B, C, H, W) the factual images, what a "ddpm" abduction's null intervention returns

    def rows(self, index: slice) -> Abduction:
        """The abduction of some of its images: every per-image tensor sliced alike."""
        def cut(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[index]

        return replace(self, u=self.u[index], z=self.z[index], x_T=self.x_T[index], class_labels=cut(self.class_labels),
                       residuals=None if self.residuals is None else [r[index] for r in self.residuals], x0=cut(self.x0))


@dataclass
class Counterfactual:
    """Counterfactual images in ``[-1, 1]`` and every variable's value in natural units."""

    images: torch.Tensor
    values: np.ndarray  # (B, n) read off the counterfactual latent (block means, unstandardised)
    factual_values: np.ndarray  # (B, n) read off the factual latent
    z: torch.Tensor
    z_cf: torch.Tensor
    class_labels: torch.Tensor | None


# Validation ------------------------------------------------------------------------------------


def is_class_conditional(model: CausalDiffAE) -> bool:
    """Whether the decoder takes a class (digit) input that ``do(digit=k)`` can set."""
    return model.num_classes > 0


def check_options(
    model: CausalDiffAE, *, steps: int, w: float, mode: str, abduction: str, guidance: str = DEFAULT_GUIDANCE,
    start: float = DEFAULT_START, spacing: str = DEFAULT_SPACING,
) -> None:
    """Refuse options the model cannot honour, before any sampling starts."""
    check_decoding(model, mode=mode, w=w, guidance=guidance)
    check_abduction(model, steps=steps, abduction=abduction, start=start, spacing=spacing)


def check_abduction(model: CausalDiffAE, *, steps: int, abduction: str, start: float = DEFAULT_START, spacing: str = DEFAULT_SPACING) -> None:
    """The options ``abduct`` takes: how ``x_T`` is found, and on which noise levels."""
    if abduction not in ABDUCTIONS:
        raise CounterfactualError(f"unknown abduction {abduction!r} (use {' or '.join(ABDUCTIONS)})")
    total = num_train_timesteps(model)
    if not isinstance(steps, (int, np.integer)) or not 2 <= steps <= total:
        raise CounterfactualError(f"steps must be an integer in 2..{total}, got {steps!r}")
    if not (is_finite_number(start) and 0 < start <= 1) or int(total * start) < steps:
        raise CounterfactualError(f"start must lie in (0, 1] and leave at least steps={steps} of {total} timesteps, got {start!r}")
    if spacing not in SPACINGS:
        raise CounterfactualError(f"unknown timestep spacing {spacing!r} (use {' or '.join(SPACINGS)})")


def check_decoding(model: CausalDiffAE, *, mode: str, w: float, guidance: str) -> None:
    """The options ``decode_interventions`` takes: the intervention mode and the guidance."""
    if guidance not in GUIDANCES:
        raise CounterfactualError(f"unknown guidance reference {guidance!r} (use {' or '.join(GUIDANCES)})")
    check_mode(mode)
    if not is_finite_number(w):
        raise CounterfactualError(f"guidance w must be a finite number, got {w!r}")
    if w != 1.0 and guidance == "null" and not model.has_null_condition:
        raise CounterfactualError(
            f"guidance w={w:g} from the null condition needs a model trained with one (cond_drop_prob > 0 or unlabeled samples); "
            "this one was not: use w=1 or guidance='factual'"
        )


def check_mode(mode: str) -> None:
    """The option ``intervene`` takes: set the whole block, or shift its mean."""
    if mode not in MODES:
        raise CounterfactualError(f"unknown mode {mode!r} (use {' or '.join(MODES)})")


def check_do(model: CausalDiffAE, do: Mapping[str, object], batch: int) -> dict[str, np.ndarray]:
    """Turn ``do`` into per-sample float arrays ``(batch,)``, naming the variable or value at fault."""
    if not isinstance(do, Mapping):
        raise CounterfactualError(f"do: expected a mapping of variable names to values, e.g. {{'thickness': 4.0}}; got {type(do).__name__}")
    variables = model.graph.variables
    class_inputs = [name for name in do if name in CLASS_NAMES and name not in variables]
    if len(class_inputs) > 1:
        raise CounterfactualError(f"do: {' and '.join(class_inputs)} name the same class input; give one")
    out: dict[str, np.ndarray] = {}
    for name, value in do.items():
        if name in CLASS_NAMES and name not in variables:
            if not is_class_conditional(model):
                raise CounterfactualError(f"do({name}=...) needs a class-conditional model; this one has no class input")
        elif name not in variables:
            raise CounterfactualError(f"cannot intervene on {name!r}: not a variable of the graph "
                                      f"({did_you_mean(name, variables)}variables: {', '.join(variables)})")
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise CounterfactualError(f"do({name}=...): value {value!r} is not a number") from None
        if arr.ndim == 0:
            arr = np.full(batch, float(arr))
        if arr.shape != (batch,):
            raise CounterfactualError(f"do({name}=...): expected a scalar or {batch} values, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise CounterfactualError(f"do({name}=...): values must be finite, got {arr[~np.isfinite(arr)][0]}")
        if name in CLASS_NAMES and name not in variables:
            k = int(model.num_classes)
            if np.any(arr != np.round(arr)) or np.any(arr < 0) or np.any(arr >= k):
                raise CounterfactualError(f"do({name}=...): classes are integers in 0..{k - 1}, got {arr.tolist()}")
        out[name] = arr
    return out


def label_stats(model: CausalDiffAE, label_mean: ArrayLike | None = None, label_std: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Train-set label mean/std (float64): given ones, else those saved in the model; one finite
    value per variable, std > 0 (a zero std would standardise every value to NaN images)."""
    mean = model.label_mean.double().cpu().numpy() if label_mean is None else _stat("label_mean", label_mean)
    std = model.label_std.double().cpu().numpy() if label_std is None else _stat("label_std", label_std)
    n = len(model.graph)
    for name, value in (("label_mean", mean), ("label_std", std)):
        if value.shape != (n,) or not np.isfinite(value).all():
            raise CounterfactualError(f"{name}: expected {n} finite values (one per variable of {list(model.graph.variables)}), got {value.tolist()}")
    if np.any(std <= 0):
        raise CounterfactualError(f"label_std: values must be > 0, got {std.tolist()}")
    return mean, std


def _stat(name: str, value: ArrayLike) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CounterfactualError(f"{name}: {value!r} is not a vector of numbers") from None


def num_train_timesteps(model: CausalDiffAE) -> int:
    return int(model.scheduler.config.num_train_timesteps)


def _device(model: CausalDiffAE) -> torch.device:
    return next(model.parameters()).device


def check_images(model: CausalDiffAE, images: torch.Tensor | ArrayLike) -> torch.Tensor:
    """Factual images as float32 ``(B, C, H, W)`` in ``[-1, 1]``, refused with a clear error otherwise:
    a wrong size or layout would fail deep inside a convolution, a wrong range not at all."""
    x = torch.as_tensor(images)
    want = tuple(model.image_shape)
    if x.ndim != 4 or tuple(x.shape[1:]) != want:
        hint = "; channels last? use x.permute(0, 3, 1, 2)" if x.ndim == 4 and tuple(x.shape[1:]) == (*want[1:], want[0]) else ""
        raise CounterfactualError(f"images: expected shape (B, {', '.join(map(str, want))}) for this model, got {tuple(x.shape)}{hint}")
    if x.shape[0] == 0:
        raise CounterfactualError("images: an empty batch (B = 0)")
    x = x.to(torch.float32)
    if x.numel() and not (torch.isfinite(x).all() and x.min() >= -1.001 and x.max() <= 1.001):
        raise CounterfactualError(f"images: pixel values must lie in [-1, 1], got {float(x.min()):g}..{float(x.max()):g} "
                                  "(uint8 pixels: x / 127.5 - 1)")
    return x


# The three steps -------------------------------------------------------------------------------


@torch.no_grad()
def abduct(
    model: CausalDiffAE,
    images: torch.Tensor,
    *,
    steps: int = DEFAULT_STEPS,
    abduction: str = DEFAULT_ABDUCTION,
    labels: np.ndarray | torch.Tensor | None = None,
    class_labels: torch.Tensor | ArrayLike | None = None,
    label_mean: np.ndarray | None = None,
    label_std: np.ndarray | None = None,
    generator: torch.Generator | None = None,
    refine: int = INVERSION_REFINE,
    start: float = DEFAULT_START,
    spacing: str = DEFAULT_SPACING,
    progress: bool = False,
) -> Abduction:
    """Infer ``u``, the factual ``z`` and ``x_T`` for factual images in ``[-1, 1]``.

    ``labels`` (natural units) are needed only by label-conditional models, whose "latent" is
    the standardised label vector itself. ``start < 1`` abducts (and so decodes) through only the
    lower noise levels (``ddim_timesteps``), which keeps more of the image; ``spacing`` places the
    steps on them.
    """
    check_abduction(model, steps=steps, abduction=abduction, start=start, spacing=spacing)
    device = _device(model)
    x0 = check_images(model, images).to(device)
    cls = None
    if class_labels is not None:
        cls = _class_labels(class_labels, x0.shape[0]).to(device)
        if is_class_conditional(model):  # a model without classes ignores them
            k = int(model.num_classes)
            bad = cls[(cls < -1) | (cls >= k)]
            if len(bad):
                raise CounterfactualError(f"class_labels: {int(bad[0])} is not a class of this model (use -1 for unknown, or 0..{k - 1})")
    elif is_class_conditional(model):
        raise CounterfactualError("this model is class-conditional: pass class_labels, the class of each image (-1 where unknown)")
    if model.variant == "label-conditional":
        if labels is None:
            raise CounterfactualError("a label-conditional model needs the images' labels to abduct its condition")
        values = np.asarray(labels, dtype=np.float64)
        want = (x0.shape[0], len(model.graph))
        if values.shape != want:
            raise CounterfactualError(f"labels: expected shape {want} (one row per image, one column per variable of "
                                      f"{list(model.graph.variables)}), got {values.shape}")
        if not np.isfinite(values).all():
            raise CounterfactualError("labels: values must be finite")
        mean, std = label_stats(model, label_mean, label_std)
        std_labels = (values - mean) / std
        u = z = torch.as_tensor(std_labels, dtype=torch.float32, device=device)
    else:
        u, _ = model.encode(x0)
        z = model.propagate(u)
    timesteps = ddim_timesteps(num_train_timesteps(model), steps, start, spacing)
    alphas = model.alphas_cumprod
    residuals = None
    if abduction == "inversion":
        cond = model.condition(z, class_labels=cls)
        x_T = ddim_invert(lambda x, t: model.eps(x, t, cond), x0, timesteps, alphas, refine=refine, progress=progress)
    elif abduction == "ddpm":
        cond = model.condition(z, class_labels=cls)
        x_T, residuals = ddpm_invert(lambda x, t: model.eps(x, t, cond), x0, timesteps, alphas, generator=generator, progress=progress)
    else:
        x_T = q_sample(x0, int(timesteps[0]), alphas, generator).float()
    return Abduction(u=u, z=z, x_T=x_T, class_labels=cls, timesteps=timesteps, abduction=abduction, residuals=residuals, x0=x0)


def _class_labels(class_labels: torch.Tensor | ArrayLike, batch: int) -> torch.Tensor:
    """One integer class per image, ``(batch,)`` long; a float such as 1.7 is refused, not truncated."""
    try:
        values = np.asarray(class_labels.cpu() if isinstance(class_labels, torch.Tensor) else class_labels, dtype=np.float64)
    except (TypeError, ValueError):
        raise CounterfactualError(f"class_labels: {class_labels!r} is not a sequence of integers") from None
    if values.shape != (batch,):
        raise CounterfactualError(f"class_labels: expected {batch} values (one per image), got shape {values.shape}")
    if not (np.isfinite(values).all() and np.all(values == np.round(values))):
        raise CounterfactualError(f"class_labels: classes are integers (-1 where unknown), got {values.tolist()}")
    return torch.as_tensor(values, dtype=torch.long)


def intervened_blocks(
    model: CausalDiffAE, z: torch.Tensor, do: Mapping[str, np.ndarray], label_mean: np.ndarray, label_std: np.ndarray, mode: str
) -> dict[str, torch.Tensor]:
    """The new value of each intervened block ``(B, block)`` from natural-unit values.

    ``set`` fills the whole block with the standardised value (the label prior's mean);
    ``shift`` moves the block's mean there and keeps the individual's residual around it.
    """
    b, d = z.shape[0], model.block_size
    blocks = model.blocks(z)
    out = {}
    for name, values in do.items():
        if name not in model.graph.variables:
            continue
        i = model.graph.index(name)
        target = torch.as_tensor((values - label_mean[i]) / label_std[i], dtype=z.dtype, device=z.device).view(b, 1)
        if mode == "set":
            out[name] = target.expand(b, d).clone()
        else:
            block = blocks[:, i]
            out[name] = block - block.mean(dim=1, keepdim=True) + target
    return out


@torch.no_grad()
def intervene(
    model: CausalDiffAE,
    abduction: Abduction,
    do: Mapping[str, np.ndarray],
    *,
    label_mean: np.ndarray,
    label_std: np.ndarray,
    mode: str = DEFAULT_MODE,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(z', class')`` under ``do`` (natural units: a scalar or one value per image); descendants
    recomputed by the model's mechanisms."""
    check_mode(mode)
    do = check_do(model, do, abduction.z.shape[0])
    label_mean, label_std = label_stats(model, label_mean, label_std)
    blocks = intervened_blocks(model, abduction.z, do, label_mean, label_std, mode)
    z_cf = model.intervene(abduction.u, blocks) if blocks else abduction.z
    cls = abduction.class_labels
    for name in CLASS_NAMES:
        if name in do and name not in model.graph.variables:
            cls = torch.as_tensor(do[name], dtype=torch.long, device=abduction.z.device)
    return z_cf, cls


@torch.no_grad()
def decode(
    model: CausalDiffAE,
    x_T: torch.Tensor,
    z_cf: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    class_labels: torch.Tensor | None = None,
    w: float = 1.0,
    reference: torch.Tensor | None = None,
    clip_x0: bool = False,
    residuals: list[torch.Tensor] | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """The abduction's sampler from ``x_T`` conditioned on ``z'``, guided with weight ``w`` away from ``reference``.

    ``reference`` is a decoder condition (``model.condition(...)``); ``None`` means the null
    condition, i.e. classifier-free guidance. ``residuals`` (from ``"ddpm"`` abduction) drive the
    stochastic sampler; otherwise DDIM runs. ``clip_x0=False`` (for inverted ``x_T``) retraces the
    unclipped inversion path exactly; clipping the predicted ``x0`` only helps when ``x_T`` is fresh
    noise (stochastic abduction).
    """
    cond = model.condition(z_cf, class_labels=class_labels)
    if reference is None:
        reference = model.condition(None, class_labels=class_labels)
    eps_fn = guided(model.eps, cond, reference, w)
    alphas = model.alphas_cumprod
    if residuals is not None:
        x0 = ddpm_decode(eps_fn, x_T, residuals, timesteps, alphas, progress=progress)
    else:
        x0 = ddim_sample(eps_fn, x_T, timesteps, alphas, clip_x0=clip_x0, progress=progress)
    return x0.clamp(-1, 1)


@torch.no_grad()
def decode_intervention(
    model: CausalDiffAE,
    abduction: Abduction,
    do: Mapping[str, np.ndarray],
    *,
    label_mean: np.ndarray,
    label_std: np.ndarray,
    mode: str = DEFAULT_MODE,
    w: float = DEFAULT_W,
    guidance: str = DEFAULT_GUIDANCE,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(images, z', class')``: one intervention on an abduction, decoded as the abduction requires.

    A grid or sweep abducts once and calls ``decode_interventions`` with all its columns.
    """
    return decode_interventions(
        model, abduction, [do], label_mean=label_mean, label_std=label_std, mode=mode, w=w, guidance=guidance, progress=progress
    )[0]


@torch.no_grad()
def decode_interventions(
    model: CausalDiffAE,
    abduction: Abduction,
    dos: Sequence[Mapping[str, np.ndarray]],
    *,
    label_mean: np.ndarray,
    label_std: np.ndarray,
    mode: str = DEFAULT_MODE,
    w: float = DEFAULT_W,
    guidance: str = DEFAULT_GUIDANCE,
    max_batch: int = MAX_DECODE_BATCH,
    progress: bool = False,
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """``decode_intervention`` for each of ``dos`` (the columns of a grid), decoded together.

    The columns are stacked into batches of at most ``max_batch`` images (whole columns; one column
    larger than that is a batch of its own), so a
    grid of small batches runs the decoder a few times on a large batch instead of once per column.
    A column whose decode would only retrace a ``ddpm`` abduction (``retraces``: a reconstruction
    column, say) is not decoded: it is the factual image.
    """
    check_decoding(model, mode=mode, w=w, guidance=guidance)
    b = abduction.x_T.shape[0]
    per_call = max(1, max_batch // b)
    edits = [intervene(model, abduction, do, label_mean=label_mean, label_std=label_std, mode=mode) for do in dos]
    images: dict[int, torch.Tensor] = {}
    todo = []
    for j, (z_cf, cls) in enumerate(edits):
        if abduction.x0 is not None and retraces(abduction, z_cf, cls, w=w, guidance=guidance):
            images[j] = abduction.x0.clamp(-1, 1)
        else:
            todo.append(j)
    for group in (todo[i:i + per_call] for i in range(0, len(todo), per_call)):
        k = len(group)
        z_cf = torch.cat([edits[j][0] for j in group])
        classes = [c for j in group if (c := edits[j][1]) is not None]  # all or none: one abduction's classes
        cls = torch.cat(classes) if classes else None
        reference = None
        if guidance == "factual" and w != 1.0:
            reference = model.condition(_tile(abduction.z, k), class_labels=_tile(abduction.class_labels, k))
        residuals = None if abduction.residuals is None else [_tile(r, k) for r in abduction.residuals]
        decoded = decode(
            model, _tile(abduction.x_T, k), z_cf, abduction.timesteps, class_labels=cls, w=w, reference=reference,
            clip_x0=abduction.abduction == "stochastic", residuals=residuals, progress=progress,
        )
        images.update(zip(group, decoded.split(b)))
    return [(images[j], z, c) for j, (z, c) in enumerate(edits)]


def retraces(abduction: Abduction, z_cf: torch.Tensor, class_labels: torch.Tensor | None, *, w: float, guidance: str) -> bool:
    """Whether decoding ``(z', class')`` would retrace a ``ddpm`` abduction step for step and return its images.

    Its residuals are what each step adds to the decoder's mean to land on the abducted path, so
    decoding with the abduction's own noise prediction returns the factual images whatever the
    decoder (to float rounding): the decoder's passes would repeat the abduction's. That is the
    abduction's own condition, unguided (``w = 1``) or guided from itself (the factual reference), or
    any condition at ``w = 0`` from the factual reference. A grid's reconstruction column, an
    evaluation's reconstructions and a guidance sweep's ``w = 0`` are such decodes.
    """
    same_class = class_labels is None if abduction.class_labels is None else (
        class_labels is not None and torch.equal(class_labels, abduction.class_labels))
    edited = not (same_class and torch.equal(z_cf, abduction.z))
    return retraces_by_options(abduction.abduction, w=w, guidance=guidance, edited=edited)


def retraces_by_options(abduction: str, *, w: float, guidance: str, edited: bool) -> bool:
    """``retraces`` from the options alone, known before abducting (a command says what it will decode):
    an ``edited`` column (another latent or class) only at ``w = 0`` from the factual reference, the
    abduction's own condition also unguided or guided from itself."""
    if abduction != "ddpm":
        return False
    if guidance == "factual" and w == 0.0:
        return True
    return not edited and (w == 1.0 or guidance == "factual")


@overload
def _tile(t: torch.Tensor, k: int) -> torch.Tensor: ...
@overload
def _tile(t: None, k: int) -> None: ...
def _tile(t: torch.Tensor | None, k: int) -> torch.Tensor | None:
    """``k`` copies of a batch, one after another (column-major, as ``decode_interventions`` stacks them)."""
    return None if t is None else t.repeat(k, *([1] * (t.dim() - 1)))


def block_values(model: CausalDiffAE, z: torch.Tensor, label_mean: np.ndarray, label_std: np.ndarray) -> np.ndarray:
    """Natural-unit value of every variable read off a latent: block means, unstandardised."""
    means = model.blocks(z).mean(dim=2).double().cpu().numpy()
    return means * np.asarray(label_std) + np.asarray(label_mean)


# The one call ----------------------------------------------------------------------------------


@torch.no_grad()
def counterfactual(
    model: CausalDiffAE,
    images: torch.Tensor,
    do: Mapping[str, object],
    *,
    label_mean: np.ndarray | None = None,
    label_std: np.ndarray | None = None,
    steps: int = DEFAULT_STEPS,
    w: float = DEFAULT_W,
    abduction: str = DEFAULT_ABDUCTION,
    mode: str = DEFAULT_MODE,
    guidance: str = DEFAULT_GUIDANCE,
    start: float = DEFAULT_START,
    spacing: str = DEFAULT_SPACING,
    labels: np.ndarray | None = None,
    class_labels: torch.Tensor | ArrayLike | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Counterfactual:
    """Counterfactual images of ``images`` (``[-1, 1]``, ``(B, C, H, W)``) under ``do`` (natural units).

    ``do`` maps variable names (or ``"digit"`` on a class-conditional model) to a scalar or one
    value per image; several variables at once are intervened jointly. ``label_mean``/``label_std``
    default to the train statistics stored in the model.
    """
    check_options(model, steps=steps, w=w, mode=mode, abduction=abduction, guidance=guidance, start=start, spacing=spacing)
    images = check_images(model, images)
    values = check_do(model, do, images.shape[0])
    mean, std = label_stats(model, label_mean, label_std)
    abd = abduct(
        model, images, steps=steps, abduction=abduction, labels=labels, class_labels=class_labels,
        label_mean=mean, label_std=std, generator=generator, start=start, spacing=spacing, progress=progress,
    )
    out, z_cf, cls = decode_intervention(
        model, abd, values, label_mean=mean, label_std=std, mode=mode, w=w, guidance=guidance, progress=progress
    )
    return Counterfactual(
        images=out,
        values=block_values(model, z_cf, mean, std),
        factual_values=block_values(model, abd.z, mean, std),
        z=abd.z,
        z_cf=z_cf,
        class_labels=cls,
    )
