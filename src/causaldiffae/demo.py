"""The one-command demo: the shipped MorphoMNIST model answering counterfactual questions.

No training and no network: it builds the embedded test digits it shows and scores (each as
``causaldiffae data morphomnist`` writes it with seed 0) unless a dataset folder is given, loads the
shipped CausalDiffAE and its anti-causal predictors, draws counterfactual grids, and scores a
sample of test digits against the targets the shipped model is held to.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from causaldiffae.atomic import atomic_file, check_out_dir
from causaldiffae.evaluation.acceptance import draw_resamples, summarise, table, without_per_image
from causaldiffae.errors import UserError

if TYPE_CHECKING:
    from causaldiffae.counterfactual import Abduction
    from causaldiffae.data.base import CausalImageDataset
    from causaldiffae.evaluation.predictors import Predictors
    from causaldiffae.models import CausalDiffAE

WEIGHTS = Path(__file__).parent / "weights" / "morphomnist"
THICKNESS_VALUES = (1.5, 2.5, 3.5, 4.5)
INTENSITY_VALUES = (80.0, 130.0, 180.0, 230.0)
BOTH_VALUES = ((1.5, 230.0), (1.5, 80.0), (4.5, 230.0), (4.5, 80.0))
GUIDANCE_VALUES = (0.0, 1.0, 2.0, 3.0)
ROUND_TRIP_IMAGES = 32  # digits the null intervention is scored on (the shipped report's composition used --n-small 32)
GUIDANCE_DO = {"thickness": 4.5}


@dataclass(frozen=True)
class DemoSettings:
    n_grid: int = 6  # digits per grid
    n_eval: int = 100  # digits scored
    steps: int | None = None  # DDIM steps; None: the shipped run's diffusion.sample_steps
    seed: int = 0


def embedded_test_digits(indices: np.ndarray, label_mean: np.ndarray, label_std: np.ndarray, progress: bool = True,
                         workers: int = 1) -> tuple[CausalImageDataset, np.ndarray]:
    """The embedded test split's digits ``indices``, drawn in memory (seed 0) by ``workers`` processes
    exactly as in the whole split and standardised with the model's train statistics, and the real
    digits they were drawn from (for the true counterfactual). A fifth of the split is all the demo
    needs, so it does not wait for the rest."""
    from causaldiffae.data.base import CausalImageDataset
    from causaldiffae.data.morphomnist import GRAPH, ThicknessIntensitySCM, embedded_source, generate_split

    images, digits = embedded_source()["test"]
    morphed, labels = generate_split(images, "test", seed=0, workers=workers, progress=progress, indices=indices)
    test = CausalImageDataset(
        morphed[..., None], labels, GRAPH, label_mean, label_std, name="morphomnist", split="test",
        classes=digits[indices], num_classes=10, scm=ThicknessIntensitySCM(),
    )
    return test, images[indices]


def _grid(model: CausalDiffAE, abd: Abduction, x: torch.Tensor, recon: torch.Tensor, columns: list[tuple[str, dict, float | None]],
          path: Path, title: str, decoded: dict[tuple, torch.Tensor], progress: bool = False) -> Path:
    """One grid from the shared abduction of its digits; each column is one intervention (``do``,
    guidance ``w``; None: the default), columns with the same ``w`` decoded together. ``decoded``
    holds the columns of earlier grids by ``(w, do)``; a column found there is not decoded again
    (the guidance sweep's w = 1 is do(thickness = 4.5) of the first grid)."""
    from causaldiffae.config import DEFAULT_W
    from causaldiffae.counterfactual import check_do, decode_interventions, label_stats
    from causaldiffae.evaluation.figures import image_grid

    mean, std = label_stats(model)
    keys = [(DEFAULT_W if w is None else w, tuple(sorted(do.items()))) for _, do, w in columns]
    todo = list(dict.fromkeys(k for k in keys if k not in decoded))
    for w in dict.fromkeys(w for w, _ in todo):
        picked = [k for k in todo if k[0] == w]
        dos = [check_do(model, dict(do), len(x)) for _, do in picked]
        for k, (images, _, _) in zip(picked, decode_interventions(model, abd, dos, label_mean=mean, label_std=std, w=w, progress=progress)):
            decoded[k] = images
    cols = [x, recon] + [decoded[k] for k in keys]
    rows = [[c[i].numpy() for c in cols] for i in range(len(x))]
    return image_grid(rows, path, col_titles=["original", "reconstruction"] + [name for name, _, _ in columns], title=title)


def scores(model: CausalDiffAE, predictors: Predictors, test: CausalImageDataset, idx: np.ndarray, values: np.ndarray, steps: int,
           seed: int, sources: np.ndarray | None = None, workers: int = 1, progress: bool = False, **options: Any) -> dict:
    """The shipped model's acceptance figures on the test digits ``idx`` intervened on with ``values``
    (see README, The shipped model), with the true counterfactual's when the real ``sources`` of the
    digits in ``test`` are given; ``workers`` processes draw and measure digits; ``progress`` shows
    the sampler's steps."""
    from causaldiffae.evaluation.metrics import effectiveness, model_counterfactual_fn, morphometric_reader
    from causaldiffae.evaluation.oracle import morphomnist_oracle_scores, morphomnist_true_counterfactuals
    from causaldiffae.data.base import images_tensor
    from causaldiffae.evaluation.realism import l1_pixels
    from causaldiffae.progress import bar

    measure = morphometric_reader(test.graph, workers)
    assert test.classes is not None and measure is not None  # a MorphoMNIST split: digit classes, measurable variables
    x, labels, classes = images_tensor(test, idx), test.labels[idx], test.classes[idx]
    bars = bar if progress else None
    cf_fn = model_counterfactual_fn(model, steps=steps, seed=seed, progress=bars, **options)
    eff, cf_images = effectiveness(cf_fn, predictors.predict, x, labels, values, test.graph, scm=test.scm, classes=classes, measure=measure,
                                   per_image=True)
    recon, _ = cf_fn(x, {}, labels, classes)  # the reconstruction the preservation bar is set by
    # one null intervention: exact through the ddpm residuals, so scored through DDIM inversion, on the
    # first ROUND_TRIP_IMAGES digits (as evaluate scores composition on a subset: inversion costs 3 passes a step)
    k = min(ROUND_TRIP_IMAGES, len(idx))
    inversion = model_counterfactual_fn(model, steps=steps, seed=seed, progress=bars, **{**options, "abduction": "inversion"})
    round_trip, _ = inversion(x[:k], {}, labels[:k], classes[:k])
    oracle = None
    if sources is not None and test.scm is not None:
        true = morphomnist_true_counterfactuals(sources[idx], labels, values, test.scm, workers)
        oracle = morphomnist_oracle_scores(test.images[idx], true, labels, cf_images, workers)
    l1 = l1_pixels(round_trip.numpy(), x[:k].numpy())
    recon_errors = np.abs(measure(recon)["thickness"] - labels[:, 0])
    s = summarise(eff, float(recon_errors.mean()), float(l1.mean()), "inversion", k, len(idx), steps, oracle,
                  reconstruction_thickness_errors=recon_errors, composition_errors=l1)
    return {**s, "effectiveness": without_per_image(eff)}  # its per-image values are in s["per_image"]


def render_report(s: dict, grids: dict[str, Path], out: Path, seconds: float, data: str | Path | None = None,
                  bar: Path | None = None) -> str:
    digits = "embedded test digits" if data is None else f"test digits of {data}"
    lines = [
        "# causaldiffae demo: the shipped MorphoMNIST CausalDiffAE",
        "",
        f"Scored on {s['n']} {digits}, {s['steps']} DDIM steps ({s['spacing']} spacing), the default abduction and intervention mode,",
        "intervention values drawn from the test marginal; true counterfactual values from the dataset's SCM;",
        "thickness and intensity measured with Morpho-MNIST morphometrics, digits read by the shipped classifier.",
        "",
    ]
    lines += table(s)
    if bar is not None:
        lines += ["", f"![the bar over resamples]({bar.relative_to(out).as_posix()})"]
    lines += ["", "## Counterfactual grids", ""]
    for name, path in grids.items():
        lines += [f"### {name}", "", f"![{name}]({path.relative_to(out).as_posix()})", ""]
    lines.append(f"Made in {seconds:.0f} s. The full evaluation of this model is in `causaldiffae/weights/morphomnist/report/` "
                 "(in the repository, under `src/`).")
    return "\n".join(lines) + "\n"


OWN_FILES = ("do_thickness.png", "do_intensity.png", "do_both.png", "guidance.png", "bar_resamples.png", "report.md", "scores.json")


def _own_folder(out: Path) -> bool:
    """New, empty, or holding only what a demo writes (grids first, so an interrupted demo's too)."""
    if not out.is_dir():
        return True
    names = [p.name for p in out.iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp"))]
    return not names or (all(n in OWN_FILES for n in names) and any(n.endswith(".png") or n == "scores.json" for n in names))


def run_demo(out: str | Path, data: str | Path | None = None, settings: DemoSettings = DemoSettings(),
             log: Callable[[str], None] = print, progress: bool = True) -> dict:
    """Write the demo's grids, ``scores.json`` and ``report.md`` into ``out``; return the scores."""
    from causaldiffae.checkpoint import load_run
    from causaldiffae.config import DEFAULT_ABDUCTION, DEFAULT_MODE, DEFAULT_W
    from causaldiffae.counterfactual import abduct, check_options, decode_intervention, label_stats
    from causaldiffae.data import load_dataset
    from causaldiffae.data.morphomnist import embedded_source, split_labels
    from causaldiffae.evaluation.metrics import draw_indices, marginal_values
    from causaldiffae.evaluation.oracle import sources_or_none
    from causaldiffae.data.base import images_tensor
    from causaldiffae.evaluation.predictors import load_predictors

    start = time.perf_counter()
    out = Path(out)
    check_out_dir(out, force=True, swap=False)  # a file is refused; the demo rewrites its own files in its own folder
    if not _own_folder(out):
        raise UserError(f"{out} holds files the demo did not write, so it is not an earlier demo output; choose another --out or empty it")
    model, config = load_run(WEIGHTS)
    workers = torch.get_num_threads()  # the cores --threads gives the demo also draw and measure digits
    steps = config.diffusion.sample_steps if settings.steps is None else settings.steps
    spacing = config.diffusion.sample_spacing
    for w in {DEFAULT_W, *GUIDANCE_VALUES}:
        check_options(model, steps=steps, w=w, mode=DEFAULT_MODE, abduction=DEFAULT_ABDUCTION, spacing=spacing)
    sources: np.ndarray | None
    if data is None:
        n_test = len(embedded_source()["test"][0])
        marginal = split_labels(np.arange(n_test), "test", seed=0)  # the whole split's labels, which the intervention values are drawn from
    else:
        test = load_dataset(data, "test", progress=progress)
        if test.name != "morphomnist":
            raise UserError(f"--data {data}: a {test.name} dataset; the shipped model is for MorphoMNIST")
        n_test, marginal = len(test), test.labels
        sources = sources_or_none(data, "test", log)
    rng = np.random.default_rng(settings.seed)
    grid_idx = draw_indices(rng, n_test, settings.n_grid)
    eval_idx = draw_indices(rng, n_test, settings.n_eval)
    values = marginal_values(marginal, eval_idx, settings.seed)
    if data is None:
        shown = np.union1d(grid_idx, eval_idx)
        log(f"building {len(shown)} of the {n_test} embedded MorphoMNIST test digits (seed 0), the ones shown and scored")
        test, sources = embedded_test_digits(shown, model.label_mean.double().numpy(), model.label_std.double().numpy(), progress=progress,
                                             workers=workers)
        grid_idx, eval_idx = np.searchsorted(shown, grid_idx), np.searchsorted(shown, eval_idx)  # positions among the digits built
    predictors = load_predictors(WEIGHTS / "predictors", test)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("report.md", "scores.json", "bar_resamples.png"):  # an interrupted rerun must not leave old scores beside new grids
        (out / name).unlink(missing_ok=True)
    assert test.classes is not None  # every MorphoMNIST split has its digits' classes
    x, classes = images_tensor(test, grid_idx), torch.as_tensor(test.classes[grid_idx])
    torch.manual_seed(settings.seed)
    log(f"drawing counterfactual grids ({settings.n_grid} digits, {steps} DDIM steps, {spacing} spacing)")
    abd = abduct(model, x, steps=steps, spacing=spacing, class_labels=classes, generator=torch.Generator().manual_seed(settings.seed),
                 progress=progress)
    mean, std = label_stats(model)
    recon = decode_intervention(model, abd, {}, label_mean=mean, label_std=std, progress=progress)[0]
    plans: dict[str, tuple[list[tuple[str, dict, float | None]], str, str]] = {  # grid: its columns (title, do, w), file, title
        "do(thickness)": ([(f"thickness={v:g}", {"thickness": v}, None) for v in THICKNESS_VALUES], "do_thickness.png",
                          "do(thickness = v): intensity follows through thickness -> intensity"),
        "do(intensity)": ([(f"intensity={v:g}", {"intensity": v}, None) for v in INTENSITY_VALUES], "do_intensity.png",
                          "do(intensity = v): thickness is kept"),
        "do(thickness, intensity)": ([(f"t={t:g}, i={i:g}", {"thickness": t, "intensity": i}, None) for t, i in BOTH_VALUES],
                                     "do_both.png", "do(thickness, intensity) at once"),
        "guidance strength": ([(f"w={w:g}", GUIDANCE_DO, w) for w in GUIDANCE_VALUES], "guidance.png",
                              "do(thickness = 4.5) with guidance weight w"),
    }
    decoded: dict[tuple, torch.Tensor] = {}
    grids = {name: _grid(model, abd, x, recon, columns, out / file, title, decoded, progress)
             for name, (columns, file, title) in plans.items()}
    log(f"scoring {len(eval_idx)} test digits" + (f" (--n {settings.n_eval}, but the split has {n_test})" if len(eval_idx) < settings.n_eval else ""))
    s = {**scores(model, predictors, test, eval_idx, values, steps, settings.seed, sources, workers, progress, spacing=spacing),
         "spacing": spacing}
    bar = draw_resamples(s, out / "bar_resamples.png")
    seconds = time.perf_counter() - start
    report = render_report(s, grids, out, seconds, data, bar)
    for name, text in (("scores.json", json.dumps(s, indent=2)), ("report.md", report)):
        with atomic_file(out / name) as tmp:
            tmp.write_text(text)
    s["files"] = [str(p) for p in [*grids.values(), *([bar] if bar is not None else [])]] + [str(out / "report.md"), str(out / "scores.json")]
    return s
