"""``hit-decoder demo``: the library's three uses, trained and measured on the embedded photographs,
written up as one self-contained HTML page (``OUT/report.html``) and its numbers (``OUT/report.json``).

* :mod:`.plan` — the shipped configs of the phases, their budgets (:class:`DemoPlan`, :data:`BUDGETS`);
* :mod:`.phases` — the phases (public API calls: ``run_training``, ``train_prior``,
  ``sample_sliding_window``, ``decode_codes``) and the measurements on the held-out photographs;
* :mod:`.report` — the report's numbers, ``report.json`` and ``report.html``;
* :mod:`.figures` — its pictures and matplotlib plots (PNG bytes, embedded as data URIs);
* :mod:`.page` — the page: ``templates/report.html`` rendered by Jinja2 with autoescaping;
* :mod:`.terminal` — progress bars, one line per phase, third-party noise silenced (demo only);
* :mod:`.run` — :func:`run_demo`: output folder, the two processes (``concurrent.futures``), the order of the phases.
"""

from .plan import BUDGETS, DemoPlan
from .run import run_demo

__all__ = ["BUDGETS", "DemoPlan", "run_demo"]
