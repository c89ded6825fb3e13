"""One typed configuration per experiment: data, model, diffusion and training sections.

Configuration is data. Presets are YAML files in ``causaldiffae/configs/`` loaded by name
(``morphomnist-cpu``) or by path; command-line overrides are ``section.key=value`` strings whose
values are parsed as YAML scalars/lists. Every field is validated here, so a typo or an
out-of-range value fails with a one-line error before any data is loaded or any step is run.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping, get_type_hints

import yaml

from causaldiffae.errors import UserError, nearest
from causaldiffae.yaml_files import load_yaml, read_yaml

PRESET_DIR = Path(__file__).parent / "configs"
VARIANTS = ("causaldiffae", "diffae", "diffae-aligned", "label-conditional")
MIXED_PRECISION = ("no", "bf16", "fp16")


class ConfigError(UserError):
    """A configuration that cannot be used; names the file, key and value at fault."""


@dataclass
class DataConfig:
    """Which variables the model sees; the dataset folder itself is a command-line argument."""

    graph: str | None = None  # inline graph ("thickness -> intensity"); None: the dataset's own graph
    resolution: int | None = None  # resize images to this size; None: native


@dataclass
class ModelConfig:
    """Encoder, causal layer and UNet decoder sizes, plus the variant and its supervision recipe."""

    variant: str = "causaldiffae"
    latent_block: int = 256  # latent width per causal variable (label-conditional: always 1)
    encoder_channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    mechanism_hidden: int = 64  # hidden width of each mechanism MLP f_i
    mechanism_layers: int = 2  # hidden layers of each mechanism MLP
    base_channels: int = 128
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 2])
    layers_per_block: int = 3
    attention_levels: list[int] = field(default_factory=lambda: [0])  # UNet levels with self-attention
    mid_attention: bool = True
    attention_head_dim: int = 32
    norm_groups: int = 32
    dropout: float = 0.0
    class_conditional: bool = False  # add a digit-class embedding to the condition
    labeled_fraction: float = 1.0  # fixed seeded fraction of training samples that keep labels
    cond_drop_prob: float = 0.0  # labeled samples train with the null condition this often
    z_noise_scale: float = 0.001  # s: training z uses u = mu + sqrt(s * var) * eps
    kl_weight: float = 1.0  # weight of KL(q(u|x) || N(0, I)), per-dimension mean
    label_weight: float = 1.0  # weight of the label-aligned prior, per-dimension mean
    style_dim: int = 0  # width of an exogenous style block outside the graph, kept by every intervention
    style_kl_weight: float = 1e-4  # weight of the style block's KL to N(0, I), per-dimension mean
    style_drop_prob: float = 0.0  # labeled samples also train with the style block zeroed this often


MAX_WIDTH = 4096  # the largest channel count or latent width a config may ask for
MAX_PARAMETERS = 2_000_000_000  # 8 GiB of fp32 weights per model built; the largest measured here has 35M
MAX_RESOLUTION = 1024  # the largest data.resolution accepted; a typo such as 2000 would otherwise run out of memory mid-start


def is_whole(value: object, low: float, high: float) -> bool:
    """An integer (not a bool) in ``low..high``: JSON and YAML metadata may hold anything there."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def is_finite_number(value: object) -> bool:
    """A real number (Python's or numpy's, not a bool) that is finite as a float; an integer of
    hundreds of digits is not. Metadata may hold anything there, and the API takes numpy scalars."""
    try:
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    except OverflowError:
        return False


def is_number(value: object, low: float, high: float) -> bool:
    """A real number (``is_finite_number``) in ``low..high``, as ``is_whole`` is for integers."""
    return isinstance(value, numbers.Real) and is_finite_number(value) and low <= float(value) <= high


def is_image_shape(shape: object) -> bool:
    """``[channels 1..4, height, width 1..MAX_RESOLUTION]``, as model and predictor metadata store it."""
    return (isinstance(shape, list) and len(shape) == 3 and is_whole(shape[0], 1, 4)
            and all(is_whole(v, 1, MAX_RESOLUTION) for v in shape[1:]))


