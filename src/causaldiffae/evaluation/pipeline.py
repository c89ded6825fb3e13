"""The whole evaluation of one trained run: metrics, figures and the numbers behind the report.

``evaluate(model, predictors, train, test, settings, out)`` checks every input first (model,
predictors and data describe the same dataset and graph; options the model can honour), then
runs: effectiveness and preservation against the SCM's true counterfactuals with the null
baseline, composition, reversibility, realism (Frechet distance on the predictors' features,
reconstruction error of each of the three abductions), DCI, an abduction x intervention-mode comparison,
sweeps over DDIM steps and guidance strength, and the figures.
"""

from __future__ import annotations

import contextlib
import re
import time
import warnings
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import torch

from causaldiffae.config import (
    ABDUCTIONS,
    DEFAULT_ABDUCTION,
    DEFAULT_GUIDANCE,
    DEFAULT_MODE,
    DEFAULT_SPACING,
    DEFAULT_START,
    DEFAULT_STEPS,
    DEFAULT_W,
    MODES,
)
from causaldiffae.counterfactual import Abduction, abduct, check_options, decode_interventions, label_stats
from causaldiffae.data.base import CausalImageDataset, images_tensor, pixels_tensor
from causaldiffae.errors import UserError
from causaldiffae.evaluation import figures
from causaldiffae.evaluation.acceptance import draw_resamples, is_per_image, per_image_values, scores_from_metrics
from causaldiffae.evaluation.dci import block_codes, dci
from causaldiffae.evaluation.metrics import (
    MORPHOMETRIC_SHAPE,
    CounterfactualFn,
    composition_errors,
    draw_indices,
    effectiveness,
    mae,
    marginal_values,
    model_counterfactual_fn,
    morphometric_reader,
    reversibility,
    with_progress,
)
from causaldiffae.evaluation.oracle import morphomnist_oracle_scores, morphomnist_true_counterfactuals
from causaldiffae.evaluation.predictors import Predictors, check_meta
from causaldiffae.evaluation.realism import UnreliableFrechet, frechet_distance, l1_pixels

if TYPE_CHECKING:
    from causaldiffae.models import CausalDiffAE


@dataclass
class EvalSettings:
    n: int = 500  # test images for effectiveness and realism
    seeds: int = 1  # repetitions with fresh intervention values (and abduction noise)
    steps: int = DEFAULT_STEPS
    w: float = DEFAULT_W
    guidance: str = DEFAULT_GUIDANCE
    mode: str = DEFAULT_MODE
    abduction: str = DEFAULT_ABDUCTION
    start: float = DEFAULT_START
    spacing: str = DEFAULT_SPACING
    batch_size: int = 100
    n_small: int = 64  # images for composition, reversibility, comparisons and sweeps
    grid_images: int = 8
    composition_times: int = 10
    sweep_steps: tuple[int, ...] = (10, 20, 50, 100)
    sweep_w: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0)
    dci_method: str = "gbt"
    dci_train: int = 2000  # train images whose codes fit the DCI regressors
    seed: int = 0

    @classmethod
    def quick(cls, **overrides: Any) -> EvalSettings:
        """A smoke-test sized evaluation: every section runs, on few images."""
        base = cls(n=64, n_small=16, grid_images=4, composition_times=4, sweep_steps=(10, 20), sweep_w=(1.0, 2.0), dci_train=500)
        return replace(base, **overrides)


