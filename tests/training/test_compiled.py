"""train.compile: the same run as eager, and a compiled loss with wrong gradients refused."""

from pathlib import Path

import pytest
import torch

from causaldiffae.training import TrainingError, train
from training_fixtures import read_metrics, synthetic_dataset, tiny_config, torchrun


def test_compiled_training_matches_eager_and_never_recompiles(tmp_path, monkeypatch, capsys):
    """``train.compile`` runs the loss through torch.compile with its mode. Traced by dynamo alone
    (backend "eager", seconds instead of minutes of code generation), the losses equal the eager
    run's, and a kl_scale that changes every step must not rebuild the graph (it did as a float).
    The gradient check says how close the compiled gradients came: here, the same to rounding."""
    import re

    import torch._dynamo

    modes = []
    real_compile = torch.compile

    def trace_only(module, mode=None):
        modes.append(mode)
        return real_compile(module, backend="eager")

    monkeypatch.setattr(torch, "compile", trace_only)
    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)
    torch._dynamo.reset()
    data = synthetic_dataset(n=16)
    base = ("model.cond_drop_prob=0.3", "train.steps=4", "train.kl_anneal_steps=4")
    eager = train(tiny_config(*base), data, tmp_path / "eager", progress=False)
    capsys.readouterr()
    compiled = train(tiny_config(*base, "train.compile=reduce-overhead"), data, tmp_path / "compiled", progress=False)
    torch._dynamo.reset()
    said = re.search(r"compiled gradients match the eager ones \(worst relative error (\S+), in (\S+)\)", capsys.readouterr().out)
    assert said is not None and float(said[1]) < 1e-5 and said[2].startswith(("encoder.", "decoder.", "causal"))
    assert modes == ["reduce-overhead"]
    timing = ("sec_per_step", "images_per_sec")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows]  # noqa: E731
    assert [m["kl_scale"] for m in read_metrics(compiled)] == [0.0, 0.25, 0.5, 0.75]
    assert strip(read_metrics(compiled)) == strip(read_metrics(eager))


def _faulty_compile(fault: str):
    """A stand-in for torch.compile whose loss is right but whose gradients are wrong in one way."""

    def compile(module, mode=None):
        def loss(batch, kl, generator):
            if fault == "kl ignored":
                return module(batch, kl * 0, generator)
            out = module(batch, kl, generator)
            if fault == "halved":
                return {**out, "loss": 0.5 * out["loss"]}
            unet = [p for n, p in module.named_parameters() if n.startswith("decoder.unet.")]
            hurt = unet if fault == "unet zeroed" else unet[:1]  # the real CPU-inductor fault; one NaN gradient
            for p in hurt:  # the eager pass ran first; training stops at this check, so the hooks never outlive it
                p.register_hook(lambda g: torch.zeros_like(g) if fault == "unet zeroed" else g * float("nan"))
            return out

        return loss

    return compile


@pytest.mark.parametrize("fault, error", [
    ("halved", r"relative error 0\.50 in "),
    ("unet zeroed", r"relative error 1\.00 in decoder\.unet\."),
    ("one nan", r"relative error inf in decoder\.unet\."),
    ("kl ignored", r"relative error \d+\.\d+ in "),  # KL is annealed to 0 at step 0; the check counts it fully
])
def test_a_compiled_loss_with_wrong_gradients_is_refused_before_anything_is_written(tmp_path, monkeypatch, fault, error):
    """torch 2.13's CPU inductor returns zero gradients below a diffusers UNet's first upsampler;
    training must stop on such a compile at its first step, not train on it."""
    monkeypatch.setattr(torch, "compile", _faulty_compile(fault))
    config = tiny_config("train.steps=2", "train.kl_anneal_steps=4", "train.compile=default")
    with pytest.raises(TrainingError, match=r"train.compile=default: the compiled loss's gradients differ from the eager ones \(" + error):
        train(config, synthetic_dataset(n=16), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_with_dropout_the_compiled_gradient_check_is_skipped_with_a_warning_at_the_callers_line(tmp_path, monkeypatch, recwarn):
    """Compiled dropout draws other masks than eager, so the check would refuse a sound compile:
    it is skipped, and the warning names the line that called train(), not the library's."""
    monkeypatch.setattr(torch, "compile", _faulty_compile("halved"))  # refused without dropout (above)
    run = train(tiny_config("train.steps=2", "train.compile=default", "model.dropout=0.1"), synthetic_dataset(n=16),
                tmp_path / "run", progress=False)
    [warning] = [w for w in recwarn if "gradient check skipped" in str(w.message)]
    assert Path(warning.filename) == Path(__file__)
    assert [m["step"] for m in read_metrics(run)] == [1, 2]


def test_two_processes_train_compiled_like_eager(tmp_path):
    """Under DDP the gradient check's two backward passes all-reduce on every process alike (no hang)
    and the compiled run (traced by dynamo, as in the single-process test) logs the eager losses.
    Both runs train in one launch, one after the other, as the launch costs more than the runs."""
    torchrun(tmp_path, """
real_compile = torch.compile
torch.compile = lambda module, mode=None: real_compile(module, backend="eager")
for name, extra in (("eager", ()), ("compiled", ("train.compile=default",))):
    training.train(tiny_config("train.steps=2", "train.batch_size=8", *extra), synthetic_dataset(n=16), out + "/" + name, progress=False)
""")
    timing = ("sec_per_step", "images_per_sec")
    eager, compiled = ([{k: v for k, v in m.items() if k not in timing} for m in read_metrics(tmp_path / n)] for n in ("eager", "compiled"))
    assert compiled == eager and len(eager) == 2


def test_a_resume_names_its_changes_before_a_failing_compile_check_and_writes_nothing(tmp_path, monkeypatch, capsys):
    data = synthetic_dataset(n=16)
    run = train(tiny_config("train.steps=2"), data, tmp_path / "run", progress=False)
    stored, metrics = (run / "config.yaml").read_text(), (run / "metrics.jsonl").read_text()
    monkeypatch.setattr(torch, "compile", _faulty_compile("unet zeroed"))
    capsys.readouterr()
    with pytest.raises(TrainingError, match="gradients differ"):
        train(tiny_config("train.steps=3", "train.compile=default"), data, run, resume=True, progress=False)
    printed = capsys.readouterr().out
    resuming = printed.index("at step 2 with train.steps 2 -> 3, train.compile None -> default")
    assert resuming < printed.index("compiling the training loss (train.compile=default")
    assert (run / "config.yaml").read_text() == stored and (run / "metrics.jsonl").read_text() == metrics