BETA_SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}  # ours -> diffusers' name (diffusion.make_scheduler)
PREDICTION_TYPES = ("epsilon", "v_prediction")  # what the decoder's output stands for (diffusion.to_eps)
SPACINGS = ("uniform", "quadratic")  # how inference's DDIM steps sit on the noise levels (diffusion.ddim_timesteps)

# Counterfactual options (causaldiffae.counterfactual), here so the CLI can offer them without torch.
ABDUCTIONS = ("inversion", "ddpm", "stochastic")
MODES = ("set", "shift")
GUIDANCES = ("null", "factual")
# Defaults measured on the shipped morphomnist-cpu model (7,000 steps) with an earlier draw of 100
# test digits, 20 DDIM steps, shift mode (morphometric MAE vs the SCM; null = unedited: thickness 0.593,
# intensity 45.7): ddpm abduction do(thickness) 0.120, descendant intensity 8.7, do(intensity)
# 4.4, thickness kept 0.065, digits 98%, null intervention L1 0.000; DDIM inversion 0.111 / 8.4 /
# 5.1 / 0.085 / 98% / 0.003 but speckles large edits; stochastic 0.113 / 10.6 / 7.7 / 0.139 / 96%
# and L1 0.089 (it keeps no individual style). Factual guidance w=1.5 overshoots (0.200 / 19.9).
# Shift beat set on the descendant with the first model (20.8 vs 23.9 at 20 steps).
# On all 500 test digits thickness kept under do(intensity) is 0.070 with ddpm abduction and 0.106
# with inversion (benchmarks/preservation_bar.py).
DEFAULT_STEPS = 20
DEFAULT_MODE = "shift"
DEFAULT_ABDUCTION = "ddpm"
DEFAULT_GUIDANCE = "null"
DEFAULT_W = 1.0
# Fraction of the noise levels abduction and decoding span. 1.0 (all) is what the shipped report
# measured; on its 500 test digits 0.6 (t = 570 down, 20 steps) kept thickness under do(intensity)
# at 0.069 vs 0.075 and hit do(thickness) at 0.101 vs 0.106 on a draw other than evaluate's
# (docs/counterfactuals.md, ``start=``).
DEFAULT_START = 1.0
# Where the steps sit on the noise levels (diffusion.ddim_timesteps). The library default is the
# evenly strided grid; the shipped model's config asks for "quadratic", which on its 500 test digits
# (seed 0 evaluate's draw, seeds 1 / 2 benchmarks/timestep_spacing.py's; 20 steps, ddpm abduction)
# hit do(thickness) at 0.096 / 0.093 / 0.092 against 0.104 / 0.097 / 0.101, kept thickness under
# do(intensity) at 0.069 / 0.069 / 0.069 against 0.070 / 0.078 / 0.075, intensity 4.44 / 4.63 / 4.71
# against 4.62 / 4.49 / 4.61 (benchmarks/timestep_spacing.py).
DEFAULT_SPACING = "uniform"
# torch.compile modes for train.compile; "reduce-overhead" adds CUDA graphs, the large win on a GPU (docs/training.md, Speed).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class DiffusionConfig:
    """The forward process and the default number of DDIM steps at inference."""

    num_train_timesteps: int = 1000
    beta_start: float = 1e-4  # the linear schedule's ends; the cosine one has none
    beta_end: float = 0.02
    beta_schedule: str = "linear"  # SPEC §1.3; "cosine" (Nichol & Dhariwal 2021) adds less noise per step near the clean image
    prediction_type: str = "epsilon"  # "v_prediction" weighs the loss towards the clean image at high noise
    sample_steps: int = 250  # counterfactual / evaluate / demo steps when --steps is not given (the reference's)
    sample_spacing: str = "uniform"  # how those steps sit on the noise levels: "uniform" or "quadratic" (more at low noise)