def check_inputs(model: CausalDiffAE, predictors: Predictors, test: CausalImageDataset, settings: EvalSettings, source: str) -> None:
    """Refuse mismatched model / predictors / data and impossible options before any sampling."""
    check_meta(predictors.meta, test, source)
    if sorted(model.graph.edges) != sorted(test.graph.edges) or set(model.graph.variables) != set(test.graph.variables):
        raise UserError(f"the run's graph ({model.graph}) differs from the data's ({test.graph})")
    if tuple(model.graph.variables) != tuple(test.graph.variables):
        raise UserError(
            f"the run orders its variables {', '.join(model.graph.variables)}, the data {', '.join(test.graph.variables)}; "
            "evaluate needs a run trained in the data's own order (train without data.graph)"
        )
    if tuple(model.image_shape) != tuple(test.image_shape):
        raise UserError(f"the run was trained on images of shape {tuple(model.image_shape)}, the data has {test.image_shape}")
    st = settings
    if not all(np.isfinite(st.sweep_w)):
        raise UserError(f"--sweep-w values must be finite, got {', '.join(f'{w:g}' for w in st.sweep_w)}")
    runs = [(steps, st.w) for steps in (st.steps, *st.sweep_steps)]
    if sweeps_guidance(model, st):
        runs += [(st.steps, w) for w in st.sweep_w]
    for steps, w in runs:
        check_options(model, steps=steps, w=w, mode=st.mode, abduction=st.abduction, guidance=st.guidance, start=st.start, spacing=st.spacing)
    for option, value, least in (("--n", st.n, 2), ("--n-small", st.n_small, 2), ("--seeds", st.seeds, 1), ("--batch-size", st.batch_size, 1)):
        if value < least:
            raise UserError(f"{option} must be at least {least}, got {value}")
    if len(test) < 4:
        raise UserError(f"{test.name}: the {test.split} split has {len(test)} images; evaluate needs at least 4")
    if test.split == "train" and len(test) - st.n < 2:  # realism and DCI compare with train images not scored
        raise UserError(f"--split train: --n {st.n} leaves fewer than 2 of the {len(test)} train images to compare with; "
                        f"use --n {len(test) - 2} or fewer")
    if settings.dci_method not in ("gbt", "lasso"):
        raise UserError(f"unknown DCI method {settings.dci_method!r} (use gbt or lasso)")


def sweeps_guidance(model: CausalDiffAE, settings: EvalSettings) -> bool:
    """The guidance sweep needs a reference condition: the null one (a model trained with it) or the factual latent."""
    return model.has_null_condition or settings.guidance == "factual"


def _mean_tree(trees: list) -> Any:
    """Average numeric leaves of identically shaped nested dicts/lists; an int every tree shares
    (a count) stays as it is."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: _mean_tree([t[k] for t in trees]) for k in first}
    if isinstance(first, int) and not isinstance(first, bool) and all(t == first for t in trees):
        return first
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return float(np.mean(trees))
    if isinstance(first, list):
        return [_mean_tree(list(items)) for items in zip(*trees)]
    return first


def _std_tree(trees: list) -> Any:
    """Spread over draws of the numeric leaves, per-image values left out (their average is kept)."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: _std_tree([t[k] for t in trees]) for k in first if not is_per_image(k)}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return float(np.std(trees))
    if isinstance(first, list):
        return [_std_tree(list(items)) for items in zip(*trees)]
    return first


def _codes(model: CausalDiffAE, ds: CausalImageDataset, idx: np.ndarray, batch: int = 500) -> np.ndarray:
    """Factual causal latents ``z`` (posterior mean through the causal layer), style block left out."""
    out = []
    with torch.no_grad():
        for s in range(0, len(idx), batch):
            x = images_tensor(ds, idx[s : s + batch]).to(next(model.parameters()).device)
            u, _ = model.encode(x)
            out.append(model.blocks(model.propagate(u)).flatten(1).double().cpu().numpy())
    return np.concatenate(out)


def _quantiles(train: CausalImageDataset, k: int, count: int, lo: float = 0.05, hi: float = 0.95) -> np.ndarray:
    return np.quantile(train.labels[:, k], np.linspace(lo, hi, count))


