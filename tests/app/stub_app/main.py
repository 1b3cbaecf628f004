"""`panel serve tests/app/stub_app/`: the app as the browser tests see it (test code, not production).

Query arguments choose what the session gets: ``?engines=stub`` (default: fast stub engines shared by
all sessions) or ``?engines=demo`` (the built-in demo bundles); ``?step_delay=20`` gives every Step of
the stubs 20 s more (a slow round); ``?case=real`` opens the real example CT
(``../shared/data/totalseg_example``, pancreas = 7) instead of the demo phantom.
"""

import sys
from pathlib import Path

import panel as pn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
for path in (ROOT, HERE.parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from stub_engine import make_engine  # noqa: E402

from app.page import App, shared  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "totalseg_example"

pn.extension()  # as app/main.py: the upload scripts load with the data panel


def _arg(name: str, default: str) -> str:
    values = (pn.state.session_args or {}).get(name) or [default.encode()]
    return values[0].decode()


def _real_case():
    from rstn_core.io import load_case

    return load_case(REAL / "ct.nii.gz", REAL / "labels.nii.gz", (7,), case_id="totalseg_example")


engines = None
if _arg("engines", "stub") == "stub":
    slow = float(_arg("step_delay", "0"))
    engines = shared(f"stub-engines:{slow}", lambda: {"rstn": make_engine("rstn", delay=0.3, step_delay=slow),
                                                      "c2f": make_engine("c2f", delay=0.3, step_delay=slow)})
case = shared("real-case", _real_case) if _arg("case", "demo") == "real" else None
App(engines=engines, case=case).servable(title="RSTN Studio (test)")