@dataclass
class TrainConfig:
    steps: int = 100_000
    batch_size: int = 128  # per optimiser step, summed over processes and accumulation
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 0
    ema_decay: float = 0.9999
    grad_clip: float = 1.0
    grad_accum: int = 1
    kl_anneal_steps: int = 50_000  # lambda_k rises linearly 0 -> 1 over these steps
    seed: int = 0
    log_every: int = 50
    sample_every: int = 2000
    checkpoint_every: int = 2000
    keep_checkpoints: int = 3
    grid_steps: int = 25  # DDIM steps used for the periodic sample/reconstruction grids
    channels_last: bool = False  # measured slower on CPU for these small UNets; try it on GPU
    init: str | None = None  # a run folder whose model.safetensors starts the weights (fine-tuning)
    compile: str | None = None  # a torch.compile mode for the training loss (COMPILE_MODES); null: eager


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> "ExperimentConfig":
        """Build and validate from a nested mapping; unknown sections or keys are refused."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
        sections = {f.name: f for f in fields(cls)}
        unknown = [k for k in data if k not in sections]
        if unknown:
            raise ConfigError(f"{source}: unknown section {unknown[0]!r} ({_valid(str(unknown[0]), list(sections))})")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            if name == "name":
                if not isinstance(value, (str, int, float)) or isinstance(value, bool):  # a number names an experiment too: 2024
                    raise ConfigError(f"{source}: name: expected a string, got {type(value).__name__} {value!r}")
                kwargs[name] = str(value)
                continue
            section_cls = get_type_hints(cls)[name]
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: section {name!r} must be a mapping")
            kwargs[name] = _build_section(section_cls, value, f"{source}: {name}")
        config = cls(**kwargs)
        validate(config, source)
        return config

    def with_overrides(self, overrides: Iterable[str], source: str = "command line") -> "ExperimentConfig":
        """Apply ``section.key=value`` strings (values parsed as YAML) and revalidate."""
        data = self.to_dict()
        for item in overrides:
            key, sep, raw = item.partition("=")
            if not sep:
                raise ConfigError(f"{source}: override {item!r} is not key=value (e.g. train.lr=3e-4)")
            path = key.strip().split(".")
            if len(path) == 1 and path[0] == "name":
                data["name"] = raw
                continue
            if len(path) != 2 or path[0] not in data or not isinstance(data[path[0]], dict):
                raise ConfigError(f"{source}: unknown key {key!r} ({_valid(key, valid_keys())})")
            section, name = path
            if name not in data[section]:
                raise ConfigError(f"{source}: unknown key {key!r} ({_valid(name, list(data[section]), section)})")
            try:
                data[section][name] = load_yaml(raw) if raw.strip() else None
            except yaml.YAMLError:
                raise ConfigError(f"{source}: cannot parse value of {key}: {raw!r}") from None
        return ExperimentConfig.from_dict(data, source)

    def flat(self) -> dict[str, Any]:
        """``{"section.key": value}`` for every field."""
        return _flatten(self.to_dict())

    def differences(self, other: "ExperimentConfig") -> list[str]:
        """Dotted keys whose values differ, for refusing a resume with a changed config."""
        mine, theirs = self.flat(), other.flat()
        return [k for k in mine if mine[k] != theirs.get(k)]


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def valid_keys() -> list[str]:
    return list(ExperimentConfig().flat())


def _valid(key: str, valid: list[str], section: str = "") -> str:
    """The valid keys, led by the nearest one where a typo is likely: "did you mean 'latent_block'? valid: ...".
    With ``section`` the keys are that section's, matched by name and shown as ``section.key``."""
    def full(k: str) -> str:
        return f"{section}.{k}" if section else k

    near = nearest(key, valid)
    lead = f"did you mean {full(near)!r}? " if near else ""
    return lead + f"{'valid in ' + section if section else 'valid'}: {', '.join(map(full, valid))}"


def _build_section(section_cls: type, values: Mapping[str, Any], where: str) -> Any:
    hints = get_type_hints(section_cls)
    known = {f.name for f in fields(section_cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r} ({_valid(str(key), sorted(known))})")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}")
    return section_cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check a YAML value against a field's type; ints are accepted where floats are expected."""
    text = str(hint)
    if value is None:
        if "None" in text:
            return None
        raise ConfigError(f"{where}: a value is required")
    if "list[int]" in text:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{where}: expected a list of integers, got {value!r}")
        return list(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int or text.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r:.80}")
        try:
            return float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise ConfigError(f"{where}: {str(value)[:20]}... is too large for a number") from None
    if hint is str or text.startswith("str"):
        if isinstance(value, (dict, list)):  # a YAML mapping or list where a string belongs
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        if isinstance(value, bool):  # YAML reads true/false/yes/no/on/off as booleans
            raise ConfigError(f"{where}: expected a string, got the boolean {value!r}; quote it if a string was meant")
        return str(value)
    return value