@dataclass
class _Draw:
    """One evaluation's inputs, drawn once and shared by every section.

    Each draw has its own generator, so none depends on which sections ran before it: test images
    from ``seed``, the small subset from ``seed + 1000``, reversibility targets from ``seed + 2000``,
    the comparison and sweep values from ``seed + 3000``, the Frechet reference and DCI training
    images from ``seed + 4000``, and draw ``k``'s intervention values from ``seed + k + 1000``
    (``metrics.marginal_values``). Two pairs share a seed (the small subset and the first values;
    the Frechet reference and the DCI images); they stay so that reported numbers reproduce.
    """

    model: CausalDiffAE
    predictors: Predictors
    train: CausalImageDataset
    test: CausalImageDataset
    settings: EvalSettings
    label_mean: np.ndarray  # the model's own standardisation, for converting values
    label_std: np.ndarray
    idx: np.ndarray  # the scored test images
    small: np.ndarray  # a random subset of ``idx`` for the small-sample sections
    measure: Callable | None  # the morphometric reader, where the images are 28x28 MorphoMNIST digits
    progress: Callable | None
    workers: int = 1  # processes that draw and measure digits

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(self.test.graph.variables)

    @cached_property
    def x(self) -> torch.Tensor:
        return images_tensor(self.test, self.idx)

    @cached_property
    def labels(self) -> np.ndarray:
        return self.test.labels[self.idx]

    @cached_property
    def x_small(self) -> torch.Tensor:
        return images_tensor(self.test, self.small)

    def classes(self, indices: np.ndarray) -> np.ndarray | None:
        """Digit classes of ``indices``: they condition a class-conditional decoder and score identity preservation."""
        return None if self.test.classes is None else self.test.classes[indices]

    def condition_classes(self, indices: np.ndarray) -> np.ndarray | None:
        """Classes the decoder is told: only a class-conditional one is."""
        return self.classes(indices) if self.model.num_classes else None

    def test_values(self, offset: int) -> np.ndarray:
        """Whole test label vectors, permuted with ``seed + offset``, for the small subset."""
        perm = np.random.default_rng(self.settings.seed + offset).permutation(len(self.test))
        return self.test.labels[perm][self.small]

    def cf_fn(self, seed_offset: int = 0, **options: Any) -> CounterfactualFn:
        """The model's counterfactual function with the settings' options, ``options`` overriding."""
        s = self.settings
        opts = {"steps": s.steps, "w": s.w, "guidance": s.guidance, "mode": s.mode, "abduction": s.abduction, "start": s.start,
                "spacing": s.spacing, **options}
        return model_counterfactual_fn(
            self.model, label_mean=self.label_mean, label_std=self.label_std, batch_size=s.batch_size, seed=s.seed + seed_offset,
            progress=self.progress, **opts,
        )

    def effectiveness(self, cf_fn: CounterfactualFn, values: np.ndarray, *, small: bool = False,
                      measured: bool = False, per_image: bool = False) -> tuple[dict, dict[str, torch.Tensor]]:
        """``metrics.effectiveness`` on the scored images or the small subset, read by the predictors."""
        indices, images = (self.small, self.x_small) if small else (self.idx, self.x)
        return effectiveness(
            cf_fn, self.predictors.predict, images, self.test.labels[indices], values, self.test.graph,
            scm=self.test.scm, classes=self.classes(indices), measure=self.measure if measured else None, per_image=per_image,
        )


