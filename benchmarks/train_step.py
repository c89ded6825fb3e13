"""Seconds per training step of a preset's model on synthetic data (forward, backward, AdamW, EMA).

    python benchmarks/train_step.py --preset morphomnist-paper --batch 16
    python benchmarks/train_step.py --preset morphomnist-cpu --batch 64 --mixed-precision bf16
    python benchmarks/train_step.py --preset morphomnist-cpu --batch 256 --device cuda --compile
    python benchmarks/train_step.py --preset morphomnist-cpu --batch 256 --device cuda --compile model --compile-mode reduce-overhead

The step is the one ``causaldiffae train`` runs: the full loss (encoder, causal layer, UNet eps
MSE, both KL terms), gradient clipping, fused AdamW and the EMA update. Reported: median
seconds/step over the timed steps, images/s and the parameter count. Each step reads its loss
back to the host, as the training loop does, so a step's time includes all of its device work.
``--compile model`` compiles the whole loss, as ``train.compile`` does, and first runs the
gradient check ``causaldiffae train`` runs (compiled against eager gradients on the batch).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

# Native image shape of each preset family (the config leaves it, and a null graph, to the data;
# ``data.resolution`` resizes it).
IMAGE_SHAPES = {"morphomnist": (1, 28, 28), "pendulum": (4, 96, 96), "circuit": (3, 128, 128)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="morphomnist-paper")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--mixed-precision", choices=("no", "bf16"), default="no", help="autocast dtype")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--channels-last", choices=("config", "on", "off"), default="config")
    parser.add_argument("--compile", choices=("off", "unet", "model"), nargs="?", const="unet", default="off",
                        help="torch.compile the UNet (bare --compile) or the whole model's loss")
    parser.add_argument("--compile-mode", default="default", help="torch.compile mode (reduce-overhead: CUDA graphs)")
    parser.add_argument("--image-shape", help="C,H,W (default: from the preset's dataset)")
    parser.add_argument("--graph", help="causal graph (default: the config's, else the preset's dataset's)")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()

    import torch

    from causaldiffae.config import load_config
    from causaldiffae.data import circuit, morphomnist, pendulum
    from causaldiffae.graph import CausalGraph
    from causaldiffae.models import CausalDiffAE
    from causaldiffae.training import TrainingError, check_compiled_gradients, ema_decay

    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.preset, args.overrides)
    family = next((k for k in IMAGE_SHAPES if config.name.startswith(k)), None)
    shape: tuple[int, int, int]
    if args.image_shape:
        parts = [int(v) for v in args.image_shape.split(",")]
        if len(parts) != 3:
            parser.error(f"--image-shape {args.image_shape}: expected C,H,W")
        shape = (parts[0], parts[1], parts[2])
    elif family is None:
        parser.error(f"no default image shape for {config.name!r}; pass --image-shape C,H,W")
    else:
        channels, height, width = IMAGE_SHAPES[family]
        size = config.data.resolution
        shape = (channels, height, width) if size is None else (channels, size, size)
    dataset_graphs = {"morphomnist": morphomnist.GRAPH, "pendulum": pendulum.GRAPH, "circuit": circuit.GRAPH}
    if spec := args.graph or config.data.graph:
        graph = CausalGraph.parse(spec)
    elif family is None:
        parser.error(f"{config.name!r} names no graph; pass --graph 'a -> b'")
    else:
        graph = dataset_graphs[family]
    channels_last = config.train.channels_last if args.channels_last == "config" else args.channels_last == "on"
    num_classes = 10 if config.model.class_conditional else 0

    torch.manual_seed(0)
    device = torch.device(args.device)
    model = CausalDiffAE(config.model, graph, shape, num_classes, config.diffusion).train().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub lacks the keyword
    forward: Callable[..., dict[str, torch.Tensor]] = model
    if args.compile == "unet":
        model.decoder.unet = torch.compile(model.decoder.unet, mode=args.compile_mode)
    elif args.compile == "model":
        forward = torch.compile(model, mode=args.compile_mode)
    ema = [p.detach().clone() for p in model.parameters()]
    params: list[torch.Tensor] = list(model.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.train.lr, fused=True)
    b = args.batch
    batch = {
        "image": torch.rand(b, *shape) * 2 - 1,
        "labels": torch.randn(b, len(graph)),
        "class": torch.randint(0, max(num_classes, 1), (b,)),
        "labeled": torch.ones(b, dtype=torch.bool),
    }
    batch = {k: v.to(device) for k, v in batch.items()}
    if channels_last:
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
    generator = torch.Generator(device).manual_seed(0)
    kl = torch.tensor(1.0, device=device)  # a tensor, as in training, so a compiled loss is built once

    def autocast(loss_fn):
        """The loss under autocast, backward outside it, as accelerate wraps the training forward."""

        def run(*inputs):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.mixed_precision == "bf16"):
                return loss_fn(*inputs)

        return run

    timed_loss = autocast(forward)

    def step(i: int) -> float:
        loss = timed_loss(batch, kl, generator)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.train.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            torch._foreach_lerp_(ema, params, 1.0 - ema_decay(i, config.train.ema_decay))
        return float(loss.detach())

    if args.compile == "model":  # the check `causaldiffae train` runs: wrong compiled gradients make timings moot
        start = time.perf_counter()
        try:
            fresh = lambda: torch.Generator(device).manual_seed(0)  # noqa: E731
            check_compiled_gradients(autocast(model), timed_loss, model, batch, fresh, args.compile_mode)
            verdict = "the compiled loss's gradients match the eager ones"
        except TrainingError as error:
            verdict = f"FAILED: {error}"
        print(f"gradient check ({time.perf_counter() - start:.1f} s, compilation included): {verdict}")
    start = time.perf_counter()
    for i in range(args.warmup):
        step(i)
    warmup = time.perf_counter() - start
    times, losses = [], []
    for i in range(args.steps):
        start = time.perf_counter()
        losses.append(step(args.warmup + i))
        times.append(time.perf_counter() - start)
    sec = statistics.median(times)
    n_params = sum(p.numel() for p in params)
    unet = sum(p.numel() for p in model.decoder.unet.parameters())
    print(
        f"preset={config.name} batch={b} image={'x'.join(map(str, shape))} threads={torch.get_num_threads()} "
        f"device={device} mixed_precision={args.mixed_precision} channels_last={channels_last} "
        f"compile={args.compile}{'' if args.compile == 'off' else ':' + args.compile_mode}"
    )
    print(f"params={n_params / 1e6:.2f}M (unet {unet / 1e6:.2f}M)")
    print(f"warm-up: {args.warmup} steps in {warmup:.1f} s")
    print(f"sec/step={sec:.4f} (min {min(times):.4f}, max {max(times):.4f})  images/s={b / sec:.1f}  last loss={losses[-1]:.4f}")


if __name__ == "__main__":
    from causaldiffae.cli import guarded

    raise SystemExit(guarded(main))
