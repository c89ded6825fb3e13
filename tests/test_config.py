import pytest
import yaml

from causaldiffae.config import ConfigError, ExperimentConfig, check_image_shape, list_presets, load_config
from causaldiffae.graph import CausalGraph
from causaldiffae.models import CausalDiffAE


def test_presets_load_and_cover_the_paper_and_cpu_scales():
    assert {"morphomnist-paper", "morphomnist-cpu"} <= set(list_presets())
    paper = load_config("morphomnist-paper")
    assert (paper.model.base_channels, paper.model.channel_mult, paper.model.layers_per_block) == (128, [1, 2, 2], 3)
    assert (paper.model.latent_block, paper.train.batch_size, paper.train.lr, paper.train.ema_decay) == (256, 128, 1e-4, 0.9999)
    assert (paper.diffusion.num_train_timesteps, paper.diffusion.sample_steps) == (1000, 250)
    assert paper.model.cond_drop_prob == 0.5  # the reference drops z for half the samples (SPEC §1.5)
    assert load_config("morphomnist-cpu").train.batch_size == 64
    pendulum, circuit = load_config("pendulum-paper"), load_config("circuit-paper")  # SPEC section 5
    assert (pendulum.model.channel_mult, pendulum.model.latent_block, pendulum.train.batch_size) == ([1, 2, 3, 4], 16, 32)
    assert (circuit.model.channel_mult, circuit.model.latent_block, circuit.train.batch_size) == ([1, 1, 2, 2, 4, 4], 128, 16)
    assert (circuit.data.resolution, circuit.diffusion.num_train_timesteps) == (128, 2000)
    assert {"pendulum-cpu", "circuit-cpu"} <= set(list_presets())


def test_paper_preset_has_about_36m_parameters():
    config = load_config("morphomnist-paper")
    model = CausalDiffAE(config.model, CausalGraph.parse(config.data.graph), (1, 28, 28), 0, config.diffusion)
    unet = sum(p.numel() for p in model.decoder.unet.parameters())
    total = sum(p.numel() for p in model.parameters())
    assert 34.5e6 < unet < 35.5e6 and 35.5e6 < total < 37.5e6
    assert model.decoder.unet.config.resnet_time_scale_shift == "scale_shift"
    assert model.decoder.unet.config.class_embed_type == "identity"


def test_overrides_parse_yaml_values():
    config = load_config("morphomnist-cpu", ["train.lr=3e-4", "model.latent_block=32", "model.channel_mult=[1,2]", "data.graph=a -> b", "name=x"])
    assert config.train.lr == 3e-4 and config.model.latent_block == 32 and config.model.channel_mult == [1, 2]
    assert config.data.graph == "a -> b" and config.name == "x"


@pytest.mark.parametrize(
    "override,match",
    [
        ("train.lrr=1", r"unknown key 'train.lrr' \(did you mean 'train.lr'\? valid in train: train.steps, train.batch_size, "),
        ("model.fooo=1", r"unknown key 'model.fooo' \(valid in model: model.variant, "),  # nothing near it: no guess
        ("model.dropuot=1", r"unknown key 'model.dropuot' \(did you mean 'model.dropout'\?"),
        ("optim.lr=1", r"unknown key 'optim.lr' \(did you mean 'train.lr'\? valid: name, data.graph, .*model.variant"),
        ("trian.steps=1", r"unknown key 'trian.steps' \(did you mean 'train.steps'\? valid: name, "),
        ("train.lr", "not key=value"),
        ("model.labeled_fraction=0", r"labeled_fraction.*\(0, 1\]"),
        ("model.labeled_fraction=1.5", r"labeled_fraction.*\(0, 1\]"),
        ("model.variant=vae", "expected one of causaldiffae, diffae"),
        ("train.steps=ten", "train.steps: expected an integer"),
        ("model.norm_groups=7", "norm_groups"),
        ("data.graph={variables: [a, b], edges: []}", "data.graph: expected a string, got \\{'variables'"),
        ("model.norm_groups=0", r"model.norm_groups=0: must be >= 1"),
        ("train.steps=-3", r"train.steps=-3: must be >= 1$"),
        ("train.warmup_steps=-1", r"train.warmup_steps=-1: must be >= 0$"),
        ("train.seed=-1", r"train.seed=-1: must be >= 0$"),
        ("model.attention_head_dim=0", "attention_head_dim.*must be >= 1"),
        ("data.resolution=0", "data.resolution=0: must lie in 1..1024"),
        ("data.resolution=2000", "data.resolution=2000: must lie in 1..1024"),
        ("model.base_channels=32768", "widest UNet level .* must be <= 4096 channels"),
        ("diffusion.num_train_timesteps=4000000000", "num_train_timesteps=4000000000: must be <= 100000"),
        ("diffusion.num_train_timesteps=100001", "num_train_timesteps=100001: must be <= 100000"),
        ("model.encoder_channels=[16,32,64,5000]", "encoder_channels=.*: at most 8 levels of at most 4096 channels"),
        ("model.encoder_channels=[8,8,8,8,8,8,8,8,8]", "encoder_channels=.*: at most 8 levels of at most 4096 channels"),
        ("model.channel_mult=[1,1,1,1,1,1,1,1,1]", "channel_mult=.*: at most 8 levels"),
        ("model.layers_per_block=17", "layers_per_block=17: must be <= 16"),
        ("model.mechanism_layers=17", "mechanism_layers=17: must be <= 16"),
        ("model.mechanism_hidden=5000", "mechanism_hidden=5000: must be <= 4096"),
        ("model.style_dim=5000", "style_dim=5000: must be <= 4096"),
        ("train.seed=4294967296", "train.seed=4294967296: must be < 2\\*\\*32"),
        ("model.latent_block=100000", "latent_block=100000: must be <= 4096"),
        ("model.kl_weight=.inf", "model.kl_weight=inf: must be a finite number"),
        ("train.lr=!!int x", r"cannot parse value of train.lr: '!!int x'"),  # PyYAML raises a plain ValueError
        ("model.kl_weight=1" + "0" * 400, r"model.kl_weight: 10{19}\.\.\. is too large for a number"),
        ("train.seed=100000000000000000000000", "train.seed=100000000000000000000000: must be < 2\\*\\*32"),
        ("train.grad_clip=0", "train.grad_clip=0.0: must be > 0"),
        ("train.weight_decay=-0.1", "train.weight_decay=-0.1: must be >= 0"),
        ("diffusion.sample_steps=1", "sample_steps=1: must lie in 2..1000"),
        ("train.grid_steps=1", "grid_steps=1: must lie in 2..1000"),
        ("model.attention_levels=[5]", "attention_levels"),
        (["train.batch_size=10", "train.grad_accum=4"], "divisible by train.grad_accum"),
        ("model.style_dim=-1", "style_dim=-1: must be >= 0"),
        ("model.style_drop_prob=1", r"style_drop_prob.*\[0, 1\)"),
        ("diffusion.prediction_type=sample", "prediction_type='sample': must be one of epsilon, v_prediction"),
        ("diffusion.beta_schedule=squaredcos", "beta_schedule='squaredcos': must be one of linear, cosine"),
        (["diffusion.beta_schedule=cosine", "diffusion.beta_end=0.03"], r"beta_start/beta_end=\(0.0001, 0.03\): the cosine schedule has no such ends"),
        ("diffusion.sample_spacing=cosine", "sample_spacing='cosine': must be one of uniform, quadratic"),
        ("train.compile=true", r"train.compile: expected a string, got the boolean True; quote it"),
        ("train.compile=fast", r"train.compile='fast': must be null \(eager\) or one of default, reduce-overhead"),
        (["model.style_dim=8", "model.variant=label-conditional"], "label-conditional variant has no encoder for a style block"),
        ("train.steps=null", "train.steps: a value is required$"),
        ("model.channel_mult=[1,two]", r"model.channel_mult: expected a list of integers, got \[1, 'two'\]"),
        ("model.channel_mult=2", "model.channel_mult: expected a list of integers, got 2"),
        ("model.class_conditional=maybe", "model.class_conditional: expected true or false, got 'maybe'"),
    ],
)
def test_bad_values_are_one_line_errors(override, match):
    overrides = [override] if isinstance(override, str) else override
    with pytest.raises(ConfigError, match=match) as err:
        load_config("morphomnist-cpu", overrides)
    assert "\n" not in str(err.value)