def evaluate(
    model: CausalDiffAE,
    predictors: Predictors,
    train: CausalImageDataset,
    test: CausalImageDataset,
    settings: EvalSettings,
    out: Path,
    *,
    progress: Callable | None = None,
    log: Callable[[str], None] = print,
    source: str = "predictors",
    sources: np.ndarray | None = None,
) -> dict:
    """Run every metric, write figures into ``out/figures``, return the metrics (JSON-able).

    ``sources`` (MorphoMNIST: the real digits the test split was drawn from,
    ``data.morphomnist.source_digits``) add the generator's true counterfactual (key ``oracle``).
    """
    check_inputs(model, predictors, test, settings, source)
    s = settings
    fig_dir = Path(out) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    d = _draw(model, predictors, train, test, s, progress, log)
    n = len(d.idx)
    metrics = _header(d)
    timings: dict[str, float] = {}

    log(f"effectiveness: {n} images x {len(d.variables)} interventions x {s.seeds} seed(s), {s.steps} DDIM steps")
    redrawable = d.measure is not None and test.scm is not None and set(d.variables) == {"thickness", "intensity"}
    oracle_sources = sources if redrawable else None  # the digits the generator redraws
    with _timed(timings, "effectiveness_s"):
        per_seed, draws = _effectiveness(d, keep_draws=oracle_sources is not None)
    metrics["effectiveness"] = _mean_tree(per_seed)
    if s.seeds > 1:
        metrics["effectiveness_std"] = _std_tree(per_seed)
    metrics["throughput"] = {"counterfactuals_per_s": n * len(d.variables) * s.seeds / timings["effectiveness_s"], "steps": s.steps}
    trues = None
    if oracle_sources is not None:
        log("true counterfactuals by the dataset's generator (the floor of the measured scores)")
        with _timed(timings, "oracle_s"):
            trues, oracles = _oracle(d, draws, oracle_sources)
        metrics["oracle"] = _mean_tree(oracles)
        if s.seeds > 1:
            metrics["oracle_std"] = _std_tree(oracles)

    log("realism: Frechet distance and reconstruction error")
    with _timed(timings, "realism_s"):
        with _frechet_warnings_once():
            metrics["realism"] = _realism(d, draws[0][1], trues)

    log(f"composition (m=1..{s.composition_times}) and reversibility on {len(d.small)} images")
    with _timed(timings, "composition_reversibility_s"):
        metrics["composition"], metrics["reversibility"] = _composition_reversibility(d)

    log(f"comparison of abduction ({' / '.join(ABDUCTIONS)}) and intervention mode (set / shift)")
    comp_values = d.test_values(3000)
    with _timed(timings, "comparison_s"):
        metrics["comparison"] = {"n": int(len(d.small)), "results": _comparison(d, comp_values)}

    sweep_guidance = sweeps_guidance(model, s)
    log(f"sweeps: steps {list(s.sweep_steps)}" + (f", guidance {list(s.sweep_w)}" if sweep_guidance else
        " (no guidance sweep: the model has no null condition, model.cond_drop_prob=0; --guidance factual sweeps against the factual latent)"))
    with _timed(timings, "sweeps_s"):
        metrics["steps_sweep"] = _steps_sweep(d, comp_values)
        metrics["guidance_sweep"], w_images = _guidance_sweep(d, comp_values) if sweep_guidance else ({}, {})

    metrics["dci"] = None
    if model.variant != "label-conditional":
        tr_idx, te_idx = _dci_split(d)
        log(f"DCI ({s.dci_method}) on codes of {len(tr_idx)} train / {len(te_idx)} {test.split} images"
            + (" (the train images not fitted)" if test.split == train.split else ""))
        with _timed(timings, "dci_s"):
            metrics["dci"] = _dci(d, tr_idx, te_idx, fig_dir / "latent_pca.png")

    log("figures")
    with _timed(timings, "figures_s"):
        metrics["figures"] = _figures(d, fig_dir, metrics, w_images)
    metrics["timings"] = timings
    return metrics


def _draw(model: CausalDiffAE, predictors: Predictors, train: CausalImageDataset, test: CausalImageDataset, s: EvalSettings,
          progress: Callable | None, log: Callable[[str], None]) -> _Draw:
    """The scored images, their small subset and the instruments that read them, with a note where the data differs from the run's."""
    # the model's own standardisation: the latent was aligned to labels scaled by it, and data built
    # with another seed or source has other train-set statistics
    mean, std = label_stats(model)
    if not (np.allclose(mean, train.label_mean, rtol=1e-4) and np.allclose(std, train.label_std, rtol=1e-4)):
        log("note: the data's train-set label statistics differ from the run's; values are converted with the run's")
    n = min(s.n, len(test))
    if n < s.n:
        log(f"note: --n {s.n}, but the {test.split} split has {len(test)} images: scoring all {n}")
    idx = draw_indices(np.random.default_rng(s.seed), len(test), n)
    # a random subset of the draw, not its first items: a test split stored in order (Pendulum's
    # angle-major grid) would otherwise give the small-sample sections only its lowest angles
    small = idx[draw_indices(np.random.default_rng(s.seed + 1000), n, min(s.n_small, n))]
    measure = None
    workers = torch.get_num_threads()  # the cores --threads gives the evaluation also draw and measure digits
    if test.name == "morphomnist":
        if tuple(test.image_shape) == MORPHOMETRIC_SHAPE:
            measure = morphometric_reader(test.graph, workers)
        else:
            log(f"note: no morphometrics at image shape {tuple(test.image_shape)}: they measure 28x28 digits in their pixels")
    return _Draw(model=model, predictors=predictors, train=train, test=test, settings=s, label_mean=mean, label_std=std,
                 idx=idx, small=small, measure=measure, progress=progress, workers=workers)


