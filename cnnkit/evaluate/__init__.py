"""Evaluation and diagnostics of trained runs.

* :func:`evaluate_run` - metrics, TTA, confusion matrix, calibration, worst errors;
* :func:`find_leaks` - exact and near-duplicate images across train/val/test;
* :func:`diagnose` - the training doctor (under/overfitting, learning rate, plateau);
* :func:`ensemble_runs`, :func:`cross_validate`, :func:`lr_find`, :func:`build_report`.

    >>> from cnnkit.evaluate import evaluate_run
    >>> m = evaluate_run("runs/lenet5-digits-...", tta="flip")  # doctest: +SKIP
    >>> m["accuracy"], m["macro"]["f1"], m["ece"], m["files"]["confusion_png"]  # doctest: +SKIP
"""

from cnnkit import lazy_getattr

# Exported lazily (PEP 562): ``cnnkit --help`` imports the CLI modules, which must stay cheap.
_EXPORTS = {
    "TTA_MODES": "evaluate",
    "Finding": "doctor",
    "build_report": "report",
    "compute_metrics": "metrics",
    "cross_validate": "cv",
    "diagnose": "doctor",
    "ensemble_runs": "ensemble",
    "evaluate_run": "evaluate",
    "find_copies": "leakage",
    "find_leaks": "leakage",
    "format_findings": "doctor",
    "lr_find": "lr_find",
    "reliability_bins": "metrics",
}


__getattr__ = lazy_getattr(__name__, {name: f"cnnkit.evaluate.{module}" for name, module in _EXPORTS.items()})


__all__ = [
    "TTA_MODES",
    "Finding",
    "build_report",
    "compute_metrics",
    "cross_validate",
    "diagnose",
    "ensemble_runs",
    "evaluate_run",
    "find_copies",
    "find_leaks",
    "format_findings",
    "lr_find",
    "reliability_bins",
]
