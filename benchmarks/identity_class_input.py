"""How much of "digit identity kept" comes from the class-conditional decoder being told the digit.

    python benchmarks/identity_class_input.py --data data/morphomnist --n 500

The shipped model's decoder takes each digit's class, and a counterfactual keeps the factual one,
so the acceptance row "digit identity kept" is partly supplied by that input. On ``evaluate``'s
digits and intervention values (``--seed``, ``ddpm`` abduction), this scores the digit
classifier's accuracy on do(thickness) and do(intensity) counterfactuals three times: with the
true classes (what ``evaluate`` and the demo do), with the classes the same classifier reads off
the unedited digits (what ``counterfactual --images FILE --predictors DIR`` does for a user's
digit) and with every class unknown (-1, the null class embedding, abducted and decoded that
way), beside the unedited digits' accuracy.
"""

from __future__ import annotations

import numpy as np
import torch
from evaluate_draw import arguments, evaluate_draw

from causaldiffae.counterfactual import Abduction, abduct, decode, intervene
from causaldiffae.evaluation.metrics import abduction_generator
from causaldiffae.evaluation.predictors import load_predictors


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--predictors", default=None, help="predictors folder (default: the run's own predictors/)")
    args = parser.parse_args()
    d = evaluate_draw(args)
    model = d.model
    predictors = load_predictors(args.predictors or f"{args.run}/predictors", d.data)
    truth = d.classes

    def accuracy(images: torch.Tensor) -> float:
        return float((predictors.predict(images)["class"] == truth).mean())

    def abduction_told(classes: np.ndarray) -> Abduction:
        return abduct(model, d.x, steps=d.steps, spacing=d.spacing, abduction="ddpm", class_labels=classes,
                      generator=abduction_generator(args.seed, 1))

    read = predictors.predict(d.x)["class"]
    print(f"{len(d.idx)} {d.data.split} digits, {d.steps} DDIM steps ({d.spacing}), ddpm abduction; unedited digits: {accuracy(d.x):.3f}")
    print("| decoder told | do(thickness) | do(intensity) |")
    print("|---|---|---|")
    arms = (("the true class", d.abduction), ("the class the classifier reads off the digit", abduction_told(read)),
            ("nothing (class -1)", abduction_told(np.full(len(truth), -1))))
    for name, abd in arms:
        scores = []
        for variable in ("thickness", "intensity"):
            values = d.values[:, d.data.graph.index(variable)]
            z_cf, classes = intervene(model, abd, {variable: values}, label_mean=d.label_mean, label_std=d.label_std)
            scores.append(accuracy(decode(model, abd.x_T, z_cf, abd.timesteps, class_labels=classes, residuals=abd.residuals)))
        print(f"| {name} | {scores[0]:.3f} | {scores[1]:.3f} |")


if __name__ == "__main__":
    from causaldiffae.cli import guarded

    raise SystemExit(guarded(main))