def _header(d: _Draw) -> dict:
    """What was evaluated: the data, the model, the settings and the instruments (metrics.json's first keys)."""
    test, model = d.test, d.model
    return {
        "dataset": {"name": test.name, "split": test.split, "n_test": len(test), "variables": list(d.variables), "edges": [list(e) for e in test.graph.edges]},
        "model": {"variant": model.variant, "trained_steps": int(model.trained_steps), "has_null_condition": bool(model.has_null_condition),
                  "num_classes": int(model.num_classes)},
        "settings": {**asdict(d.settings), "n_used": int(len(d.idx))},
        "predictors": d.predictors.meta.metrics,
        "scm": test.scm is not None,
        "morphometrics": d.measure is not None,
    }


@contextlib.contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """Record the block's wall-clock seconds as ``timings[key]`` (the report's Timings section)."""
    start = time.perf_counter()
    yield
    timings[key] = time.perf_counter() - start


@contextlib.contextmanager
def _frechet_warnings_once() -> Iterator[None]:
    """The realism table's distances share their set sizes, so when one is unreliable most are:
    warn with the first one's message and how many more there were, not once per distance."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:  # outside the recording, so they go where the caller's warnings go; also when the section fails
        frechet: dict[str, list[warnings.WarningMessage]] = {}
        for w in caught:
            if issubclass(w.category, UnreliableFrechet):  # its kind: the text before the first figure
                frechet.setdefault(re.split(r"\d", str(w.message))[0], []).append(w)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        for first, *more in frechet.values():
            note = f" (and {len(more)} more of the realism table's distances alike)" if more else ""
            warnings.warn_explicit(f"{first.message}{note}", first.category, first.filename, first.lineno)


def _effectiveness(d: _Draw, keep_draws: bool) -> tuple[list[dict], list[tuple[np.ndarray, dict[str, torch.Tensor]]]]:
    """Effectiveness and preservation against the SCM with the null baseline, on ``seeds`` fresh
    draws of intervention values: every draw's results, and its values and images (the first draw
    always, for realism; every draw when ``keep_draws``, for the true counterfactual)."""
    s = d.settings
    per_seed, draws = [], []
    for seed in range(s.seeds):
        values = marginal_values(d.test.labels, d.idx, s.seed + seed)
        res, imgs = d.effectiveness(d.cf_fn(seed_offset=seed), values, measured=True, per_image=True)
        per_seed.append(res)
        if seed == 0 or keep_draws:
            draws.append((values, imgs))
    return per_seed, draws


def _oracle(d: _Draw, draws: list, sources: np.ndarray) -> tuple[list[dict], list[dict]]:
    """The generator's true counterfactuals on every draw the model was scored on (so the two
    columns average the same draws), and their scores."""
    labels, scm = d.labels, d.test.scm
    assert scm is not None  # evaluate scores the oracle only on data with an SCM
    trues = [morphomnist_true_counterfactuals(sources[d.idx], labels, values, scm, d.workers) for values, _ in draws]
    return trues, [morphomnist_oracle_scores(d.test.images[d.idx], true, labels, imgs, d.workers) for true, (_, imgs) in zip(trues, draws)]


def _realism(d: _Draw, cf_images: dict[str, torch.Tensor], trues: list[dict] | None) -> dict:
    """Frechet distances and each abduction's reconstruction error."""
    read, features = d.predictors.predict, d.predictors.features
    x, labels = d.x, d.labels
    # Every set is compared with the same number of training images, which none of them was made
    # from: the distance's small-sample bias is then shared, and the unedited test digits (real,
    # held out) give the floor a perfect model would reach. Scoring the train split, the reference
    # is drawn from the train images not scored.
    pool = _excluding(len(d.train), d.idx, d.test.split == d.train.split)
    ref = pool[draw_indices(np.random.default_rng(d.settings.seed + 4000), len(pool), min(len(d.idx), len(pool)))]
    ref_feats = features(images_tensor(d.train, ref))
    realism: dict = {
        "reference": {"split": "train", "n": int(len(ref)), "features": int(ref_feats.shape[1])},
        "frechet_unedited": frechet_distance(features(x), ref_feats),
        "frechet_counterfactual": {var: frechet_distance(features(imgs), ref_feats) for var, imgs in cf_images.items()},
    }
    if trues is not None:  # an intervention that breaks the data's correlations leaves the data even when exact
        realism["frechet_true_counterfactual"] = {
            var: frechet_distance(features(pixels_tensor(digits)), ref_feats) for var, (digits, _) in trues[0].items()
        }
    recon = {}
    for abduction in ABDUCTIONS:
        rec, _ = d.cf_fn(abduction=abduction)(x, {}, labels, d.condition_classes(d.idx))
        got = read(rec)
        recon[abduction] = {
            "l1": float(l1_pixels(rec.numpy(), x.numpy()).mean()),
            "mse": float(((rec - x) / 2).square().mean()),
            "frechet": frechet_distance(features(rec), ref_feats),
            "mae": {v: mae(got[v], labels[:, j]) for j, v in enumerate(d.variables)},  # attributes kept by reconstruction
        }
        if d.measure is not None:
            measured = d.measure(rec)
            recon[abduction]["measured_mae"] = {v: mae(measured[v], labels[:, j]) for j, v in enumerate(d.variables) if v in measured}
            recon[abduction]["measured_errors_per_image"] = {
                v: per_image_values(np.abs(measured[v] - labels[:, j])) for j, v in enumerate(d.variables) if v in measured
            }
    realism["reconstruction"] = recon
    return realism


