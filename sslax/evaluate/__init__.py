"""Evaluation of frozen features: linear probe and weighted kNN (arrays in, numbers out)."""

from sslax.evaluate.knn import knn_accuracy, knn_classify
from sslax.evaluate.linear_probe import fit_logistic_regression, linear_probe, stratified_split

__all__ = [
    "fit_logistic_regression",
    "knn_accuracy",
    "knn_classify",
    "linear_probe",
    "stratified_split",
]