def validate(config: ExperimentConfig, source: str = "config") -> None:
    """Range checks that need no data; image-size checks happen once the data is known."""
    m, d, t = config.model, config.diffusion, config.train

    def need(ok: bool, key: str, value: Any, what: str) -> None:
        if not ok:
            raise ConfigError(f"{source}: {key}={value!r}: {what}")

    for name in ("data", "model", "diffusion", "train"):  # inf or nan in a weight or rate would surface only as a non-finite loss
        section = getattr(config, name)
        for f in fields(section):
            value = getattr(section, f.name)
            if isinstance(value, float):
                need(math.isfinite(value), f"{name}.{f.name}", value, "must be a finite number")
    need(m.variant in VARIANTS, "model.variant", m.variant, f"expected one of {', '.join(VARIANTS)}")
    need(0.0 < m.labeled_fraction <= 1.0, "model.labeled_fraction", m.labeled_fraction, "must lie in (0, 1]")
    need(0.0 <= m.cond_drop_prob < 1.0, "model.cond_drop_prob", m.cond_drop_prob, "must lie in [0, 1)")
    need(len(m.encoder_channels) >= 1 and min(m.encoder_channels) >= 1, "model.encoder_channels", m.encoder_channels, "needs positive widths")
    # Counts and weights, one field at a time, so an error names the field at fault.
    for section, names, least in (
        ("model", ("latent_block", "mechanism_hidden", "mechanism_layers", "base_channels", "layers_per_block", "norm_groups",
                   "attention_head_dim"), 1),
        ("model", ("z_noise_scale", "kl_weight", "label_weight", "style_dim", "style_kl_weight"), 0),
        ("train", ("steps", "batch_size", "grad_accum", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints"), 1),
        ("train", ("kl_anneal_steps", "warmup_steps", "weight_decay", "seed"), 0),
    ):
        for name in names:
            value = getattr(getattr(config, section), name)
            need(value >= least, f"{section}.{name}", value, f"must be >= {least}")
    need(len(m.channel_mult) >= 1 and min(m.channel_mult) >= 1, "model.channel_mult", m.channel_mult, "needs positive multipliers")
    # Upper bounds far above any preset, so that a typo (or a downloaded config.yaml) fails here with its
    # field named instead of in an allocation of many gigabytes while the model is built.
    need(m.base_channels * max(m.channel_mult) <= MAX_WIDTH, "model.base_channels", m.base_channels,
         f"the widest UNet level (base_channels x the largest channel_mult) must be <= {MAX_WIDTH} channels")
    need(len(m.channel_mult) <= 8, "model.channel_mult", m.channel_mult, "at most 8 levels")
    need(len(m.encoder_channels) <= 8 and max(m.encoder_channels) <= MAX_WIDTH, "model.encoder_channels", m.encoder_channels,
         f"at most 8 levels of at most {MAX_WIDTH} channels")
    for name in ("latent_block", "mechanism_hidden", "style_dim"):
        need(getattr(m, name) <= MAX_WIDTH, f"model.{name}", getattr(m, name), f"must be <= {MAX_WIDTH}")
    for name in ("layers_per_block", "mechanism_layers"):
        need(getattr(m, name) <= 16, f"model.{name}", getattr(m, name), "must be <= 16")
    need(d.num_train_timesteps <= 100_000, "diffusion.num_train_timesteps", d.num_train_timesteps, "must be <= 100000")
    need(t.seed < 2**32, "train.seed", t.seed, "must be < 2**32")
    need(config.data.resolution is None or 1 <= config.data.resolution <= MAX_RESOLUTION, "data.resolution", config.data.resolution,
         f"must lie in 1..{MAX_RESOLUTION} (or null: native)")
    for c in [m.base_channels * k for k in m.channel_mult]:
        need(c % m.norm_groups == 0, "model.norm_groups", m.norm_groups, f"must divide every UNet width (not {c})")
        need(c % m.attention_head_dim == 0, "model.attention_head_dim", m.attention_head_dim, f"must divide every UNet width (not {c})")
    for level in m.attention_levels:
        need(0 <= level < len(m.channel_mult), "model.attention_levels", m.attention_levels, f"levels are 0..{len(m.channel_mult) - 1}")
    need(0.0 <= m.dropout < 1.0, "model.dropout", m.dropout, "must lie in [0, 1)")
    need(m.style_dim == 0 or m.variant != "label-conditional", "model.style_dim", m.style_dim, "the label-conditional variant has no encoder for a style block")
    need(0.0 <= m.style_drop_prob < 1.0, "model.style_drop_prob", m.style_drop_prob, "must lie in [0, 1)")
    need(d.num_train_timesteps >= 2, "diffusion.num_train_timesteps", d.num_train_timesteps, "must be >= 2")
    need(d.beta_schedule in BETA_SCHEDULES, "diffusion.beta_schedule", d.beta_schedule, f"must be one of {', '.join(BETA_SCHEDULES)}")
    linear_ends = (DiffusionConfig.beta_start, DiffusionConfig.beta_end)
    need(d.beta_schedule == "linear" or (d.beta_start, d.beta_end) == linear_ends, "diffusion.beta_start/beta_end",
         (d.beta_start, d.beta_end), f"the {d.beta_schedule} schedule has no such ends; leave them at {linear_ends}")
    need(0 < d.beta_start < d.beta_end < 1, "diffusion.beta_start/beta_end", (d.beta_start, d.beta_end), "need 0 < beta_start < beta_end < 1")
    need(2 <= d.sample_steps <= d.num_train_timesteps, "diffusion.sample_steps", d.sample_steps, f"must lie in 2..{d.num_train_timesteps}")
    need(d.prediction_type in PREDICTION_TYPES, "diffusion.prediction_type", d.prediction_type, f"must be one of {', '.join(PREDICTION_TYPES)}")
    need(d.sample_spacing in SPACINGS, "diffusion.sample_spacing", d.sample_spacing, f"must be one of {', '.join(SPACINGS)}")
    need(t.batch_size % t.grad_accum == 0, "train.batch_size", t.batch_size, f"must be divisible by train.grad_accum={t.grad_accum}")
    need(t.lr > 0, "train.lr", t.lr, "must be > 0")
    need(t.grad_clip > 0, "train.grad_clip", t.grad_clip, "must be > 0 (the largest gradient norm kept)")
    need(0.0 <= t.ema_decay < 1.0, "train.ema_decay", t.ema_decay, "must lie in [0, 1)")
    need(t.compile is None or t.compile in COMPILE_MODES, "train.compile", t.compile, f"must be null (eager) or one of {', '.join(COMPILE_MODES)}")
    need(2 <= t.grid_steps <= d.num_train_timesteps, "train.grid_steps", t.grid_steps, f"must lie in 2..{d.num_train_timesteps}")


def check_image_shape(model: ModelConfig, image_shape: tuple[int, int, int], source: str = "config") -> None:
    """The UNet halves the image between levels, so H and W must be divisible by 2^(levels-1)."""
    factor = 2 ** (len(model.channel_mult) - 1)
    _, h, w = image_shape
    if h % factor or w % factor:
        raise ConfigError(
            f"{source}: image size {h}x{w} is not divisible by {factor} = 2^(levels-1) for "
            f"model.channel_mult={model.channel_mult}; use fewer levels or set data.resolution"
        )


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_config(spec: str | Path, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Load a preset by name or a YAML file by path, then apply ``key=value`` overrides."""
    path = Path(spec)
    if not path.suffix and not path.exists():
        path = PRESET_DIR / f"{spec}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown preset {str(spec)!r} ({_valid(str(spec), list_presets())})")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (presets: {', '.join(list_presets())})")
    data = read_yaml(path, ConfigError)  # an empty file is the defaults; anything else must be a mapping
    return ExperimentConfig.from_dict({} if data is None else data, str(path)).with_overrides(overrides)