def _excluding(n: int, used: np.ndarray, same_split: bool) -> np.ndarray:
    """``0..n-1``, less ``used`` when those index the same images (the evaluated split is train)."""
    everything = np.arange(n)
    return np.setdiff1d(everything, used) if same_split else everything


def _composition_reversibility(d: _Draw) -> tuple[dict, dict]:
    """The null intervention composed m times, and intervening back, on the small subset."""
    s = d.settings
    xs, ls, cs = d.x_small, d.test.labels[d.small], d.condition_classes(d.small)
    base_fn = d.cf_fn()
    comp: dict = {"n": int(len(d.small)), "abduction": s.abduction}
    fns = {"l1": base_fn}
    if s.abduction == "ddpm":  # exact by construction; a deterministic abduction shows what composing costs
        fns["inversion_l1"] = d.cf_fn(abduction="inversion")
    for key, fn in fns.items():
        errors = composition_errors(fn, xs, ls, cs, times=s.composition_times, progress=d.progress)
        comp[key] = [float(row.mean()) for row in errors]
        comp[f"{key}_per_image"] = per_image_values(errors[0])  # one null intervention, the bar's row
    return comp, reversibility(base_fn, xs, ls, d.test_values(2000), d.test.graph, cs, progress=d.progress)


def _comparison(d: _Draw, values: np.ndarray) -> dict:
    """Effectiveness of every abduction x intervention mode on the small subset, same values."""
    pairs = [(abduction, mode) for abduction in ABDUCTIONS for mode in MODES]
    return {
        f"{abduction}/{mode}": d.effectiveness(d.cf_fn(abduction=abduction, mode=mode), values, small=True)[0]
        for abduction, mode in with_progress(d.progress, pairs, "abduction x mode")
    }


def _steps_sweep(d: _Draw, values: np.ndarray) -> dict[str, dict]:
    """Effectiveness on the small subset at each DDIM step count, with the seconds it took."""
    sweep = {}
    for steps in with_progress(d.progress, d.settings.sweep_steps, "steps sweep"):
        start = time.perf_counter()
        res, _ = d.effectiveness(d.cf_fn(steps=steps), values, small=True)
        sweep[str(steps)] = {"results": res, "seconds": time.perf_counter() - start}
    return sweep


def _guidance_sweep(d: _Draw, values: np.ndarray) -> tuple[dict[str, dict], dict[float, torch.Tensor]]:
    """Effectiveness on the small subset at each guidance weight, and each weight's images of the
    first variable's intervention (the guidance figure)."""
    sweep, images = {}, {}
    for w in with_progress(d.progress, d.settings.sweep_w, "guidance sweep"):
        res, imgs = d.effectiveness(d.cf_fn(w=w), values, small=True)
        sweep[str(w)] = res
        images[w] = imgs[d.variables[0]]
    return sweep, images


