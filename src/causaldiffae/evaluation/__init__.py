"""Evaluation: anti-causal predictors, counterfactual metrics, DCI, realism, figures and the report."""