def test_unknown_preset_lists_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown preset 'nope' \(valid: .*morphomnist-cpu"):
        load_config("nope")
    with pytest.raises(ConfigError, match=r"unknown preset 'morphomnist-cup' \(did you mean 'morphomnist-cpu'\? valid: "):
        load_config("morphomnist-cup")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    for text, message in [
        ("model:\n  widht: 3\n", r"bad.yaml: model: unknown key 'widht' \(valid: attention_head_dim, "),
        ("optim:\n  lr: 3\n", r"bad.yaml: unknown section 'optim' \(valid: name, data, model, diffusion, train\)"),
        ("model:\n  latent_blok: 3\n", r"bad.yaml: model: unknown key 'latent_blok' \(did you mean 'latent_block'\? valid: "),
        ("trian:\n  steps: 3\n", r"bad.yaml: unknown section 'trian' \(did you mean 'train'\? valid: name, data, "),
        ("model: 3\n", r"bad.yaml: section 'model' must be a mapping"),
        ("name: [x]\n", r"bad.yaml: name: expected a string, got list \['x'\]"),  # was named "['x']"
        ("name:\n", r"bad.yaml: name: expected a string, got NoneType None"),
    ]:
        bad.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_config(bad)


def test_yaml_round_trip_and_differences(tmp_path):
    config = load_config("morphomnist-cpu")
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml())
    again = load_config(path)
    assert again == config and again.differences(config) == []
    assert again.with_overrides(["train.lr=0.1"]).differences(config) == ["train.lr"]
    assert ExperimentConfig.from_dict(yaml.safe_load(config.to_yaml())) == config


def test_image_size_must_fit_the_unet_depth():
    model = load_config("morphomnist-cpu").model
    check_image_shape(model, (1, 28, 28))
    with pytest.raises(ConfigError, match="30x30 is not divisible by 4"):
        check_image_shape(model, (1, 30, 30))


def test_finite_numbers_are_python_or_numpy_reals_but_not_bools():
    import numpy as np

    from causaldiffae.config import is_finite_number

    for good in (1, 2.5, np.float32(0.5), np.float64(-3.0), np.int64(7), np.uint8(255)):
        assert is_finite_number(good), good
    for bad in (True, np.bool_(True), "1", None, [1.0], float("nan"), np.float32("inf"), 10**400, complex(1, 0)):
        assert not is_finite_number(bad), bad


def test_a_number_in_a_range_is_a_finite_real_within_it():
    import numpy as np

    from causaldiffae.config import is_number

    for good in (0, 1, 0.5, np.float32(0.25)):
        assert is_number(good, 0, 1), good
    for bad in (-0.1, 1.5, True, "0.5", None, [0.5], float("nan"), 10**400):
        assert not is_number(bad, 0, 1), bad
    assert is_number(99.5, 0, 100) and not is_number(float("inf"), 0, float("inf"))