def _dci_split(d: _Draw) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the train images whose codes fit the DCI regressors and of the test images scored."""
    s = d.settings
    order = np.random.default_rng(s.seed + 4000).permutation(len(d.train))
    same = d.test.split == d.train.split  # then half at most is fitted and the rest scored
    tr_idx = order[: min(s.dci_train, len(order) // 2) if same else s.dci_train]
    return tr_idx, _excluding(len(d.test), tr_idx, same)


def _dci(d: _Draw, tr_idx: np.ndarray, te_idx: np.ndarray, scatter: Path) -> dict:
    """DCI of the factual codes, per latent dimension and per variable block; draws the latent's PCA."""
    s = d.settings
    z_train, z_test = _codes(d.model, d.train, tr_idx), _codes(d.model, d.test, te_idx)
    y_train, y_test = d.train.labels[tr_idx], d.test.labels[te_idx]
    nb = len(d.variables)
    scores = {
        "dims": dci(z_train, y_train, z_test, y_test, method=s.dci_method, seed=s.seed),
        "blocks": dci(block_codes(z_train, nb), y_train, block_codes(z_test, nb), y_test, method=s.dci_method, seed=s.seed),
    }
    figures.latent_scatter(z_test, y_test, d.variables, scatter, title=f"PCA of z ({d.model.variant})")
    return scores


def _sweep_lines(rows: dict[str, list[dict]]) -> tuple[dict[str, list[float]], str, dict[str, float]]:
    """Series, y label and baselines of a sweep figure from each line's effectiveness items.

    Every variable goes on one scale, its MAE as a fraction of its null baseline (thickness in
    pixels beside intensity in grey levels lay flat at zero); natural units where a baseline is 0.
    """
    if all(item["null_mae"] > 0 for items in rows.values() for item in items):
        series = {name: [item["mae"] / item["null_mae"] for item in items] for name, items in rows.items()}
        return series, "MAE / null MAE", {"null (the unedited image)": 1.0}
    series = {name: [item["mae"] for item in items] for name, items in rows.items()}
    return series, "MAE (natural units)", {f"null: {name}": items[0]["null_mae"] for name, items in rows.items()}


def _sweep_figure(xs: list, results: dict, path: Path, *, xlabel: str, title: str, logx: bool = False) -> None:
    """One intervention's sweep: a line per variable it scored (effects without a known SCM are
    not), labelled with its role; ``results`` maps each x to that sweep point's variables."""
    rows = {f"{name} ({item['role']})": [results[x][name] for x in xs] for name, item in results[xs[0]].items()}
    series, ylabel, base = _sweep_lines(rows)
    figures.line_plot(xs, series, path, xlabel=xlabel, ylabel=ylabel, title=title, baselines=base, logx=logx)


def _figures(d: _Draw, fig_dir: Path, metrics: dict, w_images: dict[float, torch.Tensor]) -> dict:
    """Counterfactual grids, traversals, sweeps, composition; returns ``{name: relative path}``.

    ``w_images`` are the guidance sweep's counterfactuals of the small subset (not of the first
    images of the draw), by guidance weight.
    """
    s = d.settings
    g = min(s.grid_images, len(d.idx))
    abd = abduct(
        d.model, d.x[:g], steps=s.steps, abduction=s.abduction, labels=d.labels[:g], class_labels=d.condition_classes(d.idx[:g]),
        label_mean=d.label_mean, label_std=d.label_std, generator=torch.Generator().manual_seed(s.seed), start=s.start, spacing=s.spacing,
    )
    made = _grids(d, abd, fig_dir)
    made.update(_traversal(d, abd, fig_dir))
    if w_images:
        made.update(_guidance_figures(d, fig_dir, metrics, w_images))
    made.update(_steps_figures(d, fig_dir, metrics))
    made.update(_composition_figure(fig_dir, metrics["composition"]))
    bar = scores_from_metrics(metrics)
    if bar is not None and draw_resamples(bar, fig_dir / "bar_resamples.png") is not None:
        made["bar_resamples"] = "figures/bar_resamples.png"
    if metrics["dci"] is not None:
        made["latent_pca"] = "figures/latent_pca.png"
    return made


def _decode_columns(d: _Draw, abd: Abduction, dos: list[dict]) -> list[np.ndarray]:
    """Each intervention's images of the abducted batch, with the evaluation's settings."""
    s = d.settings
    decoded = decode_interventions(d.model, abd, dos, label_mean=d.label_mean, label_std=d.label_std, mode=s.mode, w=s.w, guidance=s.guidance)
    return [images.cpu().numpy() for images, _, _ in decoded]


