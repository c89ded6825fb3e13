"""Run folders on disk: safetensors for every tensor, JSON/YAML for everything else, no pickles.

Layout of a run folder::

    config.yaml                resolved experiment config
    model.safetensors          EMA weights for inference (metadata: graph, image shape, classes, step,
                               how the training images are framed)
    metrics.jsonl              one JSON object per logged step
    curves.png                 its loss, KL and gradient-norm curves
    samples/step-XXXXXXX.png   reconstruction and sample grids
    checkpoints/step-XXXXXXX/  model.safetensors, ema.safetensors, optimizer.safetensors, state.json

Every file and checkpoint folder is written atomically, so an interrupted write never replaces
the last good checkpoint.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from causaldiffae.atomic import atomic_dir, atomic_file
from causaldiffae.config import MAX_RESOLUTION, ExperimentConfig, is_image_shape, is_number, is_whole
from causaldiffae.data import framing
from causaldiffae.errors import UserError, require_folder
from causaldiffae.graph import CausalGraph
from causaldiffae.yaml_files import read_yaml

if TYPE_CHECKING:
    from causaldiffae.models import CausalDiffAE

CHECKPOINTS = "checkpoints"
_STEP = re.compile(r"step-(\d{7}|[1-9]\d{7,})")  # as checkpoint_dir writes them: zero-padded to 7 digits


class CheckpointError(UserError):
    """A run folder or checkpoint that cannot be loaded."""


# Optimizer state <-> flat tensors + JSON -------------------------------------------------------


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into named tensors and a JSON-able remainder."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, entry in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


# Checkpoints -----------------------------------------------------------------------------------


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    """Where the checkpoint of ``step`` lives (it may not exist)."""
    return Path(run_dir) / CHECKPOINTS / f"step-{step:07d}"


def _step_of(path: Path) -> int:
    return int(path.name.removeprefix("step-"))


def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first: real ``step-NNNNNNN`` folders inside it.

    Old checkpoints are deleted as new ones are written, so a ``checkpoints`` link pointing
    elsewhere is refused, and linked or oddly named step folders are not the run's.
    """
    root = Path(run_dir) / CHECKPOINTS
    if root.is_symlink():
        raise CheckpointError(f"{root} is a link; a run keeps its checkpoints in a folder of its own (old ones are deleted)")
    if not root.is_dir():
        return []
    return sorted(
        (p for p in root.glob("step-*") if _STEP.fullmatch(p.name) and p.is_dir() and not p.is_symlink() and (p / "state.json").is_file()),
        key=_step_of,  # by number: step-10000000 comes after step-9999999
    )


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor],
    optimizer: dict[str, Any],
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write ``checkpoints/step-XXXXXXX`` atomically, then delete all but the newest ``keep``."""
    path = checkpoint_dir(run_dir, step)
    opt_tensors, opt_meta = flatten_optimizer(optimizer)
    with atomic_dir(path, force=True) as tmp:
        save_file(_contiguous(model), str(tmp / "model.safetensors"))
        save_file(_contiguous(ema), str(tmp / "ema.safetensors"))
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "state.json").write_text(json.dumps({**state, "step": step, "optimizer": opt_meta}))
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The tensors and state of one checkpoint folder (CPU tensors)."""
    path = Path(path)
    try:
        state = json.loads((path / "state.json").read_bytes())
        if not isinstance(state, dict) or not isinstance(state.get("rng"), dict):
            raise ValueError("state.json is not an object with an rng state")
        step = state.get("step")
        if not is_whole(step, 0, math.inf):
            raise ValueError(f"step {step!r:.40} is not a whole number")
        if not isinstance(state.get("optimizer"), dict) or not isinstance(state["optimizer"].get("param_groups"), list):
            raise ValueError("its optimizer state is not an object with param_groups")
        window = state.get("log_window")  # absent in checkpoints written before it was kept
        if window is not None and not (isinstance(window, dict) and isinstance(window.get("sums"), dict)
                                       and isinstance(window.get("steps"), int) and isinstance(window.get("seconds"), (int, float))):
            raise ValueError("its log_window is not an object of sums, steps and seconds")
        return {
            "model": load_file(str(path / "model.safetensors")),
            "ema": load_file(str(path / "ema.safetensors")),
            "optimizer": unflatten_optimizer(load_file(str(path / "optimizer.safetensors")), state.pop("optimizer")),
            "state": state,
        }
    except (OSError, ValueError, TypeError, KeyError, AttributeError, SafetensorError) as err:
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(err).__name__}: {err}); delete it to resume from the one before") from None


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


# Inference export ------------------------------------------------------------------------------


def save_config(run_dir: str | Path, config: ExperimentConfig) -> None:
    with atomic_file(Path(run_dir) / "config.yaml") as tmp:
        tmp.write_text(config.to_yaml())


