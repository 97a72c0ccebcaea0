"""Test indices that a hostile client sends straight to the server: ``python -m reliability.forged VALUE...``.

Streamlit's AppTest runs the Predict page and sets its test-index widget to each VALUE the way a
hand-made websocket message would, bypassing the page's own checks. It prints one JSON object: how
long the field took to show (``waited``), whether it did (``field``), the exceptions shown before it,
and for each value the widget's value afterwards and the exceptions shown (``values``).

It runs in a process of its own because the page connects the process it runs in to the model engine
for that process's whole life (see ``dashboard.connection``), with the artifacts folder of that moment.
"""

from __future__ import annotations

import json
import sys
import time

from reliability.processes import PROJECT_ROOT

# Seconds to wait for the engine to start and the model to load.
FIELD_SECONDS = 300


def main(values: list[int]) -> dict:
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(PROJECT_ROOT / "dashboard" / "app.py"), default_timeout=180)
    app.run()
    folder = PROJECT_ROOT / "dashboard"
    predict_page = next(path for path in folder.glob("*/predict.py"))
    app.switch_page(str(predict_page.relative_to(folder))).run()
    # The first runs show the engine starting, then the model loading: rerun until the field is there.
    began = time.monotonic()
    while not app.number_input and not app.exception and time.monotonic() - began < FIELD_SECONDS:
        time.sleep(0.5)
        app.run()
    seen = {
        "waited": time.monotonic() - began,
        "field": bool(app.number_input),
        "exceptions": [str(item.value)[:200] for item in app.exception],
        "values": {},
    }
    for forged in values if app.number_input else ():
        app.number_input[0].set_value(forged).run()
        exceptions = [str(item.value)[:200] for item in app.exception]
        seen["values"][str(forged)] = [app.number_input[0].value, exceptions]
    return seen


if __name__ == "__main__":
    print(json.dumps(main([int(value) for value in sys.argv[1:]])), flush=True)