def _grids(d: _Draw, abd: Abduction, fig_dir: Path) -> dict[str, str]:
    """Per variable: the first images, their reconstruction and do(variable) at five training quantiles."""
    s, g = d.settings, abd.z.shape[0]
    recon, = _decode_columns(d, abd, [{}])  # the null intervention from the grid's own abduction, beside its edits
    made = {}
    for k, var in enumerate(d.variables):
        vals = _quantiles(d.train, k, 5)
        cols = _decode_columns(d, abd, [{var: np.full(g, v)} for v in vals])
        rows = [[d.x[i].numpy(), recon[i]] + [c[i] for c in cols] for i in range(g)]
        name = f"grid_{var}.png"
        figures.image_grid(
            rows, fig_dir / name, col_titles=["original", "reconstruction"] + [f"{var}={v:.3g}" for v in vals],
            title=f"do({var}): {s.mode} mode, {s.abduction} abduction, {s.steps} DDIM steps, guidance w={s.w:g} ({s.guidance})",
        )
        made[f"grid_{var}"] = f"figures/{name}"
    return made


def _traversal(d: _Draw, abd: Abduction, fig_dir: Path) -> dict[str, str]:
    """One image, every variable across its train range (rows = variables)."""
    sub = abd.rows(slice(0, 1))
    rows, titles = [], []
    for k, var in enumerate(d.variables):
        vals = _quantiles(d.train, k, 7, 0.01, 0.99)
        rows.append([images[0] for images in _decode_columns(d, sub, [{var: np.array([v])} for v in vals])])
        titles.append(f"{var}: {vals[0]:.3g}\u00a0..\u00a0{vals[-1]:.3g}")  # no-break spaces: a wrap falls after the name
    figures.image_grid(rows, fig_dir / "traversal.png", row_titles=titles, title="one image, do(variable) from its 1st to its 99th training percentile (rows)")
    return {"traversal": "figures/traversal.png"}


def _guidance_figures(d: _Draw, fig_dir: Path, metrics: dict, w_images: dict[float, torch.Tensor]) -> dict[str, str]:
    """The guidance sweep's images of the first variable's intervention, and a sweep plot per variable."""
    ws = sorted(w_images)
    gi = min(6, len(d.small))
    rows = [[d.x_small[i].numpy()] + [w_images[w][i].numpy() for w in ws] for i in range(gi)]
    figures.image_grid(rows, fig_dir / "guidance_images.png", col_titles=["original"] + [f"w={w:g}" for w in ws],
                       title=f"do({d.variables[0]} = shuffled {d.test.split} value) under guidance w")
    made = {"guidance_images": "figures/guidance_images.png"}
    for var in d.variables:
        name = f"guidance_sweep_{var}.png"  # never guidance_images.png, whatever the variable's name
        _sweep_figure(ws, {w: metrics["guidance_sweep"][str(w)][var]["variables"] for w in ws}, fig_dir / name,
                      xlabel="guidance w", title=f"effectiveness vs guidance, do({var})")
        made[f"guidance_sweep_{var}"] = f"figures/{name}"
    return made


def _steps_figures(d: _Draw, fig_dir: Path, metrics: dict) -> dict[str, str]:
    steps = sorted(int(k) for k in metrics["steps_sweep"])
    made = {}
    for var in d.variables:
        name = f"steps_{var}.png"
        _sweep_figure(steps, {st: metrics["steps_sweep"][str(st)]["results"][var]["variables"] for st in steps}, fig_dir / name,
                      xlabel="DDIM steps", title=f"effectiveness vs DDIM steps, do({var})", logx=True)
        made[f"steps_{var}"] = f"figures/{name}"
    return made


def _composition_figure(fig_dir: Path, comp: dict) -> dict[str, str]:
    """L1 to the original against m, log scale when the values span two decades."""
    series = {f"null intervention applied m times ({comp['abduction']})": comp["l1"]}
    if "inversion_l1" in comp:
        series["the same, inversion abduction"] = comp["inversion_l1"]
    values = [v for ys in series.values() for v in ys]
    figures.line_plot(list(range(1, len(comp["l1"]) + 1)), series, fig_dir / "composition.png",
                      xlabel="m", ylabel="L1 to original (pixels in [0,1])", title="composition: the null intervention applied m times",
                      logy=min(values) > 0 and max(values) > 100 * min(values))
    return {"composition": "figures/composition.png"}