def read_config(run_dir: str | Path) -> ExperimentConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: no config.yaml; is this a run folder made by 'causaldiffae train'?")
    data = read_yaml(path, CheckpointError)
    return ExperimentConfig.from_dict({} if data is None else data, str(path))


def export_model(run_dir: str | Path, weights: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write the inference weights ``model.safetensors`` with the facts needed to rebuild the model."""
    with atomic_file(Path(run_dir) / "model.safetensors") as tmp:
        save_file(_contiguous(weights), str(tmp), metadata={"causaldiffae": json.dumps(meta)})


def read_model_meta(weights: str | Path) -> dict[str, Any]:
    """The facts ``export_model`` stored beside the weights (graph, image shape, classes, step); {} if none."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("causaldiffae", "{}"))
    except (SafetensorError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({err})") from None
    return meta if isinstance(meta, dict) else {}


def load_run(run_dir: str | Path, device: str | torch.device = "cpu", step: int | None = None) -> tuple[CausalDiffAE, ExperimentConfig]:
    """``(model, config)`` of a trained run: EMA weights, eval mode, on ``device``.

    ``step`` takes the EMA weights of that kept checkpoint instead of the latest exported ones, to
    score a run along its training.
    """
    from causaldiffae.models import CausalDiffAE
    from causaldiffae.models.causaldiffae import check_model_size

    run_dir = require_folder(run_dir, "run folder", CheckpointError)
    config = read_config(run_dir)  # first: a folder that is not a run says so
    weights = run_dir / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{run_dir}: no model.safetensors yet (the run has not written its first checkpoint)")
    meta = read_model_meta(weights)
    _check_model_meta(meta, weights)
    tensors = weights if step is None else _checkpoint_ema(run_dir, step)
    graph = CausalGraph.from_dict(meta["graph"], source=str(weights))
    shape, classes = tuple(meta["image_shape"]), meta.get("num_classes", 0)
    check_model_size(config.model, graph, shape, classes, config.diffusion, source=str(run_dir / "config.yaml"))
    model = CausalDiffAE(config.model, graph, shape, classes, config.diffusion)
    try:
        model.load_state_dict(load_file(str(tensors)))
    except SafetensorError as err:
        raise CheckpointError(f"{tensors}: not a readable safetensors file ({err})") from None
    except RuntimeError as err:
        raise CheckpointError(f"{tensors}: the weights do not fit the model that {run_dir}/config.yaml describes ({str(err).splitlines()[0]})") from None
    model.trained_steps = int(meta.get("step", 0)) if step is None else step
    model.framing = {key: meta[key] for key in framing.KEPT if key in meta}
    return model.to(device).eval(), config


def _check_model_meta(meta: dict[str, Any], weights: Path) -> None:
    """The facts that size the model, checked before it is built: a downloaded file could ask for terabytes."""
    if "graph" not in meta or "image_shape" not in meta:
        raise CheckpointError(f"{weights}: missing causaldiffae metadata (graph, image shape)")
    shape = meta["image_shape"]
    if not is_image_shape(shape):
        raise CheckpointError(f"{weights}: image_shape {shape!r} is not [channels 1..4, height, width 1..{MAX_RESOLUTION}]")
    for key, most in (("num_classes", 100_000), ("step", 10**12)):
        value = meta.get(key, 0)
        if not is_whole(value, 0, most):
            raise CheckpointError(f"{weights}: {key} {value!r} is not a whole number in 0..{most}")
    spans = (("edge_brightness", ("low", "high"), 1), ("extent", ("low", "median", "high"), 1), ("edge_width", ("low", "median", "high"), 100))
    for key, form, most in spans:  # absent in runs trained before they were kept (2026-12-03)
        if key in meta and not _ascending(meta[key], len(form), most):
            raise CheckpointError(f"{weights}: {key} {meta[key]!r} is not [{', '.join(form)}] within [0, {most}]")
    offset = meta.get("centroid_offset", 0)
    if not is_number(offset, 0, 1):
        raise CheckpointError(f"{weights}: centroid_offset {offset!r} is not a number in [0, 1]")


def _ascending(value: object, count: int, most: float) -> bool:
    return isinstance(value, list) and len(value) == count and all(is_number(v, 0, most) for v in value) and value == sorted(value)


def _checkpoint_ema(run_dir: Path, step: int) -> Path:
    """The EMA weights of one of the run's own complete checkpoints (``checkpoint_dirs``: no links)."""
    kept = {_step_of(p): p for p in checkpoint_dirs(run_dir)}
    if step not in kept:
        folder, why = checkpoint_dir(run_dir, step), ""
        if folder.is_symlink():
            why = f": {folder.name} is a link, not one of the run's own folders"
        elif folder.exists():
            why = f": {folder.name} has no state.json (incomplete)"
        raise CheckpointError(f"{run_dir}: no checkpoint at step {step}{why} (kept: {', '.join(map(str, kept)) or 'none'})")
    path = kept[step] / "ema.safetensors"
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; the checkpoint at step {step} is incomplete")
    return path
