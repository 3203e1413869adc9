"""Evaluation of frozen features: the protocols (arrays in, numbers out) and their registry.

`validate_eval(config)` checks config.eval: the protocol names against the registry, each
protocol's own settings, the transfer dataset.
"""

from sslax.evaluate.knn import knn_accuracy, knn_classify
from sslax.evaluate.linear_probe import fit_logistic_regression, linear_probe, stratified_split
from sslax.evaluate.protocols import PROTOCOLS, Protocol, register, validate_eval

__all__ = [
    "PROTOCOLS",
    "Protocol",
    "fit_logistic_regression",
    "knn_accuracy",
    "knn_classify",
    "linear_probe",
    "register",
    "stratified_split",
    "validate_eval",
]
